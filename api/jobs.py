"""Background index writes for the HTTP API: one worker thread, one job at a time.

An index has one writer (`index.generations.WriteLock`), so the API never builds two generations at
once: uploads and deletions are queued and run in order by a single thread. Searches are not blocked
meanwhile; they keep answering from the current generation, and pick up the new one once the builder
has published it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from index.generations import IndexFolderError, IndexLocked

log = logging.getLogger("semsearch.api.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
KEEP_FINISHED = 500  # finished jobs remembered for GET /jobs/{id}; older ones are forgotten
LOCK_RETRY_SECONDS = 60.0  # how long a job waits for a writer outside this process (e.g. the CLI)


@dataclass
class Job:
    """One queued write. `run` does the work and returns the summary shown to the client."""

    id: str
    kind: str  # "add" or "delete"
    doc_ids: list[str]
    run: Callable[[], dict[str, Any]]
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    summary: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def progress(self) -> float:
        """0 while waiting, 1 when finished. The builder reports no finer steps, and a made-up
        percentage would be worse than none."""
        return 1.0 if self.state in (DONE, FAILED) else 0.0

    def to_dict(self, position: int | None = None) -> dict[str, Any]:
        return {
            "job": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "queue_position": position,
            "documents": self.doc_ids,
            "summary": self.summary,
            "error": self.error,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
        }


def _finished() -> dict[str, Any]:
    raise RuntimeError("this job has already run")


def _iso(t: float | None) -> str | None:
    """UTC with milliseconds: jobs often start and finish within the same second."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _error_of(exc: BaseException) -> dict[str, str]:
    """The client-facing error of a failed job: the same {code, message} as every API error."""
    from index.documents import LoadError
    from search.engine import NotFound, QueryError

    if isinstance(exc, IndexLocked):
        return {"code": "index_locked", "message": str(exc)}
    if isinstance(exc, IndexFolderError):
        return {"code": "index_unavailable", "message": str(exc)}
    if isinstance(exc, NotFound):
        return {"code": "not_found", "message": str(exc)}
    if isinstance(exc, LoadError | QueryError):
        return {"code": "bad_request", "message": str(exc)}
    return {"code": "internal_error",
            "message": "the job failed unexpectedly; the server log has the details"}


class JobQueue:
    """A FIFO of index writes run by one daemon thread."""

    def __init__(self, keep: int = KEEP_FINISHED, lock_retry_seconds: float = LOCK_RETRY_SECONDS) -> None:
        self.on_finished: Callable[[Job], None] | None = None  # e.g. metrics (api.metrics)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._keep = keep
        self._lock_retry = lock_retry_seconds
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # daemon: a job still running when the server stops is abandoned; the index stays at its
            # last published generation, since generations are published atomically.
            self._thread = threading.Thread(target=self._work, name="semsearch-index-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join(timeout)
            self._thread = None

    # --- jobs -----------------------------------------------------------------------------------
    def submit(self, kind: str, doc_ids: list[str], run: Callable[[], dict[str, Any]]) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, doc_ids=doc_ids, run=run)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self.start()
        self._pending.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """1 for the next job to run, 2 for the one after …; None once it has started."""
        if job.state != QUEUED:
            return None
        with self._lock:
            waiting = [j for j in self._jobs.values() if j.state == QUEUED]
        return next((i + 1 for i, j in enumerate(waiting) if j.id == job.id), None)

    def pending_doc_ids(self) -> set[str]:
        """Documents that queued or running jobs will add, so a DELETE of one of them is not a 404."""
        with self._lock:
            return {d for j in self._jobs.values() if j.kind == "add" and j.state in (QUEUED, RUNNING)
                    for d in j.doc_ids}

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state in (DONE, FAILED)]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[key]

    def _work(self) -> None:
        while True:
            job = self._pending.get()
            if job is None:
                return
            job.state, job.started = RUNNING, time.time()
            try:
                job.summary = self._run(job)
                job.state = DONE
            except Exception as exc:  # a failed job must never end the worker
                if not isinstance(exc, IndexFolderError | LookupError | ValueError):
                    log.exception("job %s (%s) failed", job.id, job.kind)
                job.error, job.state = _error_of(exc), FAILED
            finally:
                job.run = _finished  # drop the documents the closure holds; only the summary is kept
                job.finished = time.time()
                job.done.set()
                if self.on_finished is not None:
                    try:
                        self.on_finished(job)
                    except Exception:  # monitoring must never end the worker
                        log.exception("the finished-job hook failed")

    def _run(self, job: Job) -> dict[str, Any]:
        """Run a job, waiting a while for a writer in another process (the CLI) to finish first."""
        deadline = time.monotonic() + self._lock_retry
        delay = 0.5
        while True:
            try:
                return job.run()
            except IndexLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
