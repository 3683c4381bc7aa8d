"""Near-duplicate collapse: a passage that says what a better-ranked one already said is folded into it.

News articles quote each other; the same paragraph standing in two articles should be shown once, with
every place it stands listed in `also_in`. Two passages are near-duplicates when a large share of the
shorter one's character 4-grams (punctuation and spaces removed) also occur in the other: this survives
small edits ("西部许多地区是" / "西部地区多是") and passages that carry the shared paragraph next to
other text, while passages that merely share a topic stay well below the threshold (on the default
corpus the quote pair overlaps 0.53, the next most similar pair 0.34).
"""

from __future__ import annotations

import re

from search.models import AlsoIn, SearchResult

SHINGLE = 4
MIN_CONTAINMENT = 0.45
MIN_SHARED = 40  # shingles: short passages (headings) never count as duplicates of each other
# How far down the ranking (in candidates) a copy may stand and still fold into a result. A page reads
# this many candidates past its last result anyway (to fill itself where copies fold), so the window
# costs no reading; copies of one paragraph rank close together, as their texts and scores do.
FOLD_WINDOW = 10

_NOT_TEXT = re.compile(r"[\W_]+")


def shingles(text: str) -> set[str]:
    flat = _NOT_TEXT.sub("", text.lower())
    return {flat[i : i + SHINGLE] for i in range(len(flat) - SHINGLE + 1)}


def near_duplicates(a: set[str], b: set[str]) -> bool:
    shared = len(a & b)
    return shared >= MIN_SHARED and shared / max(1, min(len(a), len(b))) >= MIN_CONTAINMENT


class NearDuplicateFolder:
    """Candidates added best first; each one that repeats a kept result of another document is folded into
    that one's `also_in` when it stands at most FOLD_WINDOW candidates below the result or the copy folded
    into it last (fifteen reprints ranked one after another are one result).

    Folding depends only on the ranking, never on how much of it a page reads: adding in several steps
    gives what adding all at once gives, and a result's `also_in` is whole once the FOLD_WINDOW candidates
    after its last copy are added (`settled`). A copy ranked further down is a result of its own, so every
    passage is shown on some page, as a result or in the `also_in` of one on the same page (folding a copy
    first read for page 5 into a result of page 1 would hide it from every page). Two passages of one
    document are two results: they may share a sentence of boilerplate, yet say different things.

    An `anchor` (the passage `/similar` was given) takes every copy, at any distance and in any document.
    """

    def __init__(self, window: int = FOLD_WINDOW) -> None:
        self.window = window
        # (result, its shingles, the position of it or of its last folded copy; None for an anchor)
        self._kept: list[tuple[SearchResult, set[str], int | None]] = []
        self._added = 0  # candidates added so far: the position of the next one in the ranking

    def add(self, results: list[SearchResult], *, anchor: bool = False) -> None:
        for result in results:
            grams = shingles(result.text)
            at = None if anchor else self._added
            if not anchor:
                self._added += 1
            for i, (first, first_grams, last) in enumerate(self._kept):
                if at is not None and last is not None and (
                    at - last > self.window or first.doc_id == result.doc_id
                ):
                    continue
                if near_duplicates(grams, first_grams):
                    first.also_in.append(
                        AlsoIn(doc_id=result.doc_id, title=result.title, passage_id=result.passage_id,
                               start=result.start, end=result.end, page=result.page)
                    )
                    if last is not None:
                        self._kept[i] = (first, first_grams, at)
                    break
            else:
                self._kept.append((result, grams, at))

    def settled(self, n: int) -> bool:
        """Whether the first `n` results are kept and their `also_in` whole: every candidate that could
        still fold into them has been added."""
        if len(self._kept) < n:
            return False
        last = max((at for _, _, at in self._kept[:n] if at is not None), default=-1)
        return self._added > last + self.window

    @property
    def results(self) -> list[SearchResult]:
        return [r for r, _, _ in self._kept]

    def __len__(self) -> int:
        return len(self._kept)
