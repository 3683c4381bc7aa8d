"""SQLite store of a generation's documents and passages (text, offsets, metadata).

Written once while a generation is built, then opened read-only and `immutable`, so readers take no
locks and never see "database is locked" while a writer builds the next generation.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.analysis import word_bounds
from index.documents import Chunk, Document

FILE = "passages.sqlite"

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    date TEXT,
    author TEXT,
    source TEXT,
    url TEXT,
    categories TEXT NOT NULL,   -- JSON list
    path TEXT,                  -- absolute file path, NULL for documents sent through the API
    text TEXT NOT NULL,
    paragraphs TEXT NOT NULL,   -- JSON list of [start, end]
    content_hash TEXT NOT NULL,
    pages TEXT                  -- JSON list: where each page of a PDF starts in text; NULL without pages
);
CREATE TABLE categories (doc_id TEXT NOT NULL, category TEXT NOT NULL);
CREATE TABLE passages (
    passage_id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    paragraph INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    hash TEXT NOT NULL,
    bounds BLOB                 -- word bounds for highlighting (uint16 offsets); NULL: segment at query time
);
CREATE INDEX passages_doc ON passages(doc_id, ordinal);
CREATE INDEX categories_cat ON categories(category, doc_id);
CREATE INDEX documents_source ON documents(source);
CREATE INDEX documents_date ON documents(date);
"""

PASSAGE_COLUMNS = 'passage_id, doc_id, ordinal, paragraph, start, "end", text, hash'
# The documents' columns every generation has; `pages` came later.
DOCUMENT_COLUMNS = ("doc_id", "title", "date", "author", "source", "url", "categories", "path", "text",
                    "paragraphs", "content_hash")
_BOUNDS_DTYPE = np.dtype("<u2")
MAX_PARAMS = 900  # bound parameters per statement (SQLite's limit is 999 in older builds)


def pack_bounds(text: str) -> bytes | None:
    """The passage's word bounds (`index.analysis.word_bounds`) as little-endian uint16 offsets; None for a
    text too long for them (its highlights are then segmented at query time)."""
    bounds = word_bounds(text)
    if bounds and bounds[-1] > np.iinfo(_BOUNDS_DTYPE).max:
        return None
    return np.asarray(bounds, dtype=_BOUNDS_DTYPE).tobytes()


@dataclass
class PassageRow:
    """A stored passage with its document's metadata."""

    passage_id: int
    doc_id: str
    ordinal: int
    paragraph: int
    start: int
    end: int
    text: str
    hash: str


@dataclass
class Filters:
    """Metadata filters, applied inside retrieval. Empty lists / None mean no restriction."""

    doc_ids: Sequence[str] = ()
    sources: Sequence[str] = ()
    categories: Sequence[str] = ()
    date_from: str | None = None  # ISO 'YYYY-MM-DD', inclusive
    date_to: str | None = None

    def active(self) -> bool:
        return bool(self.doc_ids or self.sources or self.categories or self.date_from or self.date_to)


def document_row(doc: Document) -> tuple:
    return (
        doc.doc_id,
        doc.title,
        doc.date,
        doc.author,
        doc.source,
        doc.url,
        json.dumps(doc.categories, ensure_ascii=False),
        doc.path,
        doc.text,
        json.dumps(doc.paragraphs),
        doc.content_hash(),
        json.dumps(doc.pages) if doc.pages else None,
    )


class PassageStore:
    """Documents and passages of one generation."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._bounds_column: bool | None = None  # whether this file has stored word bounds (older ones not)
        self._pages_column: bool | None = None  # whether its documents table has pages (older ones not)

    # --- writing (only while the generation is being built) ---------------------------------------
    @classmethod
    def create(cls, folder: Path) -> PassageStore:
        conn = sqlite3.connect(folder / FILE, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=OFF")  # a half-written generation is thrown away, never read
        conn.execute("PRAGMA synchronous=OFF")  # durability comes from fsync before the switch
        conn.executescript(SCHEMA)
        return cls(conn)

    def copy_documents(self, previous: Path, doc_ids: Iterable[str]) -> None:
        """Copy unchanged documents and their passages from the previous generation, ids kept."""
        self.conn.execute("ATTACH DATABASE ? AS prev", (f"file:{previous / FILE}?mode=ro",))
        self.conn.execute("CREATE TEMP TABLE keep (doc_id TEXT PRIMARY KEY)")
        self.conn.executemany("INSERT INTO keep VALUES (?)", ((d,) for d in doc_ids))
        # A generation written before documents had pages copies without them (NULL).
        prev_doc_columns = {r[1] for r in self.conn.execute("PRAGMA prev.table_info(documents)")}
        doc_columns = ", ".join(DOCUMENT_COLUMNS + (("pages",) if "pages" in prev_doc_columns else ()))
        self.conn.execute(
            f"INSERT INTO documents ({doc_columns}) SELECT {doc_columns} FROM prev.documents "
            "WHERE doc_id IN keep"
        )
        self.conn.execute("INSERT INTO categories SELECT * FROM prev.categories WHERE doc_id IN keep")
        # A generation written before passages had stored word bounds copies without them (NULL).
        prev_columns = {r[1] for r in self.conn.execute("PRAGMA prev.table_info(passages)")}
        columns = PASSAGE_COLUMNS + (", bounds" if "bounds" in prev_columns else "")
        self.conn.execute(
            f"INSERT INTO passages ({columns}) SELECT {columns} FROM prev.passages WHERE doc_id IN keep"
        )
        self.conn.commit()
        self.conn.execute("DROP TABLE temp.keep")
        self.conn.execute("DETACH DATABASE prev")

    def set_paths(self, paths: dict[str, str]) -> None:
        """File paths of copied documents (doc_id -> path) whose file moved, content unchanged."""
        rows = [(path, doc_id) for doc_id, path in paths.items()]
        self.conn.executemany("UPDATE documents SET path = ? WHERE doc_id = ?", rows)

    def add_document(self, doc: Document, chunks: Sequence[Chunk], ids: Sequence[int]) -> None:
        self.conn.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", document_row(doc))
        self.conn.executemany(
            "INSERT INTO categories VALUES (?, ?)", [(doc.doc_id, c) for c in dict.fromkeys(doc.categories)]
        )
        self.conn.executemany(
            f"INSERT INTO passages ({PASSAGE_COLUMNS}, bounds) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (pid, c.doc_id, c.ordinal, c.paragraph, c.start, c.end, c.text, c.content_hash(),
                 pack_bounds(c.text))
                for pid, c in zip(ids, chunks, strict=True)
            ],
        )

    def commit(self) -> None:
        """Make what was added so far visible to this store's own reads (the file is not yet published)."""
        self.conn.commit()

    def finish(self) -> None:
        self.conn.commit()
        self.conn.execute("ANALYZE")
        self.conn.close()

    # --- reading --------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path) -> PassageStore:
        # immutable=1: the file never changes after its generation is published, so SQLite may skip
        # locking and change detection entirely.
        uri = f"file:{(folder / FILE).resolve()}?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        return cls(conn)

    def close(self) -> None:
        self.conn.close()

    def count_documents(self) -> int:
        return self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]

    def count_passages(self) -> int:
        return self.conn.execute("SELECT count(*) FROM passages").fetchone()[0]

    def max_passage_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(passage_id), 0) FROM passages").fetchone()[0]

    def document_hashes(self) -> dict[str, tuple[str, str | None]]:
        """doc_id -> (content hash, path), to tell what changed since this generation."""
        rows = self.conn.execute("SELECT doc_id, content_hash, path FROM documents")
        return {r[0]: (r[1], r[2]) for r in rows}

    def passage_keys(self) -> dict[tuple[str, str, int], int]:
        """(doc_id, text hash, occurrence) -> passage_id: unchanged passages keep their ids."""
        keys: dict[tuple[str, str, int], int] = {}
        seen: dict[tuple[str, str], int] = {}
        for doc_id, h, pid in self.conn.execute(
            "SELECT doc_id, hash, passage_id FROM passages ORDER BY doc_id, ordinal"
        ):
            n = seen.get((doc_id, h), 0)
            seen[(doc_id, h)] = n + 1
            keys[(doc_id, h, n)] = pid
        return keys

    def _select_in(self, sql: str, values: Sequence[Any]) -> Iterator[Any]:
        """The rows of `sql` for all `values`, which fill its IN list (`{marks}`): run in chunks, under
        SQLite's bound-parameter limit."""
        for lo in range(0, len(values), MAX_PARAMS):
            part = list(values[lo : lo + MAX_PARAMS])
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(part))), part)

    def passages(self, ids: Sequence[int]) -> dict[int, PassageRow]:
        sql = f"SELECT {PASSAGE_COLUMNS} FROM passages WHERE passage_id IN ({{marks}})"
        return {r[0]: PassageRow(*r) for r in self._select_in(sql, [int(i) for i in ids])}

    def word_bounds(self, ids: Sequence[int]) -> dict[int, frozenset[int]]:
        """The stored word bounds of these passages (see `pack_bounds`); passages stored without them
        (by an older version) are left out."""
        if not self._has_bounds():
            return {}
        sql = "SELECT passage_id, bounds FROM passages WHERE passage_id IN ({marks}) AND bounds IS NOT NULL"
        return {
            pid: frozenset(np.frombuffer(blob, _BOUNDS_DTYPE).tolist())
            for pid, blob in self._select_in(sql, [int(i) for i in ids])
        }

    def _has_bounds(self) -> bool:
        if self._bounds_column is None:
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(passages)")}
            self._bounds_column = "bounds" in columns
        return self._bounds_column

    def passage_ids_of(self, doc_id: str) -> list[int]:
        rows = self.conn.execute("SELECT passage_id FROM passages WHERE doc_id=? ORDER BY ordinal", (doc_id,))
        return [r[0] for r in rows]

    def passage_ids_of_docs(self, doc_ids: Sequence[str]) -> list[int]:
        sql = "SELECT passage_id FROM passages WHERE doc_id IN ({marks})"
        return [r[0] for r in self._select_in(sql, doc_ids)]

    def all_passages(self) -> Iterable[tuple[int, str, str]]:
        """(passage_id, text, hash) of every passage, in id order."""
        return self.conn.execute("SELECT passage_id, text, hash FROM passages ORDER BY passage_id")

    def document(self, doc_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return _document_dict(row) if row else None

    def documents_meta(self, doc_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Metadata (no text) of these documents."""
        pages = "pages" if self.has_pages() else "NULL AS pages"
        sql = (
            f"SELECT doc_id, title, date, author, source, url, categories, path, {pages} FROM documents "
            "WHERE doc_id IN ({marks})"
        )
        out: dict[str, dict[str, Any]] = {}
        for r in self._select_in(sql, list(dict.fromkeys(doc_ids))):
            meta = dict(r)
            meta["categories"] = json.loads(meta["categories"])
            meta["pages"] = json.loads(meta["pages"]) if meta["pages"] else []
            out[r["doc_id"]] = meta
        return out

    def has_pages(self) -> bool:
        """Whether this generation's documents table has the `pages` column (older ones not)."""
        if self._pages_column is None:
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(documents)")}
            self._pages_column = "pages" in columns
        return self._pages_column

    def list_documents(self, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT d.doc_id, d.title, d.date, d.author, d.source, d.url, d.categories, d.path, "
            "(SELECT count(*) FROM passages p WHERE p.doc_id = d.doc_id) AS passages "
            "FROM documents d ORDER BY d.doc_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        out = []
        for r in rows:
            meta = dict(r)
            meta["categories"] = json.loads(meta["categories"])
            out.append(meta)
        return out

    def filter_ids(self, filters: Filters) -> np.ndarray:
        """Passage ids whose document matches every filter."""
        where, args = [], []
        if filters.doc_ids:
            where.append(f"d.doc_id IN ({','.join('?' * len(filters.doc_ids))})")
            args += list(filters.doc_ids)
        if filters.sources:
            where.append(f"d.source IN ({','.join('?' * len(filters.sources))})")
            args += list(filters.sources)
        if filters.categories:
            marks = ",".join("?" * len(filters.categories))
            where.append(f"d.doc_id IN (SELECT doc_id FROM categories WHERE category IN ({marks}))")
            args += list(filters.categories)
        if filters.date_from:
            where.append("d.date >= ?")
            args.append(filters.date_from)
        if filters.date_to:
            where.append("d.date <= ?")
            args.append(filters.date_to)
        sql = "SELECT p.passage_id FROM passages p JOIN documents d ON d.doc_id = p.doc_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        ids = [r[0] for r in self.conn.execute(sql, args)]
        return np.asarray(ids, dtype=np.int64)

    def facets(self) -> dict[str, list[dict[str, Any]]]:
        """Sources and categories with document counts, and the date range (for the page's filters)."""
        sources = self.conn.execute(
            "SELECT source, count(*) FROM documents WHERE source IS NOT NULL GROUP BY source ORDER BY 2 DESC"
        ).fetchall()
        cats = self.conn.execute(
            "SELECT category, count(DISTINCT doc_id) FROM categories GROUP BY category ORDER BY 2 DESC"
        ).fetchall()
        lo, hi = self.conn.execute("SELECT min(date), max(date) FROM documents").fetchone()
        return {
            "sources": [{"value": s, "documents": n} for s, n in sources],
            "categories": [{"value": c, "documents": n} for c, n in cats],
            "dates": [{"from": lo, "to": hi}] if lo else [],
        }


def _document_dict(row: sqlite3.Row) -> dict[str, Any]:
    doc = dict(row)
    doc["categories"] = json.loads(doc["categories"])
    doc["paragraphs"] = [tuple(p) for p in json.loads(doc["paragraphs"])]
    doc["pages"] = json.loads(doc["pages"]) if doc.get("pages") else []
    return doc

