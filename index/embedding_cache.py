"""Embeddings by passage text hash, kept across generations.

Re-indexing embeds only text it has never seen, and a build killed half-way resumes where it stopped:
every batch is committed as soon as it is embedded.

The cache only saves work: a cache file SQLite cannot read is renamed aside
(`embeddings.sqlite.corrupt-<UTC time>`) with a warning and a new one started, and a stored vector of the
wrong length is treated as never embedded. Either way the text is embedded again, never lost.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

FILE = "embeddings.sqlite"

log = logging.getLogger(__name__)
T = TypeVar("T")


class EmbeddingCache:
    """A SQLite table hash -> float32 vector, valid for one model (cleared when the model changes)."""

    def __init__(self, root: Path, model: str, dim: int) -> None:
        self.root = Path(root)
        self.model, self.dim = model, dim
        self.set_aside: list[str] = []  # warnings about cache files renamed aside, for the build summary
        self.conn = self._guard(self._connect)

    @property
    def path(self) -> Path:
        return self.root / FILE

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            stamp = f"{self.model}|{self.dim}"
            row = conn.execute("SELECT value FROM meta WHERE key='model'").fetchone()
            if row is None or row[0] != stamp:
                conn.execute("DELETE FROM vectors")
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (stamp,))
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _guard(self, work: Callable[[], T]) -> T:
        """Run `work`; if SQLite finds the cache file damaged, set it aside, start a new one and run it again.

        Only damage ("file is not a database", "database disk image is malformed") is handled here; "database
        is locked" or a full disk are OperationalErrors and are raised as they are.
        """
        try:
            return work()
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError and "malformed" not in str(exc):
                raise
            self._set_aside(exc)
            return work()

    def _set_aside(self, exc: Exception) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{FILE}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(FILE + suffix)
            if source.exists():
                os.replace(source, target.with_name(target.name + suffix))
        message = (
            f"the embedding cache {self.path} is damaged ({exc}); it was renamed to {target.name} and a new "
            f"one started, so passages are embedded again (delete {target.name} once you do not need it)"
        )
        log.warning(message)
        self.set_aside.append(message)
        self.conn = self._connect()

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of these hashes; a vector of another length than `dim` counts as missing."""
        return self._guard(lambda: self._get(hashes))

    def _get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        size = 4 * self.dim
        for lo in range(0, len(unique), 900):
            part = unique[lo : lo + 900]
            marks = ",".join("?" * len(part))
            for h, blob in self.conn.execute(
                f"SELECT hash, vector FROM vectors WHERE hash IN ({marks})", part
            ):
                if isinstance(blob, bytes) and len(blob) == size:
                    found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors, strict=True)]

        def write() -> None:
            self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            self.conn.commit()

        self._guard(write)

    def retain(self, live: Iterable[str]) -> int:
        """Drop vectors of text no longer indexed; returns how many were dropped."""
        hashes = list(live)

        def prune() -> int:
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS live (hash TEXT PRIMARY KEY)")
            self.conn.execute("DELETE FROM temp.live")
            self.conn.executemany("INSERT OR IGNORE INTO temp.live VALUES (?)", ((h,) for h in hashes))
            dropped = self.conn.execute(
                "DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM temp.live)"
            ).rowcount
            self.conn.commit()
            return dropped

        return self._guard(prune)

    def close(self) -> None:
        self.conn.close()
