"""Every file of a generation and of the embedding cache, truncated, overwritten with garbage or removed:
the server answers 200 or a 503 naming the file (never a 500), the CLI prints one line naming it (never a
traceback), and `semsearch index` brings the index back to searchable."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.cli import main
from api.server import create_app
from index.builder import IndexBuilder
from search.engine import Engine

CORPUS = {
    "a.txt": "成都超算中心自2020年投运以来，为西部地区提供了强大的算力支撑。",
    "b.txt": "长三角地区研发投入强度的目标是到2025年达到百分之三以上。",
}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    # The same size: only checksums (or the store's own parser) can tell.
    path.write_bytes(random.Random(path.name).randbytes(path.stat().st_size))


ROUTES = ("/health", "/search?q=超算中心", "/documents", "/documents/a.txt", "/passages/1", "/facets")
DAMAGES = {"truncate": _truncate, "garbage": _garbage, "remove": Path.unlink}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    corpus = tmp_path_factory.mktemp("damage-corpus")
    for name, text in CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    index = tmp_path_factory.mktemp("damage-index") / "index"
    IndexBuilder(index).index_paths([corpus])
    return corpus, index


def _files(index: Path) -> list[str]:
    found = (p.relative_to(index).as_posix() for p in index.rglob("*") if p.is_file())
    return sorted(rel for rel in found if rel != "write.lock")


@pytest.mark.parametrize("how", list(DAMAGES))
def test_every_damaged_file_is_named_and_repaired(
    pristine: tuple[Path, Path], tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, source = pristine
    files = _files(source)
    assert "CURRENT" in files and "embeddings.sqlite" in files and len(files) > 10
    for n, rel in enumerate(files):
        index = tmp_path / str(n)
        shutil.copytree(source, index)
        DAMAGES[how](index / rel)
        in_generation = rel.startswith("generations/") or rel == "CURRENT"

        client = TestClient(create_app(index), base_url="http://localhost")
        for url in ROUTES:
            r = client.get(url)
            assert r.status_code in (200, 503), (rel, url, r.text)
            if r.status_code == 503:
                assert rel in r.json()["error"]["message"], (rel, r.text)
                assert "semsearch index" in r.json()["error"]["message"]
            elif in_generation and how != "garbage":
                pytest.fail(f"{how} {rel}: {url} answered {r.status_code}, not 503")
        capsys.readouterr()

        # `info --verify` reads the checksums: it names every damaged file of a generation, in one line.
        code = main(["info", "--verify", "--index", str(index)])
        out = capsys.readouterr()
        assert "Traceback" not in out.err + out.out
        if in_generation:
            assert code == 1 and rel in out.err, (how, rel, out)
        else:
            assert code == 0, (how, rel, out)

        # The way out the message names: `semsearch index` (a cache only matters when vectors are needed,
        # so it is exercised with --rebuild, which takes every vector from it).
        args = ["index", str(corpus), "--index", str(index), "--quiet"]
        code = main(args + (["--rebuild"] if rel == "embeddings.sqlite" else []))
        out = capsys.readouterr()
        assert code == 0 and "Traceback" not in out.err, (how, rel, out)
        if in_generation:
            assert "repaired" in out.out, (how, rel, out.out)
        if rel == "embeddings.sqlite" and how == "garbage":
            assert "warning: the embedding cache" in out.out
            assert list(index.glob("embeddings.sqlite.corrupt-*"))
        engine = Engine.open(index)
        engine.verify()
        assert engine.info()["documents"] == len(CORPUS), (how, rel)
        top = engine.search("成都超算中心", k=1).results
        assert top and top[0].doc_id == "a.txt", (how, rel)
        assert TestClient(create_app(index), base_url="http://localhost").get("/health").status_code == 200
        shutil.rmtree(index)


def test_a_file_damaged_under_a_running_server_is_a_503(pristine: tuple[Path, Path], tmp_path: Path) -> None:
    """The snapshot was opened (and checked) before the damage: SQLite's errors are still reported as the
    damaged file, not as a 500."""
    index = tmp_path / "index"
    shutil.copytree(pristine[1], index)
    client = TestClient(create_app(index), base_url="http://localhost")
    assert client.get("/search", params={"q": "超算中心"}).status_code == 200
    passages = next(index.glob("generations/*/passages.sqlite"))
    with open(passages, "r+b") as fh:  # in place: the server's open file sees it
        fh.write(random.Random(1).randbytes(passages.stat().st_size))
    for url in ("/documents", "/documents/b.txt", "/facets", "/search?q=研发投入&mode=keyword"):
        r = client.get(url)
        assert r.status_code == 503, (url, r.text)
        assert r.json()["error"]["code"] == "index_damaged"
        assert "passages.sqlite" in r.json()["error"]["message"]
