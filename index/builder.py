"""The incremental builder: documents in, a new published generation out.

Each run compares the documents with the current generation by content hash. Unchanged documents are
copied with their passage ids; new or changed ones are chunked, and only text never embedded before
is sent to the model (the embedding cache is keyed by passage text). The new generation is written
beside the old one and published atomically (see `index.generations`).

A build starts from the current generation after checking it (sizes and checksums of every file). When it
is damaged, the build repairs instead of failing: if only its vector or keyword files are damaged, its
documents are kept and those stores are rebuilt from the embedding cache (embedding only what the cache
cannot give); otherwise it starts from the newest intact generation, or from nothing but the files given.
Either way a new generation is published, even when no document changed.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import Any

import numpy as np

from index.chunker import Progress, chunk_document
from index.config import FORMAT_VERSION, IndexSettings
from index.documents import Chunk, Document, LoadError, SkippedFile, text_hash
from index.embedders.base import Embedder
from index.embedders.factory import create_embedder
from index.embedding_cache import EmbeddingCache
from index.errors import SemsearchError
from index.generations import (
    CURRENT,
    MANIFEST,
    Damage,
    IndexDamaged,
    IndexDir,
    IndexFolderError,
    IndexLocked,
    IndexWriteError,
    WriteLock,
    now_iso,
)
from index.loaders.factory import load_documents
from index.manifest import Manifest
from index.settings import is_set
from index.stores.factory import (
    create_keyword_store,
    create_vector_store,
    open_keyword_store,
    open_passages,
    open_sentence_store,
    open_vector_store,
)
from index.stores.passages import FILE as PASSAGES_FILE
from index.stores.passages import PassageStore
from index.stores.sentence_store import SentenceStore, passage_sentences

log = logging.getLogger(__name__)

EMBED_SLICE = 256  # passages embedded and committed to the cache at a time
# How often `index_paths` reads its files again when other writers keep publishing while it reads them.
READ_ATTEMPTS = 3


class _PublishedMeanwhile(Exception):
    """Another writer published a generation after `index_paths` read the folders and ids it builds on."""

    def __init__(self, seen: str | None, now: str | None) -> None:
        super().__init__(f"generation {now} was published after the files were read against {seen}")
        self.now = now


class SettingsMismatch(IndexFolderError):
    """The index was built with other settings (model, chunker) than the ones asked for."""


class DocIdTaken(SemsearchError, ValueError):
    """A document sent through the API takes the doc_id of a file of an indexed folder. Replacing it would
    last until that folder's next sync, and every sync after would skip the file (its id taken)."""

    code, status = "doc_id_taken", 409


@dataclass
class BuildSummary:
    """What a build did; `describe()` is what the CLI prints."""

    generation: str | None = None
    documents: int = 0
    passages: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    moved: int = 0  # unchanged documents whose file is now somewhere else
    embedded: int = 0
    reused: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # what was damaged and how this build recovered
    warnings: list[str] = field(default_factory=list)  # e.g. a damaged embedding cache set aside
    kept: int = 0  # documents of files that failed to load, kept as the index had them
    # The keyword index was analysed again (it was built by an older analyser), documents unchanged.
    reanalysed: bool = False
    # Sentences of the new or changed passages (`index.stores.sentence_store`): embedded, or from the cache.
    sentences_embedded: int = 0
    sentences_reused: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0  # passages and their sentences

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted or self.moved)

    @property
    def clean(self) -> bool:
        """Every file given was read; False if one (or a line of one) failed and its documents were kept."""
        return not any(s.failed for s in self.skipped)

    @property
    def passages_per_s(self) -> float:
        """Passages embedded a second, their sentences' time included: the rate an operator sees."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "documents": self.documents,
            "passages": self.passages,
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "moved": self.moved,
            "embedded": self.embedded,
            "reused": self.reused,
            "sentences_embedded": self.sentences_embedded,
            "sentences_reused": self.sentences_reused,
            "skipped": [{"path": s.path, "reason": s.reason, "failed": s.failed, "rest_read": s.rest_read}
                        for s in self.skipped],
            "kept": self.kept,
            "clean": self.clean,
            "repaired": self.repaired,
            "warnings": self.warnings,
            "reanalysed": self.reanalysed,
            "seconds": round(self.seconds, 3),
            "passages_per_s": round(self.passages_per_s, 2),
        }

    def describe(self) -> str:
        lines = [
            f"documents: {self.documents} ({self.added} added, {self.updated} updated, "
            f"{self.deleted} deleted, {self.unchanged} unchanged"
            + (f", {self.moved} moved" if self.moved else "")
            + f"), skipped: {len(self.skipped)}",
            f"passages: {self.passages}; embedded {self.embedded} new, reused {self.reused}"
            + (f" ({self.passages_per_s:.1f} passages/s)" if self.embedded else " (nothing re-embedded)"),
        ]
        if self.sentences_embedded or self.sentences_reused:
            lines.append(f"sentences: embedded {self.sentences_embedded} new, reused {self.sentences_reused}")
        for skip in self.skipped:
            lines.append(f"  {skip.describe()}")
        lines += [f"repaired: {line}" for line in self.repaired]
        lines += [f"warning: {line}" for line in self.warnings]
        if not self.clean:
            kept = f"; kept the {self.kept} document(s) the index had from them" if self.kept else ""
            lines.append(f"some files could not be read{kept}: fix them and run again")
        if self.reanalysed:
            lines.append("keyword index analysed again: it was built by an older version of the analyser")
        where = f"generation {self.generation}" if self.generation else "no index"
        state = "published" if self.changed or self.repaired or self.reanalysed else "unchanged, still"
        lines.append(f"{state} {where} in {self.seconds:.1f}s")
        return "\n".join(lines)


def _refuse_file_ids(upserts: dict[str, Document], prev_docs: dict[str, tuple[str, str | None]]) -> None:
    # The message goes to HTTP clients: it names the id, not the server's path of the file.
    taken = [doc_id for doc_id, doc in upserts.items()
             if doc.path is None and prev_docs.get(doc_id, ("", None))[1] is not None]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise DocIdTaken(
            f"doc_id {taken[0]!r}{more} belongs to a file of an indexed folder; nothing was changed. Edit "
            "that file and index its folder again (or let the watcher sync it), or send this document "
            "under another doc_id (a JSON document's \"doc_id\", an upload's file name)"
        )


def _gone_folders(roots: Roots, prev_docs: dict[str, tuple[str, str | None]], upserts: dict[str, Document],
                  gone: set[str]) -> list[str]:
    """Warnings for the recorded folders that no longer exist and still hold documents: those are kept (a
    disk or share not mounted must not empty the index), and the user is told how to remove them."""
    warnings = []
    for folder in sorted(roots.prefixes):
        if Path(folder).exists():
            continue
        held = sum(1 for doc_id, (_hash, path) in prev_docs.items()
                   if path is not None and doc_id not in gone and doc_id not in upserts
                   and _under(path, [Path(folder)]))
        if held:
            warnings.append(
                f"{folder}, a folder this index reads, is gone; its {held} document(s) are kept and still "
                f"found. To remove them, index it again once it exists and is empty (`mkdir -p {folder}` "
                "then `semsearch index` of it), or delete them through the API"
            )
    return warnings


def _holds_files_of(folder: Path, old: str, docs: Mapping[str, tuple[str, str | None]]) -> bool:
    """Whether `folder` holds files where the recorded folder `old` held its documents' files: the same
    folder moved, not another of the same name (a share offline, and another `share` indexed meanwhile)."""
    relative = [Path(path).relative_to(old) for _hash, path in docs.values()
                if path is not None and Path(path).is_relative_to(old)]
    return any((folder / r).exists() for r in relative[:200])


# The settings a build reads from the environment: (part of IndexSettings or None, field). The model is
# refused when it differs (below), so only a rebuild takes it.
_BUILD_SETTINGS: dict[str, tuple[str | None, str]] = {
    "SEMSEARCH_MAX_TOKENS": ("chunks", "max_tokens"),
    "SEMSEARCH_TARGET_TOKENS": ("chunks", "target_tokens"),
    "SEMSEARCH_OVERLAP_SENTENCES": ("chunks", "overlap_sentences"),
    "SEMSEARCH_SENTENCE_VECTORS": (None, "sentence_vectors"),
    "SEMSEARCH_FAISS_KIND": ("faiss", "kind"),
    "SEMSEARCH_EXACT_MAX": ("faiss", "exact_max"),
    "SEMSEARCH_MODEL": ("embedder", "model"),
}


def _owner_of(settings: IndexSettings, part: str | None) -> Any:
    return settings if part is None else getattr(settings, part)


def _env_not_applied(built: IndexSettings) -> list[str]:
    """The build settings set in the environment that differ from the index's, as `NAME=value (the index
    has other)`: an index keeps its own, so that one stray variable does not re-chunk everything."""
    asked = IndexSettings.from_env()
    notes = []
    for name, (part, field_name) in _BUILD_SETTINGS.items():
        want, have = (getattr(_owner_of(x, part), field_name) for x in (asked, built))
        if name != "SEMSEARCH_MODEL" and is_set(name) and want != have:
            notes.append(f"{name}={want} (the index has {have})")
    return notes


def _with_env(built: IndexSettings) -> IndexSettings:
    """The index's settings with those the environment sets (a rebuild takes them)."""
    asked = IndexSettings.from_env()
    out = IndexSettings.from_dict(built.to_dict())
    for name, (part, field_name) in _BUILD_SETTINGS.items():
        if is_set(name):
            setattr(_owner_of(out, part), field_name, getattr(_owner_of(asked, part), field_name))
    out.chunks.target_tokens = min(out.chunks.target_tokens, out.chunks.max_tokens)
    return out


def _under(path: str | Path, folders: Sequence[Path]) -> bool:
    return any(Path(path).is_relative_to(folder) for folder in folders)


@dataclass
class Roots:
    """The folders an index reads files from, each with the prefix of its files' doc ids.

    A file's doc_id is its path relative to the deepest recorded folder holding it, after that folder's
    prefix. The first folder of an index has the empty prefix (`semsearch index data` gives
    `003_07e0a4d71f185c6b.txt`); each further folder has its name (`semsearch index f2` gives
    `f2/readme.txt`), so equal file names in two folders are two documents. Indexing a sub-folder of a
    recorded folder gives the ids the whole folder gives. A recorded folder that no longer exists, when a
    folder of the same name is indexed, holding files where it held its documents' files, was moved: the
    new place takes its prefix, so ids stay (another folder of that name gets a prefix of its own).

    The folders are recorded in each generation's manifest. An index built before they were is read
    from its documents (path = folder + doc_id), all with the empty prefix: every id stays as it was.
    """

    prefixes: dict[str, str] = field(default_factory=dict)  # absolute folder -> "" or "name/"
    moved: dict[Path, Path] = field(default_factory=dict)  # old place -> new place of folders moved, this run
    # absolute folder -> the device (st_dev) it was on when last read: an unmounted disk leaves its mount
    # point behind, an empty folder of the disk below, which must not read as a folder emptied
    devices: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of_index(cls, manifest: Manifest, docs: dict[str, tuple[str, str | None]]) -> Roots:
        if manifest.roots is not None:
            return cls({r["folder"]: r["prefix"] for r in manifest.roots},
                       devices={r["folder"]: int(r["device"]) for r in manifest.roots if "device" in r})
        inferred: dict[str, str] = {}
        for doc_id, (_hash, path) in docs.items():
            relative = doc_id.split("#", 1)[0]  # "docs.jsonl#3": a JSONL line without a doc_id
            if path and path.endswith("/" + relative):
                inferred.setdefault(path[: -len(relative) - 1], "")
        return cls(inferred)

    def to_manifest(self) -> list[dict[str, Any]]:
        return [{"folder": f, "prefix": p} | ({"device": self.devices[f]} if f in self.devices else {})
                for f, p in sorted(self.prefixes.items())]

    def unmounted(self, folder: Path, loaded: Iterable[Document]) -> bool:
        """Whether `folder`, a recorded folder given to index, stands on another device than when it was
        last read and gave no document: a disk or share not mounted, not a folder emptied."""
        key = str(folder)
        if key not in self.devices or not folder.is_dir():
            return False
        if os.stat(folder).st_dev == self.devices[key]:
            return False
        return not any(d.path is not None and _under(d.path, [folder]) for d in loaded)

    def note_devices(self, folders: Iterable[Path]) -> None:
        """Record the device each of these recorded folders (read this run) stands on now."""
        for folder in folders:
            if str(folder) in self.prefixes and folder.is_dir():
                self.devices[str(folder)] = os.stat(folder).st_dev

    def _owner(self, path: Path) -> str | None:
        holding = [f for f in self.prefixes if path.is_relative_to(f)]
        return max(holding, key=len) if holding else None

    def register(self, folder: Path, docs: Mapping[str, tuple[str, str | None]]) -> None:
        """Record `folder` (absolute, resolved) unless a recorded folder holds it. `docs`: the index's
        documents (doc_id -> (content hash, path))."""
        if self._owner(folder) is not None:
            return
        doc_ids = docs.keys()
        for old in list(self.prefixes):
            moved = Path(old).name == folder.name and not Path(old).exists()
            if moved and _holds_files_of(folder, old, docs):
                self.prefixes[str(folder)] = self.prefixes.pop(old)
                self.moved[Path(old)] = folder
                return
        if not self.prefixes:
            self.prefixes[str(folder)] = ""
            return
        name, n = folder.name or "root", 1
        while True:  # a prefix no recorded folder has and no id starts with
            prefix = f"{name}/" if n == 1 else f"{name}-{n}/"
            if prefix not in self.prefixes.values() and not any(d.startswith(prefix) for d in doc_ids):
                break
            n += 1
        self.prefixes[str(folder)] = prefix

    def with_old_places(self, paths: Iterable[Path]) -> list[Path]:
        """`paths` and, for those in a folder moved this run, where they stood before: the index still
        records a file of a moved folder at its old place until it loads at the new one."""
        out: list[Path] = []
        for path in paths:
            out.append(path)
            resolved = path.resolve()
            out += [old / resolved.relative_to(new) for old, new in self.moved.items()
                    if resolved.is_relative_to(new)]
        return out

    def new_place(self, path: str) -> str | None:
        """Where a file recorded at `path` stands now, if its folder moved this run."""
        for old, new in self.moved.items():
            if Path(path).is_relative_to(old):
                return str(new / Path(path).relative_to(old))
        return None

    def doc_id(self, root: Path, file: Path) -> str:
        """The doc_id of `file`, found under the folder `root` given (a `DocIdRule`)."""
        owner = self._owner(file)
        if owner is None:
            return file.relative_to(root).as_posix()
        return self.prefixes[owner] + file.relative_to(owner).as_posix()


@dataclass
class _Base:
    """The published generation a build starts from (none for a new index or a rebuild)."""

    name: str | None = None
    manifest: Manifest | None = None
    store: PassageStore | None = None
    reuse_stores: bool = True  # False: its vector and keyword files are damaged, rebuild them
    repaired: list[str] = field(default_factory=list)
    lost: Damage | None = None  # no intact generation is left; this is what damaged the current one
    next_passage_id: int = 1  # without a generation to start from (a rebuild): where the old index's ended

    @property
    def next_id(self) -> int:
        """The first passage id the build may give."""
        if self.manifest is None:
            return self.next_passage_id
        return int(self.manifest.next_passage_id or 1)


class IndexBuilder:
    """Writes generations of one index folder; one builder (one process) writes at a time.

    `rebuild=True` starts from none of the published generations: the new one holds exactly the documents
    of the paths given (documents added through the API are dropped), embedded from the cache where it can.
    """

    def __init__(
        self,
        index_dir: Path | str,
        settings: IndexSettings | None = None,
        *,
        embedder: Embedder | None = None,
        progress: bool = False,
        rebuild: bool = False,
        ray: str | None = None,
    ) -> None:
        self.dir = IndexDir(index_dir)
        self._setup(settings, embedder=embedder, progress=progress, rebuild=rebuild, ray=ray)

    def _setup(
        self,
        settings: IndexSettings | None,
        *,
        embedder: Embedder | None,
        progress: bool,
        rebuild: bool,
        ray: str | None = None,
    ) -> None:
        """The settings to build with: the index's own, and `settings` only where they agree with them.
        `ray`: the address of a Ray cluster that embeds what the cache does not hold (`ray_pool`)."""
        self.ray = ray
        self.progress = progress
        self.rebuild = rebuild
        self.ignored: list[str] = []  # settings of the environment an existing index does not take
        self._embedder = embedder
        built_manifest = self.dir.readable_manifest()
        if built_manifest is not None:
            built = IndexSettings.from_dict(built_manifest.settings)
            if settings is not None and settings.embedder.model != built.embedder.model and not rebuild:
                raise SettingsMismatch(
                    f"index {self.dir.root} was built with model {built.embedder.model!r}, not "
                    f"{settings.embedder.model!r}; use another --index folder, or `semsearch index --rebuild "
                    f"PATH... --index {self.dir.root}` to build it afresh with the new model"
                )
            self.settings = settings or (_with_env(built) if rebuild else built)
            self.ignored = [] if settings or rebuild else _env_not_applied(built)
        else:
            self.settings = settings or IndexSettings.from_env()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = create_embedder(self.settings.embedder)
        return self._embedder

    # --- entry points ----------------------------------------------------------------------------
    def index_paths(self, paths: Sequence[Path | str], *, strict: bool = False) -> BuildSummary:
        """Sync files and folders: index new and changed documents, drop those of deleted files.

        A file that fails to load (unreadable, binary, a broken JSONL line, ...) keeps the documents the
        index has from it, and the summary is not `clean`; only a file that is gone, or empty, loses
        its documents. `strict`: if any file fails, change nothing and raise LoadError naming them.
        """
        started = time.perf_counter()
        for _ in range(READ_ATTEMPTS - 1):
            try:
                return self._index_paths_once(paths, strict=strict, started=started)
            except _PublishedMeanwhile as exc:
                # The folders and doc ids were read from an older generation: committing now would drop
                # the folders the other writer recorded, or give two folders' files the same ids.
                log.warning("generation %s of %s was published by another writer while the files were read; "
                            "reading them again", exc.now, self.dir.root)
        try:
            return self._index_paths_once(paths, strict=strict, started=started)
        except _PublishedMeanwhile:
            raise IndexLocked(
                f"index {self.dir.root}: other writers published {READ_ATTEMPTS} generations while "
                f"the files were read, so nothing was changed; run again when they are done"
            ) from None

    def _index_paths_once(self, paths: Sequence[Path | str], *, strict: bool, started: float) -> BuildSummary:
        read_at = self._published_now()
        roots, known = self._roots()
        for given in paths:
            path = Path(given).expanduser()
            if path.is_dir():
                roots.register(path.resolve(), known)
            elif os.path.lexists(path):  # a file given on its own: its folder (as load_documents has it)
                roots.register(path.absolute().parent.resolve(), known)
        skipped: list[SkippedFile] = []
        docs: dict[str, Document] = {}
        for _root, doc in self._iter_loaded(paths, skipped.append, roots):
            if doc.doc_id in docs:
                skipped.append(SkippedFile(doc.path or doc.doc_id, f"duplicate doc_id {doc.doc_id!r}"))
                continue
            docs[doc.doc_id] = doc
        failed = [s for s in skipped if s.failed]
        if strict and failed:
            listed = "; ".join(f"{s.path}: {s.reason}" for s in failed[:10])
            more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
            raise LoadError(
                f"{len(failed)} file(s) could not be read, so nothing was changed (--strict): {listed}{more}"
            )
        folders = [Path(p).resolve() for p in paths if Path(p).is_dir()] + list(roots.moved)
        unmounted = [f for f in folders if roots.unmounted(f, docs.values())]
        roots.note_devices(f for f in folders if f not in unmounted)
        summary = self._commit(
            docs,
            deleted_under=folders,
            kept_under=roots.with_old_places(Path(s.path) for s in failed) + unmounted,
            roots=roots,
            started=started,
            from_files=True,
            read_at=read_at,
        )
        summary.skipped[:0] = skipped
        summary.warnings += [f"{note}: the index keeps the settings it was built with; `semsearch index "
                             "--rebuild` builds it afresh with them" for note in self.ignored]
        summary.warnings += [
            f"{folder} is empty and on another disk than when it was indexed (a disk or share not mounted?): "
            "its documents are kept and still found. Mount it and index it again; to remove them, empty the "
            "folder on its own disk, or delete them through the API"
            for folder in unmounted
        ]
        return summary

    def _published_now(self) -> str | None:
        """The name of the published generation (None for a new index, or when the pointer is damaged)."""
        try:
            pointer = self.dir.pointer()
        except IndexDamaged:
            return None
        return pointer.name if pointer else None

    @contextmanager
    def _write_lock(self, read_at: str | None | EllipsisType = ...) -> Iterator[None]:
        """The index's write lock; with `read_at`, only if no generation was published since then."""
        with WriteLock(self.dir.root):
            if read_at is not ... and not self.rebuild:
                now = self._published_now()
                if now != read_at:
                    raise _PublishedMeanwhile(read_at, now)
            yield

    def _roots(self) -> tuple[Roots, dict[str, tuple[str, str | None]]]:
        """The recorded folders of the index, and its documents (read from the newest readable generation:
        a damaged one is reported and recovered from by `_base`, and ids must not change meanwhile)."""
        manifest = None if self.rebuild else self.dir.readable_manifest()  # a rebuild starts afresh
        if manifest is None:
            return Roots(), {}
        try:
            store = PassageStore.open(self.dir.path(manifest.generation))
            try:
                docs = store.document_hashes()
            finally:
                store.close()
        except (sqlite3.DatabaseError, OSError):
            docs = {}  # damaged passages: the folders recorded in the manifest still give the ids
        return Roots.of_index(manifest, docs), docs

    def upsert(self, documents: Iterable[Document]) -> BuildSummary:
        """Add or replace documents (the API's write path)."""
        started = time.perf_counter()
        return self._commit({d.doc_id: d for d in documents}, started=started)

    def delete(self, doc_ids: Iterable[str]) -> BuildSummary:
        started = time.perf_counter()
        return self._commit({}, delete=set(doc_ids), started=started)

    # --- the build -------------------------------------------------------------------------------
    def _iter_loaded(
        self, paths: Sequence[Path | str], on_skip: Any, roots: Roots
    ) -> Iterable[tuple[Path, Document]]:
        loaded = load_documents(paths, on_skip=on_skip, doc_id_of=roots.doc_id)
        if not self.progress:
            return loaded
        from tqdm import tqdm

        return tqdm(loaded, unit="doc", desc="reading", leave=False)

    def _commit(
        self,
        upserts: dict[str, Document],
        *,
        delete: set[str] | None = None,
        deleted_under: Sequence[Path] = (),
        kept_under: Sequence[Path] = (),
        roots: Roots | None = None,
        started: float,
        from_files: bool = False,
        read_at: str | None | EllipsisType = ...,
    ) -> BuildSummary:
        try:
            with self._write_lock(read_at):
                return self._build(
                    upserts, delete or set(), deleted_under, kept_under, roots, started, from_files=from_files
                )
        except (OSError, sqlite3.OperationalError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            try:  # a full disk is not always named as such (FAISS: "… requested and … written")
                free = f" ({shutil.disk_usage(self.dir.root).free / 2**20:,.1f} MB free there)"
            except OSError:
                free = ""
            if getattr(exc, "errno", None) == errno.EROFS:
                what = "Mount that file system writable, or give another --index folder"
            else:
                what = f"Free disk space{free} or fix the folder's permissions"
            raise IndexWriteError(
                f"could not write the index at {self.dir.root}: {reason}; the previous generation is "
                f"intact. {what}, then run again."
            ) from exc

    def _build(
        self,
        upserts: dict[str, Document],
        delete: set[str],
        deleted_under: Sequence[Path],
        kept_under: Sequence[Path],
        roots: Roots | None,
        started: float,
        *,
        from_files: bool = False,
    ) -> BuildSummary:
        summary = BuildSummary()
        base = self._base()
        if base.lost is not None and not from_files:
            # An API write on an index with no intact generation would publish little more than itself;
            # only `semsearch index PATH...` (or --rebuild) has the files to rebuild from.
            raise IndexDamaged(self.dir.root, base.lost)
        summary.repaired = base.repaired
        previous, prev_store, prev_manifest = base.name, base.store, base.manifest
        try:
            prev_docs = prev_store.document_hashes() if prev_store else {}
            # Compared as settings, not as dicts: a manifest written before a chunk option existed holds
            # its default.
            same_chunking = (
                IndexSettings.from_dict(prev_manifest.settings if prev_manifest else {}).chunks
                == self.settings.chunks
            )

            changed, gone, keep, repath = self._plan(
                upserts, prev_docs, delete, deleted_under, kept_under, roots, same_chunking, summary
            )

            outdated = self.keywords_outdated(base)
            # The folders or their devices changed (a disk mounted anew): recorded even when no document
            # did, or the next run would compare with the device before and take an emptied folder for a
            # disk not mounted.
            roots_moved = roots is not None and prev_manifest is not None and (
                roots.to_manifest() != (prev_manifest.roots or [])
            )
            if (
                previous and not changed and not gone and not repath and not base.repaired
                and not outdated and not self.sentences_missing(base) and not roots_moved
            ):
                summary.generation = previous
                summary.passages = prev_store.count_passages() if prev_store else 0
                summary.seconds = time.perf_counter() - started
                return summary

            # Nothing changed but the analysis: the keyword side is built again (the store re-tokenises every
            # passage when the previous store's analyser differs), the vectors are carried over as they are.
            # (Nothing changed and no sentence vectors yet: they are added, the rest carried over.)
            untouched = not (changed or gone or repath or base.repaired)
            summary.reanalysed = bool(previous) and outdated and untouched
            name, tmp = self.dir.begin()
            try:
                manifest = self._write_generation(tmp, name, summary, base, changed, gone, keep, repath)
                if roots is not None:
                    manifest.roots = roots.to_manifest()
                elif prev_manifest is not None:
                    manifest.roots = prev_manifest.roots
                manifest = self.dir.publish(name, tmp, manifest)
            except BaseException:
                # Free the space of a generation that will never be published (a kill -9 leaves it
                # behind instead, and the next build removes it).
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            summary.generation = name
            self.dir.prune()
            if summary.updated or summary.deleted:
                self._forget_stale_vectors(name, manifest)
        finally:
            if prev_store is not None:
                prev_store.close()
        summary.seconds = time.perf_counter() - started
        return summary

    def _plan(
        self,
        upserts: dict[str, Document],
        prev_docs: dict[str, tuple[str, str | None]],
        delete: set[str],
        deleted_under: Sequence[Path],
        kept_under: Sequence[Path],
        roots: Roots | None,
        same_chunking: bool,
        summary: BuildSummary,
    ) -> tuple[dict[str, Document], set[str], list[str], dict[str, str]]:
        """What a write does to the documents indexed now (doc_id -> (content hash, path)): those to
        (re)write, to remove, to keep, and kept ones whose file moved (doc_id -> new path); counted into
        `summary`. Every back end's writer decides by this, so re-indexing an unchanged folder writes
        nothing anywhere."""
        if roots is not None:  # a sync of files: an id another file or the API holds is not taken
            upserts = self._without_collisions(upserts, prev_docs, deleted_under, kept_under, summary)
        else:  # the API's documents: nor does one take the id of a file
            _refuse_file_ids(upserts, prev_docs)
        changed: dict[str, Document] = {}
        repath: dict[str, str] = {}
        for doc_id, doc in upserts.items():
            old = prev_docs.get(doc_id)
            if old is not None and old[0] == doc.content_hash() and same_chunking:
                summary.unchanged += 1
                if doc.path is not None and old[1] != doc.path:
                    repath[doc_id] = doc.path
                continue
            changed[doc_id] = doc
            if old is None:
                summary.added += 1
            else:
                summary.updated += 1
        gone = {d for d in delete if d in prev_docs}
        for doc_id, (_hash, path) in prev_docs.items():
            if doc_id in upserts or path is None or not _under(path, deleted_under):
                continue
            # Not seen this time because its file (or folder) failed to load: not deleted.
            if _under(path, kept_under):
                summary.kept += 1
                new_place = roots.new_place(path) if roots is not None else None
                if new_place is not None:  # kept, but recorded where its folder is now
                    repath[doc_id] = new_place
            else:
                gone.add(doc_id)
        summary.moved = len(repath)
        summary.deleted = len(gone)
        if roots is not None:
            summary.warnings += _gone_folders(roots, prev_docs, upserts, gone)
        keep = [d for d in prev_docs if d not in changed and d not in gone]
        summary.documents = len(keep) + len(changed)
        return changed, gone, keep, repath

    # --- the generation to start from ------------------------------------------------------------
    def _base(self) -> _Base:
        """The current generation if it is intact; else the best way to recover (see the module doc)."""
        if self.rebuild:
            known = self.dir.readable_manifest()
            # Passage ids go on from the old index's, so an id a client kept never names another passage.
            return _Base(next_passage_id=int(known.next_passage_id or 1) if known else 1)
        candidates = list(reversed(self.dir.published()))
        try:
            pointer = self.dir.pointer()
        except IndexDamaged as exc:
            damage = [exc.damage]
        else:
            if pointer is None:
                return _Base()  # a new index
            candidates.remove(pointer.name)
            damage = self.dir.problems(pointer.name, checksums=True, pointer=pointer)
            if all(_store_file(d) for d in damage):
                try:
                    base = self._open_base(pointer.name, reuse_stores=not damage)
                except IndexDamaged as exc:
                    damage.append(exc.damage)
                else:
                    if damage:
                        base.repaired = [str(d) for d in damage] + [
                            f"kept the documents of generation {pointer.name} and rebuilt its vector and "
                            "keyword indexes from its passages and the embedding cache"
                        ]
                    return base
        notes = [str(d) for d in damage]
        for name in candidates:
            if self.dir.problems(name, checksums=True):
                continue
            try:
                base = self._open_base(name, reuse_stores=True)
            except IndexDamaged:
                continue
            base.repaired = notes + [f"started again from generation {name}, the newest intact one"]
            return base
        return _Base(lost=damage[0], repaired=notes + [
            "no intact generation is left: rebuilt from the files given and the embedding cache"
        ])

    def _open_base(self, name: str, *, reuse_stores: bool) -> _Base:
        """Open generation `name` to build on; `IndexDamaged` when its manifest or passages cannot be used."""
        manifest = self.dir.manifest(name)
        store = open_passages(self.dir, name, manifest)
        if reuse_stores and manifest.files is None:
            # Written before manifests had checksums: only opening its stores tells whether they are intact.
            try:
                open_vector_store(self.dir, name, manifest)
                open_keyword_store(self.dir, name, manifest)
            except IndexDamaged:
                reuse_stores = False
        return _Base(name, manifest, store, reuse_stores)

    @staticmethod
    def _without_collisions(
        upserts: dict[str, Document],
        prev_docs: dict[str, tuple[str, str | None]],
        deleted_under: Sequence[Path],
        kept_under: Sequence[Path],
        summary: BuildSummary,
    ) -> dict[str, Document]:
        """Documents of files minus those whose doc_id a document of another origin holds.

        Taking over an id is a replacement only when its holder is a file of the folders synced now
        that did not fail (the id moved between their files); a document of another folder, of a
        failed file, or sent through the API keeps its id, and the newcomer is reported.
        """
        kept: dict[str, Document] = {}
        for doc_id, doc in upserts.items():
            holder = prev_docs.get(doc_id, (None, doc.path))[1]
            if holder == doc.path or (
                holder is not None and _under(holder, deleted_under) and not _under(holder, kept_under)
            ):
                kept[doc_id] = doc
                continue
            owner = holder or "a document added through the API"
            summary.skipped.append(
                SkippedFile(
                    doc.path or doc_id,
                    f"doc_id {doc_id!r} is already used by {owner}; give this document another doc_id, "
                    "or delete that one first",
                )
            )
        return kept

    def _write_generation(
        self,
        tmp: Path,
        name: str,
        summary: BuildSummary,
        base: _Base,
        changed: dict[str, Document],
        gone: set[str],
        keep: list[str],
        repath: dict[str, str],
    ) -> Manifest:
        """Write every file of the new generation into `tmp`; returns its manifest (not yet published)."""
        previous, prev_store, prev_manifest = base.name, base.store, base.manifest
        store = PassageStore.create(tmp)
        if previous:
            store.copy_documents(self.dir.path(previous), keep)
            store.set_paths(repath)
        next_id = base.next_id
        id_keys = prev_store.passage_keys() if prev_store else {}
        new_ids, new_chunks = [], []
        bar = None
        if self.progress and changed:
            from tqdm import tqdm

            total = sum(len(d.text) for d in changed.values())
            bar = tqdm(total=total, unit="char", unit_scale=True, desc="chunking", leave=False)
        for doc in changed.values():
            told = bar.n if bar is not None else 0
            chunks = self._chunk(doc, bar.update if bar is not None else None)
            if bar is not None:
                bar.update(len(doc.text) - (bar.n - told))  # the blanks between paragraphs
            ids = []
            seen: dict[str, int] = {}
            for c in chunks:
                h = c.content_hash()
                n = seen.get(h, 0)
                seen[h] = n + 1
                pid = id_keys.get((doc.doc_id, h, n))
                if pid is None:
                    pid, next_id = next_id, next_id + 1
                ids.append(pid)
            store.add_document(doc, chunks, ids)
            new_ids += ids
            new_chunks += chunks
        if bar is not None:
            bar.close()
        store.commit()

        hashes, texts = [c.content_hash() for c in new_chunks], [c.text for c in new_chunks]
        if previous and not base.reuse_stores:
            # The vector file is damaged: every kept passage gets its vector again, from the cache if it can.
            fresh = set(new_ids)
            for pid, text, h in store.all_passages():
                if pid not in fresh:
                    new_ids.append(pid)
                    hashes.append(h)
                    texts.append(text)
        vectors = self._vectors(hashes, texts, summary)
        uses_model = bool(hashes) or not previous  # else no vector is added and the model need not load
        dim = self.embedder.dim if uses_model or prev_manifest is None else prev_manifest.dim
        if previous and base.reuse_stores:
            vstore = open_vector_store(self.dir, previous, prev_manifest, self.settings.faiss)
            stale = set(prev_store.passage_ids_of_docs(list(changed) + sorted(gone))) if prev_store else set()
            vstore.remove(np.fromiter(stale, dtype=np.int64, count=len(stale)))
        else:
            vstore = create_vector_store(self.settings.vector_store, dim, self.settings.faiss)
        t_vectors = time.perf_counter()
        vstore.add(np.asarray(new_ids, dtype=np.int64), vectors)
        vstore.save(tmp)
        # The index layout actually chosen (exact / ivf / hnsw with its parameters) and what it cost.
        vector_index = dict(vstore.describe())
        vector_index["seconds"] = round(time.perf_counter() - t_vectors, 3)

        all_rows = [(pid, text) for pid, text, _hash in store.all_passages()]
        summary.passages = len(all_rows)
        kstore = create_keyword_store(self.settings.keyword_store)
        if kstore is not None:
            prev_k = None
            if previous and base.reuse_stores:
                prev_k = open_keyword_store(self.dir, previous, prev_manifest)
            kstore.build(
                np.asarray([r[0] for r in all_rows], dtype=np.int64), [r[1] for r in all_rows], prev_k
            )
            kstore.save(tmp)
        if self.settings.sentence_vectors:
            sentences = self._sentence_vectors(all_rows, base, dim, summary)
            sentences.save(tmp)
            vector_index["sentences"] = sentences.sentence_count
        store.finish()

        return Manifest(
            format_version=FORMAT_VERSION,
            generation=name,
            created=now_iso(),
            model=self.embedder.name if uses_model or prev_manifest is None else prev_manifest.model,
            dim=dim,
            settings=self.settings.to_dict(),
            documents=summary.documents,
            passages=summary.passages,
            next_passage_id=next_id,
            previous=previous,
            vector_index=vector_index,
        )

    def keywords_outdated(self, base: _Base | None = None) -> bool:
        """Whether the keyword index of the generation a build starts from (default: the current one) was
        built by another analysis than this process's, so that queries look up terms it lacks (identifiers,
        before they were terms). The build then analyses it again, whether or not any document changed."""
        if base is None:
            current = self.dir.current()
            base = _Base(current, self.dir.manifest(current)) if current else _Base()
        if base.name is None or not base.reuse_stores:
            return False
        store = open_keyword_store(self.dir, base.name, base.manifest)
        return store is not None and store.outdated

    def sentences_missing(self, base: _Base) -> bool:
        """Whether this build embeds sentences (`IndexSettings.sentence_vectors`) and the generation it
        starts from has none (built before them, or without): the build then adds them, whether or not
        any document changed."""
        if not self.settings.sentence_vectors or base.name is None or not base.reuse_stores:
            return False
        return not SentenceStore.exists(self.dir.path(base.name))

    def _sentence_vectors(
        self, rows: list[tuple[int, str]], base: _Base, dim: int, summary: BuildSummary
    ) -> SentenceStore:
        """The sentence vectors of every passage (id, text) of the new generation: carried over from the
        generation built on where it has them (a passage id always names the same text), else from the
        embedding cache or the model."""
        previous = None
        if base.name is not None and base.manifest is not None and base.reuse_stores:
            previous = open_sentence_store(self.dir, base.name, base.manifest)
        kept = previous.of([pid for pid, _ in rows]) if previous is not None else {}
        todo = [(pid, text) for pid, text in rows if pid not in kept]
        embedded = self._embed_sentences([text for _, text in todo], summary)
        parts = list(kept.items()) + [(pid, block) for (pid, _), block in zip(todo, embedded, strict=True)]
        return SentenceStore.build(dim, parts)

    def _embed_sentences(self, texts: list[str], summary: BuildSummary) -> list[np.ndarray]:
        """The sentence vectors of each of these passage texts (`passage_sentences`; none for a passage of
        one sentence), from the embedding cache where a sentence was embedded before, else the model."""
        pieces = [passage_sentences(text) for text in texts]
        flat = [sentence for sentences in pieces for sentence in sentences]
        vectors, summary.sentences_embedded, summary.sentences_reused = self._embed_cached(
            [text_hash(s) for s in flat], flat, "sentence", summary
        )
        blocks, at = [], 0
        for sentences in pieces:
            blocks.append(vectors[at : at + len(sentences)])
            at += len(sentences)
        return blocks

    def _forget_stale_vectors(self, name: str, manifest: Manifest) -> None:
        """Keep the embedding cache to the text the index holds (its passages and, where it has them,
        their sentences), so it does not grow without bound."""
        store = PassageStore.open(self.dir.path(name))
        cache = EmbeddingCache(self.dir.root, manifest.model, manifest.dim)
        with_sentences = bool(manifest.settings.get("sentence_vectors"))

        def live() -> Iterable[str]:
            for _pid, text, h in store.all_passages():
                yield h
                if with_sentences:
                    yield from (text_hash(s) for s in passage_sentences(text))

        try:
            cache.retain(live())
        finally:
            cache.close()
            store.close()

    def _chunk(self, doc: Document, progress: Progress | None = None) -> list[Chunk]:
        return chunk_document(doc, self.embedder.count_tokens, self.settings.chunks, progress=progress)

    def _vectors(self, hashes: list[str], texts: list[str], summary: BuildSummary) -> np.ndarray:
        """Vectors of these passages (text hash, text): from the cache where the text was embedded before,
        else the model."""
        vectors, summary.embedded, summary.reused = self._embed_cached(hashes, texts, "passage", summary)
        return vectors

    def _embed_cached(
        self, hashes: list[str], texts: list[str], unit: str, summary: BuildSummary
    ) -> tuple[np.ndarray, int, int]:
        """(vectors, distinct texts embedded, texts read from the cache) of these texts (hash, text): from
        the embedding cache where a text was embedded before, else the model. `unit` names them on the
        progress bar; the time spent embedding is added to the summary's."""
        if not hashes:
            self._embedding_bar(unit, [])  # closes a bar the passages left open for their sentences
            return np.zeros((0, self.embedder.dim), dtype=np.float32), 0, 0
        embedder = self.embedder
        cache = EmbeddingCache(self.dir.root, embedder.name, embedder.dim)
        try:
            known = cache.get(hashes)
            missing = list(dict.fromkeys(h for h in hashes if h not in known))
            reused = len(hashes) - sum(1 for h in hashes if h not in known)
            text_of = dict(zip(hashes, texts, strict=True))
            # Longest first across the whole build, so batches pad little and the ETA errs on the safe side.
            missing.sort(key=lambda h: -len(text_of[h]))
            bar = self._embedding_bar(unit, [text_of[h] for h in missing])
            t0 = time.perf_counter()
            done = 0
            try:
                for part, vecs in self._embed(missing, text_of):
                    cache.put(part, vecs)  # committed now: a killed build resumes from here
                    known.update(zip(part, vecs, strict=True))
                    if bar is not None:
                        done += len(part)
                        bar.set_postfix_str(f"{done:,}/{len(missing):,} {unit}s", refresh=False)
                        bar.update(sum(len(text_of[h]) for h in part))
            finally:
                if bar is not None and bar is not self._bar:
                    bar.close()
            summary.embed_seconds += time.perf_counter() - t0
            return np.vstack([known[h] for h in hashes]).astype(np.float32), len(missing), reused
        finally:
            summary.warnings += cache.set_aside
            cache.close()

    _bar: Any = None  # the embedding bar the passages leave open for their sentences

    def _embedding_bar(self, unit: str, texts: list[str]) -> Any:
        """The progress bar of a build's embedding: one for the passages and their sentences, counted in
        characters (what embedding costs), with the texts done as its postfix. The passages count the
        sentences embedded after them as as many characters again (their passages of more than one
        sentence), so the first ETA is the whole build's; the sentences then set the total to what they
        really have left. None without progress."""
        if not self.progress:
            return None
        from tqdm import tqdm

        chars = sum(len(t) for t in texts)
        pending, self._bar = self._bar, None
        if unit == "passage":
            if pending is not None:  # a build that stopped before its sentences
                pending.close()
            later = 0
            if self.settings.sentence_vectors:
                later = sum(len(t) for t in texts if len(passage_sentences(t)) > 1)
            if not chars + later:
                return None
            bar = tqdm(total=chars + later, unit="char", unit_scale=True, desc="embedding", smoothing=0.05)
            self._bar = bar if later else None
            return bar
        if pending is None:
            return tqdm(total=chars, unit="char", unit_scale=True, desc=f"embedding {unit}s",
                        smoothing=0.05) if chars else None
        pending.total = pending.n + chars
        if not chars:
            pending.close()
            return None
        pending.refresh()
        return pending

    def _embed(self, missing: list[str], text_of: dict[str, str]) -> Iterable[tuple[list[str], np.ndarray]]:
        """(hashes, vectors) slices of these passages as they are embedded, here or on the Ray cluster."""
        if self.ray and missing:
            from index.embedders.ray_pool import RayEmbedding

            pool = RayEmbedding(self.ray, self.settings.embedder)
            yield from pool.embed(missing, [text_of[h] for h in missing])
            return
        for lo in range(0, len(missing), EMBED_SLICE):
            part = missing[lo : lo + EMBED_SLICE]
            yield part, self.embedder.encode_passages([text_of[h] for h in part])


def _store_file(damage: Damage) -> bool:
    """Whether a damaged file is the vector or keyword index's (which can be rebuilt from the passages)."""
    tail = damage.file.split("/", 2)[-1]
    return damage.file != CURRENT and tail not in (MANIFEST, PASSAGES_FILE)
