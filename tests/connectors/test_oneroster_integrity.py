"""Messy OneRoster files: cut files, short rows, duplicates, org cycles, warnings (issue 15)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from gateway.replica.records import Record, Reject, Tombstone

from connectors.oneroster_csv import Bundle, BundleError
from connectors.oneroster_reader import OneRosterReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster"
USERS_HEADER = ("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,"
                "familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password")


def bundle_with(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(FIXTURES / "district-1p1", folder)
    for name, body in files.items():
        (folder / name).write_bytes(body.encode() if isinstance(body, str) else body)
    return folder


def reader(path: Path) -> OneRosterReader:
    return OneRosterReader("roster", "roster", Bundle(path), True)


def read(c: OneRosterReader, stream: str) -> list[Record | Tombstone | Reject]:
    return list(c.iter_records(stream, None))


def ids(items: list[Record | Tombstone | Reject]) -> set[str]:
    return {i.source_id for i in items if isinstance(i, Record)}


def rejects(items: list[Record | Tombstone | Reject]) -> dict[str, str]:
    return {r.source_position: r.reason for r in items if isinstance(r, Reject)}


# --- rows against the header ---------------------------------------------------------------

def test_a_short_row_in_the_middle_is_a_reject_naming_file_and_line(tmp_path: Path) -> None:
    body = ("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
            "D1,,,Maple District,district,MD,\n"
            "S1,,,Maple High School\n"
            "S2,,,Birch School,school,BS,D1\n")
    items = read(reader(bundle_with(tmp_path, {"orgs.csv": body})), "schools")
    assert ids(items) == {"D1", "S2"}
    assert rejects(items) == {"orgs.csv line 3": "has 4 fields but the header names 7 columns"}


def test_a_header_ending_in_blank_columns_lets_rows_stop_after_the_named_ones(tmp_path: Path) -> None:
    body = ("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId,,\n"
            "D1,,,Maple District,district,MD,\n"
            "S1,,,Maple High School,school,MHS,D1")  # no final line end either
    items = read(reader(bundle_with(tmp_path, {"orgs.csv": body})), "schools")
    assert ids(items) == {"D1", "S1"} and rejects(items) == {}


def test_a_complete_last_row_without_a_line_end_is_read(tmp_path: Path) -> None:
    body = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\nD1,,,Maple District,district,MD,"
    assert ids(read(reader(bundle_with(tmp_path, {"orgs.csv": body})), "schools")) == {"D1"}


def test_a_cut_last_row_fails_the_file_naming_file_and_line(tmp_path: Path) -> None:
    users = (FIXTURES / "district-1p1" / "users.csv").read_text()
    cut = users[:users.index("T-LEE") + len("T-LEE,,,tr")]
    c = reader(bundle_with(tmp_path, {"users.csv": cut}))
    with pytest.raises(BundleError, match=r"users\.csv line 9 is cut short: it has 4 fields but the header names 18 columns") as caught:
        read(c, "students")
    assert "re-export" in caught.value.hint


def test_an_unclosed_quote_at_the_end_fails_the_file(tmp_path: Path) -> None:
    users = (FIXTURES / "district-1p1" / "users.csv").read_text()
    cut = users[:users.index('"U-ANA,U-CAL"') + len('"U-ANA,U')]
    c = reader(bundle_with(tmp_path, {"users.csv": cut}))
    with pytest.raises(BundleError, match=r"users\.csv line 5 .*unclosed quote"):
        read(c, "guardians")


def test_a_zip_member_with_a_bad_crc_fails_naming_the_member(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in sorted((FIXTURES / "district-1p1").iterdir()):
            archive.write(file, file.name)
    data = bytearray(path.read_bytes())
    at = data.index(b"Maple District")
    data[at:at + 5] = b"Mable"  # same length, so only the checksum betrays it
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"orgs\.csv .*(damaged|CRC)"):
        c = reader(path)
        read(c, "schools")


# --- duplicates -----------------------------------------------------------------------------

def test_an_identical_duplicate_row_counts_once_and_is_reported(tmp_path: Path) -> None:
    body = ("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
            "D1,,,Maple District,district,MD,\nS1,,,Maple High School,school,MHS,D1\nS1,,,Maple High School,school,MHS,D1\n")
    c = reader(bundle_with(tmp_path, {"orgs.csv": body}))
    items = read(c, "schools")
    assert [i.source_id for i in items if isinstance(i, Record)] == ["D1", "S1"] and rejects(items) == {}
    assert c.findings()["duplicates"] == {"orgs.csv": {"identical": 1, "conflicting": 0}}


def test_conflicting_duplicate_rows_are_both_rejected_and_kept(tmp_path: Path) -> None:
    body = ("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
            "D1,,,Maple District,district,MD,\nS1,,,Maple High School,school,MHS,D1\nS1,,,Maple Middle School,school,MMS,D1\n")
    items = read(reader(bundle_with(tmp_path, {"orgs.csv": body})), "schools")
    assert ids(items) == {"D1"}
    found = [i for i in items if isinstance(i, Reject)]
    assert {(r.source_position, r.source_id) for r in found} == {("orgs.csv line 3", "S1"), ("orgs.csv line 4", "S1")}
    assert all("S1 appears 2 times with different values (lines 3, 4)" in r.reason for r in found)


def test_one_user_id_as_parent_and_as_student_is_a_reject_in_every_stream_never_a_swap(tmp_path: Path) -> None:
    users = (FIXTURES / "district-1p1" / "users.csv").read_text()
    users += "P-ROSA,,,true,S1,student,rosa.s,,Rosa,Reyes,,20009,,,,,9,\n"
    c = reader(bundle_with(tmp_path, {"users.csv": users}))
    students, guardians, links = read(c, "students"), read(c, "guardians"), read(c, "student_guardians")
    assert "P-ROSA" not in ids(students) and "P-ROSA" not in ids(guardians)
    for items in (students, guardians):
        assert {r.source_id for r in items if isinstance(r, Reject)} == {"P-ROSA"}
    assert not any(i.source_id.endswith(":P-ROSA") for i in links if isinstance(i, Record))
    kept = [r for r in links if isinstance(r, Reject) and r.source_id is None and r.keep_rows]
    assert kept and kept[0].keep_rows == (("student_source_id", "P-ROSA"), ("guardian_source_id", "P-ROSA"))


# --- organisations ----------------------------------------------------------------------------

def test_an_org_that_is_its_own_ancestor_is_rejected(tmp_path: Path) -> None:
    body = ("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
            "D1,,,Maple District,district,MD,S2\nS1,,,Maple High School,school,MHS,D1\nS2,,,Birch,school,B,S1\n"
            "S3,,,Oak,school,O,S3\nS4,,,Elm,school,E,D9\n")
    items = read(reader(bundle_with(tmp_path, {"orgs.csv": body})), "schools")
    assert ids(items) == {"S4"}
    assert rejects(items) == {
        "orgs.csv line 2": "org D1 is its own ancestor (D1 → S2 → S1 → D1)",
        "orgs.csv line 3": "org S1 is its own ancestor (S1 → D1 → S2 → S1)",
        "orgs.csv line 4": "org S2 is its own ancestor (S2 → S1 → D1 → S2)",
        "orgs.csv line 5": "org S3 is its own ancestor (S3 → S3)",
    }


# --- warnings -------------------------------------------------------------------------------

def test_unknown_columns_dropped_values_and_nonstandard_dates_are_reported(tmp_path: Path) -> None:
    users = (FIXTURES / "district-1p1" / "users.csv").read_text().splitlines()
    users = [line + "," for line in users]
    users[0] += "prefferedGivenName"
    users[1] += "Annie"
    users[2] += "Benny"
    sessions = ("sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n"
                "Y2027,,,2026-27,schoolYear,2026-07-01,30/06/2027,,2027\n"
                "SEM1,,,Fall,semester,15/08/2026,2026-12-20,Y2027,2027\n")
    c = reader(bundle_with(tmp_path, {"users.csv": "\n".join(users) + "\n", "academicSessions.csv": sessions}))
    for spec in c.streams:
        read(c, spec.name)
    warnings = c.findings()
    assert warnings["unknown_columns"] == {"classes.csv": ["vendorcolor"], "users.csv": ["prefferedgivenname"]}
    assert warnings["values_dropped"]["users.csv prefferedgivenname"] == {
        "count": 2, "first": ["users.csv line 2", "users.csv line 3"]}
    assert warnings["nonstandard_dates"] == {
        "count": 2, "first": ["academicSessions.csv line 2 endDate", "academicSessions.csv line 3 startDate"]}


def test_a_user_with_primary_roles_student_and_parent_is_rejected_in_every_stream(tmp_path: Path) -> None:
    folder = tmp_path / "delta"
    shutil.copytree(FIXTURES / "delta-1p2", folder)
    with (folder / "roles.csv").open("a") as out:
        out.write("RL-ROSA-S,active,2026-11-20T08:15:00.000Z,P-ROSA,primary,student,2026-08-24,,S1,\n"
                  "RL-ANA-P,active,2026-11-20T08:15:00.000Z,U-ANA,primary,parent,,,S1,\n")
    c = reader(folder)
    students, guardians = read(c, "students"), read(c, "guardians")
    assert ids(students) == set() and ids(guardians) == set()
    assert {r.source_id for r in students if isinstance(r, Reject)} >= {"U-ANA", "P-ROSA"}
    assert rejects(guardians)["users.csv line 4"] == ("user P-ROSA has the primary roles parent and student in roles.csv: "
                                                     "none is applied, the stored rows are kept")
    enrolments = read(c, "enrollments")
    assert {r.source_id for r in enrolments if isinstance(r, Reject)} == {"RL-ANA", "RL-ROSA-S"}
    assert not any(r.narrows for r in enrolments if isinstance(r, Reject))


def test_an_unreadable_date_last_modified_loads_the_record_and_is_listed(tmp_path: Path) -> None:
    body = ("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
            "D1,,,Maple District,district,MD,\nS1,active,not-a-time,Maple High School,school,MHS,D1\n")
    c = reader(bundle_with(tmp_path, {"orgs.csv": body}))
    assert ids(read(c, "schools")) == {"D1", "S1"}
    assert c.findings()["unreadable_modification_times"] == {"count": 1, "first": ["orgs.csv line 3"]}
