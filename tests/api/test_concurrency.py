"""Searches never fail and never mix generations while the index is written underneath them.

A live server answers a steady stream of searches from a few threads while, at the same time, documents
are added and deleted through the API and `semsearch index` re-indexes the same folder from another
process. The server picks up each new generation by itself. Checked on every answer:

- no search fails (status 200, no transport error);
- each answer belongs to one generation: a document is in the results exactly when the answer's
  `generation` is one that holds it (added at generation a, deleted at d: present iff a <= g < d);
- each thread sees generations only move forward;
- a deleted document never appears in an answer to a search sent after its delete returned;
- the last generation (the re-index's new file included) is served without a restart.

A concurrent WRITE may be refused with 503 index_locked (or its job fail with that code) and is then
retried; the job queue itself already waits for a writer in another process.

`run_scenario` is shared with `bench/load.py`, which runs more rounds and writes the figures into
docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import ROOT, LiveServer, copy_index, start_server, stop_server

SEARCH_THREADS = 3
MAX_SEARCHES_PER_THREAD = 5000  # a bound besides time: the loop ends even if the writes hang
WRITE_TIMEOUT = 240.0


@dataclass
class Answer:
    thread: int
    query: str
    sent: float
    received: float
    status: int | str
    generation: str | None = None
    doc_ids: list[str] = field(default_factory=list)


@dataclass
class Life:
    """A document's life in generations: in every generation g with added <= g < deleted."""

    doc_id: str
    query: str
    added: str | None = None
    deleted: str | None = None
    deleted_at: float | None = None  # when the DELETE returned (monotonic clock)

    def present_in(self, generation: str) -> bool | None:
        """True/False when known, None while the generation's content is not known for this document."""
        if self.added is None:
            return None
        if generation < self.added:
            return False
        return self.deleted is None or generation < self.deleted


def _doc(i: int, tag: str) -> tuple[str, str, str]:
    """(doc_id, text, query): a distinctive document that its own query ranks first."""
    places = ["宜宾", "雅安", "攀枝花", "泸州", "乐山", "绵阳", "德阳", "遂宁"]
    place = places[i % len(places)]
    text = (f"{place}{tag}第{i}号：{place}市正举全市之力推进大学城、科创城双城建设，"
            f"已有十余所高校在{place}办学，{tag}项目编号{i}。")
    return f"concurrency/{tag}-{i}.txt", text, f"{place}{tag}第{i}号 大学城 科创城"


class Searcher(threading.Thread):
    """Searches the queries in turn until told to stop (or its bound is reached)."""

    def __init__(self, url: str, number: int, queries: list[str], stop: threading.Event,
                 answers: list[Answer], lock: threading.Lock) -> None:
        super().__init__(daemon=True, name=f"searcher-{number}")
        self.url, self.number, self.queries, self.stop_event = url, number, queries, stop
        self.answers, self.lock = answers, lock

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for i in range(MAX_SEARCHES_PER_THREAD):
                if self.stop_event.is_set():
                    return
                query = self.queries[(i + self.number) % len(self.queries)]
                sent = time.monotonic()
                try:
                    response = client.get("/search", params={"q": query, "k": 10})
                    answer = Answer(self.number, query, sent, time.monotonic(), response.status_code)
                    if response.status_code == 200:
                        body = response.json()
                        answer.generation = body["generation"]
                        answer.doc_ids = [r["doc_id"] for r in body["results"]]
                except httpx.HTTPError as exc:
                    answer = Answer(self.number, query, sent, time.monotonic(), type(exc).__name__)
                with self.lock:
                    self.answers.append(answer)


class Writer:
    """Writes through the API and the CLI, retrying what a concurrent writer refused."""

    def __init__(self, url: str, index: Path) -> None:
        self.url, self.index = url, index
        self.client = httpx.Client(base_url=url, timeout=WRITE_TIMEOUT + 30)
        self.writes = 0
        self.retries = 0

    def close(self) -> None:
        self.client.close()

    def _job(self, send: Any) -> dict[str, Any]:
        """Send a write (a callable giving the response) until its job is done; the finished job."""
        deadline = time.monotonic() + WRITE_TIMEOUT
        while True:
            response = send()
            if response.status_code == 503 and response.json()["error"]["code"] == "index_locked":
                self.retries += 1
            else:
                assert response.status_code in (200, 202), response.text
                job = self._finish(response.json())
                if job["state"] == "done":
                    self.writes += 1
                    return job
                assert job["error"]["code"] == "index_locked", job
                self.retries += 1
            assert time.monotonic() < deadline, "a write was refused for too long"
            time.sleep(0.5)

    def _finish(self, job: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + WRITE_TIMEOUT
        while job["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, f"job {job['job']} still {job['state']}"
            time.sleep(0.2)
            job = self.client.get(f"/jobs/{job['job']}").json()
        return job

    def add(self, doc_id: str, text: str) -> str:
        body = {"documents": [{"doc_id": doc_id, "text": text, "source": "并发测试"}]}
        return self._job(lambda: self.client.post("/documents", json=body, params={"wait": 60})
                         )["summary"]["generation"]

    def add_later(self, doc_id: str, text: str) -> dict[str, Any]:
        """Queue an addition without waiting (it may have to wait for the CLI's lock)."""
        body = {"documents": [{"doc_id": doc_id, "text": text, "source": "并发测试"}]}
        response = self.client.post("/documents", json=body)
        assert response.status_code == 202, response.text
        return response.json()

    def finish_add(self, queued: dict[str, Any], doc_id: str, text: str) -> str:
        job = self._finish(queued)
        if job["state"] == "done":
            self.writes += 1
            return job["summary"]["generation"]
        assert job["error"]["code"] == "index_locked", job
        self.retries += 1
        return self.add(doc_id, text)

    def delete(self, doc_id: str) -> tuple[str, float]:
        job = self._job(lambda: self.client.delete(f"/documents/{doc_id}", params={"wait": 60}))
        return job["summary"]["generation"], time.monotonic()

    def reindex(self, corpus: Path) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != "SEMSEARCH_INDEX"}
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "index", str(corpus), "--index", str(self.index), "--json",
             "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish_reindex(self, process: subprocess.Popen[str], corpus: Path) -> str:
        """The re-index's generation; a run refused by the API's writer holding the lock is run again."""
        for _ in range(5):
            out, err = process.communicate(timeout=WRITE_TIMEOUT)
            if process.returncode == 0:
                self.writes += 1
                return json.loads(out)["generation"]
            assert "lock" in err.lower(), err  # only the writer lock may refuse it
            self.retries += 1
            time.sleep(1)
            process = self.reindex(corpus)
        raise AssertionError("the re-index was refused five times")


def run_scenario(server: LiveServer, corpus: Path, rounds: int = 1, seconds: float = 0.0) -> dict[str, Any]:
    """Searches from SEARCH_THREADS threads during `rounds` rounds of writes (more while time is left).

    Each round: add a document through the API; start `semsearch index` on a corpus with one new file and,
    while it runs, queue another API addition; then delete the first document. Returns the figures;
    assertion errors say what went wrong.
    """
    lives: list[Life] = []
    answers: list[Answer] = []
    lock = threading.Lock()
    stop = threading.Event()
    writer = Writer(server.url, server.index)
    base_queries = ["长三角研发投入强度", "成渝地区双城经济圈", "区域创新中心"]
    started = time.monotonic()
    round_no = 0
    threads: list[Searcher] = []
    # one copy of the corpus, re-indexed each round with that round's new file in it
    reindexed = Path(tempfile.mkdtemp(prefix="semsearch-reindex-")) / "corpus"
    shutil.copytree(corpus, reindexed)
    try:
        while round_no < rounds or time.monotonic() - started < seconds:
            api_doc, kept_doc, file_doc = (_doc(round_no, tag) for tag in ("接口", "排队", "文件"))
            life_api, life_kept, life_file = (Life(d[0], d[2]) for d in (api_doc, kept_doc, file_doc))
            lives += [life_api, life_kept, life_file]
            queries = [*base_queries, *[life.query for life in lives[-9:]]]
            for t in threads:  # the searchers of the last round make way for ones with the new queries
                t.stop_event.set()
            for t in threads:
                t.join(30)
            stop = threading.Event()
            threads = [Searcher(server.url, n, queries, stop, answers, lock) for n in range(SEARCH_THREADS)]
            for t in threads:
                t.start()
            time.sleep(0.5)

            life_api.added = writer.add(api_doc[0], api_doc[1])
            target = reindexed / Path(file_doc[0]).name
            target.write_text(file_doc[1], encoding="utf-8")
            # a folder other than the one the index was built from: its ids carry its name (README)
            life_file.doc_id = f"{reindexed.name}/{target.name}"
            process = writer.reindex(reindexed)
            queued = writer.add_later(kept_doc[0], kept_doc[1])
            life_file.added = writer.finish_reindex(process, reindexed)
            life_kept.added = writer.finish_add(queued, kept_doc[0], kept_doc[1])
            life_api.deleted, life_api.deleted_at = writer.delete(api_doc[0])
            time.sleep(1.0)  # searches after the delete
            round_no += 1
    finally:
        shutil.rmtree(reindexed.parent, ignore_errors=True)
        stop.set()
        for t in threads:
            t.stop_event.set()
        for t in threads:
            t.join(60)
        writer.close()
    return check_answers(server, answers, lives, writer, round_no)


def check_answers(server: LiveServer, answers: list[Answer], lives: list[Life], writer: Writer,
                  rounds: int) -> dict[str, Any]:
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} searches failed, e.g. {failed[:3]}"
    inconsistent, resurrected = [], []
    last_seen: dict[int, str] = {}
    for a in sorted(answers, key=lambda a: a.sent):
        assert a.generation is not None
        if a.generation < last_seen.get(a.thread, ""):
            inconsistent.append((a, f"generation went back from {last_seen[a.thread]}"))
        last_seen[a.thread] = max(a.generation, last_seen.get(a.thread, ""))
        for life in lives:
            present = life.present_in(a.generation)
            found = life.doc_id in a.doc_ids
            if present is False and found:
                inconsistent.append((a, f"{life.doc_id} is not in generation {a.generation}"))
            if present is True and a.query == life.query and not found:
                inconsistent.append((a, f"{life.doc_id} of generation {a.generation} is missing"))
            if found and life.deleted_at is not None and a.sent > life.deleted_at:
                resurrected.append(a)
    assert not resurrected, f"deleted documents found after their delete returned: {resurrected[:3]}"
    assert not inconsistent, f"{len(inconsistent)} answers mix generations, e.g. {inconsistent[:3]}"

    # the latest generation is served, without a restart, and has the re-index's file
    current = (server.index / "CURRENT").read_text().split()[0]  # "000005 <identity>"
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/health").json()["generation"] == current
        latest_file = lives[-1]  # each round adds (API document, queued document, re-indexed file)
        hits = client.get("/search", params={"q": latest_file.query, "k": 3}).json()
        assert hits["generation"] == current and hits["results"][0]["doc_id"] == latest_file.doc_id
    generations = {a.generation for a in answers}
    return {"searches": len(answers), "failed": len(failed), "inconsistent": len(inconsistent),
            "resurrected": len(resurrected), "generations": len(generations), "writes": writer.writes,
            "retries": writer.retries, "rounds": rounds}


def run_scenario_on_copy(index: Path, corpus: Path | None = None, seconds: float = 60.0) -> dict[str, Any]:
    """The scenario on a throw-away copy of `index` with its own server (for bench/load.py)."""
    folder = Path(tempfile.mkdtemp(prefix="semsearch-concurrency-"))
    try:
        live = start_server(copy_index(index, folder), folder / "server.log", {"SEMSEARCH_RATE_LIMIT": "0"})
        try:
            return run_scenario(live, corpus or ROOT / "data", rounds=1, seconds=seconds)
        finally:
            stop_server(live)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_searches_during_writes_and_reindex(server: LiveServer, seed_corpus: Path) -> None:
    figures = run_scenario(server, seed_corpus, rounds=1)
    assert figures["failed"] == 0 and figures["inconsistent"] == 0 and figures["resurrected"] == 0
    assert figures["generations"] >= 3, figures  # the searches really ran across the writes
    print(f"\nconcurrency: {figures}")
