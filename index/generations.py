"""An index folder: numbered generations, an atomic CURRENT pointer and a writer lock.

    INDEX/
      CURRENT                 name of the published generation ("000007"), replaced atomically
      write.lock              flock held by the one writer, with its PID
      embeddings.sqlite       embedding cache by passage text hash (makes re-index and resumed builds cheap)
      generations/000007/     manifest.json, passages.sqlite, vectors.faiss, keywords/ …
      jobs/<id>.json          the HTTP API's accepted writes, journaled before the 202 (written and read by
                              api/jobs.py only; the index itself never reads them)

A build writes a new generation into a temporary folder, fsyncs it, renames it into place and only then
replaces CURRENT. A `kill -9` at any moment therefore leaves CURRENT naming a complete generation.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

CURRENT = "CURRENT"
LOCK = "write.lock"
GENERATIONS = "generations"
MANIFEST = "manifest.json"
KEEP_GENERATIONS = 2  # the current one and its predecessor, for readers still holding it


class IndexFolderError(RuntimeError):
    """Base of the index's own errors; messages say what to do next."""


class IndexNotFound(IndexFolderError):
    pass


class IndexLocked(IndexFolderError):
    pass


class IndexWriteError(IndexFolderError):
    pass


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    for child in folder.rglob("*"):
        if child.is_file():
            fsync_path(child)
    fsync_path(folder)


class IndexDir:
    """The folder of one index and its generations."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def generations(self) -> Path:
        return self.root / GENERATIONS

    def current(self) -> str | None:
        """The published generation's name, or None for an index never built."""
        try:
            name = (self.root / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def path(self, name: str) -> Path:
        return self.generations / name

    def manifest(self, name: str | None = None) -> dict[str, Any]:
        name = name or self.current()
        if name is None:
            raise IndexNotFound(
                f"no index at {self.root}: build one with `semsearch index PATH --index {self.root}`"
            )
        return json.loads((self.path(name) / MANIFEST).read_text())

    def next_name(self) -> str:
        names = [int(p.name) for p in self.generations.glob("[0-9]*") if p.name.isdigit()]
        return f"{max(names, default=0) + 1:06d}"

    def begin(self) -> tuple[str, Path]:
        """A fresh temporary folder for the next generation (left-overs of killed builds are removed)."""
        self.generations.mkdir(parents=True, exist_ok=True)
        for stale in self.generations.glob("*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        name = self.next_name()
        tmp = self.generations / f"{name}.tmp"
        tmp.mkdir()
        return name, tmp

    def publish(self, name: str, tmp: Path, manifest: dict[str, Any]) -> None:
        """Make the generation durable, then switch CURRENT to it in one atomic rename."""
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
        fsync_tree(tmp)
        final = self.path(name)
        os.rename(tmp, final)
        fsync_path(self.generations)
        pointer = self.root / f"{CURRENT}.tmp"
        with open(pointer, "w") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer, self.root / CURRENT)
        fsync_path(self.root)

    def prune(self, keep: int = KEEP_GENERATIONS) -> None:
        """Remove generations older than the last `keep` (open readers keep their files on Linux)."""
        current = self.current()
        names = sorted(p.name for p in self.generations.glob("[0-9]*") if p.name.isdigit())
        for name in names[:-keep]:
            if name != current:
                shutil.rmtree(self.path(name), ignore_errors=True)


class WriteLock:
    """One writer per index: an advisory flock, released by the kernel even after `kill -9`."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> WriteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise IndexLocked(
                f"index {self.path.parent} is locked by PID {holder} (another writer is running); "
                f"wait for it to finish or stop that process"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
