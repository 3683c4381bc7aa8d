"""Filter values as the page offers them: spellings a filter treats as one are one choice."""

from __future__ import annotations

from search.filters import fold_value, merge_folded


def test_spellings_one_filter_matches_are_one_choice_under_the_common_spelling() -> None:
    sources = [
        {"value": "证券时报网", "documents": 5},
        {"value": "新华社", "documents": 3},
        {"value": "新華社", "documents": 1},
        {"value": "Xinhua ", "documents": 1},
        {"value": "xinhua", "documents": 1},
    ]
    assert merge_folded(sources) == [
        {"value": "证券时报网", "documents": 5},
        {"value": "新华社", "documents": 4},
        {"value": "Xinhua ", "documents": 2},
    ]
    traditional_first = [{"value": "新華社", "documents": 4}, {"value": "新华社", "documents": 3}]
    assert merge_folded(traditional_first) == [{"value": "新華社", "documents": 7}]


def test_a_space_inside_a_chinese_name_is_no_other_name() -> None:
    assert fold_value("新华 社") == fold_value("新華社") == fold_value(" 新华社\u200b") == "新华社"
    assert fold_value("People's  Daily") == fold_value("people's daily") == "people's daily"
    assert fold_value("Xinhua 新华社") != fold_value("Xinhua新华社")  # a space the writer put between scripts
