"""The shipped table from Ed-Fi descriptors to canonical values (Data Standard 5.2 code values).

Keyed by descriptor type, then by code value (the part after ``#``): a district namespace
(``uri://district.org/...#Excused Absence``) using an Ed-Fi code value maps the same way.
A ``descriptor_map`` file overrides or extends it by full URI or by code value. A code value
the table lacks becomes a reject that names it (attendance, terms) or stays unmapped (None).
"""

from __future__ import annotations

ATTENDANCE = {  # AttendanceEventCategoryDescriptor -> attendance.status
    "In Attendance": "present", "Present": "present", "Excused Absence": "excused",
    "Unexcused Absence": "absent", "Tardy": "tardy", "Early departure": "present", "Partial": "present",
}
TERM_KINDS = {  # TermDescriptor -> terms.kind
    "Year Round": "schoolYear", "Semester": "semester", "Fall Semester": "semester", "Spring Semester": "semester",
    "Summer Semester": "semester", "Quarter": "term", "First Quarter": "term", "Second Quarter": "term",
    "Third Quarter": "term", "Fourth Quarter": "term", "Trimester": "term", "First Trimester": "term",
    "Second Trimester": "term", "Third Trimester": "term", "MiniTerm": "term", "Other": "term",
}
GRADE_LEVELS = {  # GradeLevelDescriptor -> the CEDS grade codes OneRoster uses
    "Infant/toddler": "IT", "Preschool": "PR", "Prekindergarten": "PK", "Preschool/Prekindergarten": "PK",
    "Transitional Kindergarten": "TK", "Kindergarten": "KG", "First grade": "01", "Second grade": "02",
    "Third grade": "03", "Fourth grade": "04", "Fifth grade": "05", "Sixth grade": "06", "Seventh grade": "07",
    "Eighth grade": "08", "Ninth grade": "09", "Tenth grade": "10", "Eleventh grade": "11", "Twelfth grade": "12",
    "Grade 13": "13", "Postsecondary": "PS", "Ungraded": "UG", "Other": "Other", "Adult Education": "AE",
}
EXIT_KINDS = {  # ExitWithdrawTypeDescriptor -> enrollments.exit_kind
    "End of school year": "end_of_year", "Completed": "end_of_year", "Graduated": "graduation",
    "Transferred": "transfer", "Withdrawn": "withdrawal", "Dropout": "withdrawal", "Expelled": "withdrawal",
    "No show": "withdrawal", "Involuntarily Removed": "withdrawal", "Incarcerated": "withdrawal",
    "Reached maximum age": "withdrawal", "Died or is permanently incapacitated": "withdrawal",
    "Enrolled in a high school diploma program": "transfer", "Invalid enrollment": "unknown", "Other": "unknown",
}
# RelationDescriptor -> the OneRoster role a link's relationship is named by (parent, guardian, relative).
RELATIONS = {
    "Mother": "parent", "Father": "parent", "Parent": "parent", "Mother, step": "parent", "Father, step": "parent",
    "Parent, step": "parent", "Foster parent": "guardian", "Guardian": "guardian", "CourtAppointedGuardian": "guardian",
    "Grandmother": "relative", "Grandfather": "relative", "Grandparent": "relative", "Great Grandparent": "relative",
    "Aunt": "relative", "Uncle": "relative", "Great aunt": "relative", "Great uncle": "relative",
    "Brother": "relative", "Sister": "relative", "Sibling": "relative", "Cousin": "relative", "Relative": "relative",
}
SHIPPED: dict[str, dict[str, str]] = {
    "AttendanceEventCategoryDescriptor": ATTENDANCE, "TermDescriptor": TERM_KINDS, "GradeLevelDescriptor": GRADE_LEVELS,
    "ExitWithdrawTypeDescriptor": EXIT_KINDS, "RelationDescriptor": RELATIONS,
}
