"""The fusion of the dense and keyword lists (`search.hybrid`), on hand-made lists: the edge cases of
the formula. That hybrid search ranks real passages well is shown on the real model in test_engine.py
and measured by bench/quality.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from index.stores.bm25_store import BM25Store
from search.engine import Engine
from search.hybrid import Hit, Lexical, fuse, keyword_weight, number_shares, phrase_runs, term_shares


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
    by_words = fuse(d, k, coverage=0.5, lexical=Lexical({1: 0.4, 2: 1.0, 3: 0.2}, {}, {}))
    assert [h.passage_id for h in by_words][:2] == [2, 1]
    assert by_words[0].word_share == 1.0 and by_words[1].word_share == 0.4


def test_fused_scores_stay_between_0_and_1_and_keep_both_lists_evidence() -> None:
    d = dense((1, 0.91), (2, 0.88), (3, 0.80))
    k = keyword((3, 12.0), (4, 5.0))
    lexical = Lexical({1: 0.5, 2: 0.0, 3: 1.0, 4: 1.0}, {1: 1.0, 3: 0.5}, {1: 1.0, 4: 0.25})
    fused = fuse(d, k, coverage=1.0, lexical=lexical)
    assert all(0.0 <= h.score <= 1.0 for h in fused)
    by_id = {h.passage_id: h for h in fused}
    assert by_id[3].dense_rank == 3 and by_id[3].keyword_rank == 1
    assert by_id[4].dense_score is None and by_id[4].keyword_score == 5.0
    assert by_id[1].keyword_rank is None and by_id[1].word_share == 0.5
    assert by_id[1].phrase == 1.0 and by_id[2].gram_share == 0.0 and by_id[4].phrase == 0.25


def test_without_lexical_evidence_the_hits_say_so() -> None:
    fused = fuse(dense((1, 0.9)), keyword((1, 3.0)), coverage=1.0)
    assert fused[0].word_share is None and fused[0].phrase is None


def test_an_off_topic_keyword_list_does_not_push_the_dense_order_around() -> None:
    """An English question over Chinese text: the keyword list matched one stray token (coverage 0)."""
    d = dense((1, 0.90), (2, 0.89), (3, 0.70))
    k = keyword((3, 15.0))
    fused = fuse(d, k, coverage=keyword_weight(["who", "founded", "2021"], [set()]))
    assert [h.passage_id for h in fused] == [1, 2, 3]


def test_a_query_the_text_barely_shares_keeps_the_dense_order_whatever_its_word_shares() -> None:
    """"Who was the Panthers' tackle leader?" over Chinese text: only a Latin name matched (a fifth of the
    words, under MIN_COVERAGE), in a passage of another paragraph; the dense order stands. With more of
    the query's words matched, the same evidence decides."""
    d = dense((1, 0.80), (2, 0.78), (3, 0.70))
    k = keyword((2, 2.7))
    lexical = Lexical({2: 0.9}, {}, {})
    barely = fuse(d, k, coverage=0.15, lexical=lexical)
    assert [h.passage_id for h in barely] == [1, 2, 3] and barely[1].word_share == 0.9
    assert [h.passage_id for h in fuse(d, k, coverage=0.6, lexical=lexical)][0] == 2


def test_keyword_weight_is_the_best_top_hit_share_of_the_query_words() -> None:
    assert keyword_weight(["长三角", "研发", "目标"], [{"研发"}, {"长三角", "研发"}]) == pytest.approx(2 / 3)
    assert keyword_weight([], [{"x"}]) == 0.0
    assert keyword_weight(["x"], []) == 0.0


def test_term_shares_weigh_rare_terms_and_count_terms_nobody_holds() -> None:
    idf = np.asarray([1.0, 2.0, 3.0, 4.0])  # 长三角, 研发, 目标, quantum (no passage holds quantum)
    present = np.asarray([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=bool)
    assert term_shares(idf, present) == pytest.approx([0.3, 0.3, 0.0, 0.6])
    assert term_shares(np.zeros(1), np.ones((1, 1), dtype=bool)).tolist() == [0.0]
    assert term_shares(idf, np.zeros((0, 4), dtype=bool)).shape == (0,)


def test_phrase_run_is_the_longest_stretch_of_the_query_held_in_order() -> None:
    # Five bigram positions; the third starts a new run of CJK text (after punctuation).
    follows = np.asarray([False, True, False, True, True])
    present = np.asarray(
        [
            [1, 1, 1, 1, 1],  # the whole query: the punctuation still breaks it, 3 in a row at best
            [1, 0, 1, 0, 1],  # every other bigram: never two in a row
            [1, 1, 0, 0, 0],  # the first run only
            [0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert phrase_runs(present, follows) == pytest.approx([3 / 5, 1 / 5, 2 / 5, 0.0])
    assert phrase_runs(np.zeros((2, 0), dtype=bool), np.zeros(0, dtype=bool)).tolist() == [0.0, 0.0]


def test_of_two_candidates_equal_in_both_lists_the_one_holding_the_question_in_order_ranks_first() -> None:
    d = dense((1, 0.90), (2, 0.90))
    k = keyword((1, 6.0), (2, 6.0))
    fused = fuse(d, k, coverage=1.0, lexical=Lexical({1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.0}, {1: 0.2, 2: 0.9}))
    assert [h.passage_id for h in fused] == [2, 1]


QUESTION = "特朗普支持者站在了谁的对立面？"
IN_ORDER = "据了解，在暴力骚乱持续期间，特朗普支持者站在了示威者的对立面，并成立民间武装力量。"
SCATTERED = "示威者的对立面是谁？特朗普在集会上说，支持者会站在一起，了解局势的人都在观望。"


def lexical_of(texts: list[str], query: str) -> tuple[float, Lexical]:
    """`Engine._word_shares` over a real keyword index of `texts` (ids 1, 2 ...), every text a candidate."""
    store = BM25Store()
    ids = np.arange(1, len(texts) + 1, dtype=np.int64)
    store.build(ids, texts)
    scores, found = store.search(query, len(texts))
    hits = keyword(*zip(found.tolist(), scores.tolist(), strict=True))
    snap = SimpleNamespace(keywords=store)
    coverage = Engine._coverage(snap, query, hits)  # type: ignore[arg-type]
    return coverage, Engine._word_shares(None, snap, query, [], hits)  # type: ignore[arg-type]


def test_the_passage_a_question_copies_from_holds_the_longer_phrase_run() -> None:
    _, lexical = lexical_of([IN_ORDER, SCATTERED], QUESTION)
    # Both hold the question's words; only the first holds 特朗普支持者站在了 as one stretch.
    assert lexical.word[1] > 0.5 and lexical.word[2] > 0.5
    assert lexical.phrase[1] > 2 * lexical.phrase[2]
    assert 0.0 < lexical.grams[2] <= lexical.grams[1] <= 1.0


def test_a_query_without_chinese_has_no_bigram_evidence() -> None:
    """An English question (over Chinese or English text) fuses on its words alone, as before."""
    texts = ["Trump supporters stood against the protesters", IN_ORDER]
    _, lexical = lexical_of(texts, "who did Trump supporters oppose")
    assert lexical.grams == {} and lexical.phrase == {}
    assert lexical.word[1] > lexical.word.get(2, 0.0)


def test_the_phrase_run_decides_where_the_dense_model_cannot_tell_candidates_apart() -> None:
    """Candidate 2 holds the question in order; 1 leads both lists, by little (crowded dense scores, as
    for articles on one topic) or by much (the dense model is sure)."""
    lexical = Lexical({1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.0}, {1: 0.2, 2: 0.9})
    k = keyword((1, 6.0), (2, 5.9), (3, 1.0))
    crowded = dense((1, 0.862), (2, 0.8615), *((i, 0.860) for i in range(3, 11)))
    assert [h.passage_id for h in fuse(crowded, k, coverage=1.0, lexical=lexical)][0] == 2
    separated = dense((1, 0.95), (2, 0.80), *((i, 0.75) for i in range(3, 11)))
    assert [h.passage_id for h in fuse(separated, k, coverage=1.0, lexical=lexical)][0] == 1


def test_number_shares_count_the_query_words_holding_a_digit() -> None:
    words = ["月", "日", "袭击", "10", "15"]
    present = np.asarray([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=bool)
    assert number_shares(words, present).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert number_shares(["袭击", "造成"], present[:, :2]) is None


def test_of_two_articles_alike_but_for_the_date_the_one_with_the_question_s_date_ranks_first() -> None:
    """News wire follow-ups on one topic, worded alike: the dense model and BM25 score them within a
    hair, and the date the question names is what tells them apart."""
    question = "10月15日喀布尔汽车炸弹袭击造成多少人死亡？"
    texts = [
        "新华社喀布尔10月3日电 阿富汗首都喀布尔当天发生汽车炸弹袭击，袭击造成多人死亡。",
        "新华社喀布尔10月15日电 阿富汗首都喀布尔当天发生汽车炸弹袭击，袭击造成12人死亡。",
    ]
    coverage, lexical = lexical_of(texts, question)
    assert lexical.numbers[2] == 1.0 and lexical.numbers[1] == 0.5
    d = dense((1, 0.871), (2, 0.870), *((i, 0.86) for i in range(3, 11)))
    k = keyword((1, 6.0), (2, 6.0))
    assert fuse(d, k, coverage=coverage, lexical=lexical)[0].passage_id == 2
    unnumbered = Lexical(lexical.word, lexical.grams, lexical.phrase)
    assert fuse(d, k, coverage=coverage, lexical=unnumbered)[0].passage_id == 1
    assert fuse(d, k, coverage=coverage, lexical=lexical)[0].number_share == 1.0


def test_a_query_without_numbers_fuses_as_without_number_shares() -> None:
    _, lexical = lexical_of([IN_ORDER, SCATTERED], QUESTION)
    assert lexical.numbers == {}
    d, k = dense((1, 0.90), (2, 0.89)), keyword((2, 5.0), (1, 4.0))
    plain = Lexical(lexical.word, lexical.grams, lexical.phrase)
    assert [(h.passage_id, h.score) for h in fuse(d, k, lexical=lexical)] == [
        (h.passage_id, h.score) for h in fuse(d, k, lexical=plain)
    ]
