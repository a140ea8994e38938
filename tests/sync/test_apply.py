"""The writer's own parts."""

from __future__ import annotations

from sync.apply import RowIdSet


def test_a_row_id_set_holds_exactly_the_ids_added_and_lists_them_in_order() -> None:
    ids = RowIdSet()
    for row_id in (1, 8, 9, 7_000_001, 0, 8):
        ids.add(row_id)
    assert [row_id in ids for row_id in (0, 1, 2, 7, 8, 9, 10, 7_000_000, 7_000_001, 7_000_002, 99_999_999)] == [
        True, True, False, False, True, True, False, False, True, False, False]
    assert list(ids) == [0, 1, 8, 9, 7_000_001]


def test_a_row_id_set_of_a_million_ids_takes_about_a_bit_each() -> None:
    ids = RowIdSet()
    for row_id in range(1, 1_000_001):
        ids.add(row_id)
    assert 125_000 <= len(ids.bits) <= 250_000  # grown by doubling, never per id
    assert sum(1 for _ in ids) == 1_000_000
