"""The oneroster-csv connector on the project's fixtures, the shared samples and bad input."""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.replica.records import Record, Reject, Tombstone
from gateway.settings import ConnectorSettings, Settings

from connectors.oneroster_csv import Bundle, BundleError, from_settings
from connectors.oneroster_reader import OneRosterReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "interop" / "oneroster"
UTC = dt.timezone.utc


def connector(path: Path, access: bool = True) -> OneRosterReader:
    return OneRosterReader("roster", "roster", Bundle(path), access)


def read(c: OneRosterReader, stream: str) -> list[Record | Tombstone | Reject]:
    return list(c.iter_records(stream, None))


def records(c: OneRosterReader, stream: str) -> dict[str, Record]:
    return {item.source_id: item for item in read(c, stream) if isinstance(item, Record)}


def test_the_fixture_district_maps_onto_the_canonical_tables() -> None:
    c = connector(FIXTURES / "district-1p1")
    schools = records(c, "schools")
    assert {(s.source_id, s.kind, s.parent_source_id) for s in schools.values()} == {("D1", "district", None), ("S1", "school", "D1")}
    terms = records(c, "terms")
    assert terms["SEM2"].kind == "semester" and terms["Q2"].kind == "gradingPeriod" and terms["Q2"].parent_source_id == "SEM1"
    assert terms["Y2027"].start_date == dt.date(2026, 7, 1) and terms["Y2027"].school_year == 2027
    sections = records(c, "sections")
    assert (sections["K-BIO-1"].teacher_name, sections["K-BIO-1"].teacher_email) == ("Jae Kim", "jkim@maple.example")
    assert (sections["K-ALG-2"].teacher_name, sections["K-ALG-2"].room, sections["K-ALG-2"].period) == ("Dana Lee", "Room 110", "5")
    assert set(records(c, "section_terms")) == {"K-BIO-1:SEM1", "K-ALG-2:SEM1", "K-ALG-2:SEM2"}


def test_students_get_their_birth_dates_from_demographics() -> None:
    students = records(connector(FIXTURES / "district-1p1"), "students")
    assert {sid: s.birth_date for sid, s in students.items()} == {
        "U-ANA": dt.date(2010, 3, 14), "U-BEN": dt.date(2008, 9, 15), "U-CAL": None}
    ana = students["U-ANA"]
    assert (ana.middle_name, ana.student_number, ana.grade_level, ana.school_source_id) == ("Lucia", "20001", "10", "S1")


def test_agents_link_from_either_side_once_and_other_roles_are_reported_not_linked() -> None:
    items = read(connector(FIXTURES / "district-1p1", access=True), "student_guardians")
    links = {i.source_id: (i.relationship, i.portal_access) for i in items if isinstance(i, Record)}
    assert links == {"U-ANA:P-ROSA": ("parent", True), "U-CAL:P-ROSA": ("parent", True),
                     "U-BEN:P-EMEKA": ("guardian", True), "U-BEN:R-IFE": ("relative", True)}
    (reject,) = [i for i in items if isinstance(i, Reject)]
    assert reject.source_position == "users.csv line 10"
    assert reject.reason == "A-AIDE is a aide, not a parent, guardian or relative: not linked to U-BEN"


def test_guardian_links_grant_portal_access_only_when_configured_to() -> None:
    items = records(connector(FIXTURES / "district-1p1", access=False), "student_guardians")
    assert {link.portal_access for link in items.values()} == {False}


def test_school_enrolments_come_from_enabled_students_org_ids() -> None:
    enrolments = records(connector(FIXTURES / "district-1p1"), "enrollments")
    assert set(enrolments) == {"U-ANA@S1", "U-BEN@S1"}  # U-CAL is not an enabled user


def test_a_teacher_enrolled_as_a_student_is_rejected_naming_the_line() -> None:
    items = read(connector(FIXTURES / "district-1p1"), "section_enrollments")
    assert {i.source_id for i in items if isinstance(i, Record)} == {"E-3", "E-4"}
    (reject,) = [i for i in items if isinstance(i, Reject)]
    assert (reject.source_position, reject.reason) == ("enrollments.csv line 7", "user T-KIM is a teacher, enrolled as a student")


def test_the_gradebook_maps_to_assignments_and_scores() -> None:
    c = connector(FIXTURES / "district-1p1")
    assignments = records(c, "assignments")
    assert (assignments["LI-1"].category, assignments["LI-1"].term_source_id, assignments["LI-1"].points_possible) == ("Homework", "Q2", 10.0)
    assert assignments["LI-2"].due_date == dt.date(2026, 11, 20)
    scores = records(c, "scores")
    assert (scores["R-1"].points, scores["R-1"].missing) == (9.5, False)
    assert (scores["R-2"].points, scores["R-2"].missing) == (None, True)
    assert scores["R-3"].excused is True


def test_no_password_is_read_and_unknown_columns_are_reported_by_name() -> None:
    c = connector(FIXTURES / "district-1p1")
    for spec in c.streams:
        for item in read(c, spec.name):
            assert "Secret-" not in repr(item)
    unmapped = c.unmapped_fields()
    assert unmapped["students"]["users:password"] == 9
    assert "classes:vendorcolor" in unmapped["sections"] and "results:comment" in unmapped["scores"]


def test_a_delta_bundle_yields_changes_and_tombstones() -> None:
    c = connector(FIXTURES / "delta-1p2")
    assert all(spec.delta_only for spec in c.streams)
    students = read(c, "students")
    assert [type(i).__name__ for i in students] == ["StudentRecord", "Tombstone"]
    ana, cal = students
    assert isinstance(ana, Record) and ana.preferred_name == "Lu" and ana.school_source_id == "S1"
    assert ana.modified_at == dt.datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert cal == Tombstone("students", "U-CAL", dt.datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    assert [(type(i).__name__, i.source_id) for i in read(c, "enrollments")] == [("EnrollmentRecord", "RL-ANA"), ("Tombstone", "RL-CAL")]
    assert [(type(i).__name__, i.source_id) for i in read(c, "section_enrollments")] == [("Tombstone", "E-3"), ("SectionEnrollmentRecord", "E-9")]


@pytest.mark.interop
@pytest.mark.parametrize("sample", ["v1p1-bulk-minimal", "v1p2-delta-sample"])
def test_the_shared_samples_load(sample: str) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"the shared interop samples are not at {SHARED}")
    c = connector(SHARED / sample)
    for spec in c.streams:
        assert all(isinstance(i, Record | Tombstone | Reject) for i in read(c, spec.name))
    if sample == "v1p1-bulk-minimal":
        students = records(c, "students")
        assert set(students) == {"usr-222-66778899", "usr-222-1234561232", "usr-222-567891"}
        rejects = [i for i in read(c, "section_enrollments") if isinstance(i, Reject)]
        assert {r.reason for r in rejects} == {"user usr-222-987654 is a teacher, enrolled as a student"}
        assert records(c, "schools")["org-sch-222-456"].kind == "department"
    else:
        (bruce,) = records(c, "students").values()
        assert (bruce.given_name, bruce.birth_date) == ("Bruce", dt.date(2010, 4, 17))
        assert "users:password" in c.unmapped_fields()["students"]


# --- malformed input: a reject per bad row, a clear error per bad file --------------------------

def bundle_with(tmp_path: Path, file: str, body: bytes) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(FIXTURES / "district-1p1", folder)
    (folder / file).write_bytes(body)
    return folder


def test_bad_rows_are_rejected_with_file_and_line_and_the_rest_still_loads(tmp_path: Path) -> None:
    body = (b"sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n"
            b"OK1,,,Fall,semester,2026-08-24,2027-01-15,,2027\n"
            b"BAD1,,,Spring,semester,2027-19-01,2027-06-04,,2027\n"
            b"BAD2,,,Q3,gradingPeriod,1/05/2027,3/20/2027,,2027\n"
            b"OK2,,,Q4,gradingPeriod,3/22/2027,6/14/2027,,2027\n"
            b"BAD3,,,Summer,vacation,2027-06-07,2027-08-01,,2027\n"
            b"BAD4,,,Extra,term,2027-01-01,2027-02-01,,2027,surprise\n"
            b",,,Nameless,term,2027-01-01,2027-02-01,,2027\n"
            b"BAD5,,,Nul\x00Term,term,2027-01-01,2027-02-01,,2027\n")
    items = read(connector(bundle_with(tmp_path, "academicSessions.csv", body)), "terms")
    loaded = {i.source_id: i for i in items if isinstance(i, Record)}
    assert set(loaded) == {"OK1", "OK2"}
    assert loaded["OK2"].start_date == dt.date(2027, 3, 22)  # 3/22: only one reading is a date
    reasons = {r.source_position: r.reason for r in items if isinstance(r, Reject)}
    assert reasons == {
        "academicSessions.csv line 3": "startDate '2027-19-01' is not a date",
        "academicSessions.csv line 4": "startDate '1/05/2027' is ambiguous (day and month could be either way)",
        "academicSessions.csv line 6": "type 'vacation' is not one of schoolYear, semester, term, gradingPeriod",
        "academicSessions.csv line 7": "has 10 fields but the header has 9",
        "academicSessions.csv line 8": "sourcedid is empty",
        "academicSessions.csv line 9": "a value contains a NUL character",
    }


def test_an_unreadable_date_last_modified_still_loads_the_record(tmp_path: Path) -> None:
    body = b"sourcedId,status,dateLastModified,title\nCAT-HW,active,yesterday-ish,Homework\n"
    folder = bundle_with(tmp_path, "orgs.csv", b"sourcedId,status,dateLastModified,name,type\nS1,active,not-a-time,Maple,school\n")
    (school,) = records(connector(folder), "schools").values()
    assert school.modified_at is None and body


@pytest.mark.parametrize(("damage", "message"), [
    ("no-manifest", "has no manifest.csv"),
    ("latin-1", "users.csv is not UTF-8"),
    ("truncated-zip", "is not a readable zip"),
    ("missing-file", "manifest lists courses.csv as bulk but the file is missing"),
])
def test_a_bad_file_is_a_clear_error(tmp_path: Path, damage: str, message: str) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(FIXTURES / "district-1p1", folder)
    path: Path = folder
    if damage == "no-manifest":
        (folder / "manifest.csv").unlink()
    elif damage == "latin-1":
        (folder / "users.csv").write_bytes((folder / "users.csv").read_bytes().replace(b"Reyes", "Reyés".encode("latin-1")))
    elif damage == "missing-file":
        (folder / "courses.csv").unlink()
    else:
        path = tmp_path / "bundle.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file in folder.iterdir():
                archive.write(file, file.name)
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BundleError, match=message) as caught:
        c = connector(path)
        for spec in c.streams:
            read(c, spec.name)
    assert "\n" not in str(caught.value)


def test_a_zip_bundle_reads_like_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in (FIXTURES / "district-1p1").iterdir():
            archive.write(file, f"export/{file.name}")
    assert set(records(connector(path), "students")) == {"U-ANA", "U-BEN", "U-CAL"}


def test_the_configuration_must_say_whether_guardian_links_grant_access(instance: Settings) -> None:
    entry = ConnectorSettings("roster", "oneroster-csv", "roster", {"path": str(FIXTURES / "district-1p1")})
    with pytest.raises(ConfigError, match="guardian_portal_access"):
        from_settings(entry, instance)


def test_reading_a_stream_again_yields_the_same_records_as_a_retry_needs() -> None:
    c = connector(FIXTURES / "district-1p1")
    first, again = read(c, "student_guardians"), read(c, "student_guardians")
    assert first == again and len([i for i in again if isinstance(i, Record)]) == 4
