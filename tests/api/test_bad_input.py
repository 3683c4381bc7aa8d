"""Every kind of bad input gets the one error shape with a 4xx, never a 500, against a live server.

`CASES` is also the table of docs/reliability.md: `bench/fuzz.py` runs `run_cases` against a server and
writes the (input kind, status) rows. Besides the table: an upload with a bad line indexes nothing of
that upload, nothing in a request reaches a file outside the uploads and the index folder, and the CLI
says the same things in one line without a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.api.conftest import ROOT, LiveServer

JSON = {"content-type": "application/json"}
MAX_BODY = 10 * 1024 * 1024
ZQSB = "000_ad61b687c275495d.txt"


@dataclass(frozen=True)
class Case:
    """One bad request: what a person would call it, the request, and the answer it must get."""

    kind: str
    method: str
    path: str
    request: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)
    status: int = 400
    code: str | None = "bad_request"
    mentions: str | None = None  # the message must say this (a line number, a file name …)

    def kwargs(self) -> dict[str, Any]:
        return self.request() if callable(self.request) else dict(self.request)


def _too_big_upload() -> dict[str, Any]:
    return {"files": {"file": ("big.txt", b"a" * (MAX_BODY + 1), "text/plain")}}


def _too_big_streamed() -> dict[str, Any]:
    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(11):
            yield b"[" * (1024 * 1024)

    return {"content": chunks(), "headers": JSON}


BAD_JSONL = ('{"doc_id": "jsonl/ok-1", "text": "第一条记录：正常的新闻正文。"}\n'
             '{"doc_id": "jsonl/ok-2", "text": \n')
LONG = "长" * 1001

CASES: list[Case] = [
    # queries
    Case("empty query", "GET", "/search", {"params": {"q": ""}}),
    Case("whitespace-only query", "GET", "/search", {"params": {"q": " \u3000\t "}}),
    Case("missing query", "GET", "/search"),
    Case("punctuation-only query", "GET", "/search", {"params": {"q": "？？"}}, mentions="no words"),
    Case("query over 1,000 characters", "GET", "/search", {"params": {"q": LONG}}, mentions="1000"),
    Case("question over 1,000 characters (/ask)", "POST", "/ask", {"json": {"question": LONG}}),
    Case("empty question (/ask)", "POST", "/ask", {"json": {"question": "  "}}),
    Case("empty text (/similar)", "POST", "/similar", {"json": {"text": ""}}),
    Case("text over 1,000 characters (/similar)", "POST", "/similar", {"json": {"texts": ["创新", LONG]}}),
    Case("lone surrogate in JSON text (/similar)", "POST", "/similar",
         {"content": b'{"text": "\\ud800abc"}', "headers": JSON}),
    Case("lone surrogate in a filter (/ask)", "POST", "/ask",
         {"content": b'{"question": "x", "filters": {"source": ["\\udfff"]}}', "headers": JSON}),
    # k, offset, paging
    Case("k = 0", "GET", "/search", {"params": {"q": "创新", "k": 0}}),
    Case("k = 101", "GET", "/search", {"params": {"q": "创新", "k": 101}}),
    Case("k not a number", "GET", "/search", {"params": {"q": "创新", "k": "many"}}),
    Case("k = 0 (/similar)", "POST", "/similar", {"json": {"text": "创新", "k": 0}}),
    Case("k = 1000 (/ask)", "POST", "/ask", {"json": {"question": "创新", "k": 1000}}),
    Case("negative offset", "GET", "/search", {"params": {"q": "创新", "offset": -1}}),
    Case("offset past the result window", "GET", "/search", {"params": {"q": "创新", "offset": 10**12}},
         mentions="filters"),
    Case("list limit over 500", "GET", "/documents", {"params": {"limit": 501}}),
    Case("list offset past SQLite's integers", "GET", "/documents", {"params": {"offset": 10**20}}),
    Case("neighbours over 20", "GET", "/passages/1", {"params": {"neighbours": 21}}),
    Case("wait over 300 s", "POST", "/documents", {"json": {"documents": [{"text": "正文"}]},
                                                    "params": {"wait": 301}}),
    # modes
    Case("unknown search mode", "GET", "/search", {"params": {"q": "创新", "mode": "fuzzy"}},
         mentions="fuzzy"),
    Case("unknown answer mode", "POST", "/ask", {"json": {"question": "创新", "mode": "poetry"}}),
    # filters and dates
    Case("impossible date", "GET", "/search", {"params": {"q": "创新", "date_from": "2021-13-40"}}),
    Case("date in words", "GET", "/search", {"params": {"q": "创新", "date_to": "yesterday"}}),
    Case("dates the wrong way round", "GET", "/search",
         {"params": {"q": "创新", "date_from": "2022", "date_to": "2021-06"}}, mentions="swap"),
    Case("dates the wrong way round (/ask)", "POST", "/ask",
         {"json": {"question": "创新", "filters": {"date_from": "2022-01-01", "date_to": "2021-12-31"}}}),
    Case("31 February (/similar)", "POST", "/similar", {"json": {"text": "创新", "date_from": "2021-02-31"}}),
    Case("filters not an object (/ask)", "POST", "/ask", {"json": {"question": "创新", "filters": "新华社"}}),
    Case("filter value a number (/ask)", "POST", "/ask",
         {"json": {"question": "创新", "filters": {"source": 5}}}),
    Case("filter date a number (/ask)", "POST", "/ask",
         {"json": {"question": "创新", "filters": {"date_from": 20210101}}}),
    Case("doc_id filter a number (/similar)", "POST", "/similar", {"json": {"text": "创新", "doc_id": 5}}),
    Case("empty doc_id filter", "GET", "/search", {"params": {"q": "创新", "doc_id": ""}}, mentions="empty"),
    Case("white-space source filter", "GET", "/search", {"params": {"q": "创新", "source": "  "}},
         mentions="empty"),
    Case("empty doc_id filters (/similar)", "POST", "/similar",
         {"json": {"text": "创新", "doc_id": ["", ""]}}),
    Case("empty doc_id filter (/ask)", "POST", "/ask",
         {"json": {"question": "创新", "filters": {"doc_id": ""}}}),
    Case("k true (/similar)", "POST", "/similar", {"json": {"text": "创新", "k": True}}),
    Case("k a string (/ask)", "POST", "/ask", {"json": {"question": "创新", "k": "3"}}),
    Case("passage_id true (/similar)", "POST", "/similar", {"json": {"passage_id": True}}),
    Case("stream a string (/ask)", "POST", "/ask", {"json": {"question": "创新", "stream": "yes"}}),
    Case("a document field that does not exist", "POST", "/documents",
         {"json": {"documents": [{"doc_id": "t", "text": "正文", "titel": "标题"}]}}, mentions="titel"),
    Case("a request field that does not exist (/documents)", "POST", "/documents",
         {"json": {"documents": [{"doc_id": "t", "text": "正文"}], "wait": 3}}, mentions="wait"),
    Case("document text of control characters only", "POST", "/documents",
         {"json": {"documents": [{"doc_id": "t-ctrl", "text": "\u0000\u0001\u0002"}]}}, status=422,
         code="unreadable_document"),
    Case("text and passage_id both (/similar)", "POST", "/similar", {"json": {"text": "a", "passage_id": 1}}),
    # unknown ids
    Case("unknown passage id", "GET", "/passages/999999999", status=404, code="not_found"),
    Case("passage id past SQLite's integers", "GET", f"/passages/{2**63}"),
    Case("passage id not a number", "GET", "/passages/abc"),
    Case("unknown passage id (/similar)", "POST", "/similar", {"json": {"passage_id": 999999999}},
         status=404, code="not_found"),
    Case("passage id past SQLite's integers (/similar)", "POST", "/similar", {"json": {"passage_id": 2**70}}),
    Case("unknown document id", "GET", "/documents/no/such/doc.txt", status=404, code="not_found"),
    Case("delete of an unknown document", "DELETE", "/documents/no/such/doc.txt", status=404,
         code="not_found"),
    Case("unknown job id", "GET", "/jobs/nope", status=404, code="not_found"),
    Case("unknown route", "GET", "/no-such-route", status=404, code="not_found"),
    Case("wrong method", "PUT", "/search", status=405, code="method_not_allowed"),
    # bodies
    Case("malformed JSON (/similar)", "POST", "/similar", {"content": b"{not json", "headers": JSON},
         status=422, code="malformed_json"),
    Case("malformed JSON (/documents)", "POST", "/documents",
         {"content": b'{"documents": [', "headers": JSON}, status=422, code="malformed_json"),
    Case("JSON nested 100,000 deep (/documents)", "POST", "/documents",
         {"content": b'{"documents":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "headers": JSON}),
    Case("JSON array instead of object (/ask)", "POST", "/ask", {"json": ["question"]}),
    Case("empty document list", "POST", "/documents", {"json": {"documents": []}}),
    Case("document without text", "POST", "/documents", {"json": {"documents": [{"doc_id": "x"}]}}),
    Case("document with an unreadable date", "POST", "/documents",
         {"json": {"documents": [{"text": "正文", "date": "明天"}]}}, status=422, code="unreadable_document"),
    Case("same doc_id twice in one request", "POST", "/documents",
         {"json": {"documents": [{"doc_id": "d", "text": "一"}, {"doc_id": "d", "text": "二"}]}},
         status=422, code="unreadable_document", mentions="records[1]"),
    Case("body of another type", "POST", "/documents",
         {"content": b"hello", "headers": {"content-type": "text/plain"}}, status=415,
         code="unsupported_media_type"),
    # uploads
    Case("JSONL upload with a bad line", "POST", "/documents",
         {"files": {"file": ("batch.jsonl", BAD_JSONL.encode(), "application/x-ndjson")}},
         status=422, code="unreadable_document", mentions="line 2 of batch.jsonl"),
    Case("binary file upload", "POST", "/documents",
         {"files": {"file": ("scan.txt", bytes(range(256)) * 64, "text/plain")}}, status=422,
         code="unreadable_document", mentions="scan.txt"),
    Case("invalid UTF-16 file upload", "POST", "/documents",  # UTF-16 with its byte-order mark is read
         {"files": {"file": ("utf16.txt", "新华社北京电".encode("utf-16") + b"\x00\xd8", "text/plain")}},
         status=422, code="unreadable_document", mentions="utf16.txt"),
    Case("image upload", "POST", "/documents",
         {"files": {"file": ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "image/png")}},
         status=422, code="unreadable_document", mentions="photo.png"),
    Case("unsupported file type", "POST", "/documents", {"files": {"file": ("run.exe", b"MZ hello")}},
         status=422, code="unreadable_document", mentions="run.exe"),
    Case("empty file", "POST", "/documents", {"files": {"file": ("empty.txt", b"")}}, status=422,
         code="unreadable_document", mentions="empty.txt"),
    Case("upload without a file field", "POST", "/documents", {"files": {"other": (None, "no file")}},
         status=422, code="unreadable_upload"),
    Case("multipart body cut short", "POST", "/documents",
         {"content": b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nabc',
          "headers": {"content-type": "multipart/form-data; boundary=xyz"}},
         status=422, code="unreadable_upload"),
    Case("101 files in one upload", "POST", "/documents",
         lambda: {"files": [("file", (f"f{i}.txt", b"hi")) for i in range(101)]}, status=422,
         code="unreadable_upload"),
    Case("upload over the size limit", "POST", "/documents", _too_big_upload, status=413, code="too_large"),
    Case("streamed body over the size limit", "POST", "/documents", _too_big_streamed, status=413,
         code="too_large"),
]


def check(response: httpx.Response, case: Case) -> str | None:
    """None when the answer is right, else what is wrong with it."""
    if response.status_code != case.status:
        return f"status {response.status_code}, wanted {case.status}: {response.text[:300]}"
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:300]}"
    if set(body) != {"error"} or set(body["error"]) != {"code", "message"}:
        return f"not the error shape: {body}"
    if case.code is not None and body["error"]["code"] != case.code:
        return f"code {body['error']['code']!r}, wanted {case.code!r}"
    message = body["error"]["message"]
    if not message or "Traceback" in response.text:
        return f"bad message: {message!r}"
    if case.mentions is not None and case.mentions not in message:
        return f"the message does not mention {case.mentions!r}: {message!r}"
    return None


def run_cases(base_url: str, cases: list[Case] = CASES, key: str | None = None) -> list[dict[str, Any]]:
    """Send every case (each on a fresh connection: a 413 closes its connection); one row per case.

    `key`: the server's API key, sent with every case (a server with a key answers writes without it 401).
    """
    rows = []
    for case in cases:
        with httpx.Client(base_url=base_url, timeout=120,
                          headers={"Authorization": f"Bearer {key}"} if key else None) as client:
            try:
                response = client.request(case.method, case.path, **case.kwargs())
                problem = check(response, case)
                status: int | str = response.status_code
            except httpx.HTTPError as exc:
                problem, status = f"{type(exc).__name__}: {exc}", "no answer"
        rows.append({"kind": case.kind, "request": f"{case.method} {case.path}", "expected": case.status,
                     "status": status, "ok": problem is None, "problem": problem})
    return rows


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input_gets_a_4xx_in_the_error_shape(server: LiveServer, case: Case) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        response = client.request(case.method, case.path, **case.kwargs())
    problem = check(response, case)
    assert problem is None, f"{case.kind}: {problem}"


def test_a_client_hanging_up_mid_body_is_no_server_error(server: LiveServer) -> None:
    """A client that sends part of a body and closes the socket: no traceback in the log and no 500 in
    /metrics (an alert on server errors would fire for every flaky client)."""
    import socket
    import time
    from urllib.parse import urlparse

    where = urlparse(server.url)
    before = server.log.read_text(errors="replace")
    with socket.create_connection((where.hostname, where.port)) as conn:
        conn.sendall(b"POST /documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"documents\": [")
        time.sleep(0.5)
    time.sleep(1.0)
    logged = server.log.read_text(errors="replace")[len(before):]
    assert "Traceback" not in logged and "unexpected error" not in logged, logged
    with server.client() as client:
        metrics = client.get("/metrics").text
        assert client.get("/health").status_code == 200
    errors = [line for line in metrics.splitlines() if 'route="/documents"' in line and '"500"' in line]
    assert not errors, errors


def test_server_survived_and_logged_no_5xx(server: LiveServer, client: httpx.Client) -> None:
    """After all of the above the server answers, and its log has no 500 and no traceback."""
    assert client.get("/health").status_code == 200
    log = server.log.read_text(errors="replace")
    assert " 500 " not in log and "Traceback" not in log, server.log_tail(60)


# --- nothing of a bad upload is indexed ----------------------------------------------------------------
def test_a_bad_line_keeps_the_whole_upload_out(client: httpx.Client) -> None:
    before = client.get("/health").json()
    response = client.post("/documents", files={"file": ("batch.jsonl", BAD_JSONL.encode())},
                           params={"wait": 30})
    assert response.status_code == 422 and "line 2" in response.json()["error"]["message"]
    bad_second = {"documents": [{"doc_id": "json/ok", "text": "正常正文。"}, {"doc_id": "json/bad"}]}
    response = client.post("/documents", json=bad_second, params={"wait": 30})
    assert response.status_code == 400 and "documents.1" in response.json()["error"]["message"]
    after = client.get("/health").json()
    assert after["generation"] == before["generation"] and after["documents"] == before["documents"]
    for doc_id in ("jsonl/ok-1", "json/ok"):
        assert client.get(f"/documents/{doc_id}").status_code == 404


# --- no path escapes -----------------------------------------------------------------------------------
def _files_outside(root: Path, inside: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and inside not in p.parents}


def test_no_request_reads_or_writes_files_outside(server: LiveServer, client: httpx.Client,
                                                  tmp_path: Path) -> None:
    """Upload names with ../ or absolute paths and doc ids with .. are only keys: no file is opened or
    made for them; the static route serves api/static and nothing else."""
    marker = f"escape-{uuid.uuid4().hex[:8]}"
    folder = server.index.parent  # the test's own folder: the index, the server log, nothing else
    outside_before = _files_outside(folder, server.index)
    names = [f"../../{marker}-a.txt", f"/tmp/{marker}-b.txt", f"..\\..\\{marker}-c.txt",
             f"{tmp_path}/{marker}-d.txt"]
    uploaded = []
    for name in names:
        response = client.post("/documents", files={"file": (name, "上传文件的正文。".encode())},
                               params={"wait": 60})
        assert response.status_code == 200, response.text
        doc_id = response.json()["documents"][0]
        assert ".." not in doc_id.split("/") and not doc_id.startswith("/"), doc_id
        uploaded.append(doc_id)
    with_path = {"documents": [{"doc_id": "p", "text": "正文。", "path": "/etc/passwd"}]}
    refused = client.post("/documents", json=with_path, params={"wait": 60})
    assert refused.status_code == 400 and "path" in refused.json()["error"]["message"]  # no field of ours
    records = {"documents": [{"doc_id": f"../../{marker}-e.txt", "text": "正文。"},
                             {"doc_id": "/etc/passwd", "text": "不是口令文件。"}]}
    assert client.post("/documents", json=records, params={"wait": 60}).json()["state"] == "done"
    doc = client.get("/documents/%2Fetc%2Fpasswd")
    assert doc.status_code == 200 and doc.json()["text"] == "不是口令文件。" and "root:" not in doc.text
    dotted = client.get(f"/documents/..%2F..%2F{marker}-e.txt").json()
    assert dotted["doc_id"] == f"../../{marker}-e.txt" and dotted["text"] == "正文。"

    # nothing was written outside the index folder, and inside it no file is named after a document
    assert _files_outside(folder, server.index) == outside_before
    for base in (Path("/tmp"), tmp_path, ROOT, Path("/")):
        assert not list(base.glob(f"{marker}*")), base
    assert not [p for p in server.index.rglob("*") if marker in p.name or p.name == "passwd"]

    # the static route: api/static only
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                 "/static/%2e%2e%2f%2e%2e%2fpyproject.toml", "/static//etc/passwd", "/static/..%5cserver.py"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "create_app" not in response.text and "[project]" not in response.text, path
    for doc_id in [*uploaded, f"../../{marker}-e.txt", "/etc/passwd"]:
        done = client.delete(f"/documents/{quote(doc_id, safe='')}", params={"wait": 60})
        assert done.json()["state"] == "done", done.text


# --- the CLI says the same without a traceback --------------------------------------------------------
def semsearch(*args: str | bytes, index: Path | None = None, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    environ = dict(os.environ, **(env or {}))
    for name in ("SEMSEARCH_API_KEY", "SEMSEARCH_API_KEY_FILE"):
        environ.pop(name, None)
    extra = ["--index", str(index)] if index is not None else []
    command = [sys.executable, "-m", "api.cli", *args[:1], *extra, *args[1:]]
    return subprocess.run(command, capture_output=True, env=environ, timeout=300, cwd=ROOT)


CLI_CASES = [
    ("empty query", ["search", ""], "empty"),
    ("punctuation-only question", ["ask", "？"], "no words"),
    ("query over 1,000 characters", ["search", LONG], "1000"),
    ("k = 0", ["search", "创新", "--k", "0"], "k must be"),
    ("impossible date", ["search", "创新", "--date-from", "2021-13-40"], "date_from"),
    ("unknown passage id", ["similar", "--passage", "999999999"], "no passage"),
    ("passage id past SQLite's integers", ["similar", "--passage", str(2**63)], "passage"),
    ("query not UTF-8", ["search", b"\xff\xfe"], "UTF-8"),
]


@pytest.mark.parametrize(("kind", "args", "says"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line(seed_index: Path, kind: str, args: list[str | bytes], says: str) -> None:
    out = semsearch(*args, index=seed_index)
    stderr = out.stderr.decode("utf-8", "replace")
    assert out.returncode in (1, 2), (kind, out.returncode, stderr)
    assert "Traceback" not in stderr and says in stderr, (kind, stderr)
    last = stderr.strip().splitlines()[-1]  # argparse prints its usage first
    assert last.startswith("semsearch") and "error:" in last and says in last, stderr


def test_cli_index_names_the_bad_line_and_indexes_the_other_lines(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "batch.jsonl").write_text(BAD_JSONL, encoding="utf-8")
    (corpus / "good.txt").write_text("成都超算中心为西部地区提供算力支撑。", encoding="utf-8")
    out = semsearch("index", str(corpus), "--json", index=tmp_path / "idx")
    assert out.returncode == 3, out.stderr  # published, but not clean
    summary = json.loads(out.stdout)
    assert summary["documents"] == 2, summary  # good.txt and the good line of batch.jsonl
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert "line 2 of batch.jsonl" in reasons["batch.jsonl"], reasons
