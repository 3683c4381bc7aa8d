"""Keep an index in sync with folders: file events (inotify, through watchdog) batched into one sync.

    watcher = FolderWatcher([Path("notes")], sync=builder.index_paths, index_dir=".index")
    watcher.start()    # catches up at once (a sync by content hash), then follows the folders
    ...
    watcher.stop()

Every sync is a plain `IndexBuilder.index_paths` of the watched roots: documents are compared by content
hash, so a sync where little changed only reads the files and embeds nothing. A burst of events (an
editor saving, a `git checkout`, a copy of many files) is batched: the sync runs once the folders have
been quiet for `quiet` seconds, or `max_delay` seconds after the first event of a busy burst. A periodic
full rescan (`rescan` seconds) is the safety net for events that are lost (network shares, a folder
replaced wholesale, an overflowing inotify queue).

A watched root that disappears is *unavailable*, not empty: it is left out of the sync, so its documents
stay searchable, and it is picked up again when it comes back (an unmounted share must not wipe the
index). To really remove a folder's documents, sync it while it exists but is empty, or delete them
through the API.

The sync takes the index's write lock like every writer; when another writer holds it (an API upload,
the CLI), the sync is retried `retry` seconds later.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from index import settings
from index.builder import BuildSummary
from index.generations import IndexDir, IndexLocked, now_iso
from index.loaders import IGNORE_FILE, LoaderFactory
from index.stores.passages import PassageStore

log = logging.getLogger("semsearch.watch")

QUIET_SECONDS = 1.0  # a sync runs once the folders have been quiet this long …
MAX_DELAY_SECONDS = 3.0  # … or this long after the first event of a burst that does not stop
# full rescan even without events (lost events, network shares)
RESCAN_SECONDS: float = settings.default("SEMSEARCH_RESCAN")
RETRY_SECONDS = 2.0  # after the index was locked by another writer, or a sync failed
TICK_SECONDS = 0.2
# Writes, creations, renames and deletions only: reading a file (which every sync does) raises
# open/close-without-write events, which must never trigger another sync.
EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent,
          DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


def is_temporary(path: str | Path) -> bool:
    """Editor and tool scratch files, which are never documents: `x~`, `.x.swp`, `x.tmp`, `.#x` (Emacs
    locks), vim's `4913` probe, and anything hidden (or inside a hidden folder, like `.git`). `path` is
    relative to the watched root (the root itself may well live in a hidden folder)."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    if any(p.startswith(".") and p not in (".", "..") for p in parts):
        return True
    lower = name.lower()
    return (name.endswith("~") or lower.endswith((".swp", ".swx", ".swo", ".tmp", ".part", ".crdownload"))
            or name == "4913")


@dataclass
class SyncStatus:
    """The last sync, as /health and /metrics report it."""

    last_sync: str | None = None  # ISO time of the last sync that finished (ok or not)
    last_sync_ts: float | None = None  # the same as a Unix time
    outcome: str | None = None  # "ok", "locked" (another writer held the index) or "failed"
    error: str | None = None
    added: int = 0
    updated: int = 0
    deleted: int = 0
    generation: str | None = None
    syncs: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # syncs by outcome, since the watcher was made
    unavailable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_sync": self.last_sync, "outcome": self.outcome, "error": self.error,
            "added": self.added, "updated": self.updated, "deleted": self.deleted,
            "generation": self.generation, "syncs": self.syncs, "unavailable": list(self.unavailable),
        }


class _Events(FileSystemEventHandler):
    """Tells the watcher about changes that can matter to the index (see `relevant`)."""

    def __init__(self, roots: Sequence[Path], index: Path | None, on_change: Callable[[str], None]) -> None:
        self.roots = roots
        self.index = index
        self.on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not isinstance(event, tuple(EVENTS)):
            return
        paths = [str(event.src_path)] + ([str(event.dest_path)] if event.dest_path else [])
        found = [p for p in paths if self.relevant(Path(p), event.is_directory)]
        if found:
            self.on_change(found[-1])

    def relevant(self, path: Path, is_directory: bool) -> bool:
        """Not a scratch file, not the index itself (an index inside a watched folder must not make each
        sync's own writes trigger the next one), and for a file: a type a loader reads, or a watched folder's
        `.semsearchignore`."""
        if self.index is not None and path.is_relative_to(self.index):
            return False
        for root in self.roots:
            if path.is_relative_to(root):
                path = path.relative_to(root)
                break
        if path == Path(IGNORE_FILE):  # hidden, but a root's own changes what is indexed
            return True
        if is_temporary(path):
            return False
        return is_directory or LoaderFactory.create(path.name) is not None


class FolderWatcher:
    """Follows `roots` and calls `sync(available_roots)` after changes; see the module docstring."""

    def __init__(
        self,
        roots: Sequence[Path | str],
        sync: Callable[[list[Path]], BuildSummary],
        *,
        index_dir: Path | str | None = None,
        quiet: float = QUIET_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        rescan: float = RESCAN_SECONDS,
        retry: float = RETRY_SECONDS,
        on_sync: Callable[[BuildSummary], None] | None = None,
    ) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self._sync = sync
        self._on_sync = on_sync  # e.g. metrics counting what each sync embedded
        self._warned: set[str] = set()  # the last sync's warnings, logged once while they last
        self.index = IndexDir(index_dir) if index_dir is not None else None
        self.quiet, self.max_delay, self.rescan, self.retry = quiet, max_delay, rescan, retry
        self.status = SyncStatus()
        self._lock = threading.Lock()
        self._first_event: float | None = None  # monotonic time of the first unsynced event
        self._last_event: float | None = None
        self._next_rescan = 0.0  # 0: sync at once (the catch-up at start)
        self._failures = 0  # failed syncs in a row
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._watches: dict[Path, tuple[Any, tuple[int, int] | None]] = {}  # root: (watch, dev+inode)
        self._handler = _Events(self.roots, Path(index_dir).resolve() if index_dir is not None else None,
                               self._changed)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._observer = Observer()
        self._observer.start()
        self._next_rescan = 0.0
        self._thread = threading.Thread(target=self._run, name="semsearch-watch", daemon=True)
        self._thread.start()
        log.info("watching %s", ", ".join(map(str, self.roots)))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop following the folders (a sync under way finishes first, up to `timeout`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None
        self._watches.clear()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- events ---------------------------------------------------------------------------------
    def _changed(self, path: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._first_event is None:
                self._first_event = now
            self._last_event = now
        log.debug("change: %s", path)

    def _due(self, now: float) -> bool:
        with self._lock:
            if self._first_event is not None and (
                now - (self._last_event or now) >= self.quiet or now - self._first_event >= self.max_delay
            ):
                return True
        return now >= self._next_rescan

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow_roots()
                if self._due(time.monotonic()):
                    self.sync_now()
            except Exception:  # the watcher must outlive anything one tick runs into
                log.exception("the folder watcher hit an error; it carries on")
                self._retry_soon()
            self._stop.wait(TICK_SECONDS)

    def _follow_roots(self) -> None:
        """Watch roots that are there, and notice roots that went away, came back or were replaced."""
        unavailable = []
        for root in self.roots:
            try:
                st = root.stat()
                identity: tuple[int, int] | None = (st.st_dev, st.st_ino) if root.is_dir() else None
            except OSError:
                identity = None
            watch, watched = self._watches.get(root, (None, None))
            if identity is not None and identity != watched:
                # new, back, or replaced by another folder of the same name (the old watch follows the
                # old folder wherever it was moved)
                self._unwatch(root)
                try:
                    watch = self._observer.schedule(self._handler, str(root), recursive=True,
                                                    event_filter=EVENTS)
                except OSError as exc:  # e.g. the inotify watch limit: the rescans still sync it
                    log.warning("cannot watch %s for changes (%s); it is synced by the rescan every %.0f s",
                                root, exc, self.rescan)
                    watch = None
                self._watches[root] = (watch, identity)
                if watched is not None or str(root) in self.status.unavailable:
                    log.warning("watched folder %s is back; syncing it", root)
                    self._changed(str(root))
            elif identity is None:
                unavailable.append(str(root))
                self._unwatch(root)
                if str(root) not in self.status.unavailable:
                    log.warning("watched folder %s is unavailable; its documents are kept until it is back",
                                root)
        self.status.unavailable = unavailable

    def _unwatch(self, root: Path) -> None:
        watch, _identity = self._watches.pop(root, (None, None))
        if watch is not None:
            with contextlib.suppress(KeyError, OSError):
                self._observer.unschedule(watch)

    # --- syncing --------------------------------------------------------------------------------
    def sync_now(self) -> SyncStatus:
        """One sync of the roots that are there (a missing root keeps its documents)."""
        with self._lock:
            self._first_event = self._last_event = None
        roots = [r for r in self.roots if r.is_dir()]
        status = self.status
        started = time.monotonic()
        if not roots:
            self._next_rescan = started + self.retry
            return status
        previous = self.index.current() if self.index is not None else None
        try:
            summary = self._sync(roots)
        except IndexLocked as exc:
            status.outcome, status.error = "locked", str(exc)
            log.info("index busy (%s); syncing again in %.0f s", exc, self.retry)
            self._retry_soon()
            self._finish(status)
            return status
        except Exception as exc:  # a failed sync must never end the watcher; the index is unchanged
            status.outcome, status.error = "failed", str(exc)
            self._failures += 1
            # a lasting cause (a full disk) is retried less and less often, up to the rescan interval
            delay = min(self.rescan, self.retry * 2 ** (self._failures - 1))
            log.error("sync of %s failed: %s; trying again in %.0f s", ", ".join(map(str, roots)), exc, delay,
                      exc_info=not isinstance(exc, OSError))
            self._next_rescan = time.monotonic() + delay
            self._finish(status)
            return status
        self._failures = 0
        status.outcome, status.error = "ok", None
        status.added, status.updated, status.deleted = summary.added, summary.updated, summary.deleted
        status.generation = summary.generation
        self._finish(status)
        self._next_rescan = time.monotonic() + self.rescan
        self._log(summary, previous)
        if self._on_sync is not None:
            self._on_sync(summary)
        return status

    def _retry_soon(self) -> None:
        self._next_rescan = time.monotonic() + self.retry

    def _finish(self, status: SyncStatus) -> None:
        status.last_sync_ts = time.time()
        status.last_sync = now_iso()
        status.syncs += 1
        if status.outcome is not None:
            status.outcomes[status.outcome] = status.outcomes.get(status.outcome, 0) + 1

    def _log(self, summary: BuildSummary, previous: str | None) -> None:
        for skip in summary.skipped:
            log.warning("%s", skip.describe())
        # The build's warnings (a folder kept as a disk not mounted, a setting not taken), once each while
        # they last: every rescan would repeat them.
        for warning in summary.warnings:
            if warning not in self._warned:
                log.warning("%s", warning)
        self._warned = set(summary.warnings)
        if not summary.changed:
            log.info("sync: nothing changed (%d documents, %.2f s)", summary.documents, summary.seconds)
            return
        log.info("sync: generation %s, %d added, %d updated, %d deleted, %d embedded, %.2f s",
                 summary.generation, summary.added, summary.updated, summary.deleted, summary.embedded,
                 summary.seconds)
        if self.index is not None and summary.generation:
            for what, doc_ids in changed_documents(self.index, previous, summary.generation).items():
                for doc_id in doc_ids:
                    log.info("  %s %s", what, doc_id)


def changed_documents(index: IndexDir, old: str | None, new: str) -> dict[str, list[str]]:
    """Which documents generation `new` added, updated and deleted against `old`, by content hash."""
    def hashes(name: str | None) -> dict[str, str]:
        if name is None or not index.path(name).exists():
            return {}
        store = PassageStore.open(index.path(name))
        try:
            return {d: h for d, (h, _path) in store.document_hashes().items()}
        finally:
            store.close()

    before, after = hashes(old), hashes(new)
    return {
        "added": sorted(set(after) - set(before)),
        "updated": sorted(d for d in after if d in before and before[d] != after[d]),
        "deleted": sorted(set(before) - set(after)),
    }
