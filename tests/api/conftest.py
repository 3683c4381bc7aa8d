"""Fixtures of the API and browser tests: a live `semsearch serve` on a private copy of the seed index.

One server per test module (starting one loads the model, which takes seconds), on a copy of the
session's read-only seed index, so tests that add and delete documents touch nobody else's index.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CHROMIUM

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
STARTUP_SECONDS = 180  # importing torch and loading the model; slow on a busy two-core machine


@dataclass
class LiveServer:
    """A running `semsearch serve` and what the tests need to talk to it."""

    url: str
    index: Path
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, log: Path, env: dict[str, str] | None = None,
                 args: Sequence[str] = ()) -> LiveServer:
    """Start the server as a user would and wait until /health answers."""
    port = free_port()
    environ = dict(os.environ, **(env or {}))
    environ.pop("SEMSEARCH_INDEX", None)
    # Tests send bursts from one address; the rate limiter has its own tests (test_security.py).
    environ.setdefault("SEMSEARCH_RATE_LIMIT", "0")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--index", str(index), "--host", "127.0.0.1",
             "--port", str(port), *args],
            cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", index, process, log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"the server did not answer /health within {STARTUP_SECONDS}s:\n{server.log_tail()}")


def stop_server(server: LiveServer) -> None:
    """Stop our own server process by its PID: SIGTERM, then SIGKILL if it hangs."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=15)


def copy_index(seed_index: Path, folder: Path) -> Path:
    """A writable copy of the shared seed index."""
    target = folder / "index"
    shutil.copytree(seed_index, target, ignore=shutil.ignore_patterns("write.lock"))
    return target


@pytest.fixture(scope="module")
def server(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server of this test module, on its own copy of the seed index."""
    folder = tmp_path_factory.mktemp("server")
    # Functional tests send bursts of requests from one client; the rate limit is not what they test.
    live = start_server(copy_index(seed_index, folder), folder / "server.log", {"SEMSEARCH_RATE_LIMIT": "0"})
    try:
        yield live
    finally:
        stop_server(live)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (Playwright's own browser builds cannot be downloaded here)."""
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A laptop-sized window and a Chinese browser, like the page's first users."""
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}, "locale": "zh-CN"}
