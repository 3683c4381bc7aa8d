"""Dense, keyword and hybrid candidate lists.

Hybrid fuses the two ranked lists with reciprocal-rank fusion: score = Σ w / (RRF_K + rank). Ranks, not
raw scores, are fused because cosine (crowded into 0.75–0.95 for e5) and BM25 (unbounded) have no common
scale. Each hit keeps both scores and both ranks, so a user can see why a passage ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RRF_K = 60  # the constant of Cormack et al. (2009); large enough that rank 1 does not dominate


@dataclass
class Hit:
    """A candidate passage with the evidence for its rank."""

    passage_id: int
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None


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


def keyword_weight(query_words: Sequence[str], top_texts_words: Sequence[set[str]]) -> float:
    """How much to trust the keyword list for this query: the share of the query's words that the best
    keyword hits contain (the best of the top few).

    A query whose words the corpus does not share (an English question over Chinese text) still gets a
    keyword list, made of whatever stray number or name matched; ranked by RRF, that noise would push
    good dense results down. Weighting the list by coverage keeps hybrid close to dense there, and at
    full strength where keyword search is on topic.
    """
    words = set(query_words)
    if not words or not top_texts_words:
        return 0.0
    return max(len(words & hit) for hit in top_texts_words) / len(words)


def fuse(
    dense: list[Hit],
    keyword: list[Hit],
    *,
    dense_weight: float = 1.0,
    keyword_weight: float = 1.0,
    rrf_k: int = RRF_K,
) -> list[Hit]:
    """Reciprocal-rank fusion of two candidate lists, best first (ties broken by the dense score)."""
    fused: dict[int, Hit] = {}
    for h in dense:
        fused[h.passage_id] = Hit(
            h.passage_id, dense_weight / (rrf_k + h.dense_rank), h.dense_score, h.dense_rank
        )
    for h in keyword:
        hit = fused.setdefault(h.passage_id, Hit(h.passage_id, 0.0))
        hit.score += keyword_weight / (rrf_k + h.keyword_rank)
        hit.keyword_score, hit.keyword_rank = h.keyword_score, h.keyword_rank
    return sorted(fused.values(), key=lambda h: (-h.score, -(h.dense_score or -1.0)))
