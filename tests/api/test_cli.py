"""The `semsearch` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RESULT_KEYS = {
    "rank",
    "score",
    "passage_id",
    "doc_id",
    "title",
    "source",
    "date",
    "paragraph",
    "start",
    "end",
    "text",
}


def semsearch(*args: str, index: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if index is not None:
        env["SEMSEARCH_INDEX"] = str(index)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_search_json_lists_cited_passages(seed_index: Path) -> None:
    out = semsearch("search", "新型智能算力供应中心", "--json", "--k", "3", index=seed_index)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert {"query", "mode", "total", "offset", "generation"} <= set(body), "the body GET /search answers"
    assert body["query"] == "新型智能算力供应中心" and body["mode"] == "hybrid" and body["total"] >= 3
    results = body["results"]
    assert len(results) == 3
    assert set(results[0]) >= RESULT_KEYS
    assert any("新型智能算力供应中心" in r["text"] for r in results)


def test_similar_and_info(seed_index: Path) -> None:
    out = semsearch("similar", "--text", "成渝地区双城经济圈", "--json", "--k", "2", index=seed_index)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["results"]) == 2
    info = semsearch("info", "--json", index=seed_index)
    data = json.loads(info.stdout)
    assert data["documents"] == 2 and data["passages"] > 10 and data["model"] == "multilingual-e5-small"


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    out = semsearch("search", "创新", index=tmp_path / "nowhere")
    assert out.returncode == 1
    assert "no index at" in out.stderr and "Traceback" not in out.stderr
    out = semsearch("index", str(tmp_path / "missing-folder"), index=tmp_path / "idx")
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_index_skips_unreadable_files_and_says_why(tmp_path: Path) -> None:
    """Skipped files are listed; one that could not be read (binary) makes the exit status 3, "published,
    but not clean"; an empty file is listed but is not a failure. --strict changes nothing instead."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "good.txt").write_text("成都超算中心为西部地区提供算力支撑。", encoding="utf-8")
    (corpus / "empty.txt").write_text("   \n", encoding="utf-8")
    out = semsearch("index", str(corpus), "--json", index=tmp_path / "idx")
    assert out.returncode == 0, out.stderr
    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 4)
    out = semsearch("index", str(corpus), "--strict", index=tmp_path / "idx")
    assert out.returncode == 1 and "nothing was changed (--strict)" in out.stderr and "blob.txt" in out.stderr
    out = semsearch("index", str(corpus), "--json", index=tmp_path / "idx")
    assert out.returncode == 3, out.stderr
    summary = json.loads(out.stdout)
    assert summary["documents"] == 1 and summary["clean"] is False
    reasons = {Path(s["path"]).name: (s["reason"], s["failed"]) for s in summary["skipped"]}
    assert reasons == {"empty.txt": ("empty", False), "blob.txt": ("binary file", True)}
    out = semsearch("index", str(corpus), index=tmp_path / "idx")
    assert out.returncode == 3 and "some files could not be read: fix them" in out.stdout
