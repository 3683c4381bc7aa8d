"""The one error table (`index.errors`): every error class has one code, HTTP status and CLI exit, and the
HTTP handlers, the background jobs and the CLI all report it the same way."""

from __future__ import annotations

import importlib
import pkgutil
import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import api
import index
import search
from api import cli
from api.errors import HTTP_CODES, HTTP_ERRORS, ApiError, install_error_handlers
from api.jobs import DONE, FAILED, JobQueue
from index.errors import INTERNAL_MESSAGE, SemsearchError, classify

# class name -> (HTTP status, code, CLI exit). A new error class without a row here fails the walk below.
EXPECTED: dict[str, tuple[int, str, int]] = {
    "SemsearchError": (500, "internal_error", 1),
    "ConfigError": (500, "bad_setting", 1),
    "LoadError": (422, "unreadable_document", 1),
    "DocIdTaken": (409, "doc_id_taken", 1),
    "SkipFile": (422, "unreadable_document", 1),
    "EmbedderError": (500, "model_unavailable", 1),
    "IndexFolderError": (503, "index_unavailable", 1),
    "IndexNotFound": (503, "index_unavailable", 1),
    "IndexWriteError": (503, "index_unavailable", 1),
    "SettingsMismatch": (503, "index_unavailable", 1),
    "DumpError": (503, "index_unavailable", 1),
    "TargetTaken": (503, "index_unavailable", 1),
    "ModelMismatch": (503, "index_unavailable", 1),
    "JobNotRecorded": (503, "index_unavailable", 1),
    "IndexLocked": (503, "index_locked", 1),
    "IndexDamaged": (503, "index_damaged", 1),
    "QueryError": (400, "bad_request", 1),
    "ReaderUnavailable": (503, "reader_unavailable", 1),
    "TowerUnavailable": (500, "model_unavailable", 1),
    "GenerationNotConfigured": (400, "generation_not_configured", 1),
    "NotFound": (404, "not_found", 1),
    "GenerationFailed": (502, "llm_failed", 1),
    "ApiError": (500, "internal_error", 1),  # each instance has its code's row of HTTP_ERRORS, below
}


def _all_error_classes() -> list[type[SemsearchError]]:
    for package in (index, search, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found, todo = [SemsearchError], [SemsearchError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in ("index", "search", "api"):
                found.append(sub)
                todo.append(sub)
    return found


def _instance(cls: type[SemsearchError], message: str) -> SemsearchError:
    exc = cls.__new__(cls)  # the constructors differ (IndexDamaged takes a root and a damage)
    Exception.__init__(exc, message)
    return exc


def _app(raised: list[BaseException]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise")
    def _raise() -> None:
        raise raised[0]

    return app


def _job_error(exc: BaseException) -> dict[str, str]:
    def action(payload: dict[str, Any], resumed: bool) -> dict[str, Any]:
        raise exc

    jobs = JobQueue({"add": action}, lock_wait_seconds=0)
    jobs.start()
    try:
        job = jobs.submit("add", ["d"], {})
        assert job.done.wait(10) and job.state == FAILED
        assert job.error is not None
        return job.error
    finally:
        jobs.stop()


def _cli_exit(exc: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> int:
    def command(args: Any) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_info", command)
    code = cli.main(["info", "--index", "/nonexistent"])
    err = capsys.readouterr().err
    assert err == f"semsearch: error: {exc}\n"
    return code


def test_every_error_class_has_one_row_and_every_path_reads_it(monkeypatch, capsys) -> None:
    classes = _all_error_classes()
    assert {c.__name__ for c in classes} == set(EXPECTED), "add the new error class to the table"
    raised: list[BaseException] = []
    with TestClient(_app(raised), raise_server_exceptions=False) as client:
        for cls in classes:
            status, code, exit_code = EXPECTED[cls.__name__]
            exc = _instance(cls, f"what went wrong with {cls.__name__}; what to do")
            assert (cls.status, cls.code, cls.exit) == (status, code, exit_code), cls.__name__
            raised[:] = [exc]
            r = client.get("/raise")
            shown = ("internal_error", INTERNAL_MESSAGE) if status == 500 else (code, str(exc))
            assert r.status_code == status, cls.__name__
            assert (r.json()["error"]["code"], r.json()["error"]["message"]) == shown, cls.__name__
            job = _job_error(exc)
            assert job["code"] == shown[0], cls.__name__
            if status != 500:
                assert job["message"] == str(exc)
            assert _cli_exit(exc, monkeypatch, capsys) == exit_code, cls.__name__
        locked = _instance(next(c for c in classes if c.__name__ == "IndexLocked"), "busy")
        raised[:] = [locked]
        assert client.get("/raise").headers["Retry-After"] == "5"


def test_http_layer_codes_have_one_status_each() -> None:
    raised: list[BaseException] = []
    with TestClient(_app(raised)) as client:
        for code, status in HTTP_ERRORS.items():
            raised[:] = [ApiError(code, f"{code} happened")]
            r = client.get("/raise")
            assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert HTTP_CODES[400] == "bad_request" and HTTP_CODES[404] == "not_found"
    assert HTTP_CODES[405] == "method_not_allowed" and HTTP_CODES[413] == "too_large"


def test_an_unexpected_error_is_a_traceback_in_the_cli_and_a_logged_500(monkeypatch) -> None:
    assert classify(ZeroDivisionError()) is None
    monkeypatch.setattr(cli, "cmd_info", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["info"])
    assert _job_error(ZeroDivisionError())["code"] == "internal_error"


# --- the bugs the three tables caused ------------------------------------------------------------------
def test_an_unreadable_document_in_a_job_is_unreadable_document_as_over_http() -> None:
    from index.loaders.jsonl import records_to_documents

    def add(payload: dict[str, Any], resumed: bool) -> dict[str, Any]:
        return {"documents": len(records_to_documents([("record 1", r) for r in payload["records"]]))}

    jobs = JobQueue({"add": add})
    jobs.start()
    try:
        good = jobs.submit("add", ["a"], {"records": [{"text": "正文"}]})
        bad = jobs.submit("add", ["b"], {"records": [{"text": "正文", "date": "明天"}]})
        assert bad.done.wait(10) and good.state == DONE
    finally:
        jobs.stop()
    assert bad.state == FAILED and bad.error is not None
    assert bad.error["code"] == "unreadable_document"  # was bad_request
    assert "record 1" in bad.error["message"] and "date" in bad.error["message"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_ask_generate_json_with_the_llm_server_down_is_one_line(seed_index: Path, monkeypatch,
                                                                   capsys) -> None:
    monkeypatch.setenv("SEMSEARCH_LLM_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.setenv("SEMSEARCH_LLM_MODEL", "m")
    code = cli.main(["ask", "长三角研发投入强度的目标", "--generate", "--json", "--index", str(seed_index)])
    err = capsys.readouterr().err
    assert code == 1  # was a GenerationFailed traceback
    assert err.startswith("semsearch: error: ") and "could not be reached" in err
    assert len(err.strip().splitlines()) == 1


def test_streamed_ask_reports_the_error_event_and_fails(engine: Any, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SEMSEARCH_LLM_BASE_URL", f"http://127.0.0.1:{_closed_port()}/v1")
    monkeypatch.setenv("SEMSEARCH_LLM_MODEL", "m")
    events = list(engine.ask_stream("长三角研发投入强度的目标", k=2))
    assert events[-1]["type"] == "error"  # the unreachable server arrives as an event
    code = cli._ask_streamed(engine, "长三角研发投入强度的目标", 2, None)
    err = capsys.readouterr().err
    assert code == 1  # was 0, with nothing on stderr
    assert err == f"semsearch: error: {events[-1]['message']}\n"
