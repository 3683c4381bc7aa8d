"""The one settings table: every environment variable semsearch reads, its type, default and meaning.

Each value is parsed and checked here, so a wrong one is a `ConfigError` naming the variable and what it
takes (`SEMSEARCH_MAX_TOKENS must be a whole number, not 'abc'`), never a traceback from deep inside. The
README's configuration table lists the same rows (`tests/index/test_settings.py` checks). Like datasette's
SETTINGS, the table is data: a new setting is one row, and its reader is `value(name)`.

Nothing reads the environment when a module is imported: a setting is read when the code that needs it
runs (a process started with other variables, or a test that sets one, sees its own value).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.errors import ConfigError

Parser = Callable[[str, str], Any]  # (name, raw text) -> value, or ConfigError


def whole(minimum: int = 0) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            number = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
        if number < minimum:
            raise ConfigError(f"{name} must be {minimum} or more, not {number}")
        return number

    return parse


def number(low: float, high: float | None = None, *, above: bool = False) -> Parser:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        ok = (value > low if above else value >= low) and (high is None or value <= high)
        if not ok:  # NaN fails every comparison
            bound = f"{'over' if above else 'at least'} {low:g}"
            span = f"from {low:g} to {high:g}" if high is not None else bound
            raise ConfigError(f"{name} must be a number {span}, not {raw!r}")
        return value

    return parse


def choice(*options: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        if raw not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, not {raw!r}")
        return raw

    return parse


def text(name: str, raw: str) -> str:
    return raw


def folder(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def flag(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")


def names(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def byte_count(name: str, raw: str) -> int:
    """A whole number of bytes, digits optionally grouped with underscores (100_000_000)."""
    digits = raw.replace("_", "")
    if not digits.isdigit() or int(digits) < 1:
        raise ConfigError(f"{name} must be a whole number of bytes such as 100000000, not {digits!r}")
    return int(digits)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?\s*$", re.I)


def size(name: str, raw: str) -> int:
    """Bytes of "10485760", "10MB", "10M", "512k", "1.5GiB" (units of 1024)."""
    match = _SIZE.match(raw)
    if match is None:
        raise ConfigError(f"{name} must be a size like 10MB or 10485760, not {raw!r}")
    amount, unit = float(match.group(1)), match.group(2).lower()
    n = int(amount * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])
    if n < 1:
        raise ConfigError(f"{name} must be at least 1 byte, not {raw!r}")
    return n


@dataclass(frozen=True)
class Setting:
    env: str
    parse: Parser
    default: Any  # None: not set (the code that reads it says what that means)
    help: str
    shown_default: str = ""  # the README's default column, when it is not `default` itself

    def doc_default(self) -> str:
        if self.shown_default:
            return self.shown_default
        return "none" if self.default is None else f"`{self.default}`"


def _cores() -> int:
    return os.cpu_count() or 1


SETTINGS: tuple[Setting, ...] = (
    # the index (recorded in its manifest; see index.config)
    Setting("SEMSEARCH_INDEX", folder, Path(".index"), "the index folder (`--index DIR`)", "`./.index`"),
    Setting("SEMSEARCH_MODEL", text, "multilingual-e5-small",
            "any sentence-transformers name or folder, for a new index (`--model NAME`)"),
    Setting("SEMSEARCH_BACKEND", choice("auto", "torch", "onnx", "onnx-int8"), "auto",
            "embedder back end: `auto` (onnxruntime float32 for a model folder, sentence-transformers for "
            "a hub name), `torch`, `onnx`, `onnx-int8` (faster, less exact cross-lingually: "
            "docs/performance.md)"),
    Setting("SEMSEARCH_MAX_TOKENS", whole(1), 256, "chunk budget in model tokens (a passage's hard limit)"),
    Setting("SEMSEARCH_TARGET_TOKENS", whole(1), 128,
            "short neighbouring paragraphs of a document are merged into passages of up to this many tokens "
            "(at most SEMSEARCH_MAX_TOKENS)"),
    Setting("SEMSEARCH_OVERLAP_SENTENCES", whole(0), 0,
            "sentences of a passage repeated at the start of the next"),
    Setting("SEMSEARCH_SENTENCE_VECTORS", flag, True,
            "embed every sentence of a passage too, so that the dense side also scores a passage by its best "
            "sentence (a build takes about 2.3 times as long; `0` leaves them out: docs/performance.md)",
            "`1`"),
    Setting("SEMSEARCH_MAX_FILE_BYTES", byte_count, 100_000_000,
            "largest file `semsearch index` reads, in bytes; larger ones are skipped",
            "`100000000` (100 MB)"),
    Setting("SEMSEARCH_FAISS_KIND", choice("auto", "flat", "ivf", "hnsw"), "auto",
            "vector index: `auto` (exact up to SEMSEARCH_EXACT_MAX vectors, then ivf), `flat`, `ivf`, "
            "`hnsw`"),
    Setting("SEMSEARCH_EXACT_MAX", whole(1), 50_000,
            "vectors searched exactly before `auto` builds an ivf index"),
    # the machine
    Setting("SEMSEARCH_THREADS", whole(1), None, "CPU threads for the model and the vector index",
            "all cores"),
    Setting("SEMSEARCH_CACHE", folder, Path("~/.cache/semsearch"),
            "where the converted model (and eval indexes) are kept", "`~/.cache/semsearch`"),
    # searching and answering
    Setting("SEMSEARCH_QUERY_CACHE", whole(0), 1024,
            "answers and query vectors cached per engine (`0` = off)"),
    Setting("SEMSEARCH_QUERY_TOWER", flag, True,
            "`0`: questions keyword search hardly covers (another language than the text's) are embedded "
            "by e5 too, not by the query tower trained for them (`search/query_tower.py`)", "`1`"),
    Setting("SEMSEARCH_ANSWER_THRESHOLD", number(0, 1), None,
            "confidence below which no answer is given", "see `search/answer.py`"),
    Setting("SEMSEARCH_ANSWER_READER", choice("reader", "sentences"), "reader",
            "how `ask` finds the answer: `reader` (the trained span reader, docs/answers.md) or `sentences` "
            "(the older sentence extractor: slower, and rarely the exact words)"),
    Setting("SEMSEARCH_LLM_BASE_URL", text, None,
            "an OpenAI-compatible endpoint for generated answers (e.g. `http://127.0.0.1:8080/v1`)"),
    Setting("SEMSEARCH_LLM_MODEL", text, None, "the model name sent to that endpoint"),
    Setting("SEMSEARCH_LLM_API_KEY", text, None, "its key, when it needs one"),
    Setting("SEMSEARCH_LLM_TIMEOUT", number(0, above=True), 120.0, "seconds to wait for the LLM", "`120`"),
    Setting("SEMSEARCH_LLM_MAX_TOKENS", whole(1), 400, "longest generated answer, in the LLM's tokens"),
    # scale-out (docs/scale-out.md)
    Setting("SEMSEARCH_STORE", choice("faiss", "milvus"), "faiss",
            "where the index lives: `faiss` (the index folder) or `milvus` (a Milvus collection; the index "
            "folder then keeps only the local embedding cache and job journal) (`--store NAME`)"),
    Setting("SEMSEARCH_MILVUS_URI", text, None,
            "the Milvus server, `http://HOST:19530` (`--milvus-uri URI`)"),
    Setting("SEMSEARCH_MILVUS_TOKEN", text, None,
            "its token, `user:password` or an API key (`--milvus-token T`)"),
    Setting("SEMSEARCH_MILVUS_COLLECTION", text, "semsearch",
            "the collection; `NAME__docs`, `NAME__state` and `NAME__terms` are made beside it "
            "(`--collection NAME`)"),
    Setting("SEMSEARCH_MILVUS_GRACE", number(0), 1.0,
            "seconds a Milvus write waits between publishing and removing replaced rows (searches in flight)",
            "`1`"),
    Setting("SEMSEARCH_RAY_ADDRESS", text, None,
            "`semsearch index`: embed what the cache lacks on this Ray cluster, `host:port` of its head "
            "(`--ray ADDRESS`)", "embed locally"),
    # watching folders
    Setting("SEMSEARCH_RESCAN", number(0, above=True), 60.0,
            "full rescan interval of `watch` and `serve --watch` (`--rescan SECONDS`)", "`60`"),
    # the HTTP server (api.security)
    Setting("SEMSEARCH_API_KEY", text, None,
            "key for write endpoints (`Authorization: Bearer …`); required to serve on a non-loopback host"),
    Setting("SEMSEARCH_API_KEY_FILE", folder, None, "a file holding the key (SEMSEARCH_API_KEY wins)"),
    Setting("SEMSEARCH_READS_NEED_KEY", flag, False, "`1`: searches need the key too", "`0`"),
    Setting("SEMSEARCH_RATE_LIMIT", whole(0), 600,
            "requests per minute per client on `/search`, `/ask`, `/similar` (`0` = off)"),
    Setting("SEMSEARCH_RATE_BURST", whole(1), None,
            "requests a client may send at once before the rate applies", "rate / 10"),
    Setting("SEMSEARCH_MAX_BODY", size, 10 * 1024 * 1024, "request body and upload limit (`10MB`, `512k`)",
            "10 MB"),
    Setting("SEMSEARCH_MAX_BODY_MB", number(0, above=True), None,
            "the same limit in MB, read when SEMSEARCH_MAX_BODY is not set"),
    Setting("SEMSEARCH_CORS_ORIGINS", names, (),
            "comma-separated origins allowed by CORS (and to write from a browser)", "CORS off"),
    Setting("SEMSEARCH_ALLOWED_HOSTS", names, (),
            "comma-separated host names the server answers to besides IP addresses, `localhost` and `--host` "
            "(a reverse proxy's public name; `.example.org` for it and its subdomains; `*` for any)", "none"),
)

BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}


def default(env: str) -> Any:
    """The table's default of a setting, for the code that declares it as a constant."""
    return BY_ENV[env].default


def value(env: str, environ: Mapping[str, str] | None = None) -> Any:
    """The setting's value: parsed from the environment (`environ` for tests), else its default.

    Surrounding space is ignored and an empty variable counts as unset.
    """
    setting = BY_ENV[env]
    raw = (os.environ if environ is None else environ).get(env, "").strip()
    if not raw:
        return setting.default
    return setting.parse(env, raw)


def is_set(env: str, environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get(env, "").strip())


def threads() -> int:
    """CPU threads for one model or vector-index call: `SEMSEARCH_THREADS`, else every core."""
    return value("SEMSEARCH_THREADS") or _cores()


def cache_dir() -> Path:
    """semsearch's cache folder: `SEMSEARCH_CACHE`, else `~/.cache/semsearch` (expanded)."""
    return Path(value("SEMSEARCH_CACHE")).expanduser()


def validate(environ: Mapping[str, str] | None = None) -> None:
    """Parse every setting that is set, so that a wrong one stops a command before it starts working."""
    for setting in SETTINGS:
        value(setting.env, environ)


def markdown_table() -> str:
    """The README's configuration table, made from `SETTINGS` (a test keeps the two the same)."""
    rows = ["| setting | meaning | default |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {s.help} | {s.doc_default()} |" for s in SETTINGS]
    return "\n".join(rows)
