"""The edfi connector against a real loopback Ed-Fi ODS/API (its own OAuth 2 endpoint, paging, change queries)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import create_rw_engine
from gateway.errors import ConfigError
from gateway.replica.records import (
    AttendanceRecord, EnrollmentRecord, KeyChange, Record, Reject, StudentGuardianRecord, TermGradeRecord, Tombstone,
)
from gateway.replica.tables import ReplicaBase, SyncRun
from gateway.security.keys import write_secret_file
from gateway.settings import ConnectorSettings, Settings

from connectors.edfi import EdFiConnector, from_settings
from connectors.oneroster_csv import Bundle
from connectors.oneroster_reader import OneRosterReader
from connectors.oneroster_rest import ProviderError

from .edfi_provider import EdFiProvider

CSV_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster" / "grand-bend-1p1"
SECTION = "255901001-2026-Fall Semester-ALG-1-ALG-1-01"
# What OneRoster cannot carry and Ed-Fi does: the links' legalGuardian and livesWith, by hand.
LINK_FLAGS = {"604821:C100": (True, True), "604821:C102": (False, False), "604822:C101": (None, False)}
SHARED_STREAMS = ("schools", "terms", "students", "guardians", "student_guardians", "courses", "sections",
                  "section_terms", "section_enrollments", "assignments", "scores")


@pytest.fixture
def edfi() -> Iterator[EdFiProvider]:
    server = EdFiProvider()
    yield server
    server.stop()


def entry_for(provider: EdFiProvider, **options: object) -> ConnectorSettings:
    return ConnectorSettings("state-ods", "edfi", "state-ods", {
        "base_url": provider.base_url, "client_id": provider.state.client_id, "retries": 1, **options})


def connect(provider: EdFiProvider, settings: Settings, **options: object) -> EdFiConnector:
    write_secret_file(settings.keys_dir / "source-state-ods", provider.state.secret)
    return from_settings(entry_for(provider, **options), settings)


def everything(connector: EdFiConnector | OneRosterReader, streams: tuple[str, ...] | None = None) -> dict[str, list[object]]:
    result: dict[str, list[object]] = {}
    for spec in connector.streams:
        if streams is None or spec.name in streams:
            items = list(connector.iter_records(spec.name, None))
            records = sorted((i for i in items if isinstance(i, Record)), key=lambda r: r.source_id)
            result[spec.name] = [*records, *sorted(i.reason for i in items if isinstance(i, Reject))]
    return result


def test_one_district_as_edfi_json_and_as_oneroster_csv_gives_identical_records(edfi: EdFiProvider, instance: Settings) -> None:
    from_csv = everything(OneRosterReader("state-ods", "state-ods", Bundle(CSV_FIXTURE), True), SHARED_STREAMS)
    from_edfi = everything(connect(edfi, instance, guardian_portal_access=True), SHARED_STREAMS)
    from_csv["student_guardians"] = [
        dataclasses.replace(link, custody=LINK_FLAGS[link.source_id][0], lives_with=LINK_FLAGS[link.source_id][1])
        for link in from_csv["student_guardians"] if isinstance(link, StudentGuardianRecord)]
    assert set(from_edfi) == set(SHARED_STREAMS)
    for stream in SHARED_STREAMS:
        assert from_edfi[stream] == from_csv[stream], stream
    assert [s.source_id for s in from_edfi["students"]] == ["604821", "604822"]  # type: ignore[attr-defined]


def test_data_standard_4_parents_give_the_same_records_as_data_standard_5_contacts(instance: Settings) -> None:
    ds4, ds5 = EdFiProvider("4.0.0"), EdFiProvider("5.2.0")
    try:
        old = everything(connect(ds4, instance), ("guardians", "student_guardians"))
        new = everything(connect(ds5, instance), ("guardians", "student_guardians"))
    finally:
        ds4.stop()
        ds5.stop()
    assert old == new and len(new["guardians"]) == 3
    assert ds4.gets("/ed-fi/parents") and ds4.gets("/ed-fi/studentParentAssociations") and not ds4.gets("/ed-fi/contacts")
    assert ds5.gets("/ed-fi/contacts") and not ds5.gets("/ed-fi/parents")


def test_portal_access_follows_legal_guardian_else_a_parent_or_guardian_relation(edfi: EdFiProvider, instance: Settings) -> None:
    links = {link.source_id: link for link in everything(connect(edfi, instance), ("student_guardians",))["student_guardians"]}
    # Mother, legalGuardian true: yes. Father, legalGuardian not given: a parent, yes. Grandmother, legalGuardian false: no.
    assert {k: (v.relationship, v.portal_access) for k, v in links.items()} == {  # type: ignore[attr-defined]
        "604821:C100": ("parent", True), "604822:C101": ("parent", True), "604821:C102": ("relative", False)}
    none = everything(connect(edfi, instance, guardian_portal_access=False), ("student_guardians",))["student_guardians"]
    assert [link.portal_access for link in none] == [False, False, False]  # type: ignore[attr-defined]


def test_enrolments_grades_and_attendance_go_through_the_descriptor_table(edfi: EdFiProvider, instance: Settings, tmp_path: Path) -> None:
    overrides = tmp_path / "descriptors.toml"
    overrides.write_text('[AttendanceEventCategoryDescriptor]\n"uri://district.org/AttendanceEventCategoryDescriptor#Tardy" = "absent"\n')
    records = everything(connect(edfi, instance), ("enrollments", "term_grades", "attendance"))
    (ana, ben) = records["enrollments"]
    assert isinstance(ana, EnrollmentRecord) and (ana.source_id, ana.entry_date, ana.grade_level) == (
        "604821@255901001:2025-08-20", dt.date(2025, 8, 20), "09")
    (grade,) = records["term_grades"]
    assert isinstance(grade, TermGradeRecord) and (grade.mark, grade.percent, grade.section_source_id, grade.term_source_id) == (
        "A", 93.0, SECTION, "255901001-2026-Fall Semester")
    statuses = {(a.student_source_id, a.status, a.code, a.section_source_id, a.minutes) for a in records["attendance"]
                if isinstance(a, AttendanceRecord)}
    assert statuses == {("604821", "excused", "Excused Absence", None, None), ("604822", "tardy", "Tardy", SECTION, 15)}
    overridden = everything(connect(edfi, instance, descriptor_map=str(overrides)), ("attendance",))["attendance"]
    assert sorted(a.status for a in overridden) == ["absent", "excused"]  # type: ignore[attr-defined]


def test_an_unknown_attendance_descriptor_is_a_reject_naming_it(edfi: EdFiProvider, instance: Settings) -> None:
    event = edfi.state.find("studentSchoolAttendanceEvents", "att-1")
    edfi.state.put("studentSchoolAttendanceEvents", {**event, "attendanceEventCategoryDescriptor": "uri://district.org/X#Field trip"})
    items = list(connect(edfi, instance).iter_records("attendance", None))
    (reject,) = [i for i in items if isinstance(i, Reject)]
    assert "Field trip" in reject.reason and "descriptor_map" in reject.reason
    assert reject.source_id == "604821@255901001-2026-Fall Semester:2025-09-10:Field trip"  # its stored row is kept


def test_listings_are_paged_to_the_total_count(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.max_limit = 1  # the server caps limit without saying so
    students = everything(connect(edfi, instance, page_size=2), ("students",))["students"]
    assert len(students) == 2
    offsets = [query["offset"] for _, query, _ in edfi.gets("/ed-fi/students")]
    assert offsets == [["0"], ["1"]] and all(q["totalCount"] == ["true"] for _, q, _ in edfi.gets("/ed-fi/students"))


def test_a_total_count_that_does_not_match_fails_the_stream(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.total_skew["students"] = 1
    connector = connect(edfi, instance)
    with pytest.raises(ProviderError, match="counted 3 students .* but sent 2") as caught:
        list(connector.iter_records("students", None))
    assert caught.value.retriable


def test_only_get_is_sent_apart_from_the_token_post_which_uses_basic_auth(edfi: EdFiProvider, instance: Settings) -> None:
    everything(connect(edfi, instance))
    posts = [r for r in edfi.state.requests if r[0] == "POST"]
    assert [p[1] for p in posts] == ["/oauth/token"]
    assert posts[0][3]["Authorization"].startswith("Basic ") and "client_secret" not in posts[0][2]
    assert {r[0] for r in edfi.state.requests} == {"GET", "POST"}


def test_a_wrong_secret_and_a_secret_in_the_config_are_refused(edfi: EdFiProvider, instance: Settings) -> None:
    write_secret_file(instance.keys_dir / "source-state-ods", "not-it")
    with pytest.raises(ProviderError, match="cannot get a token"):
        from_settings(entry_for(edfi), instance)
    with pytest.raises(ConfigError, match="GATEWAY_SECRET_SOURCE_STATE_ODS"):
        from_settings(entry_for(edfi, client_secret="x"), instance)
    with pytest.raises(ConfigError, match="guardian_portal_access"):
        from_settings(entry_for(edfi, guardian_portal_access="maybe"), instance)


def test_an_incremental_read_asks_for_the_versions_after_the_cursor_up_to_the_newest(edfi: EdFiProvider, instance: Settings) -> None:
    newest = edfi.state.change_version
    connector = connect(edfi, instance, use_snapshot=True)
    items = list(connector.iter_records("students", newest - 2))
    assert items == []  # nothing changed among students in the last two versions
    (_, query, headers), = [g for g in edfi.gets("/ed-fi/students") if g[0].endswith("/students")]
    assert (query["minChangeVersion"], query["maxChangeVersion"]) == ([str(newest - 1)], [str(newest)])
    assert headers.get("Use-Snapshot") == "true"


def replica_rows(settings: Settings, table: str) -> dict[str, dict[str, object]]:
    engine = create_rw_engine(settings.replica.url)
    t = ReplicaBase.metadata.tables[table]
    with engine.connect() as connection:
        rows = {row["source_id"]: dict(row) for row in connection.execute(select(t)).mappings()}
    engine.dispose()
    return rows


@pytest.mark.parametrize("deletes_with_keys", [True, False], ids=["deletes-with-key-values", "deletes-with-ids-only"])
def test_an_incremental_run_yields_exactly_the_edits_deletes_and_key_change(
    edfi: EdFiProvider, any_instance: Settings, deletes_with_keys: bool
) -> None:
    instance = any_instance  # SQLite and PostgreSQL
    from connectors import registry
    from sync.engine import run_sync

    write_secret_file(instance.keys_dir / "source-state-ods", edfi.state.secret)
    entry = entry_for(edfi)
    settings = dataclasses.replace(instance, connectors=(entry,))
    first = run_sync(settings, registry.build(entry, settings), "incremental")
    assert first.status == "succeeded" and first.counts["students"].inserted == 2
    ana_before = replica_rows(settings, "students")["604821"]
    links_before = replica_rows(settings, "student_guardians")

    edfi.state.deletes_with_keys = deletes_with_keys
    tom = edfi.state.find("contacts", "c-tom-guid")
    edfi.state.put("contacts", {**tom, "firstName": "Thomas"})  # an edit
    edfi.state.delete("studentSectionAssociations", "ssec-2")  # Ben leaves Algebra
    edfi.state.change_key("students", "s-ana-guid", "studentUniqueId", "604899")  # Ana's id corrected
    second = run_sync(settings, registry.build(entry, settings), "incremental")

    assert second.status == "succeeded"
    assert second.counts["guardians"].updated == 1 and second.counts["guardians"].inserted == 0
    assert second.counts["section_enrollments"].deleted == 1
    assert second.counts["students"].inserted == 0 and second.counts["students"].deleted == 0
    students = replica_rows(settings, "students")
    assert set(students) == {"604899", "604822"}
    assert students["604899"]["id"] == ana_before["id"]  # the same row: moved, not deleted and inserted
    links = replica_rows(settings, "student_guardians")
    assert set(links) == {"604899:C100", "604899:C102", "604822:C101"}
    moved = links["604899:C100"]
    assert (moved["id"], moved["student_id"], moved["portal_access"]) == (
        links_before["604821:C100"]["id"], ana_before["id"], True)
    assert set(replica_rows(settings, "section_enrollments")) == {f"604899@{SECTION}:2025-08-20"}
    assert set(replica_rows(settings, "scores")) == {"uri://grandbend.org/gradebook#GB-1:604899"}
    for counts in second.counts.values():
        assert counts.inserted == 0, second.counts  # a key change is never an insert


def test_a_delete_the_gateway_never_saw_is_a_reject_not_a_guess(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.deletes_with_keys = False
    since = edfi.state.change_version
    edfi.state.delete("students", "s-ben-guid")
    connector = connect(edfi, instance)  # a fresh connector that has read nothing yet
    items = list(connector.iter_records("students", since))
    assert [type(i) for i in items] == [Reject] and "never read by this gateway" in items[0].reason  # type: ignore[union-attr]
    edfi.state.deletes_with_keys = True
    assert Tombstone("students", "604822", since + 1) in list(connect(edfi, instance).iter_records("students", since))


def test_key_changes_come_before_the_changed_rows(edfi: EdFiProvider, instance: Settings) -> None:
    since = edfi.state.change_version
    edfi.state.change_key("students", "s-ana-guid", "studentUniqueId", "604899")
    items = list(connect(edfi, instance).iter_records("students", since))
    assert isinstance(items[0], KeyChange) and (items[0].old_source_id, items[0].new_source_id) == ("604821", "604899")
    assert [i.source_id for i in items[1:]] == ["604899"]  # type: ignore[union-attr]


def test_an_expired_token_is_renewed_once_and_the_read_goes_on(edfi: EdFiProvider, instance: Settings) -> None:
    connector = connect(edfi, instance)
    edfi.state.tokens.clear()  # the API forgot every token (restarted, or they expired early)
    assert len(everything(connector, ("students",))["students"]) == 2
    assert len([r for r in edfi.state.requests if r[0] == "POST"]) == 2


def test_a_required_resource_the_api_does_not_expose_fails_naming_it_and_what_to_ask_for(
    edfi: EdFiProvider, instance: Settings
) -> None:
    del edfi.state.items["studentSchoolAssociations"]
    with pytest.raises(ProviderError, match="studentSchoolAssociations is not found .404.*studentSchoolAssociations is "
                                            "required.*profile and claim set"):
        list(connect(edfi, instance).iter_records("enrollments", None))
    edfi.state.forbidden.add("contacts")
    with pytest.raises(ProviderError, match="not allowed to read contacts .403.*contacts is required"):
        list(connect(edfi, instance).iter_records("guardians", None))


def test_an_optional_resource_the_api_does_not_expose_skips_its_stream_and_the_run_succeeds_saying_so(
    edfi: EdFiProvider, instance: Settings
) -> None:
    from connectors import registry
    from sync.engine import run_sync

    del edfi.state.items["gradebookEntries"]  # e.g. an API profile without the gradebook
    write_secret_file(instance.keys_dir / "source-state-ods", edfi.state.secret)
    entry = entry_for(edfi)
    settings = dataclasses.replace(instance, connectors=(entry,))
    result = run_sync(settings, registry.build(entry, settings), "full")

    assert result.status == "succeeded" and "assignments" not in result.counts
    assert list(result.warnings) == ["the API gives this client no gradebookEntries (not found (404)): the "
                               "assignments stream is skipped (its rows in the replica stay as they were); if the district "
                               "keeps gradebookEntries, ask the API's operator to add it to this client's profile and "
                               "claim set"]
    assert set(replica_rows(settings, "students")) == {"604821", "604822"}
    assert set(replica_rows(settings, "term_grades")) and set(replica_rows(settings, "attendance"))
    engine = create_rw_engine(settings.replica.url)
    with Session(engine) as session:
        (run,) = session.scalars(select(SyncRun)).all()
        assert run.warnings == list(result.warnings)  # kept with the run for the IT console
    engine.dispose()


def test_a_resource_refused_by_the_profile_skips_only_that_part_of_a_stream(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.forbidden.add("studentSectionAttendanceEvents")  # 403: the profile leaves it out
    connector = connect(edfi, instance)
    (school_day,) = everything(connector, ("attendance",))["attendance"]
    assert isinstance(school_day, AttendanceRecord) and school_day.section_source_id is None
    (warning,) = connector.warnings()
    assert warning.startswith("the API gives this client no studentSectionAttendanceEvents (not allowed to read "
                              "studentSectionAttendanceEvents (403)): the attendance stream reads "
                              "studentSchoolAttendanceEvents only")


def test_an_incremental_run_re_sends_a_student_whose_school_association_alone_changed(
    edfi: EdFiProvider, instance: Settings
) -> None:
    from connectors import registry
    from sync.engine import run_sync

    write_secret_file(instance.keys_dir / "source-state-ods", edfi.state.secret)
    entry = entry_for(edfi)
    settings = dataclasses.replace(instance, connectors=(entry,))
    run_sync(settings, registry.build(entry, settings), "incremental")
    ben = replica_rows(settings, "students")["604822"]
    assert ben["grade_level"] == "10"

    edfi.state.put("schools", {"id": "sch-2", "schoolId": 255901044, "nameOfInstitution": "Grand Bend Middle School",
                               "localEducationAgencyReference": {"localEducationAgencyId": 255901}})
    association = edfi.state.find("studentSchoolAssociations", "ssa-2")
    edfi.state.put("studentSchoolAssociations", {**association, "schoolReference": {"schoolId": 255901044},
                                                 "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Eleventh grade"})
    second = run_sync(settings, registry.build(entry, settings), "incremental")

    assert second.status == "succeeded"
    assert (second.counts["students"].updated, second.counts["students"].unchanged) == (1, 0)  # Ana is not re-sent
    moved = replica_rows(settings, "students")["604822"]
    schools = {row["id"]: source_id for source_id, row in replica_rows(settings, "schools").items()}
    assert (moved["id"], moved["grade_level"], moved["school_source_id"], schools[moved["school_id"]]) == (
        ben["id"], "11", "255901044", "255901044")
    assert [q["studentUniqueId"] for _, q, _ in edfi.gets("/ed-fi/students") if "studentUniqueId" in q] == [["604822"]]


def test_the_integer_cursor_is_the_newest_change_version_and_moves_only_with_a_published_run(
    edfi: EdFiProvider, instance: Settings
) -> None:
    from connectors import registry
    from sync import cursors
    from sync.engine import run_sync

    write_secret_file(instance.keys_dir / "source-state-ods", edfi.state.secret)
    entry = entry_for(edfi, retries=1)
    settings = dataclasses.replace(instance, connectors=(entry,),
                                   sync=dataclasses.replace(instance.sync, retry_attempts=0))
    newest = edfi.state.change_version
    run_sync(settings, registry.build(entry, settings))
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        assert cursors.load(connection, "state-ods")["students"] == newest
    tom = edfi.state.find("contacts", "c-tom-guid")
    edfi.state.put("contacts", {**tom, "firstName": "Thomas"})
    edfi.state.total_skew["grades"] = 5  # a later stream fails: nothing of the run is published
    with pytest.raises(ProviderError):
        run_sync(settings, registry.build(entry, settings))
    with engine.connect() as connection:
        assert cursors.load(connection, "state-ods")["guardians"] == newest
    engine.dispose()
    edfi.state.total_skew.clear()
    again = run_sync(settings, registry.build(entry, settings))
    assert again.counts["guardians"].updated == 1  # the edit was not lost with the failed run


def test_without_change_queries_every_run_reads_everything_and_deletes_what_vanished(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.change_queries = False
    connector = connect(edfi, instance)
    assert not any(spec.incremental for spec in connector.streams)  # the engine lists each stream in full
    assert [r.modified_at for r in everything(connector, ("students",))["students"]] == [None, None]  # type: ignore[attr-defined]


def test_an_api_without_key_changes_is_read_and_the_run_says_so(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.key_changes = False
    since = edfi.state.change_version
    tom = edfi.state.find("contacts", "c-tom-guid")
    edfi.state.put("contacts", {**tom, "firstName": "Thomas"})
    connector = connect(edfi, instance)
    (changed,) = list(connector.iter_records("guardians", since))
    assert changed.given_name == "Thomas"  # type: ignore[union-attr]
    assert connector.warnings() == ["the API has no contacts/keyChanges: a corrected natural key arrives as a new row "
                                    "(and the old one stays until a full run)"]


def test_a_year_specific_deployment_takes_the_year_from_school_year(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.year_route = 2026
    with pytest.raises(ConfigError, match="school_year"):
        connect(edfi, instance)
    connector = connect(edfi, instance, school_year=2026)
    assert len(everything(connector, ("students",))["students"]) == 2
    assert edfi.gets("/data/v3/2026/ed-fi/students") and edfi.gets("/changeQueries/v1/2026/availableChangeVersions")


def test_keyset_paging_follows_next_page_tokens_and_still_checks_the_total(edfi: EdFiProvider, instance: Settings) -> None:
    students = everything(connect(edfi, instance, paging="keyset", page_size=1), ("students",))["students"]
    assert [s.source_id for s in students] == ["604821", "604822"]  # type: ignore[attr-defined]
    assert len([g for g in edfi.gets("/ed-fi/students") if "pageToken" in g[1]]) == 2
    edfi.state.total_skew["students"] = 1
    with pytest.raises(ProviderError, match="counted 3 students"):
        list(connect(edfi, instance, paging="keyset").iter_records("students", None))
    with pytest.raises(ConfigError, match="paging"):
        connect(edfi, instance, paging="cursor")


def test_keyset_paging_counts_without_reading_an_item_and_asks_partitions_for_the_start_token(
    edfi: EdFiProvider, instance: Settings
) -> None:
    everything(connect(edfi, instance, paging="keyset", page_size=1), ("students",))
    (count,) = [q for path, q, _ in edfi.gets("/ed-fi/students") if path.endswith("/students") and "totalCount" in q]
    assert (count["limit"], count["totalCount"]) == (["0"], ["true"])  # the count carries no student
    (_, partitions, _), = edfi.gets("/ed-fi/students/partitions")
    assert partitions == {"number": ["1"]}


def test_an_api_refusing_limit_0_is_counted_and_probed_with_one_item(edfi: EdFiProvider, instance: Settings) -> None:
    edfi.state.min_limit = 1  # 400 for limit=0
    connector = connect(edfi, instance, paging="keyset")
    assert len(everything(connector, ("students", "assignments"))["students"]) == 2
    limits = [q["limit"] for path, q, _ in edfi.gets("/ed-fi/students") if path.endswith("/students") and "limit" in q]
    assert limits == [["0"], ["1"]]
    assert connector.warnings() == []  # the optional gradebook was probed and found, despite the 400 for limit=0
