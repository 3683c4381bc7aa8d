"""Embeddings by passage text hash, kept across generations.

Re-indexing embeds only text it has never seen, and a build killed half-way resumes where it stopped:
every batch is committed as soon as it is embedded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FILE = "embeddings.sqlite"


class EmbeddingCache:
    """A SQLite table hash -> float32 vector, valid for one model (cleared when the model changes)."""

    def __init__(self, root: Path, model: str, dim: int) -> None:
        self.dim = dim
        self.conn = sqlite3.connect(Path(root) / FILE, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        stamp = f"{model}|{dim}"
        row = self.conn.execute("SELECT value FROM meta WHERE key='model'").fetchone()
        if row is None or row[0] != stamp:
            self.conn.execute("DELETE FROM vectors")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (stamp,))
        self.conn.commit()

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for lo in range(0, len(unique), 900):
            part = unique[lo : lo + 900]
            marks = ",".join("?" * len(part))
            for h, blob in self.conn.execute(
                f"SELECT hash, vector FROM vectors WHERE hash IN ({marks})", part
            ):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors, strict=True)]
        self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
        self.conn.commit()

    def retain(self, live: Iterable[str]) -> int:
        """Drop vectors of text no longer indexed; returns how many were dropped."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS live (hash TEXT PRIMARY KEY)")
        self.conn.execute("DELETE FROM temp.live")
        self.conn.executemany("INSERT OR IGNORE INTO temp.live VALUES (?)", ((h,) for h in live))
        dropped = self.conn.execute(
            "DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM temp.live)"
        ).rowcount
        self.conn.commit()
        return dropped

    def close(self) -> None:
        self.conn.close()
