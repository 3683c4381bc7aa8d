"""Schemathesis against the live server's own OpenAPI schema: no 5xx, and every answer as declared.

Every operation of /openapi.json is called with generated input (valid and invalid), each case twice:
without a key and with the server's key. Checked on every answer: not a server error, a status code the
schema declares, the declared content type, a body matching the declared schema, declared headers;
with the key, also that the operations requiring it refuse a request without it (`ignored_auth`).

A short budget here (`FUZZ_EXAMPLES` cases an operation and mode, 10 by default, a fifth of that for
/ask, whose answers take seconds each on a busy machine); `bench/fuzz.py` runs the same with a long one
and writes the figures into docs/reliability.md.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402 - after the skip
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402
from schemathesis.specs.openapi import checks as oa_checks  # noqa: E402

from tests.api.conftest import LiveServer, copy_index, start_server, stop_server  # noqa: E402

KEY = "fuzz-key-3c8e1f27b9d04a6e5f1a2b3c"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 10)  # a case = a call without and one with the key
ASK_EXAMPLES = max(1, EXAMPLES // 5)
CHECKS = [
    st_checks.not_a_server_error,
    oa_checks.status_code_conformance,
    oa_checks.content_type_conformance,
    oa_checks.response_schema_conformance,
    oa_checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a key (writes need it, reads are open) on its own copy of the index."""
    folder = tmp_path_factory.mktemp("fuzz")
    env = {"SEMSEARCH_API_KEY": KEY, "SEMSEARCH_RATE_LIMIT": "0", "SEMSEARCH_MAX_BODY": "1MB"}
    live = start_server(copy_index(seed_index, folder), folder / "server.log", env)
    try:
        yield live
    finally:
        stop_server(live)


def _fuzz_operation(operation: Any, mode: Any, url: str, key: str, examples: int,
                    statuses: Counter[int], failures: list[dict[str, str]]) -> int:
    """`examples` generated cases of one operation in one mode, each without and with the key; calls made.

    Failures are collected, not raised, so one run reports all of them (hypothesis goes on generating).
    """
    calls = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal calls
        wait = (case.query or {}).get("wait")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 5:
            case.query["wait"] = 5  # the job runs either way; waiting minutes for it tests nothing more
        for headers in ({}, {"Authorization": f"Bearer {key}"}):
            calls += 1
            checks = CHECKS + ([oa_checks.ignored_auth] if headers else [])
            try:
                response = case.call(base_url=url, headers=headers, timeout=300)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=checks, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseExceptionGroup
                failures.append({"operation": operation.label, "mode": mode.value,
                                 "auth": "key" if headers else "none",
                                 "error": f"{type(exc).__name__}: {str(exc)[:600]}",
                                 "reproduce": case.as_curl_command(headers=headers)[:600]})

    try:
        run()
    except Exception as exc:
        if "Unsatisfiable" in type(exc).__name__:
            return calls  # the negative mode of an operation without inputs: nothing invalid to send
        failures.append({"operation": operation.label, "mode": mode.value, "auth": "-",
                         "error": f"generation: {type(exc).__name__}: {str(exc)[:300]}", "reproduce": ""})
    return calls


def fuzz(url: str, key: str, examples: int, ask_examples: int | None = None) -> dict[str, Any]:
    """Every operation of the live schema, positive and negative cases; counts, statuses and failures."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    statuses: Counter[int] = Counter()
    failures: list[dict[str, str]] = []
    per_operation: dict[str, int] = {}
    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        n = ask_examples if ask_examples is not None and operation.path == "/ask" else examples
        t0 = time.perf_counter()
        per_operation[operation.label] = sum(
            _fuzz_operation(operation, mode, url, key, n, statuses, failures)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
        seconds = time.perf_counter() - t0
        print(f"  {operation.label}: {per_operation[operation.label]} calls in {seconds:.0f} s, "
              f"{len(failures)} failures so far", file=sys.stderr, flush=True)
    return {"cases": sum(per_operation.values()), "operations": len(per_operation),
            "per_operation": per_operation, "statuses": dict(sorted(statuses.items())),
            "server_errors": sum(v for s, v in statuses.items() if s >= 500), "failures": failures,
            "seconds": time.perf_counter() - started}


def test_api_conforms_to_its_schema(fuzz_server: LiveServer) -> None:
    # the first answer loads the answer extractor's tagger: not part of any case's time
    httpx.post(f"{fuzz_server.url}/ask", json={"question": "长三角研发投入强度的目标"}, timeout=600)
    figures = fuzz(fuzz_server.url, KEY, EXAMPLES, ASK_EXAMPLES)
    print(f"\nfuzz: {figures['cases']} calls, statuses {figures['statuses']}")
    assert figures["operations"] >= 10, figures["per_operation"]
    assert figures["server_errors"] == 0, figures["failures"][:5]
    problems = "\n\n".join(f"{f['operation']} ({f['mode']}, key: {f['auth']}): {f['error']}\n{f['reproduce']}"
                           for f in figures["failures"][:5])
    assert not figures["failures"], f"{len(figures['failures'])} failures, e.g.:\n{problems}"


def test_no_server_error_was_logged(fuzz_server: LiveServer) -> None:
    """Runs after the fuzzing: the server's own log has no 500 and no traceback either."""
    log = fuzz_server.log.read_text(errors="replace")
    assert " 500 " not in log and "Traceback" not in log, fuzz_server.log_tail(80)
