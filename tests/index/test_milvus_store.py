"""The term counts a Milvus index keeps for word rarity (`NAME__terms`): what a reader of each generation
takes from a term's row. The table itself is tested against a live server in tests/backends."""

from __future__ import annotations

import json
from collections import Counter

from index.stores.milvus_store import TERM_HISTORY, count_at, term_rows


def test_a_reader_takes_the_count_of_the_newest_generation_it_can_see() -> None:
    counts = [[3, 5], [6, 7], [9, 2]]
    assert [count_at(counts, g) for g in (3, 5, 6, 8, 9, 12)] == [5, 5, 7, 7, 2, 2]
    assert count_at(counts, 2) == 0  # the term came at generation 3
    assert count_at(None, 7) == 0  # no row: no passage ever held it


def test_a_write_adds_its_count_and_keeps_the_last_generations_for_readers_still_on_them() -> None:
    counts: dict[str, list[list[int]]] = {}
    for born, change in enumerate([3, 1, -2, 4, 1, -1], start=1):
        (row,) = term_rows(counts, Counter({"冰川": change}), born)
        counts["冰川"] = json.loads(row["counts"])
        assert row["born"] == born and counts["冰川"][-1] == [born, sum([3, 1, -2, 4, 1, -1][:born])]
    assert len(counts["冰川"]) == TERM_HISTORY
    assert count_at(counts["冰川"], 6) == 6 and count_at(counts["冰川"], 3) == 2
    assert count_at(counts["冰川"], 2) is None  # dropped: the reader counts the term itself


def test_a_write_retried_at_the_same_generation_replaces_its_own_count() -> None:
    (row,) = term_rows({"湖泊": [[4, 2], [5, 9]]}, Counter({"湖泊": 1}), 5)
    assert json.loads(row["counts"]) == [[4, 2], [5, 3]]
