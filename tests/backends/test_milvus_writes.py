"""Writes you can trust on a live Milvus: `semsearch index` killed with SIGKILL at random moments while
searches run, then re-run; and two servers in two processes sharing one collection."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import STARTUP_SECONDS
from tests.backends.conftest import free_port, start_milvus, stop
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

KILLS = 10
VERSION = re.compile(r"版本(\d+)")


def _write_doc(folder: Path, i: int, version: int) -> None:
    paragraphs = [
        f"第{i}号文档的第{p}段，版本{version}。" + "区域创新中心建设持续推进，研发投入强度稳步提高，" * 6
        for p in range(3)
    ]
    (folder / f"doc{i:02d}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _env() -> dict[str, str]:
    # A second between the switch and the removal of the replaced rows, as in production: a kill often
    # lands there, and the readers have time to see the state in between.
    return os.environ | {"SEMSEARCH_MILVUS_GRACE": "1.0", "PYTHONPATH": str(ROOT)}


def _whole_and_one_version(snap: Any, doc_ids: set[str]) -> None:
    """Every document of this snapshot is there whole, in one version, once."""
    for doc_id in doc_ids:
        doc = snap.passages.document(doc_id)
        assert doc is not None, f"{doc_id} is listed but has no document row"
        versions = set(VERSION.findall(doc["text"]))
        assert len(versions) == 1, f"{doc_id} holds versions {versions}"
        rows = snap.passages.passages(snap.passages.passage_ids_of(doc_id))
        assert rows, f"{doc_id} has no passages"
        covered = 0
        for row in rows.values():
            assert doc["text"][row.start : row.end] == row.text
            assert set(VERSION.findall(row.text)) <= versions
            covered += len(row.text)
        assert covered >= len(doc["text"]) - 4 * len(doc["paragraphs"]), f"{doc_id} is missing passages"


def _left_midway(location: Any) -> int:
    """1 when a killed write left rows behind: unpublished ones, or replaced ones not yet removed."""
    from index.stores.milvus_store import DOCS_SUFFIX, count

    state = location.state()
    if state.replaced_passages or state.replaced_docs:
        return 1
    unpublished = f"born > {state.generation}"
    client, name = location.client, location.collection
    return int(count(client, name, unpublished) + count(client, name + DOCS_SUFFIX, unpublished) > 0)


def test_sigkill_at_random_moments_then_a_rerun_converges(milvus_uri: str, tmp_path: Path,
                                                          shared_embedder: Any) -> None:
    from index.milvus_index import MilvusIndex
    from search.engine import Engine

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        _write_doc(folder, i, 0)
    collection = f"kill_{uuid.uuid4().hex[:10]}"
    local = tmp_path / "local"
    args = ["index", str(folder), "--store", "milvus", "--milvus-uri", milvus_uri, "--collection", collection,
            "--index", str(local), "--quiet"]
    env = _env()
    first = _cli(*args, env=env)
    assert first.wait(120) == 0, first.stderr.read().decode() if first.stderr else ""

    location = MilvusIndex(milvus_uri, collection, root=tmp_path / "reader")
    engine = Engine(location)
    engine._embedder = shared_embedder
    errors: list[str] = []
    searches = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal searches
        while not stop.is_set():
            try:
                for mode in ("dense", "keyword", "hybrid"):
                    results = engine.search("区域创新中心的版本", k=10, mode=mode).results
                    seen: dict[str, set[str]] = {}
                    for r in results:
                        seen.setdefault(r.doc_id, set()).update(VERSION.findall(r.text))
                    twice = {d: v for d, v in seen.items() if len(v) > 1}
                    assert not twice, f"one answer holds two versions of a document: {twice}"
                    searches += 1
                snap = engine.snapshot()
                _whole_and_one_version(snap, {d["doc_id"] for d in snap.passages.list_documents(0, 100)})
            except Exception as exc:  # every failure is reported, the reading goes on
                errors.append(f"{type(exc).__name__}: {exc}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rng = random.Random(13)
    killed = midway = 0
    try:
        for round_ in range(1, 40):
            if killed >= KILLS:
                break
            # Each round changes the folder: four documents updated or brought back, one deleted.
            for i in rng.sample(range(8), 4):
                _write_doc(folder, i, round_)
            victim = folder / f"doc{rng.randrange(8):02d}.txt"
            if victim.exists() and len(list(folder.iterdir())) > 3:
                victim.unlink()
            writer = _cli(*args, env=env)
            if round_ % 2:  # anywhere: starting, reading the folder, embedding, writing
                with contextlib.suppress(subprocess.TimeoutExpired):  # a writer done sooner is not waited for
                    writer.wait(rng.uniform(0.5, 3.5))
            else:  # inside the Milvus write: once it has left rows behind, a little later
                deadline = time.monotonic() + 30
                while writer.poll() is None and time.monotonic() < deadline and not _left_midway(location):
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.6))
            if writer.poll() is None:
                os.kill(writer.pid, signal.SIGKILL)
                killed += 1
                writer.wait(30)
                midway += _left_midway(location)
            writer.wait(30)
        final = _cli(*args, env=env)
        assert final.wait(120) == 0, final.stderr.read().decode() if final.stderr else ""
    finally:
        stop.set()
        reader.join(60)
    assert killed >= KILLS
    assert midway >= 2, "too few kills landed inside a Milvus write to prove anything"
    assert not errors, errors[:5]
    assert searches > 0

    # Exactly the folder's documents, each with the file's text.
    snap = engine.snapshot()
    listed = {d["doc_id"] for d in snap.passages.list_documents(0, 100)}
    assert listed == {f.name for f in folder.iterdir()}
    for name in listed:
        assert snap.passages.document(name)["text"] == (folder / name).read_text(encoding="utf-8")
    _whole_and_one_version(snap, listed)
    assert snap.manifest.documents == len(listed)
    assert snap.manifest.passages == sum(len(snap.passages.passage_ids_of(d)) for d in listed)
    # Word rarity: no count of a killed write survives it, none a finished write made is missing.
    terms = _terms_of(location, sorted(listed)) + ["版本0", "g:版本"]
    assert _read_df(location, terms) == _counted(location, terms)


def _serve(port: int, milvus_uri: str, collection: str, local: Path) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT), "SEMSEARCH_MILVUS_GRACE": "0.05"}
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--store",
         "milvus", "--milvus-uri", milvus_uri, "--collection", collection, "--index", str(local)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _wait_ready(url: str, proc: subprocess.Popen, seconds: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "semsearch serve exited"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not become ready")


def _wait_job(client: httpx.Client, response: httpx.Response) -> None:
    assert response.status_code in (200, 202), response.text
    location = response.headers["location"]
    for _ in range(600):
        job = client.get(location).json()
        if job["state"] not in ("queued", "running"):
            assert job["state"] == "done", job
            return
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


def test_two_servers_share_one_collection(milvus_uri: str, tmp_path: Path, contract_corpus: Path,
                                          shared_embedder: Any) -> None:
    """A `semsearch serve` process and an app in this process, each with its own local folder: what one
    writes the other finds, what the other deletes is gone from both."""
    from fastapi.testclient import TestClient

    from api.server import create_app
    from index.milvus_index import MilvusIndex
    from search.engine import Engine

    collection = f"serve_{uuid.uuid4().hex[:10]}"
    MilvusIndex(milvus_uri, collection, root=tmp_path / "seed").builder(embedder=shared_embedder) \
        .index_paths([contract_corpus])
    port = free_port()
    proc = _serve(port, milvus_uri, collection, tmp_path / "local0")
    engine = Engine(MilvusIndex(milvus_uri, collection, root=tmp_path / "local1"))
    engine._embedder = shared_embedder
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        with httpx.Client(base_url=url, timeout=60) as one, \
                TestClient(create_app(engine=engine), base_url="http://localhost",
                           client=("127.0.0.1", 50000)) as other:  # writes are taken from loopback
            doc = {"doc_id": "shared-1", "title": "冰川", "text": "青藏高原冰川面积三十年减少了百分之十五。"}
            query = "青藏高原冰川减少了多少"
            _wait_job(one, one.post("/documents", json={"documents": [doc]}))
            for client in (one, other):
                hits = client.get("/search", params={"q": query, "k": 3}).json()["results"]
                assert hits[0]["doc_id"] == "shared-1"
            _wait_job(other, other.delete("/documents/shared-1"))
            for client in (one, other):
                hits = client.get("/search", params={"q": query, "k": 10}).json()["results"]
                assert all(h["doc_id"] != "shared-1" for h in hits)
                assert client.get("/documents/shared-1").status_code == 404
    finally:
        stop(proc, grace=15)


def test_a_collection_made_before_sentence_vectors_keeps_taking_writes(
    milvus_uri: str, tmp_path: Path, contract_corpus: Path, shared_embedder: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A collection of the schema before sentence vectors (no `sentences` field, its manifest without them)
    is written and searched as before by a process that makes them by default."""
    from pymilvus.orm.schema import CollectionSchema

    from index.config import IndexSettings
    from index.documents import Document
    from index.milvus_index import MilvusIndex
    from index.stores.milvus_store import SENTENCES_FIELD, has_sentences_field
    from search.engine import Engine

    location = MilvusIndex(milvus_uri, f"old_{uuid.uuid4().hex[:10]}", root=tmp_path / "local")
    add_field = CollectionSchema.add_field

    def old_schema(self: Any, name: str, *args: Any, **options: Any) -> Any:  # every field but the new one
        return self if name == SENTENCES_FIELD else add_field(self, name, *args, **options)

    with monkeypatch.context() as patch:
        patch.setattr(CollectionSchema, "add_field", old_schema)
        settings = IndexSettings.from_env({})
        settings.sentence_vectors = False
        location.builder(settings, embedder=shared_embedder).index_paths([contract_corpus])
    assert not has_sentences_field(location.client, location.collection)

    engine = Engine(location)
    engine._embedder = shared_embedder
    doc = Document.from_paragraphs("api-old", ["冰川融化加快。湖泊面积随之扩大。"], title="湖泊")
    assert engine.add_documents([doc]).added == 1  # default settings: sentence vectors on
    assert engine.snapshot().sentences is None and engine.info()["sentences"] == 0
    top = engine.search("湖泊面积扩大", k=1).results[0]
    assert top.doc_id == "api-old" and top.sentence_score is None
    again = location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    assert not again.changed


def test_two_writers_with_their_own_folders_do_not_write_one_collection_at_once(
    milvus_uri: str, tmp_path: Path, shared_embedder: Any
) -> None:
    """A server's folder and a cron job's fallback `./.index` are two folders, one collection: the second
    writer is refused while the first writes (each one's recovery would delete the other's rows)."""
    from index.documents import Document
    from index.generations import IndexLocked
    from index.milvus_index import MilvusIndex
    from search.engine import Engine

    collection = f"two_{uuid.uuid4().hex[:10]}"
    first = MilvusIndex(milvus_uri, collection, root=tmp_path / "server")
    second = MilvusIndex(milvus_uri.replace("127.0.0.1", "localhost"), collection, root=tmp_path / "cron")
    doc = Document.from_paragraphs("one", ["冰川融化加快。湖泊面积随之扩大。"], title="湖泊")
    first.builder(embedder=shared_embedder).upsert([doc])
    writing = first.builder(embedder=shared_embedder)
    with writing._write_lock():
        other = Document.from_paragraphs("two", ["草原退化趋缓。牧民收入增加。"], title="草原")
        with pytest.raises(IndexLocked, match=f"collection {collection} is locked by PID {os.getpid()}"):
            second.builder(embedder=shared_embedder).upsert([other])
    second.builder(embedder=shared_embedder).upsert([other])
    assert {d["doc_id"] for d in Engine(first).documents(limit=10)["documents"]} == {"one", "two"}


def test_a_restarted_milvus_is_searched_without_loading_by_hand(
    tmp_path: Path, contract_corpus: Path, shared_embedder: Any
) -> None:
    """milvus-lite restarts with every collection released; the next command loads them itself."""
    from index.errors import classify
    from index.milvus_index import MilvusIndex
    from search.engine import Engine

    data = tmp_path / "milvus" / "data"
    data.parent.mkdir()
    proc, uri = start_milvus(data)
    try:
        MilvusIndex(uri, "restarted", root=tmp_path / "local").builder(embedder=shared_embedder).index_paths(
            [contract_corpus])
    finally:
        stop(proc)
    proc, uri = start_milvus(data)
    try:
        engine = Engine(MilvusIndex(uri, "restarted", root=tmp_path / "local"))
        engine._embedder = shared_embedder
        assert engine.search("湖泊", k=3).results
    finally:
        stop(proc)
    # Gone in the middle of a process's life: one line that says what to do, not a gRPC traceback.
    with pytest.raises(Exception) as failed:
        engine.search("草原", k=3)
    info = classify(failed.value)
    assert info is not None and info.status == 503 and "run the same command again" in info.message


def _counted(location: Any, terms: list[str]) -> list[int]:
    """Each term's passages at the published generation, counted here from every visible `words` field."""
    from collections import Counter

    from index.stores.milvus_store import MilvusView, query_all

    view = MilvusView(location.client, location.collection, location.state())
    held: Counter[str] = Counter()
    for row in query_all(location.client, location.collection, view.passage_expr, ["words"]):
        held.update(set(row["words"].split()))
    return [held[t] for t in terms]


def _terms_of(location: Any, doc_ids: list[str]) -> list[str]:
    from index.stores.milvus_store import query_in

    rows = query_in(location.client, location.collection, "doc_id", doc_ids, "born >= 0", ["words"])
    return sorted({w for r in rows for w in r["words"].split()})


def _read_df(location: Any, terms: list[str]) -> list[int]:
    """What a reader of the published generation takes as each term's document frequency."""
    from index.stores.milvus_store import MilvusView

    view = MilvusView(location.client, location.collection, location.state())
    return [int(d) for d in view.document_frequencies(terms)]


def test_word_rarity_follows_every_write_and_an_older_index_takes_it_on_its_next_run(
    milvus_uri: str, tmp_path: Path, contract_corpus: Path, shared_embedder: Any
) -> None:
    """The idf of the hybrid ranking is read from the `__terms` table by key: after adding, updating
    and deleting documents it is what counting each term's passages gives. An index made before the table
    gets it from its next `semsearch index` run, even one that changes no document."""
    from index.documents import Document
    from index.milvus_index import MilvusIndex
    from index.stores.milvus_store import STATE_SUFFIX, TERMS_SUFFIX
    from search.engine import Engine

    location = MilvusIndex(milvus_uri, f"df_{uuid.uuid4().hex[:10]}", root=tmp_path / "local")
    location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    engine = Engine(location)
    engine._embedder = shared_embedder
    glacier = ["青藏高原冰川面积三十年减少了百分之十五。", "冰川融化加快，湖泊面积随之扩大。"]
    engine.add_documents([Document.from_paragraphs("api-1", glacier, title="冰川")])
    engine.add_documents([Document.from_paragraphs("api-2", glacier[:1], title="冰川")])
    terms = sorted(set(_terms_of(location, ["policy-1", "market-1", "api-1"])))
    assert len(terms) > 40
    assert _read_df(location, terms) == _counted(location, terms)
    assert _read_df(location, ["冰川"]) == [2]

    engine.add_documents([Document.from_paragraphs("api-1", ["冰川面积减少了百分之二十。"], title="冰川")])
    engine.delete_documents(["api-2"])
    assert _read_df(location, terms) == _counted(location, terms)
    assert _read_df(location, ["冰川", "湖泊", "没有的词"]) == [1, 0, 0]
    top = engine.search("冰川面积减少了多少", k=1).results[0]
    assert top.doc_id == "api-1" and "百分之二十" in top.text

    # The state row has the keys it had before the table: a semsearch that predates it still reads it.
    row = location.client.query(location.collection + STATE_SUFFIX, filter='key == "state"',
                                output_fields=["state"])[0]
    assert set(json.loads(row["state"])) == {"uid", "generation", "next_id", "replaced_passages",
                                             "replaced_docs", "manifest"}

    def as_made_before_the_table(drop: bool = True) -> None:
        client, name = location.client, location.collection
        if drop:
            client.drop_collection(name + TERMS_SUFFIX)
        state = location.state()
        del state.manifest.extra["store"]["terms_from"]
        client.upsert(name + STATE_SUFFIX, [state.to_row()])

    as_made_before_the_table()
    older = Engine(location)
    older._embedder = shared_embedder
    assert older.search("冰川面积减少了多少", k=1).results[0].passage_id == top.passage_id
    before = location.state().generation
    rerun = location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    assert not rerun.changed and any("__terms" in line for line in rerun.repaired)
    state = location.state()
    assert state.generation == before + 1 and state.terms_from == state.generation
    assert _read_df(location, terms) == _counted(location, terms)

    # Written last by a semsearch that keeps no table, so the counts there are stale: the next write
    # counts afresh (国务院 stood only in policy-1, now deleted).
    engine.delete_documents(["policy-1"])
    stale = {"term": "g:国务", "born": 1, "counts": "[[1, 7]]", "pad": [1.0, 0.0]}
    location.client.upsert(location.collection + TERMS_SUFFIX, [stale])
    as_made_before_the_table(drop=False)
    older.add_documents([Document.from_paragraphs("api-3", glacier[1:], title="湖泊")])
    assert location.state().terms_from == location.state().generation
    assert _read_df(location, terms) == _counted(location, terms)
    assert _read_df(location, ["冰川", "湖泊", "g:国务"]) == [2, 1, 0]  # 国务院: policy-1's alone
    restored = location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    assert restored.added == 1  # policy-1, from its file
    assert _read_df(location, ["g:国务"]) == _counted(location, ["g:国务"]) == [1]
    published = location.state().generation
    again = location.builder(embedder=shared_embedder).index_paths([contract_corpus])
    assert not again.changed and location.state().generation == published  # nothing left to write
