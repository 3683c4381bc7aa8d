"""Fuzz the live API from its OpenAPI schema with a long budget, and table every kind of bad input.

    python bench/fuzz.py                       # 50 cases an operation and mode; writes docs/reliability.md
    python bench/fuzz.py --examples 50 --no-write
    python bench/fuzz.py --url http://127.0.0.1:8000 --key KEY   # a server already running (loopback)

Two parts, both against `python -m api.cli serve` on 127.0.0.1 with an API key, on a throw-away copy of
the default index (data/, built like bench/load.py's, cached in ~/.cache/semsearch/bench/load-default):

1. Bad input: every case of `tests/api/test_bad_input.py` (`CASES`), one request each; the table of
   (input kind, expected status, status) goes into "## Bad input".
2. Schemathesis: for every operation of /openapi.json, `--examples` generated cases in each of its
   positive (valid by the schema) and negative (invalid) modes, each sent without and with the key, and
   checked for: no 5xx, a declared status code, the declared content type, a body matching the declared
   schema, declared headers, and (with the key) that operations requiring it refuse a request without it.
   Every failure is collected rather than stopping at the first. Figures go into "## Fuzzing".

Loopback only; every loop is bounded by the example counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import CACHE, RELIABILITY_MD, build_default  # noqa: E402 - sibling bench module
from scale import header, write_section  # noqa: E402

KEY = "bench-fuzz-key-6d1e0c9b8a7f4e3d2c1b"
SECTION_BAD = "## Bad input"
SECTION_FUZZ = "## Fuzzing"


def bad_input_rows(url: str, key: str) -> list[dict[str, Any]]:
    from tests.api.test_bad_input import run_cases

    return run_cases(url, key=key)


def fuzz(url: str, key: str, examples: int, ask_examples: int) -> dict[str, Any]:
    from tests.api.test_fuzz import fuzz as run_fuzz

    return run_fuzz(url, key, examples, ask_examples)


def bad_input_report(rows: list[dict[str, Any]], command: str) -> str:
    lines = [SECTION_BAD, "", *header(command), ""]
    ok = sum(r["ok"] for r in rows)
    lines += [
        f"Every case of `tests/api/test_bad_input.py` against the live server: {ok} of {len(rows)} answered "
        "as expected, every answer in the error shape `{\"error\": {\"code\", \"message\"}}`, no 5xx. The "
        "same cases are the parametrised test.",
        "",
        "| input | request | expected | status |",
        "| --- | --- | ---: | ---: |",
    ]
    for r in rows:
        mark = "" if r["ok"] else " **(wrong)**"
        lines.append(f"| {r['kind']} | `{r['request']}` | {r['expected']} | {r['status']}{mark} |")
    bad = [r for r in rows if not r["ok"]]
    if bad:
        lines += ["", "Wrong answers:", ""] + [f"- {r['kind']}: {r['problem']}" for r in bad]
    return "\n".join(lines) + "\n"


def fuzz_report(figures: dict[str, Any], command: str) -> str:
    lines = [SECTION_FUZZ, "", *header(command), ""]
    statuses = ", ".join(f"{s}: {n}" for s, n in figures["statuses"].items())
    lines += [
        f"Schemathesis {figures['version']} on the live schema: {figures['operations']} operations, "
        f"**{figures['cases']} calls** ({figures['examples']} generated cases an operation in each of the "
        f"positive and negative modes, {figures['ask_examples']} for `POST /ask`, each sent without and with "
        "the key) in "
        f"{figures['seconds']:.0f} s. **5xx: {figures['server_errors']}**; check failures (status code, "
        f"content type, response schema, headers, auth enforced): **{len(figures['failures'])}**.",
        "",
        f"Statuses: {statuses}.",
        "",
        "| operation | calls |",
        "| --- | ---: |",
    ]
    lines += [f"| `{op}` | {n} |" for op, n in figures["per_operation"].items()]
    if figures["failures"]:
        lines += ["", "Failures (first 20):", ""]
        for f in figures["failures"][:20]:
            lines.append(f"- `{f['operation']}` ({f['mode']}, key: {f['auth']}): {f['error'][:300]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=50, help="cases an operation and mode")
    parser.add_argument("--ask-examples", type=int, default=10,
                        help="cases of POST /ask and mode (an extracted answer takes seconds)")
    parser.add_argument("--url", help="a running server on loopback (else one is started)")
    parser.add_argument("--key", default=KEY, help="its API key (with --url)")
    parser.add_argument("--skip-bad-input", action="store_true")
    parser.add_argument("--skip-fuzz", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path, help="also write all figures and failures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = "python bench/fuzz.py " + " ".join(sys.argv[1:] if argv is None else argv)
    import schemathesis

    from tests.api.conftest import copy_index, start_server, stop_server

    live = None
    folder = Path(tempfile.mkdtemp(prefix="semsearch-fuzz-"))
    try:
        url, key = args.url, args.key
        if url is None:
            index = copy_index(build_default(CACHE / "load-default"), folder)
            env = {"SEMSEARCH_API_KEY": KEY, "SEMSEARCH_RATE_LIMIT": "0"}
            live = start_server(index, folder / "server.log", env)
            url, key = live.url, KEY
        if not args.skip_bad_input:
            rows = bad_input_rows(url, key)
            text = bad_input_report(rows, command)
            print(text)
            if not args.no_write:
                write_section(SECTION_BAD, text, RELIABILITY_MD)
        if args.skip_fuzz:
            return 0
        figures = fuzz(url, key, args.examples, args.ask_examples)
        figures.update(examples=args.examples, ask_examples=args.ask_examples,
                       version=schemathesis.SCHEMATHESIS_VERSION)
        if live is not None:
            log = live.log.read_text(errors="replace")
            figures["logged_tracebacks"] = log.count("Traceback")
        text = fuzz_report(figures, command)
        print(text)
        if args.json:
            args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2))
        if not args.no_write:
            write_section(SECTION_FUZZ, text, RELIABILITY_MD)
    finally:
        if live is not None:
            stop_server(live)
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if figures["server_errors"] or figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
