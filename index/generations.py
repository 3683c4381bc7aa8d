"""An index folder: numbered generations, an atomic CURRENT pointer and a writer lock.

    INDEX/
      CURRENT                 the published generation: its name and identity ("000007 9f3c…"), replaced
                              atomically
      write.lock              flock held by the one writer, with its PID
      embeddings.sqlite       embedding cache by passage text hash (makes re-index and resumed builds cheap)
      generations/000007/     manifest.json, passages.sqlite, vectors.faiss, keywords/ …
      jobs/<id>.json          the HTTP API's accepted writes, journaled before the 202 (written and read by
                              api/jobs.py only; the index itself never reads them)

A build writes a new generation into a temporary folder, fsyncs it, renames it into place and only then
replaces CURRENT. A `kill -9` at any moment therefore leaves CURRENT naming a complete generation.

A generation's identity is a random id written into its manifest and into CURRENT beside the name: an
index folder removed and built again restarts at 000001, and readers must still see that it is another
generation. The manifest also lists every file of the generation with its size and sha256, so a damaged
file is found and named (`IndexDir.problems`) instead of failing deep inside a store.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from index.errors import SemsearchError
from index.manifest import Manifest, ManifestError

CURRENT = "CURRENT"
LOCK = "write.lock"
# Write locks this process holds: lock file -> the thread holding it.
_HELD: dict[Path, int] = {}
GENERATIONS = "generations"
MANIFEST = "manifest.json"
KEEP_GENERATIONS = 2  # the current one and its predecessor, for readers still holding it


class IndexFolderError(SemsearchError, RuntimeError):
    """Base of the index folder's errors; messages say what to do next."""

    code, status = "index_unavailable", 503


class IndexNotFound(IndexFolderError):
    pass


class IndexLocked(IndexFolderError):
    """Another writer holds the index; worth retrying in a few seconds."""

    code, headers = "index_locked", {"Retry-After": "5"}


class IndexWriteError(IndexFolderError):
    pass


REPAIR_HINT = (
    "run `semsearch index PATH... --index {root}` to repair it (a new generation is built from the last "
    "intact one and the embedding cache), or `semsearch index --rebuild PATH... --index {root}` to build "
    "it afresh from your files"
)


@dataclass(frozen=True)
class Damage:
    """One damaged file of an index folder, relative to the folder (`generations/000003/vectors.faiss`)."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file} {self.problem}"


class IndexDamaged(IndexFolderError):
    """A file of the index is missing, truncated or changed; the message names it and the way out."""

    code = "index_damaged"

    def __init__(self, root: Path, damage: Damage) -> None:
        self.root, self.damage = root, damage
        super().__init__(f"index {root} is damaged: {damage}; " + REPAIR_HINT.format(root=root))


@dataclass(frozen=True)
class Pointer:
    """What CURRENT says: the generation's name and (written since generations have one) its id."""

    name: str
    id: str | None

    @property
    def key(self) -> str:
        """The identity readers compare (and cache answers by): never the same for two generations."""
        return f"{self.name} {self.id}" if self.id else self.name


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file under `folder`, by path relative to it (the manifest's "files")."""
    table = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = path.relative_to(folder).as_posix()
            table[rel] = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    return table


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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

    def pointer(self) -> Pointer | None:
        """What CURRENT names, or None for an index never built.

        Raises `IndexDamaged` when CURRENT is missing beside published generations, empty, garbage, or
        names a generation that is not there.
        """
        try:
            text = (self.root / CURRENT).read_bytes().decode("ascii").strip()
        except FileNotFoundError:
            # The first build renames its generation into place just before it writes CURRENT: a reader
            # in between sees a generation without CURRENT, which is a build in progress, not damage.
            if self.published() and not self._other_writer_alive():
                raise IndexDamaged(self.root, Damage(CURRENT, "is missing")) from None
            return None
        except (UnicodeDecodeError, OSError) as exc:
            raise IndexDamaged(self.root, Damage(CURRENT, f"cannot be read ({exc})")) from None
        parts = text.split()
        if not parts:
            raise IndexDamaged(self.root, Damage(CURRENT, "is empty"))
        if len(parts) > 2 or not parts[0].isdigit() or (len(parts) == 2 and not _is_id(parts[1])):
            raise IndexDamaged(self.root, Damage(CURRENT, f"does not name a generation ({text[:40]!r})"))
        pointer = Pointer(parts[0], parts[1] if len(parts) == 2 else None)
        if not self.path(pointer.name).is_dir():
            raise IndexDamaged(
                self.root, Damage(CURRENT, f"names generation {pointer.name}, which is not in {GENERATIONS}/")
            )
        return pointer

    def _other_writer_alive(self) -> bool:
        """Whether another live process holds the write lock (its PID is in the lock file while it does)."""
        try:
            pid = int((self.root / LOCK).read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if pid <= 0:
            return False
        if pid == os.getpid():  # this process: is it another thread than the one asking?
            holder = _HELD.get((self.root / LOCK).resolve())
            return holder is not None and holder != threading.get_ident()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False  # killed mid-publish: CURRENT really is missing
        except PermissionError:
            return True
        return True

    def current(self) -> str | None:
        """The published generation's name, or None for an index never built (see `pointer`)."""
        pointer = self.pointer()
        return pointer.name if pointer else None

    def published(self) -> list[str]:
        """Names of the complete generations on disk (a build in progress is `*.tmp`), oldest first."""
        if not self.generations.is_dir():
            return []
        return sorted(p.name for p in self.generations.iterdir() if p.name.isdigit() and p.is_dir())

    def path(self, name: str) -> Path:
        return self.generations / name

    def manifest(self, name: str | None = None) -> Manifest:
        """A generation's manifest (the current one's by default); `IndexDamaged` if it cannot be read."""
        name = name or self.current()
        if name is None:
            raise IndexNotFound(
                f"no index at {self.root}: build one with `semsearch index PATH --index {self.root}`"
            )
        where = f"{GENERATIONS}/{name}/{MANIFEST}"
        try:
            data = json.loads((self.path(name) / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IndexDamaged(self.root, Damage(where, "is missing")) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise IndexDamaged(self.root, Damage(where, f"is not a readable manifest ({exc})")) from None
        try:
            return Manifest.from_dict(data)
        except ManifestError as exc:
            raise IndexDamaged(self.root, Damage(where, str(exc))) from None

    def readable_manifest(self) -> Manifest | None:
        """The current generation's manifest, else the newest one that can be read (a damaged index keeps
        the settings it was built with), else None."""
        names = list(reversed(self.published()))
        try:
            current = self.current()
        except IndexDamaged:
            current = None
        for name in ([current] if current else []) + names:
            try:
                return self.manifest(name)
            except IndexDamaged:
                continue
        return None

    def problems(self, name: str, *, checksums: bool, pointer: Pointer | None = None) -> list[Damage]:
        """What is wrong with a generation's files: none missing, each of the size (and, with `checksums`,
        the sha256) its manifest recorded at publish time, and the identity CURRENT gave. Sizes cost a
        `stat` per file; checksums read every byte (about 2 GB/s).

        Generations written before manifests had a "files" table are checked by their manifest only.
        """
        try:
            manifest = self.manifest(name)
        except IndexDamaged as exc:
            return [exc.damage]
        found = []
        if pointer is not None and pointer.id is not None and manifest.id != pointer.id:
            found.append(Damage(CURRENT, f"names generation {name} with id {pointer.id}, but its manifest "
                                         f"has id {manifest.id}"))
        folder = self.path(name)
        for rel, expected in (manifest.files or {}).items():
            where = f"{GENERATIONS}/{name}/{rel}"
            path = folder / rel
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                found.append(Damage(where, "is missing"))
                continue
            if size != expected["bytes"]:
                found.append(Damage(where, f"has {size} bytes, {expected['bytes']} were written "
                                           "(truncated or overwritten)"))
            elif checksums and sha256(path) != expected.get("sha256"):
                found.append(Damage(where, "does not match the checksum written with it (its bytes changed)"))
        return found

    def verify(self, name: str, *, checksums: bool, pointer: Pointer | None = None) -> Manifest:
        """The generation's manifest, or `IndexDamaged` naming its first damaged file (see `problems`)."""
        found = self.problems(name, checksums=checksums, pointer=pointer)
        if found:
            raise IndexDamaged(self.root, found[0])
        return self.manifest(name)

    def damaged(self, name: str, file: str, problem: str) -> IndexDamaged:
        """The error for a file of generation `name` that a store could not read."""
        return IndexDamaged(self.root, Damage(f"{GENERATIONS}/{name}/{file}", problem))

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

    def publish(self, name: str, tmp: Path, manifest: Manifest) -> Manifest:
        """Make the generation durable, then switch CURRENT to it in one atomic rename.

        The manifest gets the generation's identity and the size and checksum of every file.
        """
        manifest = replace(manifest, id=uuid.uuid4().hex, files=file_table(tmp))
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2))
        fsync_tree(tmp)
        final = self.path(name)
        os.rename(tmp, final)
        fsync_path(self.generations)
        pointer = self.root / f"{CURRENT}.tmp"
        with open(pointer, "w") as fh:
            fh.write(f"{name} {manifest.id}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer, self.root / CURRENT)
        fsync_path(self.root)
        return manifest

    def prune(self, keep: int = KEEP_GENERATIONS) -> None:
        """Remove generations older than the last `keep` (open readers keep their files on Linux)."""
        current = self.current()
        names = self.published()
        for name in names[:-keep]:
            if name != current:
                shutil.rmtree(self.path(name), ignore_errors=True)


class WriteLock:
    """One writer per index: an advisory flock, released by the kernel even after `kill -9`."""

    def __init__(self, root: Path, what: str | None = None) -> None:
        self.path = Path(root) / LOCK
        self.what = what or f"index {self.path.parent}"
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
                f"{self.what} is locked by PID {holder} (another writer is running); "
                f"wait for it to finish or stop that process"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        _HELD[self.path.resolve()] = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
            _HELD.pop(self.path.resolve(), None)


def _is_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
