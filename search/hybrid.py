"""Dense, keyword and hybrid candidate lists.

Hybrid is a convex combination of the two lists' scores, each min-max normalised over its own top
candidates, plus what the keyword index says about each candidate beyond its BM25 score:

    score = ((1 - a) · dense + a · keyword + WORD_WEIGHT · words + m · (GRAM_WEIGHT · grams
             + PHRASE_WEIGHT · phrase)) / (1 + WORD_WEIGHT + m · (GRAM_WEIGHT + PHRASE_WEIGHT))

then, when the query holds numbers, (score + NUMBER_WEIGHT · numbers) / (1 + NUMBER_WEIGHT), where a =
KEYWORD_SHARE · coverage, coverage is how much of the query's words the best keyword hits
contain (`keyword_weight`; under MIN_COVERAGE it counts as none, and the word share weighs nothing
then), `dense` is the dense evidence (`dense_evidence`: the passage cosine, with sentence vectors
averaged with its best sentence's), `words` and `grams` are the candidate's own shares of the query's
words and of its character bigrams, each weighted by its idf (`term_shares`), and `phrase` is the
longest run of the query's bigrams the candidate holds one after the other (`phrase_runs`), both
weighted by m = SEPARATION / (SEPARATION + s), s the cosine of the dense top hit less that of its tenth
(`dense_separation`): the less the dense model can tell this query's candidates apart, the more their
surface decides. `numbers` is the share of the query's words with a digit (the 8 and 29 of 8月29日, 2019) that
the candidate holds (`number_shares`): a number names one event among many on a topic, and it is written
the same in every language, so it counts for cross-lingual queries as well. Normalising puts cosine
(crowded into 0.75–0.95 for e5) and BM25 (unbounded) on one 0–1 scale per query; a candidate missing
from one list gets that list's minimum. The shares are the classic coordination signal: BM25 sums a
score per term, so a passage holding one or two of the question's words many times, or its rarest ones,
can outscore one that holds all of them; the dense score does not count words. The phrase run is the
order BM25 and the shares ignore: a Chinese question copies a stretch of its passage (对于美国遭遇的新一轮
内乱危机), and on a news archive with many articles on one topic, that stretch is what tells the
article from its neighbours, which share its words and which the dense model cannot tell apart.
Measured against reciprocal-rank fusion, document-level keyword scores and other weights on every
development set (`python bench/fusion.py`, table in docs/fusion.md): scores keep how far apart
candidates are, which ranks throw away, and the coverage keeps an off-topic keyword list (a
cross-lingual query) from pushing good dense results down; a query without CJK text has no bigrams, so
English and cross-lingual queries fuse by the lists, the word share and their numbers. Each hit keeps
both scores, both ranks and its lexical evidence, so a user can see why it ranked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# The keyword list's share at full coverage and the weight of a candidate's word share: chosen on the
# development sets among keyword shares 0.3-0.6 and word weights 0.3-0.7 (again with sentence vectors).
# The phrase run and the separation: among phrase weights 0.5-2 and separations 0.02-0.1 (or none), the
# only setting under which no set fell under its better single mode at rank 1 or 5, and the one chosen on
# the other families with the news family held out (bench/fusion.py, docs/fusion.md). The bigram share is
# computed and shown but weighs nothing: at 0.5-1 it gained news a point at rank 1 and cost PAWS-X up to
# 0.8 at rank 5.
KEYWORD_SHARE = 0.5
WORD_WEIGHT = 0.5
# The keyword list's share is KEYWORD_SHARE · coverage ** KEYWORD_COVERAGE_POWER, and a coverage under
# MIN_COVERAGE counts as none: the keyword list and the word shares then weigh nothing. Such a query shares
# almost no word with the text (an English question over Chinese passages, matching a Latin name or two);
# its keyword list and word shares only reorder what the dense side, with its sentence vectors, ranks
# better (xquad/en2zh lost 27 questions and won 9 at rank 1 to them). Chosen on every development set
# among powers 0.5-1.25 and minimum coverages 0-0.34 (docs/fusion.md): of the settings under which no set
# falls under its better single mode, the best over all sets and the one chosen with wiki-zh, paws or
# news held out (with xquad held out: power 0.5, minimum 0.34).
KEYWORD_COVERAGE_POWER = 1.0
MIN_COVERAGE = 0.2
GRAM_WEIGHT = 0.0
PHRASE_WEIGHT = 1.0
# The phrase run (and bigram share) count fully when the dense list cannot tell its candidates apart and
# less the more it can: times SEPARATION / (SEPARATION + the cosine of the dense top hit minus that of its
# SEPARATION_DEPTH-th). On news the dense top 10 lie within ~0.02 of each other (one topic, many
# articles); on Wikipedia and paraphrase sets within 0.04-0.1, where the dense order is worth keeping.
SEPARATION = 0.1
SEPARATION_DEPTH = 10
# A candidate's share of the query's number words, on top of the rest: chosen among 0.02-0.15 on the cached
# lists of every development set (docs/fusion.md). At 0.05 no set lost a question at rank 1 or 5 and news,
# the cross-lingual sets and drcd-dev gained a few; at 0.15 PAWS-X lost one at rank 1 and drcd-dev one at 5.
NUMBER_WEIGHT = 0.05
_DIGIT = re.compile(r"\d")


@dataclass(slots=True)
class Hit:
    """A candidate passage with the evidence for its rank."""

    passage_id: int
    score: float
    # The dense evidence: the passage's cosine, or where the index has sentence vectors the mean of it and
    # `sentence_score` (`dense_evidence`).
    dense_score: float | None = None
    dense_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None
    word_share: float | None = None  # idf-weighted share of the query's words in the passage (hybrid)
    gram_share: float | None = None  # idf-weighted share of the query's character bigrams (hybrid)
    phrase: float | None = None  # longest run of the query's bigrams it holds in order (hybrid, 0-1)
    number_share: float | None = None  # share of the query's words with a digit it holds (hybrid, 0-1)
    sentence_score: float | None = None  # cosine of its sentence most like the query (sentence vectors)


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


def dense_evidence(cosines: np.ndarray, sentences: np.ndarray) -> np.ndarray:
    """A candidate's dense score from its passage cosine and the cosine of its best sentence (NaN where
    it has no sentence vectors of its own): their mean.

    The passage vector is what a passage says as a whole, the best sentence what it says most like the
    question. On news, one topic's articles have passage cosines within ~0.02 of each other, while the
    sentence naming the question's event stands out; on paraphrase and cross-lingual sets the whole
    passage keeps a stray sentence from winning. The mean kept both on every development set, the
    maximum lost zh2en 15 points at rank 1 (docs/fusion.md)."""
    cosines = np.asarray(cosines, dtype=np.float64)
    sentences = np.asarray(sentences, dtype=np.float64)
    return np.where(np.isnan(sentences), cosines, (cosines + sentences) / 2.0)


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


def term_shares(idf: np.ndarray, present: np.ndarray) -> np.ndarray:
    """For each candidate (a row of `present`, candidates × the query's distinct terms), the share of the
    query's terms it contains, each term weighted by its idf. Weighting keeps a passage that holds the
    question's rare words ahead of one that holds its common ones; a term no passage holds still counts
    in the whole, so a query the corpus does not share (another language) gives every candidate a small
    share."""
    total = float(np.sum(idf))
    if total <= 0.0 or present.shape[0] == 0:
        return np.zeros(present.shape[0], dtype=np.float64)
    return (present @ np.asarray(idf, dtype=np.float64)) / total


def phrase_runs(present: np.ndarray, follows: np.ndarray) -> np.ndarray:
    """For each candidate, the longest run of the query's character bigrams that it contains one after
    the other, as a share of the query's bigrams (0-1).

    `present` is candidates × the query's bigram positions in reading order (a bigram repeated in the
    query has a column per position); `follows[j]` says position j continues position j-1 in the same
    run of CJK text (False at the start of each run, after punctuation). A candidate holding 不断爆发冲突
    as the question words it, rather than its characters spread over the text, holds a long run. Read
    from the keyword index's bigram postings: the words a Chinese question copies from its passage are
    what tells one article on a topic from the next, and neither BM25 (a sum over terms) nor the word
    share (a set of words) sees their order.
    """
    n, positions = present.shape
    best = np.zeros(n, dtype=np.int64)
    if positions == 0:
        return best.astype(np.float64)
    run = np.zeros(n, dtype=np.int64)
    for j in range(positions):
        run = np.where(present[:, j], run + 1 if follows[j] else 1, 0)
        np.maximum(best, run, out=best)
    return best / positions


def number_shares(words: Sequence[str], present: np.ndarray) -> np.ndarray | None:
    """For each candidate (a row of `present`, candidates × `words`), the share of the query's words
    holding a digit (the `8` and `29` of 8月29日, `2019`, `ppr-9087`) that it contains, each counted
    once; None for a query without one.

    News questions tell one event from the many a collection holds on a topic by its date or its count
    (`8月29日发生了什么`, `28人受伤`); BM25 and the idf-weighted word share give a number little weight
    (a year or a day of the month is common). Numbers also survive translation, so they match across
    languages where no other word does."""
    columns = [j for j, word in enumerate(words) if _DIGIT.search(word)]
    if not columns:
        return None
    return present[:, columns].mean(axis=1)


@dataclass(slots=True)
class Lexical:
    """What the keyword index says about a query's candidates beyond their BM25 score, by passage id:
    the share of the query's words (`word`) and bigrams (`grams`) each holds, its longest run of the
    query's bigrams (`phrase`) and its share of the query's number words (`numbers`). Any of them may be
    empty (a query without words, without CJK or without numbers)."""

    word: Mapping[int, float]
    grams: Mapping[int, float]
    phrase: Mapping[int, float]
    numbers: Mapping[int, float] = field(default_factory=dict)


def fuse(
    dense: list[Hit],
    keyword: list[Hit],
    *,
    coverage: float = 1.0,
    lexical: Lexical | None = None,
    number_weight: float | None = None,
) -> list[Hit]:
    """Convex combination of the two candidate lists plus each candidate's lexical evidence, best first
    (ties broken by the dense score).

    `coverage` (0-1, from `keyword_weight`) sets the keyword list's share: KEYWORD_SHARE · coverage
    (none under MIN_COVERAGE, and then the word share weighs nothing either).
    `lexical` gives each candidate's word share (WORD_WEIGHT), bigram share (GRAM_WEIGHT) and phrase run
    (PHRASE_WEIGHT), a candidate it does not name having none; the last two count less the better the
    dense list separates its candidates (`dense_separation`, SEPARATION). Its number shares, when the
    query has numbers, are added last (NUMBER_WEIGHT, or `number_weight` when given: bench/fusion.py
    compares weights). Without `lexical` the lists' scores alone decide.
    """
    coverage = max(0.0, min(1.0, coverage))
    if coverage < MIN_COVERAGE:
        coverage = 0.0
    share = KEYWORD_SHARE * coverage**KEYWORD_COVERAGE_POWER
    dense_norm = _min_max([h.dense_score for h in dense])
    keyword_norm = _min_max([h.keyword_score for h in keyword])
    fused: dict[int, Hit] = {}
    for h, norm in zip(dense, dense_norm, strict=True):
        fused[h.passage_id] = Hit(h.passage_id, (1.0 - share) * norm, h.dense_score, h.dense_rank,
                                  sentence_score=h.sentence_score)
    for h, norm in zip(keyword, keyword_norm, strict=True):
        hit = fused.setdefault(h.passage_id, Hit(h.passage_id, 0.0))
        hit.score += share * norm
        hit.keyword_score, hit.keyword_rank = h.keyword_score, h.keyword_rank
    if lexical is not None:
        order = SEPARATION / (SEPARATION + dense_separation(dense))
        gram_weight, phrase_weight = order * GRAM_WEIGHT, order * PHRASE_WEIGHT
        word_weight = WORD_WEIGHT if coverage > 0.0 else 0.0
        whole = 1.0 + word_weight + gram_weight + phrase_weight
        numbers = NUMBER_WEIGHT if number_weight is None else number_weight
        for hit in fused.values():
            pid = hit.passage_id
            hit.word_share = lexical.word.get(pid, 0.0)
            hit.gram_share = lexical.grams.get(pid, 0.0)
            hit.phrase = lexical.phrase.get(pid, 0.0)
            evidence = gram_weight * hit.gram_share + phrase_weight * hit.phrase
            hit.score = (hit.score + word_weight * hit.word_share + evidence) / whole
            if lexical.numbers:
                hit.number_share = lexical.numbers.get(pid, 0.0)
                hit.score = (hit.score + numbers * hit.number_share) / (1.0 + numbers)
    return sorted(fused.values(), key=lambda h: (-h.score, -(h.dense_score or -1.0)))


def dense_separation(dense: Sequence[Hit]) -> float:
    """How far the dense list's top hit stands above its SEPARATION_DEPTH-th (or last), in cosine: how
    well the dense model tells this query's candidates apart (0 for a list of one or none)."""
    if not dense:
        return 0.0
    top, last = dense[0].dense_score, dense[min(SEPARATION_DEPTH, len(dense)) - 1].dense_score
    return max(0.0, (top or 0.0) - (last or 0.0))


def _min_max(scores: Sequence[float | None]) -> list[float]:
    """Scores scaled to 0-1 within their list (all 1.0 when they are equal, as for a single hit)."""
    values = np.asarray([s if s is not None else 0.0 for s in scores], dtype=np.float64)
    if values.size == 0:
        return []
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return [1.0] * values.size
    return ((values - low) / (high - low)).tolist()
