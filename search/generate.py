"""Generated answers: an OpenAI-compatible chat endpoint writes the answer from numbered passages.

Optional, and off unless configured:

    SEMSEARCH_LLM_BASE_URL   e.g. http://127.0.0.1:8080/v1 (the part before /chat/completions)
    SEMSEARCH_LLM_MODEL      the model name the server expects
    SEMSEARCH_LLM_API_KEY    sent as a Bearer token when set (local servers need none)
    SEMSEARCH_LLM_TIMEOUT    seconds to wait for the server (default 120)
    SEMSEARCH_LLM_MAX_TOKENS longest answer in tokens (default 400)

The question goes with the top-k passages numbered [1]…[k]; the model is asked to answer in the question's
language, from the passages only, marking each sentence with the [n] it comes from. What comes back is not
trusted: every [n] must be a passage that was sent (`unknown_citations` lists those that were not), and
the sentence carrying [n] must share content with passage n (`unsupported_citations` lists those that do
not). The check is lexical (shared words and character bigrams), so it catches citations of the wrong
passage and made-up sources, not a fluent misreading of the right one.

Answers stream as they are written (`generate_stream`): token events, then one `done` event carrying the
whole response with its citations and checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from index import settings
from index.analysis import STOP_WORDS, analyze
from index.errors import ConfigError, SemsearchError
from index.text import count_cjk, split_sentences
from search.errors import QueryError, check_query
from search.models import AskResponse, Citation, SearchResult

if TYPE_CHECKING:
    from index.stores.passages import Filters
    from search.retriever import Retriever

ENV_BASE_URL = "SEMSEARCH_LLM_BASE_URL"
ENV_MODEL = "SEMSEARCH_LLM_MODEL"
ENV_API_KEY = "SEMSEARCH_LLM_API_KEY"
ENV_TIMEOUT = "SEMSEARCH_LLM_TIMEOUT"
ENV_MAX_TOKENS = "SEMSEARCH_LLM_MAX_TOKENS"

# A sentence supports its [n] when at least this share of its content terms (words and CJK bigrams) also
# occur in passage n. Low on purpose: a faithful paraphrase keeps names, numbers and key words, but not
# the wording; a sentence citing an unrelated passage shares almost nothing (measured on the default
# corpus: faithful sentences 0.4-0.9, sentences citing another article's passage < 0.15).
MIN_SUPPORT = 0.25
MAX_PASSAGE_CHARS = 1200  # per passage in the prompt: keeps k=5 well inside a small model's context

NOT_CONFIGURED = (
    "answer generation is not configured: set SEMSEARCH_LLM_BASE_URL (an OpenAI-compatible endpoint, e.g. "
    "http://127.0.0.1:8080/v1) and SEMSEARCH_LLM_MODEL (and SEMSEARCH_LLM_API_KEY if the server needs one); "
    "without them use the extractive answer (no --generate / mode=extract)"
)

_MARK = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]|【(\d+)】")


class GenerationNotConfigured(QueryError):
    """mode=generate was asked for, but no LLM endpoint is configured (a 400 / a CLI error)."""

    code = "generation_not_configured"


class GenerationFailed(SemsearchError, RuntimeError):
    """The LLM endpoint could not be reached or answered with an error (a 502)."""

    code, status = "llm_failed", 502


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    max_tokens: int = 400

    @classmethod
    def from_env(cls) -> LLMConfig:
        base_url, model = settings.value(ENV_BASE_URL), settings.value(ENV_MODEL)
        if not base_url or not model:
            raise GenerationNotConfigured(NOT_CONFIGURED)
        try:
            timeout, max_tokens = settings.value(ENV_TIMEOUT), settings.value(ENV_MAX_TOKENS)
        except ConfigError as exc:  # the request asked for generation, which this server cannot do
            raise GenerationNotConfigured(str(exc)) from None
        return cls(base_url.rstrip("/"), model, settings.value(ENV_API_KEY), timeout, max_tokens)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


# --- the request -------------------------------------------------------------------------------------
def question_language(question: str) -> str:
    """zh when the question is mostly CJK, else en (the languages the corpus and prompts are in)."""
    cjk = count_cjk(question)
    latin = len(re.findall(r"[A-Za-z]", question))
    return "zh" if cjk and cjk * 2 >= latin * 0.5 else "en"


SYSTEM_PROMPT = {
    "zh": (
        "你是一个严谨的问答助手。只根据用户给出的编号资料回答问题，用中文回答，简洁准确。"
        "每句话后用 [n] 标出它依据的资料编号，只能引用给出的编号。资料中没有答案时，直接说明资料中没有答案。"
    ),
    "en": (
        "You are a careful question-answering assistant. Answer only from the numbered passages the user "
        "gives, in English, briefly and precisely. End every sentence with [n], the number of the passage "
        "it is based on; cite only the numbers given. If the passages do not contain the answer, say so."
    ),
}


def build_messages(question: str, passages: Sequence[SearchResult]) -> list[dict[str, str]]:
    """The chat messages: instructions in the question's language, the numbered passages, the question."""
    lang = question_language(question)
    blocks = []
    for n, p in enumerate(passages, start=1):
        meta = " · ".join(x for x in (p.title, p.source, p.date) if x)
        text = p.text if len(p.text) <= MAX_PASSAGE_CHARS else p.text[:MAX_PASSAGE_CHARS] + "…"
        blocks.append(f"[{n}] ({meta})\n{text}")
    if lang == "zh":
        user = "资料：\n\n" + "\n\n".join(blocks) + f"\n\n问题：{question}\n请用中文回答，并用 [n] 标注引用。"
    else:
        user = (
            "Passages:\n\n" + "\n\n".join(blocks)
            + f"\n\nQuestion: {question}\nAnswer in English with [n] citations."
        )
    return [{"role": "system", "content": SYSTEM_PROMPT[lang]}, {"role": "user", "content": user}]


def build_request(config: LLMConfig, messages: list[dict[str, str]], *, stream: bool) -> dict[str, Any]:
    """The body of POST {base}/chat/completions (deterministic: temperature 0)."""
    return {
        "model": config.model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": config.max_tokens,
        "stream": stream,
    }


# --- the response ------------------------------------------------------------------------------------
def parse_sse(lines: Iterable[str]) -> Iterator[str]:
    """The content pieces of an OpenAI-style server-sent event stream (`data: {json}` … `data: [DONE]`).

    Comment lines (`: keep-alive`), blank separators and chunks without content (the role header, the
    finish reason) are skipped; an `error` object in the stream raises GenerationFailed.
    """
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(":") or not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise GenerationFailed(f"the LLM server sent an unreadable event: {data[:200]!r}") from exc
        if isinstance(chunk, dict) and chunk.get("error"):
            raise GenerationFailed(f"the LLM server reported an error: {_error_text(chunk['error'])}")
        for choice in chunk.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


def _error_text(error: Any) -> str:
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)


def _raise_for_status(response: httpx.Response, body: str) -> None:
    if response.status_code >= 400:
        try:
            detail = _error_text(json.loads(body).get("error", body))
        except (json.JSONDecodeError, AttributeError):
            detail = body[:300]
        raise GenerationFailed(f"the LLM server answered {response.status_code}: {detail}")


def complete(config: LLMConfig, messages: list[dict[str, str]]) -> str:
    """The whole answer in one response (stream=false)."""
    try:
        with httpx.Client(timeout=config.timeout) as client:
            response = client.post(config.url, json=build_request(config, messages, stream=False),
                                   headers=config.headers())
    except httpx.HTTPError as exc:
        raise GenerationFailed(f"the LLM server at {config.base_url} could not be reached: {exc}") from exc
    _raise_for_status(response, response.text)
    try:
        return response.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GenerationFailed(f"the LLM server's answer has no choices[0].message.content: {exc}") from exc


def stream_tokens(config: LLMConfig, messages: list[dict[str, str]]) -> Iterator[str]:
    """The answer piece by piece as the server writes it (stream=true)."""
    try:
        with (
            httpx.Client(timeout=config.timeout) as client,
            client.stream("POST", config.url, json=build_request(config, messages, stream=True),
                          headers=config.headers()) as response,
        ):
            if response.status_code >= 400:
                _raise_for_status(response, response.read().decode("utf-8", "replace"))
            yield from parse_sse(response.iter_lines())
    except httpx.HTTPError as exc:
        raise GenerationFailed(f"the LLM server at {config.base_url} failed: {exc}") from exc


# --- checks ------------------------------------------------------------------------------------------
def cited_numbers(text: str) -> list[int]:
    """Every n of the [n] (also [1, 2] and 【n】) marks in `text`, in order of first use."""
    found: list[int] = []
    for m in _MARK.finditer(text):
        for part in re.split(r"[,，、]", m.group(1) or m.group(2)):
            n = int(part.strip())
            if n not in found:
                found.append(n)
    return found


def _content_terms(text: str) -> set[str]:
    return {t.term for t in analyze(_MARK.sub(" ", text)) if t.term not in STOP_WORDS and t.term.strip()}


def support(sentence: str, passage: str) -> float:
    """Share of the sentence's content terms (words, CJK bigrams, numbers) that also occur in the passage."""
    terms = _content_terms(sentence)
    return len(terms & _content_terms(passage)) / len(terms) if terms else 0.0


_LEADING_MARKS = re.compile(rf"^\s*(?:(?:{_MARK.pattern})\s*)+")


def check_citations(answer: str, passages: Sequence[SearchResult]) -> tuple[list[int], list[int]]:
    """(unknown, unsupported): [n] marks that match no passage, and [n] whose passage shares too little
    content with the sentence that cites it. Marks standing right after a full stop ("…3%。[1] 另外…")
    belong to the sentence before them, as writers of both languages put them."""
    unknown: list[int] = []
    unsupported: list[int] = []
    previous = ""

    def check(marks: list[int], claim: str) -> None:
        for n in marks:
            if not 1 <= n <= len(passages):
                if n not in unknown:
                    unknown.append(n)
            elif support(claim, passages[n - 1].text) < MIN_SUPPORT and n not in unsupported:
                unsupported.append(n)

    for start, end in split_sentences(answer):
        sentence = answer[start:end]
        lead = _LEADING_MARKS.match(sentence)
        if lead:
            check(cited_numbers(lead.group()), previous)
            sentence = sentence[lead.end() :]
        own = _MARK.sub("", sentence).strip(" \t。.，,")
        check(cited_numbers(sentence), own or previous)
        if own:
            previous = own
    return unknown, unsupported


def citations_of(answer: str, passages: Sequence[SearchResult]) -> list[Citation]:
    """A citation for each [n] of the answer that is a passage sent: the whole passage, located."""
    out = []
    for n in cited_numbers(answer):
        if 1 <= n <= len(passages):
            p = passages[n - 1]
            out.append(Citation(n=n, passage_id=p.passage_id, doc_id=p.doc_id, title=p.title, source=p.source,
                                date=p.date, page=p.page, start=p.start, end=p.end, text=p.text))
    return sorted(out, key=lambda c: c.n)


def finish(question: str, answer: str, passages: Sequence[SearchResult]) -> AskResponse:
    """The response for a generated answer: its citations and the results of the checks."""
    unknown, unsupported = check_citations(answer, passages)
    message = None
    if not cited_numbers(answer):
        message = "the generated answer cites no passage; check it against the passages"
    elif unknown or unsupported:
        message = "some citations of the answer do not check out (see unknown_ and unsupported_citations)"
    return AskResponse(
        question=question, answer=answer.strip(), answer_span=None, confidence=None,
        citations=citations_of(answer, passages), passages=list(passages), message=message, mode="generate",
        unknown_citations=unknown, unsupported_citations=unsupported,
    )


# --- entry points ------------------------------------------------------------------------------------
def _prepare(
    engine: Retriever, question: str, k: int, filters: Filters | None
) -> tuple[LLMConfig, str, list[SearchResult]]:
    config = LLMConfig.from_env()  # first: an unconfigured server fails before any work
    question = check_query(question)
    return config, question, engine.search(question, k=k, filters=filters).results


def _no_passages(question: str) -> AskResponse:
    return AskResponse(question=question, answer=None, mode="generate",
                       message="no passage matches the question; nothing to answer from")


def generate(engine: Retriever, question: str, k: int = 5, *, filters: Filters | None = None) -> AskResponse:
    """A generated answer with checked citations, in one piece."""
    config, question, passages = _prepare(engine, question, k, filters)
    if not passages:
        return _no_passages(question)
    return finish(question, complete(config, build_messages(question, passages)), passages)


def generate_stream(
    engine: Retriever, question: str, k: int = 5, *, filters: Filters | None = None
) -> Iterator[dict[str, Any]]:
    """Events of a generated answer: {"type": "token", "text"}…, then {"type": "done", "response"}, or
    {"type": "error", "code", "message"} (the code of the same failure unstreamed, `llm_failed`) if the
    LLM fails midway.

    Configuration and the search are checked before this returns, so a caller can still answer an error
    status; only the LLM's own failure arrives as an event.
    """
    config, question, passages = _prepare(engine, question, k, filters)

    def events() -> Iterator[dict[str, Any]]:
        if not passages:
            yield {"type": "done", "response": _no_passages(question).model_dump()}
            return
        pieces: list[str] = []
        try:
            for piece in stream_tokens(config, build_messages(question, passages)):
                pieces.append(piece)
                yield {"type": "token", "text": piece}
        except GenerationFailed as exc:
            yield {"type": "error", "code": exc.code, "message": str(exc)}
            return
        yield {"type": "done", "response": finish(question, "".join(pieces), passages).model_dump()}

    return events()


def sse(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Server-sent events: one `data: {json}` line and a blank line per event."""
    for event in events:
        yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
