"""The span reader: which part of a passage answers a question, or that none does.

The network is the e5 encoder (`multilingual-e5-small`, built locally by `make model`) with a span head:
question and passage go in as one pair, each passage token gets a start and an end score, and the first
token's pair of scores says "no answer in this passage". The embeddings and the lower layers are e5's
own; the upper layers and the head were trained by `bench/train_reader.py` (`make reader`) on CMRC 2018
dev and DRCD dev, and only they ship, in float16, in `search/weights/` with their sha256.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.text import CLAUSE_MARKS, OPENERS, SENTENCE_FINAL

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "reader.safetensors"
META_FILE = "reader.json"
MAX_LENGTH = 320  # question + passage: a passage holds at most 256 tokens (SEMSEARCH_MAX_TOKENS)
MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 40
PAD_ID = 1  # e5's <pad>


def base_model_dir() -> Path:
    """The e5 folder `make model` builds; the reader's frozen part is read from it."""
    from index.embedders.e5_model import ensure_e5_model

    return ensure_e5_model()


def pair_tokenizer(tokenizer_file: Path) -> Any:
    """e5's tokenizer set up for (question, passage) pairs: the passage cut to fit MAX_LENGTH, no padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH, strategy="only_second")
    return tokenizer


def encode_pairs(tokenizer: Any, question: str | Sequence[str], passages: Sequence[str]) -> list[Any]:
    """The encodings (ids, offsets, sequence ids) of (question, passage) pairs, for training and `ask`
    alike: one question for every passage, or one question per passage; questions cut to
    MAX_QUESTION_TOKENS."""
    questions = [question] * len(passages) if isinstance(question, str) else list(question)
    clipped = {q: _clip_question(tokenizer, q) for q in questions}
    return tokenizer.encode_batch([(clipped[q], p) for q, p in zip(questions, passages, strict=True)])


def _clip_question(tokenizer: Any, question: str) -> str:
    if len(question) < MAX_QUESTION_TOKENS:  # a token covers at least one character
        return question
    # The pair tokenizer cuts only the passage, so it refuses a question alone of over MAX_LENGTH tokens
    # ("Second sequence not provided"): cut by characters first, and again where normalisation made one
    # character several tokens (NFKC: one ligature can become 18 letters).
    head = question[:MAX_LENGTH]
    while True:
        try:
            enc = tokenizer.encode(head, add_special_tokens=False)
            break
        except Exception:  # tokenizers raises a bare Exception for a truncation error
            head = head[: len(head) // 2]
    if len(enc.ids) <= MAX_QUESTION_TOKENS:
        return head
    return head[: enc.offsets[MAX_QUESTION_TOKENS - 1][1]]


def span_of_answer(
    offsets: Sequence[tuple[int, int]], sequence: Sequence[int | None], start: int, end: int
) -> tuple[int, int] | None:
    """The first and last passage token of the characters start:end, None when cut off or split oddly."""
    first = last = None
    for k, (a, b) in enumerate(offsets):
        if sequence[k] != 1 or b <= a:
            continue
        # "▁" and the word after it can both cover a word's first character: the later token is the word
        if a <= start < b:
            first = k
        if a < end <= b:
            last = k
    if first is None or last is None or last < first:
        return None
    return first, last


class ReaderNetwork:
    """e5 with a span head, split where the frozen layers end (training caches their output)."""

    def __init__(self, model: Any, frozen: int) -> None:
        import torch

        self.model = model
        self.frozen = frozen
        self.head = torch.nn.Linear(model.config.hidden_size, 2)
        torch.nn.init.normal_(self.head.weight, std=0.02)
        torch.nn.init.zeros_(self.head.bias)
        for p in model.embeddings.parameters():
            p.requires_grad = False
        for layer in model.encoder.layer[:frozen]:
            for p in layer.parameters():
                p.requires_grad = False

    @classmethod
    def from_base(cls, folder: Path, frozen: int) -> ReaderNetwork:
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(str(folder), attn_implementation="sdpa"), frozen)

    # --- the two halves ------------------------------------------------------------------------------
    @staticmethod
    def _mask(mask: Any, dtype: Any) -> Any:
        import torch

        return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    def lower(self, ids: Any, mask: Any) -> Any:
        """The output of the embeddings and the frozen layers."""
        hidden = self.model.embeddings(input_ids=ids)
        additive = self._mask(mask, hidden.dtype)
        for layer in self.model.encoder.layer[: self.frozen]:
            out = layer(hidden, attention_mask=additive)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def upper(self, hidden: Any, mask: Any) -> tuple[Any, Any]:
        """Start and end scores of every token (padding: the lowest score)."""
        additive = self._mask(mask, hidden.dtype)
        for layer in self.model.encoder.layer[self.frozen :]:
            out = layer(hidden, attention_mask=additive)
            hidden = out[0] if isinstance(out, tuple) else out
        logits = self.head(hidden)
        floor = -1e4
        start = logits[..., 0].masked_fill(mask == 0, floor)
        end = logits[..., 1].masked_fill(mask == 0, floor)
        return start, end

    def scores(self, ids: Any, mask: Any) -> tuple[Any, Any]:
        return self.upper(self.lower(ids, mask), mask)

    # --- training helpers ----------------------------------------------------------------------------
    def upper_train(self) -> None:
        self.model.eval()
        for layer in self.model.encoder.layer[self.frozen :]:
            layer.train()
        self.head.train()

    def eval(self) -> None:
        self.model.eval()
        self.head.eval()

    def trainable_parameters(self) -> list[Any]:
        params = [p for layer in self.model.encoder.layer[self.frozen :] for p in layer.parameters()]
        return params + list(self.head.parameters())

    def shipped_state(self) -> dict[str, Any]:
        state = {}
        for i in range(self.frozen, len(self.model.encoder.layer)):
            for name, value in self.model.encoder.layer[i].state_dict().items():
                state[f"layer.{i}.{name}"] = value
        for name, value in self.head.state_dict().items():
            state[f"head.{name}"] = value
        return state

    def load_shipped_state(self, state: dict[str, Any]) -> None:
        import torch

        layers: dict[int, dict[str, Any]] = {}
        head = {}
        for key, value in state.items():
            value = value.to(torch.float32)
            if key.startswith("head."):
                head[key[5:]] = value
            else:
                _, i, name = key.split(".", 2)
                layers.setdefault(int(i), {})[name] = value
        for i, layer_state in layers.items():
            self.model.encoder.layer[i].load_state_dict(layer_state)
        self.head.load_state_dict(head)

    def save(self, folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
        from search.shipped import save_float16

        described = {"frozen": self.frozen, "layers": len(self.model.encoder.layer), "max_length": MAX_LENGTH}
        return save_float16(self.shipped_state(), folder, WEIGHTS_FILE, META_FILE, {**described, **meta})


@dataclass(frozen=True)
class ReadSpan:
    """The reader's best answer in one passage: characters of that passage, and its two scores."""

    passage: int  # index into the passages read
    start: int
    end: int
    score: float  # start + end score of the span
    null_score: float  # the passage's "no answer" score


_SPAN_EDGE = frozenset(SENTENCE_FINAL + CLAUSE_MARKS)


def tidy_span(text: str, start: int, end: int) -> tuple[int, int]:
    """`text[start:end]` without white space or clause and sentence punctuation at its ends, nor a
    trailing 的 (the particle that ties the answer to a noun it leaves out: `1985 年的` → `1985 年`),
    kept when the span opens with a quote (a quoted term: `“强制的`). Never empties a span."""
    while start < end - 1 and (text[start].isspace() or text[start] in _SPAN_EDGE):
        start += 1
    while end > start + 1 and (text[end - 1].isspace() or text[end - 1] in _SPAN_EDGE):
        end -= 1
    if end - start > 1 and text[end - 1] == "的" and text[start] not in OPENERS:
        end -= 1
        while end > start + 1 and text[end - 1].isspace():
            end -= 1
    return start, end


def best_spans(start: np.ndarray, end: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int, float]]:
    """Per row: the (start, end) token pair of highest start + end score within MAX_ANSWER_TOKENS."""
    out = []
    n = start.shape[1]
    band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), MAX_ANSWER_TOKENS)
    for k in range(start.shape[0]):
        s = np.where(allowed[k], start[k], -1e4)
        e = np.where(allowed[k], end[k], -1e4)
        table = np.where(band, s[:, None] + e[None, :], -1e9)
        i, j = divmod(int(np.argmax(table)), n)
        out.append((i, j, float(table[i, j])))
    return out


class SpanReader:
    """The reader as `ask` runs it: the exported ONNX network and the e5 tokenizer, no torch.

    Loaded once per process and used by many threads (ONNX Runtime sessions are thread-safe)."""

    def __init__(self, model_file: Path, tokenizer_file: Path) -> None:
        import onnxruntime as ort

        from index.embedders.onnx import session_options

        self.session = ort.InferenceSession(
            str(model_file), session_options(), providers=["CPUExecutionProvider"]
        )
        self.tokenizer = pair_tokenizer(tokenizer_file)

    def read(self, question: str, passages: Sequence[str]) -> list[ReadSpan]:
        """The best span of each passage (a passage with no readable token is left out)."""
        if not passages:
            return []
        encodings = encode_pairs(self.tokenizer, question, passages)
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), PAD_ID, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        allowed = np.zeros((len(encodings), width), dtype=bool)
        for k, enc in enumerate(encodings):
            ids[k, : len(enc.ids)] = enc.ids
            mask[k, : len(enc.ids)] = 1
            for t, (seq, (a, b)) in enumerate(zip(enc.sequence_ids, enc.offsets, strict=True)):
                allowed[k, t] = seq == 1 and b > a
        start, end = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        spans = []
        for k, (i, j, score) in enumerate(best_spans(start, end, allowed)):
            if not allowed[k].any():
                continue
            a, b = tidy_span(passages[k], encodings[k].offsets[i][0], encodings[k].offsets[j][1])
            spans.append(ReadSpan(k, a, b, score, float(start[k, 0] + end[k, 0])))
        return spans


# --- the exported network --------------------------------------------------------------------------
EXPORT_VERSION = 1
FLOAT_FILE, INT8_FILE = "reader.onnx", "reader_qint8.onnx"
# int8: ~380 MB less memory and ~15 ms less an /ask than float32, and answers as good (docs/answers.md)
QUANTIZED = True


def weights_meta(weights: Path) -> dict[str, Any]:
    from search.errors import ReaderUnavailable
    from search.shipped import checked_meta

    return checked_meta(weights, WEIGHTS_FILE, META_FILE, what="the reader's", remake="make reader",
                        error=ReaderUnavailable)


def _export(weights: Path, base: Path, out: Path) -> None:
    """torch.onnx.export of e5 + the trained layers + the head: (input_ids, attention_mask) → start, end."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    from index.embedders.onnx import OPSET, _quiet_export_warnings

    meta = weights_meta(weights)
    # Eager attention: the subgraph onnxruntime's attention fusion recognises.
    model = AutoModel.from_pretrained(str(base), attn_implementation="eager")
    network = ReaderNetwork(model, int(meta["frozen"]))
    network.load_shipped_state(load_file(str(weights / WEIGHTS_FILE)))
    network.eval()

    class Spans(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.head = network.model, network.head

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[Any, Any]:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self.head(hidden)
            return logits[..., 0], logits[..., 1]

    ids = torch.tensor([[0, 100, 200, 2, 2, 300, 400, 2], [0, 100, 2, 2, 300, 2, PAD_ID, PAD_ID]])
    mask = (ids != PAD_ID).long()
    with torch.inference_mode(), _quiet_export_warnings():
        torch.onnx.export(
            Spans(), (ids, mask), str(out), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask"], output_names=["start_logits", "end_logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"}
                          for name in ("input_ids", "attention_mask", "start_logits", "end_logits")},
        )


def ensure_reader_model(weights: Path = WEIGHTS_DIR, *, quantized: bool = QUANTIZED) -> Path:
    """The reader's ONNX file, exported from the shipped weights once and cached beside the e5 model."""
    from index.embedders.base import exclusive
    from index.embedders.e5_model import default_cache_dir
    from index.embedders.onnx import _atomic_write, _fuse, _quantize
    from search.shipped import note_superseded

    meta = weights_meta(weights)
    folder = default_cache_dir() / f"reader-{meta['sha256'][:16]}-v{EXPORT_VERSION}"
    target = folder / (INT8_FILE if quantized else FLOAT_FILE)
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    base = base_model_dir()
    with exclusive(folder / ".export.lock"):
        if target.is_file():
            return target
        float_file = folder / FLOAT_FILE
        if not float_file.is_file():
            log.info("exporting the reader to ONNX (once; cached in %s)", folder)
            with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
                raw = Path(tmp) / "raw.onnx"
                _export(weights, base, raw)
                _atomic_write(float_file, lambda path: _fuse(raw, path, base))
        if quantized:
            _atomic_write(target, lambda path: _quantize(float_file, path))
    note_superseded(folder, "reader-*", what="a span reader")
    return target


_reader: SpanReader | None = None
_reader_lock = threading.Lock()


def shipped_reader() -> SpanReader:
    """The reader of `search/weights/`, loaded on first use (exported to ONNX first if not cached)."""
    global _reader
    from search.errors import ReaderUnavailable

    with _reader_lock:
        if _reader is None:
            try:
                model_file = ensure_reader_model()
            except ReaderUnavailable:
                raise
            except Exception as exc:  # an export that fails must not fail the question: say why
                problem = f"{type(exc).__name__}: {exc}"
                raise ReaderUnavailable(f"could not prepare the reader ({problem})") from exc
            _reader = SpanReader(model_file, base_model_dir() / "tokenizer.json")
        return _reader


def main() -> int:
    """`python -m search.reader`: export the shipped reader to ONNX now (`make model` does)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_reader_model())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
