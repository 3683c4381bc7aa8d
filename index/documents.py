"""The units that flow through indexing: documents, their chunks, and the files that were left out.

Loaders (`index.loaders`) turn files and API bodies into `Document`s, the chunker (`index.chunker`) cuts
them into `Chunk`s, the builder stores both. Offsets are always into `Document.text`, so a passage can be
shown in context and highlighted without re-reading the source file.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from index.errors import SemsearchError
from index.repair import repair_paragraphs

PARAGRAPH_SEPARATOR = "\n\n"


class LoadError(SemsearchError, ValueError):
    """Input that cannot become documents; the message names the file (and line) or record at fault."""

    code, status = "unreadable_document", 422


DOC_ID_RULE = ("a doc_id cannot hold control characters (newline, tab, carriage return, or any other "
               "character of U+0000-U+001F or U+007F-U+009F), line separators (U+2028, U+2029) nor lone "
               "surrogates (U+D800-U+DFFF: bytes of a file name that are not UTF-8)")


def doc_id_problem(doc_id: str) -> str | None:
    """Why `doc_id` cannot be an id (it could be stored but never named again in a URL, a path or a
    line of output), or None when it can. One rule for every way documents come in."""
    for position, char in enumerate(doc_id):
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs"):
            return f"{DOC_ID_RULE}; this one has U+{ord(char):04X} at position {position}"
    return None


@dataclass
class SkippedFile:
    """A file (or a line of one) that `load_documents` left out, and why ("binary file", "empty", ...).

    `failed`: the file is there but could not be read (unreadable, binary, a broken JSONL line, ...), so
    whatever the index already holds from it is kept; False for a file that is empty on purpose, whose
    documents a sync removes like those of a deleted file. `rest_read`: only a part of the file (a line of
    a JSONL file) was left out, and its other documents were read.
    """

    path: str
    reason: str
    failed: bool = True
    rest_read: bool = False

    def describe(self) -> str:
        if self.rest_read:
            return f"left out of {self.path}: {self.reason} (its other lines were read)"
        return f"skipped {self.path}: {self.reason}"


@dataclass
class Document:
    """One article: cleaned text, paragraph offsets into it, and metadata."""

    doc_id: str  # stable: posix path relative to the indexed root, or the JSONL doc_id
    text: str  # cleaned, repaired text: paragraphs joined by "\n\n"
    paragraphs: list[tuple[int, int]]  # (start, end) of each paragraph in text
    title: str
    date: str | None = None  # ISO 8601 'YYYY-MM-DD'
    author: str | None = None
    source: str | None = None  # publisher / outlet
    url: str | None = None
    categories: list[str] = field(default_factory=list)
    path: str | None = None  # absolute path of the file it came from; None for API bodies
    # Where each page of a paginated file (PDF) starts in `text`, page 1 first; [] for text without pages.
    pages: list[int] = field(default_factory=list)

    @classmethod
    def from_paragraphs(
        cls,
        doc_id: str,
        paragraphs: list[str],
        *,
        repair: bool = True,
        headings: Collection[int] = (),
        **meta: Any,
    ) -> Document:
        """Build a document from paragraph strings: repair them, join them, record their offsets.

        `headings` are indices of paragraphs the markup marks as headings (never joined by the repair);
        `repair=False` is for callers that already ran `index.repair.repair_paragraphs` themselves.
        """
        if repair:
            paragraphs = repair_paragraphs(paragraphs, headings=headings)
        kept = [p.strip() for p in paragraphs]
        kept = [p for p in kept if p]
        offsets: list[tuple[int, int]] = []
        position = 0
        for paragraph in kept:
            offsets.append((position, position + len(paragraph)))
            position += len(paragraph) + len(PARAGRAPH_SEPARATOR)
        meta.setdefault("title", "")
        return cls(doc_id=doc_id, text=PARAGRAPH_SEPARATOR.join(kept), paragraphs=offsets, **meta)

    def content_hash(self) -> str:
        """sha256 of the text and the metadata, so a changed title or date also re-indexes the document.

        The file path is left out on purpose: moving the indexed folder must not look like a change.
        """
        payload = {
            "text": self.text,
            "paragraphs": [list(p) for p in self.paragraphs],
            "title": self.title,
            "date": self.date,
            "author": self.author,
            "source": self.source,
            "url": self.url,
            "categories": list(self.categories),
        }
        if self.pages:  # only then: every document without pages keeps the hash it always had
            payload["pages"] = list(self.pages)
        data = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(data.encode("utf-8")).hexdigest()


def page_at(pages: list[int] | None, offset: int) -> int | None:
    """The 1-based page holding character `offset`, given where each page starts (`Document.pages`)."""
    if not pages:
        return None
    return max(1, bisect.bisect_right(pages, offset))


@dataclass
class Chunk:
    """A passage of a document, the unit that is embedded and retrieved.

    Invariant: `document.text[start:end] == text`.
    """

    doc_id: str
    ordinal: int  # position of the chunk in the document
    paragraph: int  # index of the (first) paragraph the chunk comes from
    start: int
    end: int
    text: str

    def content_hash(self) -> str:
        """sha256 of the text: all that the embedding depends on (`text_hash`)."""
        return text_hash(self.text)


def text_hash(text: str) -> str:
    """The embedding cache's key of a text (a passage's, or one of its sentences'): sha256 of it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
