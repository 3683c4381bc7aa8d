"""An accepted write survives the server: SIGKILL of `semsearch serve` during writes, then a restart.

The server-side variant of tests/index/test_failures.py (kills of `semsearch index`): every job answered
202 is, after the restart, either applied (and says so at GET /jobs/{id}) or reported as lost, never a
404 as if it had never been accepted. The journal's own edge cases (a garbage entry, a full or broken
folder, the bound on finished jobs) are checked in process below, with stand-in actions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from api.jobs import JOURNAL, Job, JobJournal, JobNotRecorded, JobQueue
from tests.api.conftest import LiveServer, copy_index, start_server, stop_server

XINHUA = "003_07e0a4d71f185c6b.txt"
CITIES = ["泸州", "德阳", "绵阳", "乐山", "南充", "眉山"]


def _doc(city: str) -> dict[str, str]:
    return {"doc_id": f"kill/{city}.txt", "title": f"{city}算力中心",
            "text": f"{city}市建设新型算力中心，服务成渝地区双城经济圈的数字产业。\n\n{city}的项目已开工。"}


def _accept(client: httpx.Client, method: str, path: str, **kwargs) -> str:
    response = client.request(method, path, **kwargs)
    assert response.status_code == 202, response.text
    return response.json()["job"]


def _kill(server: LiveServer) -> None:
    server.process.kill()  # SIGKILL: no shutdown, no lifespan, nothing flushed by the server itself
    server.process.wait(timeout=30)


def _finished(client: httpx.Client, job_id: str, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, f"job {job_id} was accepted, then forgotten: {response.text}"
        job = response.json()
        if job["state"] in ("done", "failed", "lost"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(0.2)


def test_sigkill_of_the_server_loses_no_accepted_write(seed_index: Path, tmp_path: Path) -> None:
    index = copy_index(seed_index, tmp_path)
    expected: dict[str, tuple[str, bool]] = {}  # job -> (doc_id, present afterwards)

    # 1: killed right after the 202s, while the first job runs and the others wait
    server = start_server(index, tmp_path / "server-1.log")
    try:
        with server.client() as client:
            for city in CITIES[:3]:
                expected[_accept(client, "POST", "/documents", json={"documents": [_doc(city)]})] = (
                    f"kill/{city}.txt", True)
            expected[_accept(client, "DELETE", f"/documents/{XINHUA}")] = (XINHUA, False)
    finally:
        _kill(server)
    assert list((index / JOURNAL).glob("*.json")), "the jobs are on disk before the 202"

    # 2: a restart resumes them; killed again while a job of the second batch is running
    server = start_server(index, tmp_path / "server-2.log")
    try:
        with server.client() as client:
            first = _finished(client, next(iter(expected)))
            assert first["state"] == "done" and first["resumed"], first
            for city in CITIES[3:]:
                expected[_accept(client, "POST", "/documents", json={"documents": [_doc(city)]})] = (
                    f"kill/{city}.txt", True)
            deadline = time.monotonic() + 60
            while client.get(f"/jobs/{list(expected)[-3]}").json()["state"] == "queued":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        _kill(server)

    # 3: after the last restart every accepted job is applied, or reported lost (none here: the journal
    # entries are intact), and the index holds what the applied jobs say
    server = start_server(index, tmp_path / "server-3.log")
    try:
        with server.client() as client:
            jobs = {job_id: _finished(client, job_id) for job_id in expected}
            assert all(j["state"] == "done" for j in jobs.values()), jobs
            assert any(j["resumed"] for j in jobs.values()), "some jobs ran only after a restart"
            for job_id, (doc_id, present) in expected.items():
                status = client.get(f"/documents/{doc_id}").status_code
                assert status == (200 if present else 404), (job_id, doc_id, status)
            hit = client.get("/search", params={"q": "眉山新型算力中心", "k": 1}).json()["results"][0]
            assert hit["doc_id"] == "kill/眉山.txt"
    finally:
        stop_server(server)


# --- the journal in process -------------------------------------------------------------------------
def _queue(folder: Path, log: list, **kwargs) -> JobQueue:
    def run(payload: dict, resumed: bool) -> dict:
        log.append((payload["n"], resumed))
        return {"n": payload["n"]}

    return JobQueue({"add": run}, JobJournal(folder), **kwargs)


def test_unfinished_jobs_resume_in_order_and_unreadable_ones_are_lost(tmp_path: Path) -> None:
    folder = tmp_path / JOURNAL
    accepted = JobJournal(folder)
    # what a killed server leaves: three accepted jobs (one entry damaged since), one entry being written
    jobs = [Job(id=f"{n:012x}", kind="add", doc_ids=[f"d{n}"], payload={"n": n}, created=1000.0 + n)
            for n in (7, 3, 9)]
    for job in jobs:
        accepted.write(job)
    assert json.loads(accepted.path(jobs[0].id).read_text())["payload"] == {"n": 7}, "journaled with payload"
    accepted.path(jobs[1].id).write_bytes(b'{"job": "cut')
    (folder / "0123456789ab.tmp").write_text("{")

    ran: list = []
    restarted = _queue(folder, ran)
    restarted.start()
    for job in (restarted.get(jobs[0].id), restarted.get(jobs[2].id)):
        assert job is not None and job.done.wait(30) and job.state == "done" and job.resumed
    assert ran == [(7, True), (9, True)], "resumed in the order accepted"
    lost = restarted.get(jobs[1].id)
    assert lost is not None and lost.to_dict()["state"] == "lost"
    assert lost.error["code"] == "job_lost" and str(accepted.path(jobs[1].id)) in lost.error["message"]
    assert "send its documents" in lost.error["message"]
    assert not list(folder.glob("*.tmp")), "a half-written entry was never accepted: it is cleared"
    assert json.loads(accepted.path(jobs[0].id).read_text())["payload"] is None, "done: payload dropped"
    restarted.stop()

    again: list = []
    third = _queue(folder, again)
    third.start()
    states = [getattr(third.get(j.id), "state", None) for j in jobs]
    assert states == ["done", "lost", "done"], states
    time.sleep(0.2)
    third.stop()
    assert again == [], "finished jobs are not run twice"


def test_jobs_resume_in_the_order_accepted_even_when_the_clock_went_back(tmp_path: Path) -> None:
    """An add, then a delete of the same document, accepted while the clock was stepped back (NTP): a
    restart runs them in the order they were accepted, not by their times, and numbers new jobs after."""
    folder = tmp_path / JOURNAL
    accepted = JobJournal(folder)
    for seq, n in enumerate((4, 8, 2), 1):  # each accepted after the one before, each "earlier" by the clock
        accepted.write(Job(id=f"{n:012x}", kind="add", doc_ids=[f"d{n}"], payload={"n": n},
                           created=5000.0 - 1000 * seq, seq=seq))
    ran: list = []
    restarted = _queue(folder, ran)
    later = restarted.submit("add", ["d1"], {"n": 1})
    assert later.done.wait(30)
    restarted.stop()
    assert ran == [(4, True), (8, True), (2, True), (1, False)]
    assert later.seq == 4 and json.loads(accepted.path(later.id).read_text())["seq"] == 4


def test_finished_jobs_are_kept_within_bounds(tmp_path: Path) -> None:
    folder = tmp_path / JOURNAL
    queue = _queue(folder, [], keep=2)
    jobs = [queue.submit("add", [f"d{n}"], {"n": n}) for n in range(5)]
    for job in jobs:
        assert job.done.wait(30)
    queue.submit("add", ["d5"], {"n": 5}).done.wait(30)  # forgetting happens as new jobs come in
    queue.stop()
    assert queue.get(jobs[0].id) is None and queue.get(jobs[4].id) is not None
    assert len(list(folder.glob("*.json"))) <= 3, "forgotten jobs leave the disk too"
    old = _queue(folder, [], keep_days=0)
    old.start()
    old.stop()
    assert not list(folder.glob("*.json")), "and none is kept past its age"


def test_a_job_that_cannot_be_recorded_is_not_accepted(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    ran: list = []
    queue = _queue(blocked / JOURNAL, ran)
    with pytest.raises(JobNotRecorded, match="not accepted and nothing was changed"):
        queue.submit("add", ["d0"], {"n": 0})
    time.sleep(0.2)
    queue.stop()
    assert ran == [] and queue.pending_doc_ids() == set()
