"""Dense, keyword and hybrid candidate lists.

Hybrid is a convex combination of the two lists' scores, each min-max normalised over its own top
candidates, plus how many of the query's words each candidate contains:

    score = ((1 - a) · dense + a · keyword + WORD_WEIGHT · words) / (1 + WORD_WEIGHT)

where a = KEYWORD_SHARE · √coverage, coverage is how much of the query's words the best keyword hits
contain (`keyword_weight`), and `words` is the candidate's own share of the query's words, each word
weighted by its idf (`word_shares`). Normalising puts cosine (crowded into 0.75–0.95 for e5) and BM25
(unbounded) on one 0–1 scale per query; a candidate missing from one list gets that list's minimum. The
word share is the classic coordination signal: BM25 sums a score per word, so a passage holding one or
two of the question's words many times, or its rarest ones, can outscore one that holds all of them;
the dense score does not count words. Measured against reciprocal-rank fusion and against the fusion
without the word share on every development set (`python bench/fusion.py`, table in docs/fusion.md):
scores keep how far apart candidates are, which ranks throw away, and the coverage keeps an off-topic
keyword list (a cross-lingual query) from pushing good dense results down. Each hit keeps both scores,
both ranks and its word share, so a user can see why it ranked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# The keyword list's share at full coverage, and the weight of a candidate's word share: chosen on the
# development sets among keyword shares 0.4-0.6 × √coverage and word weights 0.3-0.7 (bench/fusion.py,
# docs/fusion.md). At 0.5 and 0.5 no set fell under its better single mode, nor did most neighbours.
KEYWORD_SHARE = 0.5
WORD_WEIGHT = 0.5


@dataclass(slots=True)
class Hit:
    """A candidate passage with the evidence for its rank."""

    passage_id: int
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None
    word_share: float | None = None  # idf-weighted share of the query's words in the passage (hybrid)


def dense_hits(scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
    return [
        Hit(int(i), float(s), dense_score=float(s), dense_rank=r + 1)
        for r, (s, i) in enumerate(zip(scores, ids, strict=True))
        if i >= 0
    ]


def keyword_hits(scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
    return [
        Hit(int(i), float(s), keyword_score=float(s), keyword_rank=r + 1)
        for r, (s, i) in enumerate(zip(scores, ids, strict=True))
        if i >= 0
    ]


def keyword_weight(query_words: Sequence[str], top_hits_words: Sequence[set[str]]) -> float:
    """How much to trust the keyword list for this query: the share of the query's words that the best
    keyword hits contain (the best of the top few).

    A query whose words the corpus does not share (an English question over Chinese text) still gets a
    keyword list, made of whatever stray number or name matched; fused at full weight, that noise would
    push good dense results down. Weighting the list by coverage keeps hybrid close to dense there, and at
    full strength where keyword search is on topic.
    """
    words = set(query_words)
    if not words or not top_hits_words:
        return 0.0
    return max(len(words & hit) for hit in top_hits_words) / len(words)


def word_shares(idf: Mapping[str, float], matched: Sequence[set[str]]) -> list[float]:
    """For each candidate, the share of the query's words it contains, each word weighted by its idf
    (`idf` maps every distinct word of the query to its weight). Weighting keeps a passage that holds
    the question's rare words ahead of one that holds its common ones; a word no passage holds still
    counts in the whole, so a query the corpus does not share (another language) gives every candidate
    a small share."""
    total = sum(idf.values())
    if total <= 0.0:
        return [0.0] * len(matched)
    return [sum(idf.get(w, 0.0) for w in found) / total for found in matched]


def fuse(
    dense: list[Hit],
    keyword: list[Hit],
    *,
    coverage: float = 1.0,
    word_shares: Mapping[int, float] | None = None,
) -> list[Hit]:
    """Convex combination of the two candidate lists plus each candidate's word share, best first (ties
    broken by the dense score).

    `coverage` (0-1, from `keyword_weight`) sets the keyword list's share: KEYWORD_SHARE · √coverage.
    `word_shares` maps a candidate's passage id to its share of the query's words (0-1, `word_shares`);
    without it the word share plays no part.
    """
    share = KEYWORD_SHARE * max(0.0, min(1.0, coverage)) ** 0.5
    dense_norm = _min_max([h.dense_score for h in dense])
    keyword_norm = _min_max([h.keyword_score for h in keyword])
    fused: dict[int, Hit] = {}
    for h, norm in zip(dense, dense_norm, strict=True):
        fused[h.passage_id] = Hit(h.passage_id, (1.0 - share) * norm, h.dense_score, h.dense_rank)
    for h, norm in zip(keyword, keyword_norm, strict=True):
        hit = fused.setdefault(h.passage_id, Hit(h.passage_id, 0.0))
        hit.score += share * norm
        hit.keyword_score, hit.keyword_rank = h.keyword_score, h.keyword_rank
    if word_shares is not None:
        for hit in fused.values():
            hit.word_share = word_shares.get(hit.passage_id, 0.0)
            hit.score = (hit.score + WORD_WEIGHT * hit.word_share) / (1.0 + WORD_WEIGHT)
    return sorted(fused.values(), key=lambda h: (-h.score, -(h.dense_score or -1.0)))


def _min_max(scores: Sequence[float | None]) -> list[float]:
    """Scores scaled to 0-1 within their list (all 1.0 when they are equal, as for a single hit)."""
    values = np.asarray([s if s is not None else 0.0 for s in scores], dtype=np.float64)
    if values.size == 0:
        return []
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return [1.0] * values.size
    return ((values - low) / (high - low)).tolist()
