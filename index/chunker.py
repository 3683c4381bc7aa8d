"""Cut documents into passages that fit the embedding model.

Paragraphs are the natural unit: a paragraph over the budget is cut at sentence ends, a sentence over
it at clause marks, then at spaces, and only then between characters. Short neighbouring paragraphs are
merged up to a target size, so that a passage carries enough context; a heading is kept at the start
of the passage that follows it rather than left dangling at the end of the previous one.

Offsets always slice the document text, so passages can be shown in context and every non-blank
character of a document is in exactly one passage (without overlap).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from index.config import ChunkSettings
from index.documents import Chunk, Document
from index.repair import is_heading_like
from index.text import SENTENCE_END

CountTokens = Callable[[list[str]], list[int]]

# Where a piece of a paragraph may end, from the best place to the worst.
_CLAUSE_END = re.compile(r"[，、]|[,:](?!\d)|：")
_WORD_END = re.compile(r"\s+")
_LEVELS = (SENTENCE_END, _CLAUSE_END, _WORD_END)
# Characters per budget token above which a paragraph is cut into runs before counting (see _windows).
WINDOW = 32
# Characters sent to the tokenizer at once: its memory grows with the batch (a count of 17 million
# characters at once peaked at gigabytes), so a document of any size is counted in bounded batches.
BATCH_CHARS = 262_144

Progress = Callable[[int], None]  # told the characters of each paragraph (or run) chunked


def _bounded(count: CountTokens) -> CountTokens:
    """`count`, fed batches of at most BATCH_CHARS characters (a longer text alone)."""

    def counted(texts: list[str]) -> list[int]:
        counts: list[int] = []
        batch: list[str] = []
        size = 0
        for text in texts:
            if batch and size + len(text) > BATCH_CHARS:
                counts += count(batch)
                batch, size = [], 0
            batch.append(text)
            size += len(text)
        return counts + count(batch) if batch else counts

    return counted


ChunkerConfig = ChunkSettings  # the one class of chunk settings, recorded in the index's manifest


@dataclass
class _Piece:
    start: int
    end: int
    tokens: int
    exact: bool = True  # `tokens` was counted on this very text (not summed from parts)
    heading: bool = False


def _spans(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """[start, end) cut after each match of `pattern`; the spans cover it without gaps."""
    spans, position = [], start
    for match in pattern.finditer(text, start, end):
        if match.end() > position and match.end() < end:
            spans.append((position, match.end()))
            position = match.end()
    spans.append((position, end))
    return [s for s in spans if text[s[0] : s[1]].strip()] or [(start, end)]


def _hard_split(
    text: str, start: int, end: int, tokens: int, count: CountTokens, budget: int
) -> list[_Piece]:
    """Cut into equal runs of characters, more of them until each fits."""
    pieces = max(2, math.ceil(tokens / budget))
    while True:
        size = max(1, math.ceil((end - start) / pieces))
        bounds = [(s, min(s + size, end)) for s in range(start, end, size)]
        counts = count([text[s:e] for s, e in bounds])
        if all(c <= budget for c in counts) or size == 1:
            return [_Piece(s, e, c) for (s, e), c in zip(bounds, counts, strict=True)]
        pieces = math.ceil(pieces * 1.5)


def _pack(units: list[tuple[int, int, int]], budget: int) -> list[_Piece]:
    """Consecutive (start, end, tokens) units in as few pieces as fit the budget, as even as possible.

    Greedy filling gives the fewest pieces; the smallest cap that still gives that many (found by
    bisection) spreads the units evenly instead of leaving a scrap at the end.
    """

    def greedy(cap: int) -> list[list[tuple[int, int, int]]]:
        groups: list[list[tuple[int, int, int]]] = []
        total = 0
        for unit in units:
            if groups and total + unit[2] <= cap:
                groups[-1].append(unit)
                total += unit[2]
            else:
                groups.append([unit])
                total = unit[2]
        return groups

    fewest = len(greedy(budget))
    low, high = max(n for _, _, n in units), budget
    while low < high:
        middle = (low + high) // 2
        if len(greedy(middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return [_Piece(g[0][0], g[-1][1], sum(n for _, _, n in g), exact=len(g) == 1) for g in greedy(low)]


def _split(
    text: str, start: int, end: int, tokens: int, count: CountTokens, budget: int, level: int = 0
) -> list[_Piece]:
    """Pieces of [start, end) of at most `budget` tokens, cut at the best kind of boundary available."""
    if level >= len(_LEVELS):
        return _hard_split(text, start, end, tokens, count, budget)
    spans = _spans(text, start, end, _LEVELS[level])
    if len(spans) == 1:
        return _split(text, start, end, tokens, count, budget, level + 1)
    counts = count([text[s:e] for s, e in spans])
    pieces: list[_Piece] = []
    run: list[tuple[int, int, int]] = []
    for (s, e), n in zip(spans, counts, strict=True):
        if n <= budget:
            run.append((s, e, n))
            continue
        if run:
            pieces.extend(_pack(run, budget))
            run = []
        pieces.extend(_split(text, s, e, n, count, budget, level + 1))
    if run:
        pieces.extend(_pack(run, budget))
    return pieces


def _segments(doc: Document) -> list[tuple[int, int, int]]:
    """(start, end, paragraph index) of the text to chunk: the paragraphs, plus any text between them."""
    text = doc.text
    paragraphs = sorted(doc.paragraphs) or [(0, len(text))]
    segments: list[tuple[int, int, int]] = []
    position = 0
    for index, (start, end) in enumerate(paragraphs):
        start, end = max(start, position), max(min(end, len(text)), position)
        if text[position:start].strip():  # text outside every paragraph is still text of the document
            segments.append((position, start, max(0, index - 1)))
        if text[start:end].strip():
            segments.append((start, end, index))
        position = end
    if text[position:].strip():
        segments.append((position, len(text), len(paragraphs) - 1))
    return segments


def _windows(text: str, segments: list[tuple[int, int, int]], size: int) -> list[tuple[int, int, int]]:
    """Segments longer than `size` characters cut into runs of at most `size`, at the best boundary in
    the second half of each run.

    A paragraph's token count is only taken to see whether it fits; for a paragraph megabytes long (a
    file of one line) that one count held gigabytes of tokenizer memory. A run of `size` characters is
    far over any budget anyway, so it is split the same way, with the pieces balanced within each run.
    """
    out: list[tuple[int, int, int]] = []
    for start, end, paragraph in segments:
        while end - start > size:
            cut = start + size
            for pattern in _LEVELS:
                ends = [m.end() for m in pattern.finditer(text, start + size // 2, start + size)]
                if ends:
                    cut = ends[-1]
                    break
            out.append((start, cut, paragraph))
            start = cut
        out.append((start, end, paragraph))
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _batches(segments: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """Consecutive segments in groups of about BATCH_CHARS characters, each counted at once."""
    batches: list[list[tuple[int, int, int]]] = []
    size = BATCH_CHARS
    for segment in segments:
        if size + segment[1] - segment[0] > BATCH_CHARS:
            batches.append([])
            size = 0
        batches[-1].append(segment)
        size += segment[1] - segment[0]
    return batches


def _pieces(
    doc: Document, count: CountTokens, config: ChunkerConfig, progress: Progress | None
) -> list[_Piece]:
    """Paragraphs that fit, and the pieces of those that do not.

    A paragraph after a heading that would fit alone but not together with the heading is cut at a
    sentence end, so that the heading starts a passage with text instead of being a passage by itself.
    """
    text = doc.text
    limit = config.max_tokens
    segments = [(*_strip(text, s, e), i) for s, e, i in _windows(text, _segments(doc), WINDOW * limit)]
    pieces: list[_Piece] = []
    heading_tokens = 0  # of the headings right before the current paragraph
    for batch in _batches(segments):
        counts = count([text[s:e] for s, e, _ in batch])
        for (start, end, _), tokens in zip(batch, counts, strict=True):
            if progress is not None:
                progress(end - start)
            if tokens <= limit and is_heading_like(text[start:end]):
                pieces.append(_Piece(start, end, tokens, heading=True))
                heading_tokens += tokens
                continue
            room = limit - heading_tokens
            after_heading = 0 < heading_tokens <= limit // 2 and room < tokens
            heading_tokens = 0
            if tokens <= limit and not (after_heading and len(_spans(text, start, end, SENTENCE_END)) > 1):
                pieces.append(_Piece(start, end, tokens))
            else:
                pieces.extend(_split(text, start, end, tokens, count, room if after_heading else limit))
    return pieces


def _merge(pieces: list[_Piece], config: ChunkerConfig) -> list[list[_Piece]]:
    """Groups of neighbouring pieces; a heading starts a group and may take the next paragraph along."""
    groups: list[list[_Piece]] = []
    total = 0
    for piece in pieces:
        only_headings = bool(groups) and all(p.heading for p in groups[-1])
        if groups and (only_headings or not piece.heading):
            # a heading goes with what follows it, up to the hard limit; other merges up to the target
            limit = config.max_tokens if only_headings else config.target_tokens
            if total + piece.tokens <= limit:
                groups[-1].append(piece)
                total += piece.tokens
                continue
        groups.append([piece])
        total = piece.tokens
    return groups


def _fit(
    doc: Document, groups: list[list[_Piece]], count: CountTokens, config: ChunkerConfig
) -> list[_Piece]:
    """One piece per group, checked with the real count where the count was a sum.

    Token counts of parts do not always add up to the count of the whole (subword merges at the seams),
    so a merged group over budget is taken apart again, and a packed piece over budget is cut anew.
    """
    text = doc.text
    chunks = [
        _Piece(g[0].start, g[-1].end, sum(p.tokens for p in g), exact=len(g) == 1 and g[0].exact)
        for g in groups
    ]
    for _ in range(4):
        unsure = [i for i, c in enumerate(chunks) if not c.exact]
        if not unsure:
            break
        counts = count([text[chunks[i].start : chunks[i].end] for i in unsure])
        replacements: dict[int, list[_Piece]] = {}
        for i, n in zip(unsure, counts, strict=True):
            chunk = chunks[i]
            if n <= config.max_tokens:
                chunk.tokens, chunk.exact = n, True
            elif len(groups[i]) > 1:
                replacements[i] = groups[i]
            else:
                budget = max(1, config.max_tokens * config.max_tokens // n)
                replacements[i] = _split(text, chunk.start, chunk.end, n, count, budget)
        if not replacements:
            break
        new_chunks, new_groups = [], []
        for i, chunk in enumerate(chunks):
            for piece in replacements.get(i, [chunk]):
                new_chunks.append(piece)
                new_groups.append([piece])
        chunks, groups = new_chunks, new_groups
    return chunks


def _with_overlap(
    doc: Document, chunks: list[_Piece], count: CountTokens, config: ChunkerConfig
) -> list[_Piece]:
    """Start each chunk up to `overlap_sentences` sentences earlier, as far as the budget allows."""
    text = doc.text
    result = [chunks[0]] if chunks else []
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        sentences = _spans(text, previous.start, chunk.start, SENTENCE_END)
        starts = [s for s, _ in sentences][-config.overlap_sentences :]
        # strictly inside the previous chunk: a chunk never swallows the whole of the previous one
        first = _strip(text, previous.start, previous.end)[0]
        candidates = [s for s in starts if first < _strip(text, s, chunk.start)[0] and s < chunk.start]
        counts = count([text[s : chunk.end] for s in candidates]) if candidates else []
        start = next(
            (s for s, n in zip(candidates, counts, strict=True) if n <= config.max_tokens), chunk.start
        )
        result.append(_Piece(start, chunk.end, chunk.tokens))
    return result


def chunk_document(
    doc: Document,
    count_tokens: CountTokens,
    config: ChunkerConfig | None = None,
    *,
    progress: Progress | None = None,
) -> list[Chunk]:
    """The chunks of a document, in order; `count_tokens` counts model tokens of a batch of strings.

    Every chunk has at most `config.max_tokens` tokens (as counted by `count_tokens`), has no leading or
    trailing white space, and satisfies `doc.text[chunk.start:chunk.end] == chunk.text`. Memory stays
    bounded whatever the size of the document: the tokenizer is given bounded batches. `progress` is
    told the characters of each paragraph as it is chunked.
    """
    count_tokens = _bounded(count_tokens)
    config = config or ChunkerConfig()
    if config.max_tokens < 1 or config.target_tokens < 1 or config.overlap_sentences < 0:
        raise ValueError(f"invalid chunker settings: {config}")
    text = doc.text
    if not text.strip():
        return []
    pieces = _pieces(doc, count_tokens, config, progress)
    chunks = _fit(doc, _merge(pieces, config), count_tokens, config)
    if config.overlap_sentences:
        chunks = _with_overlap(doc, chunks, count_tokens, config)
    starts = [start for start, _ in doc.paragraphs]
    result: list[Chunk] = []
    for piece in chunks:
        start, end = _strip(text, piece.start, piece.end)
        if start == end:
            continue
        paragraph = max(0, bisect.bisect_right(starts, start) - 1) if starts else 0
        result.append(Chunk(doc.doc_id, len(result), paragraph, start, end, text[start:end]))
    return result
