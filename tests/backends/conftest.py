"""A real `milvus-lite server` on loopback for the back-end contract suite, started once per test run.

Skipped (with the reason) only where the `milvus` extra is not installed; `make test` installs it, and with
`$CI` set a missing extra fails instead, so CI never skips the Milvus half silently.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

EXTRA_DOCS = [
    {"doc_id": "policy-1", "title": "科技创新政策解读", "date": "2023-05-10", "source": "政策网",
     "categories": ["政策", "科技"],
     "text": "国务院发布关于加快科技创新的若干意见。\n\n意见提出，到2030年基础研究经费占比达到8%。"},
    {"doc_id": "market-1", "title": "新能源汽车市场", "date": "2024-02-01", "source": "财经网",
     "categories": ["经济"],
     "text": "新能源汽车销量持续增长。\n\n动力电池企业加快扩产，固态电池研发取得进展。"},
    {"doc_id": "undated-1", "title": "无日期的说明", "source": "政策网", "categories": ["政策"],
     "text": "这篇说明没有日期，只有来源和类别。\n\n它用于检查日期过滤不会误选它。"},
]


def milvus_cli() -> str | None:
    found = shutil.which("milvus-lite") or str(Path(sys.executable).with_name("milvus-lite"))
    return found if Path(found).exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"milvus-lite server did not open port {port} in {seconds:.0f} s")


def start_milvus(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """`milvus-lite server` on 127.0.0.1 (its default host is 0.0.0.0: always pass --host)."""
    cli = milvus_cli()
    if cli is None:
        if os.environ.get("CI"):
            pytest.fail("the milvus extra is not installed (make setup installs it)")
        pytest.skip("milvus-lite is not installed: pip install -e '.[milvus]'")
    port = free_port()
    log = open(data_dir.parent / f"milvus-{port}.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [cli, "server", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """By its PID: SIGTERM, then SIGKILL if it lingers past `grace` seconds."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("milvus") / "data"
    proc, uri = start_milvus(data)
    try:
        yield uri
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def contract_corpus(seed_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default corpus and three documents with sources, categories and dates (one without a date)."""
    import json

    folder = tmp_path_factory.mktemp("contract-corpus")
    for f in seed_corpus.iterdir():
        shutil.copy(f, folder / f.name)
    with open(folder / "extra.jsonl", "w", encoding="utf-8") as fh:
        for doc in EXTRA_DOCS:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return folder


def new_location(kind: str, tmp: Path, milvus_uri: str | None) -> object:
    """An empty index of this back end."""
    from index.backends import FolderIndex

    if kind == "faiss":
        return FolderIndex(tmp / "index")
    from index.milvus_index import MilvusIndex

    return MilvusIndex(milvus_uri or "", f"t_{uuid.uuid4().hex[:12]}", root=tmp / "local")


# Milvus writers wait this long before removing replaced rows (for searches in flight); tests need little.
os.environ.setdefault("SEMSEARCH_MILVUS_GRACE", "0.05")

BACKENDS = ["faiss", "milvus"]


@pytest.fixture(scope="session")
def shared_embedder() -> Any:
    """The real model, loaded once for every index of the suite."""
    from index.config import IndexSettings
    from index.embedders.factory import create_embedder

    return create_embedder(IndexSettings.from_env().embedder)


@pytest.fixture(scope="session")
def built(
    request: pytest.FixtureRequest, contract_corpus: Path, shared_embedder: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], Any]:
    """`built(kind)`: the contract corpus indexed in that back end once, an Engine (read-only for tests).
    `faiss:passages` is a folder index built without sentence vectors, as a Milvus collection is."""
    from index.config import IndexSettings
    from search.engine import Engine

    engines: dict[str, Engine] = {}

    def get(kind: str) -> Engine:
        if kind not in engines:
            backend, _, variant = kind.partition(":")
            uri = request.getfixturevalue("milvus_uri") if backend == "milvus" else None
            location = new_location(backend, tmp_path_factory.mktemp(backend), uri)
            settings = None
            if variant == "passages":
                settings = IndexSettings.from_env({})
                settings.sentence_vectors = False
            location.builder(settings, embedder=shared_embedder).index_paths([contract_corpus])
            engines[kind] = Engine(location)
            engines[kind]._embedder = shared_embedder
        return engines[kind]

    return get


@pytest.fixture
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Any]:
    """`fresh(kind)`: an empty location of that back end, and a builder for it with the shared model."""

    def get(kind: str) -> Any:
        uri = request.getfixturevalue("milvus_uri") if kind == "milvus" else None
        return new_location(kind, tmp_path / kind, uri)

    return get
