"""The HTTP API, in process (FastAPI's TestClient) on a copy of the seed index.

How `semsearch serve` starts and stops is tested with a live server elsewhere (test_security.py,
test_failures.py, test_browser.py); what is tested here is the app, so no process is started.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.security import SecuritySettings
from api.server import create_app
from search.engine import Engine
from tests.api.conftest import copy_index, wait_for_job
from tests.conftest import ROOT, needs_chromium, print_to_pdf

ZQSB = "000_ad61b687c275495d.txt"  # 证券时报网
XINHUA = "003_07e0a4d71f185c6b.txt"
JSON = {"content-type": "application/json"}
RESULT_KEYS = {"rank", "score", "passage_id", "doc_id", "title", "source", "date", "categories", "paragraph",
               "start", "end", "text", "highlights", "also_in"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The one error shape, the right status, no stack trace; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert body["error"]["message"] and "Traceback" not in response.text
    return body["error"]["message"]


@dataclass
class InProcessServer:
    """What these tests need of a server: its URL (the TestClient's; port 80) and its index."""

    url: str
    index: Path


URL = "http://localhost:80"  # a port in the URL: the Host and Origin checks compare it


@pytest.fixture(scope="module")
def server(seed_index: Path, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> InProcessServer:
    return InProcessServer(URL, copy_index(seed_index, tmp_path_factory.mktemp("server")))


@pytest.fixture(scope="module")
def client(server: InProcessServer, engine: Engine) -> Iterator[TestClient]:
    own = Engine.open(server.index)
    own._embedder = engine.embedder  # the session's loaded model (the factory shares it anyway)
    # Functional tests send bursts of requests from one client; the rate limit is not what they test.
    app = create_app(engine=own, security=SecuritySettings(rate_limit=0))
    # from a loopback address, as a local user is: without a key, writes are taken from loopback only
    with TestClient(app, base_url=URL, client=("127.0.0.1", 50000)) as c:
        yield c


# --- reading ---------------------------------------------------------------------------------------
def test_health(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["documents"] == 2 and health["passages"] > 10
    assert health["model"] == "multilingual-e5-small" and health["generation"]
    assert "dense" in health["modes"] and isinstance(health["ask"], bool)


def test_search_finds_the_cited_passage(client: httpx.Client) -> None:
    response = client.get("/search", params={"q": "到2025年长三角研发投入强度的目标是多少", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert {"query", "mode", "total", "offset", "generation", "results"} <= set(body)
    assert body["offset"] == 0 and len(body["results"]) == 3
    assert set(body["results"][0]) >= RESULT_KEYS
    hit = next(r for r in body["results"] if "超过3%" in r["text"])
    assert hit["source"] == "证券时报网" and hit["doc_id"] == ZQSB
    doc = client.get(f"/documents/{ZQSB}").json()
    assert doc["text"][hit["start"] : hit["end"]] == hit["text"]


def test_search_pages_and_filters(client: httpx.Client) -> None:
    page = client.get("/search", params={"q": "区域创新中心", "k": 3, "offset": 2}).json()
    assert [r["rank"] for r in page["results"]] == [3, 4, 5] and page["offset"] == 2
    only = client.get("/search", params={"q": "创新", "k": 5, "source": "新华社"}).json()["results"]
    assert only and {r["source"] for r in only} == {"新华社"}
    one_doc = client.get("/search", params={"q": "创新", "k": 5, "doc_id": ZQSB}).json()["results"]
    assert one_doc and {r["doc_id"] for r in one_doc} == {ZQSB}
    window = client.get("/health").json()["max_results"]
    last = client.get("/search", params={"q": "创新", "k": 5, "offset": window - 5})
    assert last.status_code == 200, "the last page /health promises can be read"
    past = client.get("/search", params={"q": "创新", "k": 5, "offset": window - 4})
    assert past.status_code == 400 and str(window) in past.json()["error"]["message"]
    later = client.get("/search", params={"q": "创新", "date_from": "2030-01-01"}).json()
    assert later["results"] == []


def test_facets(client: httpx.Client) -> None:
    facets = client.get("/facets").json()
    assert {"证券时报网", "新华社"} <= {s["value"] for s in facets["sources"]}
    assert "要闻" in {c["value"] for c in facets["categories"]}
    assert facets["dates"]["from"] <= facets["dates"]["to"]


def test_similar_single_and_batch(client: httpx.Client) -> None:
    by_text = client.post("/similar", json={"text": "成渝地区双城经济圈", "k": 3}).json()["results"]
    assert len(by_text) == 3 and any("成渝" in r["text"] for r in by_text)

    top = client.get("/search", params={"q": "成都超算中心", "k": 1}).json()["results"][0]
    like = client.post("/similar", json={"passage_id": top["passage_id"], "k": 4}).json()["results"]
    assert like and all(r["passage_id"] != top["passage_id"] for r in like)

    batch = client.post("/similar", json={"texts": ["超算中心", "大数据产业园"], "k": 3}).json()["results"]
    assert len(batch) == 2 and all(len(lst) == 3 for lst in batch)
    assert any("超算" in r["text"] for r in batch[0])
    assert any("大数据" in r["text"] for r in batch[1])

    filtered = client.post("/similar", json={"text": "创新", "k": 3, "doc_id": XINHUA}).json()["results"]
    assert filtered and {r["doc_id"] for r in filtered} == {XINHUA}


def test_passage_with_neighbours_and_documents(client: httpx.Client) -> None:
    top = client.get("/search", params={"q": "长三角研发投入强度", "k": 1}).json()["results"][0]
    context = client.get(f"/passages/{top['passage_id']}").json()
    assert context["passage"]["text"] == top["text"] and context["document"]["doc_id"] == top["doc_id"]
    assert len(context["before"]) <= 1 and len(context["after"]) <= 1
    assert context["before"] or context["after"]
    wider = client.get(f"/passages/{top['passage_id']}", params={"neighbours": 3}).json()
    assert len(wider["before"]) + len(wider["after"]) > len(context["before"]) + len(context["after"])

    listing = client.get("/documents", params={"limit": 1}).json()
    assert listing["total"] == 2 and len(listing["documents"]) == 1
    assert listing["documents"][0]["passages"] > 0
    rest = client.get("/documents", params={"offset": 1, "limit": 1}).json()["documents"]
    assert rest[0]["doc_id"] != listing["documents"][0]["doc_id"]

    doc = client.get(f"/documents/{ZQSB}").json()
    assert doc["title"] == "多地布局_十四五_区域创新中心建设" and doc["source"] == "证券时报网"
    assert "path" not in doc, "server file paths are not the client's business"
    for start, end in doc["paragraphs"]:
        assert doc["text"][start:end].strip() == doc["text"][start:end]
    assert any(p["passage_id"] == top["passage_id"] for p in doc["passages"])


# --- writing ---------------------------------------------------------------------------------------
NEW_DOC = {
    "doc_id": "api/新闻/yibin.v2.txt",  # slashes and dots, as in real ids
    "title": "宜宾双城建设",
    "text": "宜宾正举全市之力超常规推进大学城、科创城双城建设。\n\n已有十余所高校在宜宾办学。",
    "date": "2022-03-01",
    "source": "测试通讯社",
    "categories": ["教育"],
}


def test_add_then_delete_without_restart(client: httpx.Client) -> None:
    before = client.get("/health").json()["generation"]
    response = client.post("/documents", json={"documents": [NEW_DOC]})
    assert response.status_code == 202
    queued = response.json()
    assert queued["state"] in ("queued", "running", "done") and queued["documents"] == [NEW_DOC["doc_id"]]
    assert response.headers["location"] == f"/jobs/{queued['job']}"
    job = wait_for_job(client, queued["job"])
    assert job["state"] == "done", job
    assert job["summary"]["added"] == 1 and job["progress"] == 1.0

    results = client.get("/search", params={"q": "宜宾大学城科创城建设", "k": 3}).json()
    assert results["generation"] != before
    assert results["results"][0]["doc_id"] == NEW_DOC["doc_id"]
    assert results["results"][0]["source"] == "测试通讯社"
    doc = client.get(f"/documents/{NEW_DOC['doc_id']}").json()
    assert doc["categories"] == ["教育"] and len(doc["paragraphs"]) == 2

    response = client.delete(f"/documents/{NEW_DOC['doc_id']}")
    assert response.status_code == 202
    job = wait_for_job(client, response.json()["job"])
    assert job["state"] == "done" and job["summary"]["deleted"] == 1
    results = client.get("/search", params={"q": "宜宾大学城科创城建设", "k": 10}).json()["results"]
    assert all(r["doc_id"] != NEW_DOC["doc_id"] for r in results)
    assert_error(client.get(f"/documents/{NEW_DOC['doc_id']}"), 404, "not_found")
    assert_error(client.delete(f"/documents/{NEW_DOC['doc_id']}"), 404, "not_found")


def test_upload_a_text_file(client: httpx.Client) -> None:
    text = "雅安数据中心集群\n\n雅安依托丰富的水电资源，建设绿色数据中心集群，服务成渝地区的算力需求。\n"
    files = {"file": ("uploads/yaan.txt", text.encode("utf-8"), "text/plain")}
    response = client.post("/documents", files=files, params={"wait": 60})
    assert response.status_code == 200, response.text  # ?wait: the finished job
    job = response.json()
    assert job["state"] == "done" and job["documents"] == ["uploads/yaan.txt"]
    hit = client.get("/search", params={"q": "雅安绿色数据中心集群", "k": 1}).json()["results"][0]
    assert hit["doc_id"] == "uploads/yaan.txt" and hit["title"] == "雅安数据中心集群"
    done = client.delete("/documents/uploads/yaan.txt", params={"wait": 60})
    assert done.status_code == 200 and done.json()["state"] == "done"


def test_an_upload_does_not_take_the_id_of_a_folders_file(server: InProcessServer,
                                                           client: httpx.Client) -> None:
    """The seed articles are files of an indexed folder: a document sent under one of their ids would
    replace it until the next sync, which would then skip the file. Refused, and nothing changes."""
    path = Engine.open(server.index).document(ZQSB)["path"]
    assert path, "a file of the seed folder"
    before = client.get(f"/documents/{ZQSB}").json()
    files = {"file": (ZQSB, "另一个版本：关于火星探测车的最新进展。".encode(), "text/plain")}
    as_json = {"documents": [{"doc_id": ZQSB, "text": "另一个版本：关于火星探测车的最新进展。"},
                             {"doc_id": "api/fresh.txt", "text": "同一批里的新文档。"}]}
    for sent in ({"files": files}, {"json": as_json}):
        job = client.post("/documents", params={"wait": 60}, **sent).json()
        assert job["state"] == "failed" and job["error"]["code"] == "doc_id_taken", job
        assert ZQSB in job["error"]["message"] and path not in job["error"]["message"]
        assert "another doc_id" in job["error"]["message"], "it says what to do"
    assert client.get(f"/documents/{ZQSB}").json()["text"] == before["text"]
    assert_error(client.get("/documents/api/fresh.txt"), 404, "not_found")  # the batch is refused whole
    assert not client.get("/search", params={"q": "火星探测车", "mode": "keyword"}).json()["results"]


def test_a_foreign_page_cannot_write_and_a_foreign_name_gets_nothing(server: InProcessServer,
                                                                      client: httpx.Client) -> None:
    """Issue 17.1: a form post from any page the operator opens, or a DNS-rebound name, is refused."""
    files = {"file": ("csrf.txt", "外站写入的文档。\n".encode(), "text/plain")}
    foreign = {"origin": "http://evil.example", "sec-fetch-site": "cross-site"}
    assert_error(client.post("/documents", files=files, headers=foreign), 403, "cross_site_write")
    rebound = {"host": "evil.example:" + server.url.rpartition(":")[2]}
    assert_error(client.post("/documents", files=files, headers=rebound), 400, "host_not_allowed")
    assert_error(client.get("/documents", headers=rebound), 400, "host_not_allowed")
    assert_error(client.get(f"/documents/{ZQSB}", headers=rebound), 400, "host_not_allowed")
    assert_error(client.get("/documents/csrf.txt"), 404)  # nothing was written
    # the server's own page: same-origin headers, as a browser sends them; also by the name localhost
    port = server.url.rpartition(":")[2]
    for name in ("127.0.0.1", "localhost"):
        own = {"host": f"{name}:{port}", "origin": f"http://{name}:{port}", "sec-fetch-site": "same-origin"}
        done = client.post("/documents", files=files, headers=own, params={"wait": 60})
        assert done.status_code == 200 and done.json()["state"] == "done", done.text
        gone = client.delete("/documents/csrf.txt", headers=own, params={"wait": 60})
        assert gone.json()["state"] == "done"


def test_without_a_key_a_proxied_write_is_refused(server: InProcessServer, client: httpx.Client) -> None:
    """A reverse proxy on the server's machine connects from 127.0.0.1 too: without a key, a write it
    forwards (any client of the proxy's) was accepted as a local one."""
    import socket

    files = {"file": ("proxied.txt", "经代理写入的文档。\n".encode(), "text/plain")}
    port = server.url.rpartition(":")[2]
    for proxied in ({"x-forwarded-for": "203.0.113.9"}, {"forwarded": "for=203.0.113.9;proto=https"},
                    {"via": "1.1 nginx"}, {"x-real-ip": "203.0.113.9"},
                    {"host": f"{socket.gethostname()}:{port}"}):  # a name the proxy passes on, not loopback
        message = assert_error(client.post("/documents", files=files, headers=proxied), 403, "writes_closed")
        assert "not through a proxy" in message and "SEMSEARCH_API_KEY" in message
        assert_error(client.delete(f"/documents/{ZQSB}", headers=proxied), 403, "writes_closed")
    assert_error(client.get("/documents/proxied.txt"), 404)  # nothing was written
    assert client.get(f"/documents/{ZQSB}").status_code == 200, "nor deleted"
    assert client.get("/search", params={"q": "创新"}, headers={"via": "1.1 nginx"}).status_code == 200


def test_unusable_doc_ids_are_refused_naming_the_rule(client: httpx.Client) -> None:
    """Issue 17.11: an id with a newline could be stored but never read or deleted again."""
    for bad in ("line\nbreak", "tab\there", "nul\x00", "bell\x07", "del\x7f", "sep\u2028"):
        doc = {"documents": [{"doc_id": "fine.txt", "text": "正文。"}, {"doc_id": bad, "text": "正文。"}]}
        message = assert_error(client.post("/documents", json=doc), 422, "invalid_doc_id")
        assert "documents.1.doc_id" in message and "control characters" in message, message
    record = json.dumps({"doc_id": "upload\rid", "text": "上传的正文。"}, ensure_ascii=False)
    message = assert_error(client.post("/documents", files={"file": ("docs.jsonl", record.encode())}), 422,
                           "invalid_doc_id")
    assert "U+000D" in message
    assert_error(client.get("/documents/fine.txt"), 404)  # nothing of a refused request is written
    usable = "政策/第 1 号 (2021).txt"  # spaces, brackets, slashes and Chinese are fine
    ok = client.post("/documents", json={"documents": [{"doc_id": usable, "text": "正文。"}]},
                     params={"wait": 60})
    assert ok.json()["state"] == "done", ok.text
    assert client.get(f"/documents/{usable}").json()["doc_id"] == usable
    assert client.delete(f"/documents/{usable}", params={"wait": 60}).json()["state"] == "done"


def test_head_answers_like_get(client: httpx.Client) -> None:
    """Issue 17.12: uptime probes send HEAD."""
    for path, params in [("/health", {}), ("/search", {"q": "创新"}), ("/documents", {}), ("/", {})]:
        get, head = client.get(path, params=params), client.head(path, params=params)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/search").status_code == 400, "the same checks as GET"
    assert client.head("/similar").status_code == 405


def test_searches_answer_while_a_job_runs(client: httpx.Client) -> None:
    """The writer thread never blocks readers: searches answer from the current generation."""
    docs = [{"doc_id": f"bulk/{i}", "text": f"第{i}号文件：关于推进区域科技创新中心建设的若干措施。" * 6}
            for i in range(24)]
    job = client.post("/documents", json={"documents": docs}).json()
    statuses: list[int] = []
    while client.get(f"/jobs/{job['job']}").json()["state"] in ("queued", "running"):
        statuses.append(client.get("/search", params={"q": "长三角", "k": 3}).status_code)
    assert set(statuses) <= {200}
    assert wait_for_job(client, job["job"])["state"] == "done"
    assert client.get("/health").json()["documents"] == 26
    deleted = [client.delete(f"/documents/bulk/{i}").json()["job"] for i in range(24)]
    assert wait_for_job(client, deleted[-1])["state"] == "done"
    assert client.get("/health").json()["documents"] == 2


def test_jobs_run_one_at_a_time_in_order(client: httpx.Client) -> None:
    """Concurrent uploads are queued, never two writers at once (which the index lock would refuse)."""
    responses: list[httpx.Response] = []

    def upload(i: int) -> None:
        doc = {"doc_id": f"queue/{i}", "text": f"队列测试文档{i}：成都超算中心的第{i}次扩容。"}
        responses.append(client.post("/documents", json={"documents": [doc]}))  # TestClient: thread-safe

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    jobs = [wait_for_job(client, r.json()["job"]) for r in responses]
    assert [j["state"] for j in jobs] == ["done"] * 4, jobs
    runs = sorted((j["started"], j["finished"]) for j in jobs)
    assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:], strict=False)), "jobs overlapped"
    for i in range(4):
        assert client.delete(f"/documents/queue/{i}", params={"wait": 60}).json()["state"] == "done"


# --- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/search", {"params": {"q": ""}}, 400, "bad_request"),
        ("GET", "/search", {"params": {"q": "   "}}, 400, "bad_request"),
        ("GET", "/search", {}, 400, "bad_request"),
        ("GET", "/search", {"params": {"q": "创新", "k": 0}}, 400, "bad_request"),
        ("GET", "/search", {"params": {"q": "创新", "k": "abc"}}, 400, "bad_request"),
        ("GET", "/search", {"params": {"q": "创新", "offset": -1}}, 400, "bad_request"),
        ("GET", "/search", {"params": {"q": "创新", "mode": "fuzzy"}}, 400, "bad_request"),
        ("GET", "/search", {"params": {"q": "创新", "date_from": "2021-13-40"}}, 400, "bad_request"),
        ("GET", "/passages/999999999", {}, 404, "not_found"),
        ("GET", "/passages/abc", {}, 400, "bad_request"),
        ("GET", "/documents/no/such/doc.txt", {}, 404, "not_found"),
        ("DELETE", "/documents/no/such/doc.txt", {}, 404, "not_found"),
        ("GET", "/jobs/nope", {}, 404, "not_found"),
        ("GET", "/no-such-route", {}, 404, "not_found"),
        ("PUT", "/search", {}, 405, "method_not_allowed"),
        ("POST", "/similar", {"content": b"{not json", "headers": JSON}, 422, "malformed_json"),
        ("POST", "/documents", {"content": b'{"documents": [', "headers": JSON}, 422, "malformed_json"),
        ("POST", "/similar", {"json": {}}, 400, "bad_request"),
        ("POST", "/similar", {"json": {"text": "a", "passage_id": 1}}, 400, "bad_request"),
        ("POST", "/similar", {"json": {"text": "创新", "k": "many"}}, 400, "bad_request"),
        ("POST", "/similar", {"json": {"passage_id": 999999999}}, 404, "not_found"),
        ("POST", "/similar", {"json": {"texts": []}}, 400, "bad_request"),
        ("POST", "/documents", {"json": {"documents": []}}, 400, "bad_request"),
        ("POST", "/documents", {"json": {"documents": [{"doc_id": "x"}]}}, 400, "bad_request"),
        ("POST", "/documents", {"json": {"documents": [{"text": "正文", "date": "明天"}]}}, 422,
         "unreadable_document"),
        ("POST", "/documents", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415,
         "unsupported_media_type"),
        ("POST", "/documents", {"files": {"other": (None, "no file here")}}, 422, "unreadable_upload"),
    ],
)
def test_errors_have_one_shape(client: httpx.Client, method: str, path: str, kwargs: dict, status: int,
                               code: str) -> None:
    assert_error(client.request(method, path, **kwargs), status, code)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"question": "成都超算中心周边聚集了多少个科技创新项目？", "docid": "000_ad61b687c275495d.txt"},
         "docid: is not a field"),
        ({"question": "超算", "filters": {"sources": ["新华社"]}}, "filters.sources: is not a field"),
    ],
)
def test_a_misspelt_filter_is_refused_not_ignored(client: httpx.Client, body: dict, named: str) -> None:
    response = client.post("/ask", json=body)
    assert_error(response, 400, "bad_request")
    assert named in response.json()["error"]["message"]


@pytest.mark.parametrize(("path", "params", "named"), [
    ("/search", {"q": "长三角", "docid": "nope"}, "docid: not a parameter of GET /search"),
    ("/search", {"q": "长三角", "date_form": "2030-01-01"}, "date_form: not a parameter"),
    ("/documents", {"size": "1"}, "size: not a parameter of GET /documents (its parameters: offset, limit"),
    ("/jobs/nope", {"wait": "1"}, "wait: not a parameter of GET /jobs/{job_id} (its parameters: none"),
])
def test_a_misspelt_query_parameter_is_refused_not_ignored(client: httpx.Client, path: str, params: dict,
                                                           named: str) -> None:
    response = client.get(path, params=params)
    assert_error(response, 400, "bad_request")
    assert named in response.json()["error"]["message"]
    right = {"docid": "doc_id", "date_form": "date_from", "size": "limit", "wait": None}
    spelt_right = {right.get(k, k): v for k, v in params.items() if right.get(k, k)}
    assert client.get(path, params=spelt_right).status_code == (404 if path == "/jobs/nope" else 200)


@pytest.mark.parametrize("content", [b"", b"[]", b'"question"'])
def test_a_body_that_is_not_a_json_object_is_named(client: httpx.Client, content: bytes) -> None:
    response = client.post("/ask", content=content, headers=JSON)
    assert_error(response, 400, "bad_request")
    assert "a JSON object is required as the body" in response.json()["error"]["message"]


def test_ask_answers_with_exact_citations(client: httpx.Client) -> None:
    response = client.post("/ask", json={"question": "到2025年长三角研发投入强度的目标是多少"})
    assert client.get("/health").json()["ask"] is True
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"question", "answer", "answer_span", "confidence", "citations", "passages"} <= set(body)
    assert body["passages"], "the passages read are returned with or without an answer"
    for citation in body["citations"]:
        doc = client.get(f"/documents/{citation['doc_id']}").json()
        assert doc["text"][citation["start"] : citation["end"]] == citation["text"]
    if body["answer"] is not None and body["answer_span"] is not None:
        start, end = body["answer_span"]
        assert 0 <= start < end <= len(body["answer"])
    assert_error(client.post("/ask", json={}), 400, "bad_request")
    assert_error(client.post("/ask", json={"question": " "}), 400, "bad_request")
    assert_error(client.post("/ask", json={"question": "创新", "mode": "guess"}), 400, "bad_request")


@needs_chromium
def test_upload_a_pdf(client: httpx.Client, tmp_path: Path) -> None:
    page = ('<html><head><meta charset="utf-8"><title>雅安绿色数据中心</title></head><body>'
            "<p>雅安依托丰富的水电资源，建设成渝地区超大规模绿色数据中心，服务西部的算力需求。</p></body></html>")
    pdf = print_to_pdf(page, tmp_path / "yaan.pdf")
    files = {"file": ("reports/yaan.pdf", pdf.read_bytes(), "application/pdf")}
    response = client.post("/documents", files=files, params={"wait": 60})
    assert response.status_code == 200, response.text
    assert response.json()["documents"] == ["reports/yaan.pdf"]
    hit = client.get("/search", params={"q": "雅安超大规模绿色数据中心", "k": 1}).json()["results"][0]
    assert hit["doc_id"] == "reports/yaan.pdf" and hit["title"] == "雅安绿色数据中心"
    assert hit["text"] == "雅安依托丰富的水电资源，建设成渝地区超大规模绿色数据中心，服务西部的算力需求。"
    assert client.delete("/documents/reports/yaan.pdf", params={"wait": 60}).json()["state"] == "done"
    scan = assert_error(client.post("/documents", files={"file": ("scan.pdf", b"%PDF-1.4\n%%EOF\n")}), 422)
    assert "scan.pdf is a damaged PDF" in scan


def test_unreadable_uploads_are_422_naming_the_file(client: httpx.Client) -> None:
    blob = bytes(range(256)) * 64
    message = assert_error(client.post("/documents", files={"file": ("scan.txt", blob)}), 422)
    assert "scan.txt" in message
    message = assert_error(client.post("/documents", files={"file": ("photo.png", blob)}), 422)
    assert "photo.png" in message
    cut = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nabc"
    assert_error(client.post("/documents", content=cut,
                             headers={"content-type": "multipart/form-data; boundary=xyz"}), 422)


def test_bodies_over_the_limit_are_413(client: httpx.Client) -> None:
    limit = client.get("/health").json()["max_body_bytes"]
    assert limit == 10 * 1024 * 1024, "the default limit is 10 MB"
    big = b"a" * (limit + 1)
    message = assert_error(client.post("/documents", files={"file": ("big.txt", big)}), 413, "too_large")
    assert "10 MB" in message
    assert "SEMSEARCH_MAX_BODY)" in message, "it names the setting that exists (not SEMSEARCH_MAX_BODY_MB)"

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(11):
            yield b"[" * (1024 * 1024)

    assert_error(client.post("/documents", content=chunks(), headers={"content-type": "application/json"}),
                 413, "too_large")
    assert client.get("/health").status_code == 200, "the server is fine afterwards"


# --- the page and the API description -------------------------------------------------------------------
def test_openapi_describes_every_route_with_the_error_shape(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/health", "/search", "/similar", "/ask", "/passages/{passage_id}", "/documents",
                 "/documents/{doc_id}", "/jobs/{job_id}", "/facets"):
        assert path in schema["paths"], path
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text and "ErrorResponse" in text
    post = schema["paths"]["/documents"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(post)


def test_docs_is_our_offline_api_reference(client: httpx.Client) -> None:
    """/docs renders /openapi.json with our own script under the page's policy: no Swagger UI from a CDN."""
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert '<script src="/static/apidocs.js"' in docs.text and "swagger" not in docs.text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', docs.text), "nothing loaded from elsewhere"
    policy = docs.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    for asset in ("/static/apidocs.js", "/static/apidocs.css"):
        response = client.get(asset)
        assert response.status_code == 200 and response.content, asset
        assert "script-src 'self'" in response.headers["content-security-policy"], asset
    assert "innerHTML" not in client.get("/static/apidocs.js").text, "schema text is inserted as text"
    assert_error(client.get("/redoc"), 404)


def test_every_schema_reference_resolves(client: httpx.Client) -> None:
    """The reference page (and any client generator) follows each $ref: none may point nowhere."""
    schema = client.get("/openapi.json").json()
    defined = set(schema["components"]["schemas"])
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert "DocumentsIn" in refs and refs <= defined, refs - defined


def test_the_page_is_served_with_a_strict_policy(server: InProcessServer, client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<input id="q"' in page.text
    for asset in ("/static/app.js", "/static/app.css", "/static/i18n.js"):
        response = client.get(asset)
        assert response.status_code == 200 and response.content, asset
    assert "http://" not in client.get("/static/app.css").text, "no external fonts or assets"
    assert_error(client.get("/static/missing.js"), 404)



# --- unit level: the job queue and the body limit, without a model --------------------------------------
def test_job_queue_runs_in_order_and_reports_failures() -> None:
    from api.jobs import JobQueue
    from index.generations import IndexLocked
    from search.engine import NotFound

    order: list[int] = []
    attempts = {"locked": 0}

    def locked_twice() -> dict:
        attempts["locked"] += 1
        if attempts["locked"] < 3:
            raise IndexLocked("index is locked by PID 1")
        return {"ok": True}

    def missing() -> dict:
        raise NotFound("no document with id 'x'")

    def crash() -> dict:
        raise ZeroDivisionError("boom")

    steps = {"locked": locked_twice, "missing": missing, "crash": crash}

    def run(payload: dict, resumed: bool) -> dict:
        if "n" in payload:
            order.append(payload["n"])
            return {"n": payload["n"]}
        return steps[payload["step"]]()

    queue = JobQueue({"add": run, "delete": run}, lock_wait_seconds=5)
    jobs = [queue.submit("add", [str(i)], {"n": i}) for i in range(3)]
    jobs += [queue.submit(kind, [step[0]], {"step": step})
             for kind, step in [("add", "locked"), ("delete", "missing"), ("add", "crash")]]
    for job in jobs:
        assert job.done.wait(30)
    queue.stop()
    assert order == [0, 1, 2] and [j.summary for j in jobs[:3]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert jobs[3].state == "done" and attempts["locked"] == 3, "a writer elsewhere is waited for"
    assert jobs[4].to_dict()["error"] == {"code": "not_found", "message": "no document with id 'x'"}
    crashed = jobs[5].to_dict()
    assert crashed["state"] == "failed" and crashed["error"]["code"] == "internal_error"
    assert "boom" not in crashed["error"]["message"], "no internals in client messages"
    assert all(j.payload is None for j in jobs), "a finished job lets go of its documents"


def test_body_limit_counts_streamed_bodies() -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient

    from api.errors import BodySizeLimit, install_error_handlers

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=1000)

    async def echo(request) -> JSONResponse:  # a plain Starlette route: no FastAPI body handling
        return JSONResponse({"size": len(await request.body())})

    app.add_route("/echo", echo, methods=["POST"])

    with TestClient(app) as test:
        assert test.post("/echo", content=b"x" * 1000).json() == {"size": 1000}
        assert_error(test.post("/echo", content=b"x" * 1001), 413, "too_large")
        assert_error(test.post("/echo", content=iter([b"x" * 600, b"x" * 600])), 413, "too_large")
        assert test.post("/echo", content=iter([b"x" * 500, b"x" * 500])).json() == {"size": 1000}



@pytest.mark.integration  # a second process holds the lock
def test_an_accepted_write_waits_for_a_long_cli_build_however_long(tmp_path: Path, monkeypatch) -> None:
    """A `semsearch index` of a big folder holds the lock for hours: a job the API accepted (202) waits for
    it, saying whom for, and runs once it is done; it is never failed and dropped for a busy index."""
    import subprocess
    import sys
    import time
    from types import SimpleNamespace

    import api.jobs
    from api.jobs import JobQueue
    from index.generations import WriteLock

    clock = iter(range(0, 10**9, 45))  # the jobs' clock gains 45 s at every look: hours of waiting
    monkeypatch.setattr(api.jobs, "time", SimpleNamespace(
        monotonic=lambda: float(next(clock)), sleep=lambda seconds: time.sleep(0.05), time=time.time,
        strftime=time.strftime, gmtime=time.gmtime))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from index.generations import WriteLock\n"
         f"with WriteLock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(3)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

    def add(payload: dict, resumed: bool) -> dict:
        with WriteLock(tmp_path):
            return {"added": 1}

    queue = JobQueue({"add": add})
    job = queue.submit("add", ["a"], {})
    deadline = time.monotonic() + 10
    while job.to_dict()["waiting"] is None and job.state != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"PID {holder.pid}" in (job.to_dict()["waiting"] or ""), job.to_dict()
    assert job.done.wait(30), "the job still waits once the other writer has finished"
    queue.stop()
    holder.wait(10)
    assert job.state == "done" and job.summary == {"added": 1} and job.to_dict()["waiting"] is None

