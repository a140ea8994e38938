"""The demo SIS generator's ids hold at benchmark sizes (100,000 students)."""

from __future__ import annotations

from gateway.demo.sis import SCHOOLS, DemoDistrict


def test_section_ids_stay_unique_and_readable_past_a_hundred_sections_of_a_course() -> None:
    ids = [DemoDistrict._section_id(school, grade, course, section)
           for school, (_, _, grades) in SCHOOLS.items() for grade in grades for course in range(6)
           for section in range(1500)]  # a 100,000-student district's high school has about 1,300
    assert len(set(ids)) == len(ids)
    assert DemoDistrict._section_id(4, 9, 2, 7) == 409207  # school 4, grade 9, course 2, section 7
    assert DemoDistrict._section_id(4, 9, 2, 107) == 10_409_207
    assignment_ids = {section_id * 100 + number for section_id in ids for number in range(5)}
    assert len(assignment_ids) == 5 * len(ids) and max(assignment_ids) < 2**63
