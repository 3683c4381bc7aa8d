"""The fusion of the dense and keyword lists (`search.hybrid`), on hand-made lists: the edge cases of
the formula. That hybrid search ranks real passages well is shown on the real model in test_engine.py
and measured by bench/quality.py."""

from __future__ import annotations

import pytest

from search.hybrid import Hit, fuse, keyword_weight, word_shares


def dense(*scores: tuple[int, float]) -> list[Hit]:
    return [Hit(pid, s, dense_score=s, dense_rank=r) for r, (pid, s) in enumerate(scores, 1)]


def keyword(*scores: tuple[int, float]) -> list[Hit]:
    return [Hit(pid, s, keyword_score=s, keyword_rank=r) for r, (pid, s) in enumerate(scores, 1)]


def test_of_two_candidates_equal_in_both_lists_the_one_holding_more_query_words_ranks_first() -> None:
    # 1 and 2 score alike in both lists, so the lists alone cannot tell them apart.
    d = dense((1, 0.90), (2, 0.90), (3, 0.80))
    k = keyword((1, 6.0), (2, 6.0), (3, 3.0))
    tied = fuse(d, k, coverage=0.5)
    assert tied[0].score == pytest.approx(tied[1].score)
    by_words = fuse(d, k, coverage=0.5, word_shares={1: 0.4, 2: 1.0, 3: 0.2})
    assert [h.passage_id for h in by_words][:2] == [2, 1]
    assert by_words[0].word_share == 1.0 and by_words[1].word_share == 0.4


def test_fused_scores_stay_between_0_and_1_and_keep_both_lists_evidence() -> None:
    d = dense((1, 0.91), (2, 0.88), (3, 0.80))
    k = keyword((3, 12.0), (4, 5.0))
    fused = fuse(d, k, coverage=1.0, word_shares={1: 0.5, 2: 0.0, 3: 1.0, 4: 1.0})
    assert all(0.0 <= h.score <= 1.0 for h in fused)
    by_id = {h.passage_id: h for h in fused}
    assert by_id[3].dense_rank == 3 and by_id[3].keyword_rank == 1
    assert by_id[4].dense_score is None and by_id[4].keyword_score == 5.0
    assert by_id[1].keyword_rank is None and by_id[1].word_share == 0.5


def test_without_word_shares_the_hits_say_so() -> None:
    fused = fuse(dense((1, 0.9)), keyword((1, 3.0)), coverage=1.0)
    assert fused[0].word_share is None


def test_an_off_topic_keyword_list_does_not_push_the_dense_order_around() -> None:
    """An English question over Chinese text: the keyword list matched one stray token (coverage 0)."""
    d = dense((1, 0.90), (2, 0.89), (3, 0.70))
    k = keyword((3, 15.0))
    fused = fuse(d, k, coverage=keyword_weight(["who", "founded", "2021"], [set()]))
    assert [h.passage_id for h in fused] == [1, 2, 3]


def test_keyword_weight_is_the_best_top_hit_share_of_the_query_words() -> None:
    assert keyword_weight(["长三角", "研发", "目标"], [{"研发"}, {"长三角", "研发"}]) == pytest.approx(2 / 3)
    assert keyword_weight([], [{"x"}]) == 0.0
    assert keyword_weight(["x"], []) == 0.0


def test_word_shares_weigh_rare_words_and_count_words_nobody_holds() -> None:
    idf = {"长三角": 1.0, "研发": 2.0, "目标": 3.0, "quantum": 4.0}
    shares = word_shares(idf, [{"长三角", "研发"}, {"目标"}, set(), {"长三角", "研发", "目标", "quantum"}])
    assert shares == pytest.approx([0.3, 0.3, 0.0, 1.0])
    assert word_shares({}, [{"x"}]) == [0.0]
