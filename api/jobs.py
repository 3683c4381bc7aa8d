"""Background index writes for the HTTP API: one worker thread, one job at a time, journaled on disk.

An index has one writer (`index.generations.WriteLock`), so the API never builds two generations at
once: uploads and deletions are queued and run in order by a single thread. Searches are not blocked
meanwhile; they keep answering from the current generation, and pick up the new one once the builder
has published it.

A job the API accepted (202) is never lost silently. Before the 202 is sent, the job and its payload
(the documents to add, the ids to delete) are written to `INDEX/jobs/<id>.json` and fsynced; a server
that starts finds the jobs left unfinished by one that was killed and runs them again, in the order they
were accepted (`"resumed": true`). Running a job twice is harmless: an add of documents already indexed
changes nothing, and a resumed delete of documents already gone is done. An entry that cannot be read
any more is reported by GET /jobs/{id} as `"state": "lost"`, with what to do. Finished jobs keep their
entry, without the payload, for GET /jobs/{id}: the last KEEP_FINISHED, for at most KEEP_FINISHED_DAYS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.errors import classify
from index.generations import IndexFolderError, IndexLocked, fsync_path

log = logging.getLogger("semsearch.api.jobs")

QUEUED, RUNNING, DONE, FAILED, LOST = "queued", "running", "done", "failed", "lost"
FINISHED = (DONE, FAILED, LOST)
KEEP_FINISHED = 500  # finished jobs remembered for GET /jobs/{id}; older ones are forgotten
KEEP_FINISHED_DAYS = 7.0
# A job waits for a writer outside this process (the CLI's `semsearch index` of a large folder may take
# hours) for as long as that writer holds the lock: an accepted job is never given up for a busy index.
# The lock is an flock, so a writer that dies lets go of it. GET /jobs/{id} says whom the job waits for.
LOCK_WAIT_SECONDS: float | None = None
JOURNAL = "jobs"  # the journal's folder inside the index folder
JOB_ID = re.compile(r"^[0-9a-f]{12}$")

# What a kind of job does: (payload, resumed) -> the summary shown to the client. `resumed` is True for a
# job accepted by an earlier server process, which may have done part or all of it before it stopped.
Action = Callable[[dict[str, Any], bool], dict[str, Any]]


class JobNotRecorded(IndexFolderError):
    """The journal could not be written, so the job was not accepted (a 503: nothing is queued)."""


@dataclass
class Job:
    """One write. `payload` is what `Action` needs (kept until the job has run), and is journaled."""

    id: str
    kind: str  # "add" or "delete"
    doc_ids: list[str]
    payload: dict[str, Any] | None
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    # Acceptance order, counted on across restarts: jobs resume in this order, not by `created` (a clock
    # stepped back between two jobs would run a delete before the add it followed).
    seq: int = 0
    started: float | None = None
    finished: float | None = None
    summary: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    resumed: bool = False
    waiting: str | None = None  # while another writer holds the index: who, and what to do
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def progress(self) -> float:
        """0 while waiting, 1 when finished. The builder reports no finer steps, and a made-up
        percentage would be worse than none."""
        return 1.0 if self.state in FINISHED else 0.0

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
            "resumed": self.resumed,
            "waiting": self.waiting,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
        }

    def record(self) -> dict[str, Any]:
        """The journal entry: times as numbers, and the payload while the job has still to run."""
        return {"job": self.id, "kind": self.kind, "state": self.state, "documents": self.doc_ids,
                "seq": self.seq, "created": self.created, "started": self.started, "finished": self.finished,
                "summary": self.summary, "error": self.error, "resumed": self.resumed,
                "payload": None if self.state in FINISHED else self.payload}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Job:
        job = cls(id=str(record["job"]), kind=str(record["kind"]),
                  doc_ids=[str(d) for d in record["documents"]], payload=record.get("payload"),
                  state=str(record["state"]), created=float(record["created"]), seq=int(record.get("seq", 0)),
                  started=record.get("started"),
                  finished=record.get("finished"), summary=record.get("summary"), error=record.get("error"),
                  resumed=bool(record.get("resumed")))
        if job.state not in FINISHED and not isinstance(job.payload, dict):
            raise ValueError("an unfinished job without its payload")
        return job


class JobJournal:
    """Jobs on disk, one file each in INDEX/jobs/: written whole (temporary file, fsync, rename), so a
    kill leaves either the old entry or the new one, never half of one."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def write(self, job: Job) -> None:
        """Raises JobNotRecorded (with the reason and what to do) when the entry cannot be written."""
        target = self.path(job.id)
        tmp = target.with_suffix(".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            data = json.dumps(job.record(), ensure_ascii=False).encode("utf-8", "surrogatepass")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            fsync_path(self.folder)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            reason = exc.strerror or type(exc).__name__
            raise JobNotRecorded(
                f"the job could not be recorded in {self.folder} ({reason}), so it was not accepted and "
                "nothing was changed; free disk space or fix the folder's permissions, then send it again"
            ) from None

    def remove(self, job_id: str) -> None:
        try:
            self.path(job_id).unlink(missing_ok=True)
        except OSError as exc:  # an entry left behind is forgotten at the next start, by age or count
            log.warning("cannot remove the journal entry of job %s: %s", job_id, exc)

    def load(self) -> list[Job]:
        """Every job on disk, oldest first; an entry that cannot be read is a LOST job (and says why)."""
        if not self.folder.is_dir():
            return []
        jobs = []
        for tmp in self.folder.glob("*.tmp"):  # an entry being written when the server was killed
            tmp.unlink(missing_ok=True)  # its job was never accepted: the 202 is sent after the rename
        for entry in self.folder.glob("*.json"):
            job_id = entry.stem
            if not JOB_ID.match(job_id):
                continue
            try:
                job = Job.from_record(json.loads(entry.read_bytes().decode("utf-8", "surrogatepass")))
                if job.id != job_id:
                    raise ValueError(f"it names job {job.id!r}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                job = _lost(job_id, entry, exc)
                try:
                    self.write(job)  # the entry stays readable from now on, as a report of the loss
                except JobNotRecorded as unwritable:
                    log.warning("%s", unwritable)
            jobs.append(job)
        # Entries written before jobs were numbered (seq 0) were all accepted before the numbered ones.
        return sorted(jobs, key=lambda j: (j.seq, j.created, j.id))


def _lost(job_id: str, entry: Path, exc: BaseException) -> Job:
    when = entry.stat().st_mtime if entry.exists() else time.time()
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    return Job(id=job_id, kind="unknown", doc_ids=[], payload=None, state=LOST, created=when,
               finished=time.time(), error={"code": "job_lost",
                      "message": f"the server stopped before this job was finished, and its journal entry "
                                 f"{entry} cannot be read ({reason[:200]}), so it was not run; send its "
                                 "documents (or the delete) again"})


def _iso(t: float | None) -> str | None:
    """UTC with milliseconds: jobs often start and finish within the same second."""
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _error_of(exc: BaseException) -> dict[str, str]:
    """The client-facing error of a failed job: the same {code, message} as the HTTP API gives for it."""
    info = classify(exc)
    if info is None or info.unexpected:
        return {"code": "internal_error",
                "message": "the job failed unexpectedly; the server log has the details"}
    return {"code": info.code, "message": info.message}


class JobQueue:
    """A FIFO of index writes run by one daemon thread; journaled when given a `JobJournal`."""

    def __init__(self, actions: Mapping[str, Action], journal: JobJournal | None = None, *,
                 keep: int = KEEP_FINISHED, keep_days: float = KEEP_FINISHED_DAYS,
                 lock_wait_seconds: float | None = LOCK_WAIT_SECONDS) -> None:
        self._actions = dict(actions)
        self._journal = journal
        self.on_finished: Callable[[Job], None] | None = None  # e.g. metrics (api.metrics)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._keep = keep
        self._keep_seconds = keep_days * 86400
        self._lock_wait = lock_wait_seconds  # None: as long as another writer holds the index
        self._thread: threading.Thread | None = None
        self._recovered = False
        self._seq = 0  # the last acceptance number given (or found in the journal)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread; the first time, resume the jobs a previous server left unfinished."""
        if not self._recovered:
            self._recovered = True
            self._recover()
        if self._thread is None or not self._thread.is_alive():
            # daemon: a job still running when the server stops is abandoned; the index stays at its
            # last published generation (generations are published atomically) and the job's journal
            # entry says it is unfinished, so the next server runs it again.
            self._thread = threading.Thread(target=self._work, name="semsearch-index-writer", daemon=True)
            self._thread.start()

    def _recover(self) -> None:
        if self._journal is None:
            return
        resumed = 0
        for job in self._journal.load():
            self._seq = max(self._seq, job.seq)
            if job.state in FINISHED:
                job.done.set()
            else:
                job.state, job.started, job.resumed = QUEUED, None, True
                self._pending.put(job)
                resumed += 1
            self._jobs[job.id] = job
        with self._lock:
            self._forget_old()
        if resumed:
            log.warning("resuming %d job(s) accepted before the server stopped", resumed)

    def stop(self, timeout: float = 1.0) -> None:
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join(timeout)
            self._thread = None

    # --- jobs -----------------------------------------------------------------------------------
    def submit(self, kind: str, doc_ids: list[str], payload: dict[str, Any]) -> Job:
        """Queue a job; with a journal, only once its entry is on disk (else JobNotRecorded).

        Blocking (an fsync): call it from a worker thread, not the event loop."""
        if kind not in self._actions:
            raise ValueError(f"no action for jobs of kind {kind!r}")
        # The journal's unfinished jobs first: they were accepted before this one (and are numbered so).
        self.start()
        with self._lock:
            self._seq += 1
            seq = self._seq
        job = Job(id=uuid.uuid4().hex[:12], kind=kind, doc_ids=doc_ids, payload=payload, seq=seq)
        if self._journal is not None:
            self._journal.write(job)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
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
        """Keep the last `keep` finished jobs, none older than `keep_days` (in memory and on disk)."""
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        too_old = time.time() - self._keep_seconds
        forget = finished[: max(0, len(finished) - self._keep)]
        forget += [j for j in finished[len(forget):] if (j.finished or j.created) < too_old]
        for job in forget:
            del self._jobs[job.id]
            if self._journal is not None:
                self._journal.remove(job.id)

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
                job.error, job.state = _error_of(exc), FAILED
                if job.error["code"] == "internal_error":
                    log.exception("job %s (%s) failed", job.id, job.kind)
            finally:
                job.finished = time.time()
                self._record_finished(job)
                job.payload = None  # drop the documents; only the summary is kept
                job.done.set()
                if self.on_finished is not None:
                    try:
                        self.on_finished(job)
                    except Exception:  # monitoring must never end the worker
                        log.exception("the finished-job hook failed")

    def _record_finished(self, job: Job) -> None:
        if self._journal is None:
            return
        try:
            self._journal.write(job)
        except JobNotRecorded as exc:  # the work is done; the entry left says unfinished: it runs again
            log.warning("job %s finished but could not be recorded: %s", job.id, exc)

    def _run(self, job: Job) -> dict[str, Any]:
        """Run a job, first waiting for a writer in another process (the CLI) to finish."""
        action = self._actions[job.kind]
        payload = job.payload if job.payload is not None else {}
        deadline = None if self._lock_wait is None else time.monotonic() + self._lock_wait
        delay = 0.5
        try:
            while True:
                try:
                    return action(payload, job.resumed)
                except IndexLocked as exc:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    if job.waiting is None:
                        log.warning("job %s waits for the index: %s", job.id, exc)
                    job.waiting = f"{exc}; the job runs once it has finished"
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            job.waiting = None
