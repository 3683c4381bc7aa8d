"""The text analyser shared by keyword indexing, keyword queries and highlighting.

One analysis for all three, so that a query term found by the keyword index is also the term that gets
highlighted, and a passage indexed in traditional script is found by a query in simplified script:

- `normalize`: traditional → simplified Chinese (OpenCC t2s), full-width ASCII → half-width, Unicode
  hyphens → `-`, lower case.
  It never changes the length of the text, so an offset into the normalised text is an offset into the
  original (highlights are offsets into the original passage).
- `analyze`: tokens with their offsets. CJK text gives jieba's search-mode words (a long word also yields
  the dictionary words inside it, so `长三角` matches inside `长三角地区`; no HMM, so characters without a
  dictionary word stay single instead of being glued into guessed words) PLUS the character bigrams of
  every CJK run, so names and codes missing from jieba's dictionary still match (a 1-char run gives the
  char).
  Other text gives Snowball-stemmed words (`indexing` ~ `indexed`) and numbers (`2025`, `1054.5`, `3%` as
  `3` and `3%`). A short stop-word list is dropped.
  Identifiers (`PPR-9087`, `R123-78`, `GB/T 7714-2015`, `COVID-19`, `5G`, `H1N1`) are also terms whole,
  beside their pieces: the passage holding the identifier then outscores one holding its pieces
  scattered (`9087号…PPR`), a query for a piece alone still matches, and a highlight covers the whole.
- `tokenize` (the terms to index or to look up), `query_terms` (the same, deduplicated), `query_words`
  (the query's words, an identifier counting as one), `term_spans` (where a passage matches query
  terms) and `highlight_spans` (those a result marks).

Bigram tokens are prefixed with `GRAM_PREFIX` so that they stay apart from the jieba word with the same
characters (`研发` the word and `研发` the bigram): the keyword store indexes the two kinds as separate fields
and weighs the bigram field lower, which measured best (see `index.stores.bm25_store`).

jieba's dictionary is the process's one (`index.text.jieba_tokenizer`), loaded lazily and quietly.
"""

from __future__ import annotations

import bisect
import functools
import logging
import re
import threading
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import Stemmer

from index.text import CJK_RUN, jieba_tokenizer

log = logging.getLogger(__name__)

# Marks a character-bigram token; a control character can never be part of a real token, since tokens
# are made of CJK characters, letters and digits only.
GRAM_PREFIX = "\x02"

# Chinese function words so frequent that they carry no meaning for retrieval. They are dropped mostly so
# that a query word like 的 does not make every passage "match at least one term". Deliberately short:
# words such as 中国 or 发展 are frequent in news, but they are content words a user may search for.
STOP_WORDS_ZH = frozenset("的了和是在也与及等对为将把被之其这那有")  # single characters
# Lucene's classic English stop set, for the same reason.
# fmt: off
STOP_WORDS_EN = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to",
    "was", "will", "with",
])
# fmt: on
STOP_WORDS = STOP_WORDS_ZH | STOP_WORDS_EN

# Numbers: `1,000,000.5` (thousands separators only in groups of three) or `1054.5`, with an optional %.
# The look-arounds keep `2020,2021` from being read as a thousands-separated number.
_NUMBER = r"(?:(?<![0-9.,])\d{1,3}(?:,\d{3})+(?![0-9,])|\d+)(?:\.\d+)?%?"
# Applied to the text with CJK masked out, so `[^\W\d_]` (any letter) only sees non-CJK scripts.
_LATIN = re.compile(rf"(?P<num>{_NUMBER})|(?P<word>[^\W\d_]+)")
# Identifiers: runs of letters and digits joined by - / . _ (`ppr-9087`, `r123-78`, `covid-19`, `v2.1`), a
# run alone (`5g`, `h1n1`, `iphone15`), and a standard's code whose prefix holds a slash, joined to its
# number by one space (`gb/t 7714-2015`, `iso/iec 27001`). Matched on the normalised text with CJK masked
# out, so `PPR-9087号` gives `ppr-9087`. Only a match with both a letter and a digit is an identifier, and
# not a number joined to a word (`2-point`, `24-hour`): plain numbers (`2025`, `2025-2026`, `1.5`) and
# such compounds stay what the word and number rules make of them. See `_whole`.
_IDENTIFIER = re.compile(
    r"(?<![a-z0-9])(?P<prefix>[a-z]+(?:/[a-z]+)+ (?=[0-9]))?(?P<code>[a-z0-9]+(?:[-/._][a-z0-9]+)*)"
)
_IDENTIFIER_MAX = 64  # longer matches (URLs, hashes) are not kept whole: a term nobody would type

# Full-width ASCII (U+FF01–U+FF5E) and the ideographic space map to their ASCII counterparts; the Unicode
# hyphens and dashes that join codes in typeset text (‐ ‑ ‒ – and the minus sign) to `-`. Not the em
# dash: Chinese text uses ―― as punctuation.
_HALF_WIDTH = (
    {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
    | {0x3000: 0x20}
    | {cp: 0x2D for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2212)}
)


class Token(NamedTuple):
    """A term with the [start, end) offsets it came from (offsets into the text as given)."""

    term: str
    start: int
    end: int


# --- lazily initialised resources ---------------------------------------------------------------------
_lock = threading.Lock()
_opencc: Any = None
_local = threading.local()  # a Snowball stemmer keeps state, so each thread gets its own


def _segmenter() -> Any:
    return jieba_tokenizer()


def _converter() -> Any:
    global _opencc
    if _opencc is None:
        with _lock:
            if _opencc is None:
                import opencc

                _opencc = opencc.OpenCC("t2s")
    return _opencc


STEMMER = "snowball-english"  # part of ANALYZER_VERSION: another stemmer means another keyword index


def _stem(word: str) -> str:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWord(word)


# Changes whenever analysis would give other tokens for the same text: a keyword index stores it and
# reuses stored tokens only when it matches.
ANALYZER_VERSION = f"3/jieba-search-nohmm+bigrams+identifiers/{STEMMER}"


# --- normalisation --------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    """Simplified script, half-width ASCII and hyphens, lower case; always exactly as long as `text`.

    OpenCC's t2s tables map characters and phrases to strings of the same length (checked for every entry
    of the bundled tables), but the result is still checked, and falls back to a per-character conversion,
    so that offsets stay valid whatever the tables hold.
    """
    if not text:
        return text
    out = _to_simplified(text).translate(_HALF_WIDTH)
    lowered = out.lower()
    if len(lowered) != len(out):
        # str.lower can lengthen a character (İ → i̇); such characters are left as they are.
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in out)
    return lowered


def _to_simplified(text: str) -> str:
    if text.isascii():
        return text
    try:
        converted = _converter().convert(text)
    except UnicodeEncodeError:
        # Lone surrogates cannot go to OpenCC as UTF-8: convert around them.
        parts = re.split(r"([\ud800-\udfff]+)", text)
        return "".join(p if i % 2 else _to_simplified(p) for i, p in enumerate(parts))
    if len(converted) == len(text):
        return converted
    log.debug("t2s changed the length of a text; converting it character by character")
    return "".join(_char_to_simplified(c) for c in text)


def _char_to_simplified(char: str) -> str:
    converted = _converter().convert(char)
    return converted if len(converted) == 1 else char


# --- analysis -------------------------------------------------------------------------------------------
def analyze(text: str, *, grams: bool = True) -> list[Token]:
    """The tokens of `text` with offsets into it: CJK words, CJK bigrams (prefixed with `GRAM_PREFIX`;
    left out with `grams=False`), stemmed Latin-script words and numbers. Stop words are dropped."""
    norm = normalize(text)
    tokens: list[Token] = []
    for run in CJK_RUN.finditer(norm):
        chars, base = run.group(), run.start()
        # Without HMM, jieba leaves characters it has no word for as single characters instead of gluing
        # them into guessed words that differ between query and passage; measured better and faster.
        for word, start, end in _segmenter().tokenize(chars, mode="search", HMM=False):
            if word not in STOP_WORDS:
                tokens.append(Token(word, base + start, base + end))
        if grams:
            tokens.extend(Token(GRAM_PREFIX + g, base + i, base + i + len(g)) for i, g in _grams(chars))
    tokens.extend(Token(*t) for t in _latin_tokens(norm))
    return tokens


def tokenize(text: str) -> list[str]:
    """The terms to index for `text`, or to look up for a query (the same analysis for both).

    The same terms as `analyze`, without offsets: this is the indexing hot path, so it skips building
    them (jieba's dictionary lookups still take most of the time: some 100–200k characters a second).
    """
    norm = normalize(text)
    terms: list[str] = []
    for run in CJK_RUN.finditer(norm):
        chars = run.group()
        terms.extend(w for w in _segmenter().cut_for_search(chars, HMM=False) if w not in STOP_WORDS)
        terms.extend([GRAM_PREFIX + g for _, g in _grams(chars)])
    terms.extend(t[0] for t in _latin_tokens(norm))
    return terms


@functools.lru_cache(maxsize=4096)
def query_tokens(query: str) -> tuple[str, ...]:
    """`tokenize` of a query, remembered: one search looks its query's terms up three times (keyword
    ranking, the hybrid coverage check, highlighting), and users repeat queries."""
    return tuple(tokenize(query))


@functools.lru_cache(maxsize=4096)
def query_grams(query: str) -> tuple[Token, ...]:
    """The CJK bigrams of a query with their offsets, in reading order (the bigram tokens of `analyze`,
    without segmenting the words: the hybrid phrase run needs only where each bigram stands)."""
    norm = normalize(query)
    return tuple(
        Token(GRAM_PREFIX + g, run.start() + i, run.start() + i + len(g))
        for run in CJK_RUN.finditer(norm)
        for i, g in _grams(run.group())
    )


@functools.lru_cache(maxsize=4096)
def query_words(query: str, *, whole_identifiers: bool = True) -> tuple[str, ...]:
    """The distinct words of a query (its terms but the bigrams), for counting how many of them a passage
    holds. An identifier is one word: the pieces inside it (`ppr` and `9087` of `PPR-9087`) are not
    counted again, so a passage holding the pieces scattered does not share the query's words as the
    passage holding the identifier does. A piece typed on its own (`9087`) is a word as before.

    `whole_identifiers=False` keeps the pieces as words too: for a keyword index built by an older
    analyser, which has the pieces but not the identifiers."""
    words = [t for t in query_tokens(query) if not is_gram(t)]
    if whole_identifiers:
        # The CJK words as they are (no identifier holds CJK); the other terms by where they stand.
        norm = normalize(query)
        masked = norm if norm.isascii() else CJK_RUN.sub(lambda m: " " * len(m.group()), norm)
        whole = set(_identifiers(masked))
        spans = [(start, end) for _, start, end in whole]
        words = [t for t in words if CJK_RUN.fullmatch(t)] + [
            term
            for term, start, end in _latin_tokens(norm)
            if (term, start, end) in whole or not any(a <= start and end <= b for a, b in spans)
        ]
    return tuple(dict.fromkeys(words))


def _grams(chars: str) -> list[tuple[int, str]]:
    """(offset, bigram) of a CJK run; a 1-character run gives the character itself (unless a stop word)."""
    if len(chars) == 1:
        return [] if chars in STOP_WORDS else [(0, chars)]
    return [(i, chars[i : i + 2]) for i in range(len(chars) - 1)]


def _latin_tokens(norm: str) -> list[tuple[str, int, int]]:
    """(term, start, end) of words and numbers outside CJK runs (letters of any script but CJK count as
    letters; words are stemmed, numbers lose thousands separators, `3%` also gives `3`)."""
    out: list[tuple[str, int, int]] = []
    masked = norm if norm.isascii() else CJK_RUN.sub(lambda m: " " * len(m.group()), norm)
    for m in _LATIN.finditer(masked):
        start, end = m.span()
        word = m.group("word")
        if word is not None:
            if word not in STOP_WORDS:
                out.append((_stem(word), start, end))
            continue
        number = m.group("num").replace(",", "")
        if number.endswith("%"):
            out.append((number[:-1], start, end - 1))
        out.append((number, start, end))
    for m in _IDENTIFIER.finditer(masked):
        whole = _whole(m)
        if whole is not None:
            out.append(whole)
        start, code = m.start(), m.group()
        if whole is not None and not _JOINER.search(code):
            continue  # a single run (`5g`): the whole is its only part
        # The runs of a joined identifier that mix letters and digits are terms of their own too (`r123`
        # of `r123-78`), as the run standing alone would be; also in a match too long to be kept whole.
        for part in _RUN.finditer(code):
            if _is_identifier(part.group()):
                out.append((part.group(), start + part.start(), start + part.end()))
    return out


_JOINER = re.compile(r"[-/._ ]")
_RUN = re.compile(r"[a-z0-9]+")


def _is_identifier(code: str) -> bool:
    return any(c.isdigit() for c in code) and any(c.isalpha() for c in code)


def _identifiers(masked: str) -> list[tuple[str, int, int]]:
    """(term, start, end) of the whole identifiers in normalised, CJK-masked text."""
    return [whole for m in _IDENTIFIER.finditer(masked) if (whole := _whole(m)) is not None]


def _whole(m: re.Match[str]) -> tuple[str, int, int] | None:
    """The term of an `_IDENTIFIER` match, or None when it is no identifier (no letter or no digit) or too
    long. The term of a code joined to its prefix by a space leaves the space out, so `GB/T 7714-2015`
    and `GB/T7714-2015` are one term."""
    term = m.group("code") if m.group("prefix") is None else m.group("prefix")[:-1] + m.group("code")
    if len(term) > _IDENTIFIER_MAX or not _is_identifier(term):
        return None
    runs = _RUN.findall(term)
    if runs[0].isdigit() and any(r.isalpha() and len(r) >= 3 for r in runs[1:]):
        return None  # a number joined to a word: `2-point`, `24-hour`, `3-year-old` are words, not codes
    return term, m.start(), m.end()


def is_gram(term: str) -> bool:
    """Whether `term` is a character bigram (or a lone CJK character) rather than a word."""
    return term.startswith(GRAM_PREFIX)


def display_term(term: str) -> str:
    """The term as a person would read it (without the bigram marker)."""
    return term[len(GRAM_PREFIX) :] if is_gram(term) else term


def query_terms(query: str) -> list[str]:
    """The distinct terms of a query as a person reads them (bigrams without their marker), in order of
    first occurrence; `term_spans` takes them (or `tokenize`'s terms) to highlight a passage."""
    return list(dict.fromkeys(display_term(t) for t in query_tokens(query)))


# --- highlighting ---------------------------------------------------------------------------------------
def word_bounds(text: str) -> list[int]:
    """Sorted offsets into `text` where a word of the search-mode segmentation of its CJK runs starts or
    ends: what `term_spans` checks a CJK match against. The index stores them with each passage, so
    that highlighting a result does not segment it again (jieba was the largest cost of highlighting)."""
    norm = normalize(text)
    bounds: set[int] = set()
    for run in CJK_RUN.finditer(norm):
        bounds |= _word_bounds(norm, *run.span())
    return sorted(bounds)


def term_spans(
    text: str, terms: Sequence[str], bounds: Collection[int] | None = None
) -> list[tuple[int, int]]:
    """[start, end) offsets into `text` where the query `terms` (from `query_terms`) occur, sorted, with
    overlapping and touching spans merged (so `研发` + `投入` highlight as `研发投入`).

    Matching is on the normalised text, so traditional/simplified script and case do not matter. A CJK
    term (a dictionary word or a single character) matches where its characters occur AND start and end
    on a word boundary of the passage's own segmentation: this keeps real words (also ones jieba
    segmented differently in query and passage) and drops bigram noise such as `院办` inside `医院办公室`.
    Other terms match the passage's words by stem. `bounds`, the passage's `word_bounds` when the index
    stored them, saves segmenting it here.
    """
    return _merge(_matches(text, terms, bounds))


def _matches(text: str, terms: Sequence[str], bounds: Collection[int] | None) -> list[tuple[int, int]]:
    """Every match of `term_spans`, unmerged."""
    if not text or not terms:
        return []
    norm = normalize(text)
    cjk_terms = set()
    other_terms = set()
    for term in terms:
        term = display_term(term)
        if not term or term in STOP_WORDS:
            continue
        if not CJK_RUN.fullmatch(term):
            other_terms.add(term)
        elif len(term) == 1 or _segmenter().FREQ.get(term):
            # Multi-character strings missing from jieba's dictionary are bigrams only (发投 of 研发投入);
            # an out-of-vocabulary name still lights up, through its single characters, which are terms.
            cjk_terms.add(term)
    spans: list[tuple[int, int]] = []
    stored = None if bounds is None else bounds if isinstance(bounds, (set, frozenset)) else set(bounds)
    # Without stored bounds, only the CJK runs where a term occurs are segmented: jieba is the costly
    # part of highlighting.
    runs = [m.span() for m in CJK_RUN.finditer(norm)] if cjk_terms and stored is None else []
    run_starts = [start for start, _ in runs]
    bounds_of_run: dict[int, set[int]] = {}

    def bounds_at(at: int) -> Collection[int]:
        if stored is not None:
            return stored
        i = bisect.bisect_right(run_starts, at) - 1  # the run holding the match
        if i not in bounds_of_run:
            bounds_of_run[i] = _word_bounds(norm, *runs[i])
        return bounds_of_run[i]

    for term in cjk_terms:
        at = norm.find(term)
        while at >= 0:
            end = at + len(term)
            around = bounds_at(at)
            if at in around and end in around:
                spans.append((at, end))
            at = norm.find(term, at + 1)
    if other_terms:
        spans.extend((start, end) for term, start, end in _latin_tokens(norm) if term in other_terms)
    return spans


def highlight_spans(
    text: str, terms: Sequence[str], bounds: Collection[int] | None = None
) -> list[tuple[int, int]]:
    """`term_spans` as a reader sees them. A CJK character matched alone (the 年 of another year, the 个
    or 到 of a question) marks nothing the reader asked about and draws the eye from what they did ask,
    so where the query has a term of two characters or more it is kept only beside another single
    character (an out-of-vocabulary name, 林曉颯) or a number or Latin word (2025年, 到2025)."""
    spans = _matches(text, terms, bounds)
    if not any(len(display_term(t)) > 1 for t in terms):
        return _merge(spans)

    def lone(s: int, e: int) -> bool:
        return e - s == 1 and CJK_RUN.fullmatch(text[s:e]) is not None

    # What a lone character may lean on: another lone character, or a match that is no CJK word.
    props = [(s, e) for s, e in spans if lone(s, e) or not CJK_RUN.fullmatch(text[s:e])]
    starts, ends = {s for s, _ in props}, {e for _, e in props}
    kept = [(s, e) for s, e in spans if not lone(s, e) or s in ends or e in starts]
    return _merge(kept)


def _word_bounds(norm: str, base: int, end: int) -> set[int]:
    """Offsets where a word of jieba's search-mode segmentation of the CJK run norm[base:end] starts or
    ends (the same segmentation that indexing uses)."""
    bounds = {base, end}
    for _, word_start, word_end in _segmenter().tokenize(norm[base:end], mode="search", HMM=False):
        bounds.add(base + word_start)
        bounds.add(base + word_end)
    return bounds


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
