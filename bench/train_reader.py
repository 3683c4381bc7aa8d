"""Train the span reader (`search.reader`) on CMRC 2018 dev and DRCD dev: `make reader`.

The reader is the e5 encoder with a span head: question and passage in, a start and an end score per
passage token out, and the first token's pair of scores as "no answer here". The embeddings and the lower
`--frozen` layers keep e5's weights, so their output is computed once for every training pair and cached;
only the upper layers and the head are trained, and only they ship (float16, `search/weights/`).

Training pairs are made the way `ask` will meet them: every document is chunked by the index's own
chunker, the passage holding the answer is a positive, and two kinds of negative teach "no answer here":
the passage of ANOTHER document most like the question (character-bigram TF-IDF: a retrieved look-alike)
and a passage of the same document without the answer. A share of each set's documents is held out (for
choosing the epoch and for calibrating the confidence in `bench/fit_reader.py`); XQuAD is never read.
A share of the pairs (`--english`) also comes with the question glossed in English word by word
(`bench/code_switch.py`, CC-CEDICT): the only English questions the licences allow, and what lets the
reader answer an English question over Chinese text.

Data: CMRC 2018 dev (CC BY-SA 4.0, github ymcui/cmrc2018) and DRCD dev (CC BY-SA 3.0, github
DRCKnowledgeTeam/DRCD), from `../shared/eval`; CC-CEDICT (CC BY-SA 4.0) for the glosses. The news set
states no licence and is never trained on.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search.reader import (  # noqa: E402
    ReaderNetwork,
    base_model_dir,
    best_spans,
    encode_pairs,
    pair_tokenizer,
    span_of_answer,
)

SETS = ("cmrc2018-dev", "drcd-dev")
HELD_OUT_SHARE = 0.1  # of each set's documents


@dataclass
class Pair:
    question: str
    passage: str
    answer: tuple[int, int] | None  # characters of the answer in the passage, None: no answer here
    qid: str
    held_out: bool
    english: bool = False  # the question's words glossed in English (`bench/code_switch.py`)


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _passages(folder: Path) -> dict[str, list[str]]:
    """Each document's passages, chunked exactly as `semsearch index` chunks it."""
    from index.chunker import chunk_document
    from index.config import ChunkSettings, EmbedderSettings
    from index.embedders.factory import create_embedder
    from index.loaders.jsonl import records_to_documents

    embedder = create_embedder(EmbedderSettings())
    records = [(f"corpus.jsonl:{n + 1}", r) for n, r in enumerate(_jsonl(folder / "corpus.jsonl"))]
    documents = records_to_documents(records)
    config = ChunkSettings()
    return {
        doc.doc_id: [c.text for c in chunk_document(doc, embedder.count_tokens, config)] for doc in documents
    }


def _bigrams(text: str) -> list[str]:
    text = "".join(ch for ch in text if not ch.isspace())
    return [text[i : i + 2] for i in range(len(text) - 1)]


def make_pairs(eval_root: Path, seed: int, english_share: float = 0.0) -> list[Pair]:
    """Every question's positive pair and its sampled negatives; with probability `english_share` a pair
    also gets a copy whose question is glossed in English (same passage, same answer or none)."""
    from code_switch import english_question
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = random.Random(seed)
    english_rng = random.Random(seed + 1)  # its own stream: the Chinese pairs stay those of english_share 0
    pairs: list[Pair] = []
    for name in SETS:
        folder = eval_root / name
        started = time.time()
        passages = _passages(folder)
        doc_ids = sorted(passages)
        held = set(rng.sample(doc_ids, max(1, int(len(doc_ids) * HELD_OUT_SHARE))))
        flat = [(doc_id, i, text) for doc_id in doc_ids for i, text in enumerate(passages[doc_id])]
        vectorizer = TfidfVectorizer(analyzer=_bigrams, sublinear_tf=True)
        matrix = vectorizer.fit_transform([text for _, _, text in flat])
        index_of_doc = {doc_id: k for k, doc_id in enumerate(doc_ids)}
        owner = np.array([index_of_doc[d] for d, _, _ in flat])
        queries = [q for q in _jsonl(folder / "queries.jsonl") if q["doc_id"] in passages]
        qmatrix = vectorizer.transform([q["question"] for q in queries])
        scores = (qmatrix @ matrix.T).tocsr()
        kept = 0
        first_pair = len(pairs)
        for row, query in enumerate(queries):
            doc_id = query["doc_id"]
            answers = [a for a in query["answers"] if a.strip()]
            found = None
            for ordinal, text in enumerate(passages[doc_id]):
                for answer in answers:
                    at = text.find(answer)
                    if at >= 0:
                        found = (ordinal, at, at + len(answer))
                        break
                if found:
                    break
            if found is None:
                continue
            kept += 1
            is_held = doc_id in held
            ordinal, start, end = found
            passage = passages[doc_id][ordinal]
            pairs.append(Pair(query["question"], passage, (start, end), query["qid"], is_held))
            line = scores.getrow(row)
            order = line.indices[np.argsort(-line.data)]
            if rng.random() < 0.35:  # a look-alike passage of another document
                for k in order[:50]:
                    if owner[k] != index_of_doc[doc_id]:
                        text = flat[k][2]
                        if not any(a in text for a in answers):
                            pairs.append(Pair(query["question"], text, None, query["qid"], is_held))
                        break
            if rng.random() < 0.2:  # a passage of the same document without the answer
                same = [k for k in order if owner[k] == index_of_doc[doc_id] and flat[k][1] != ordinal]
                for k in same[:1]:
                    text = flat[k][2]
                    if not any(a in text for a in answers):
                        pairs.append(Pair(query["question"], text, None, query["qid"], is_held))
        copies = []
        for pair in pairs[first_pair:] if english_share > 0 else []:
            if english_rng.random() < english_share:
                question = english_question(pair.question, english_rng)
                if question is not None:
                    copies.append(Pair(question, pair.passage, pair.answer, pair.qid, pair.held_out, True))
        pairs.extend(copies)
        print(f"{name}: {len(doc_ids)} documents, {len(flat)} passages, {kept} questions with their answer "
              f"in one passage, {len(copies)} English copies ({time.time() - started:.0f} s)", flush=True)
    return pairs


def _features(pairs: list[Pair], tokenizer):
    """Token ids and the answer's start/end token (0, 0 for no answer) of every pair that fits."""
    encoded = encode_pairs(tokenizer, [p.question for p in pairs], [p.passage for p in pairs])
    rows = []
    for k, pair in enumerate(pairs):
        ids, offsets, sequence = encoded[k].ids, encoded[k].offsets, encoded[k].sequence_ids
        if pair.answer is None:
            rows.append((ids, 0, 0, k))
            continue
        span = span_of_answer(offsets, sequence, *pair.answer)
        if span is not None:
            rows.append((ids, span[0], span[1], k))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=ROOT / "search" / "weights")
    parser.add_argument("--frozen", type=int, default=2, help="lower layers that keep e5's weights")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--english", type=float, default=0.4,
                        help="share of pairs that also get an English-glossed copy of their question")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16",
                        help="arithmetic of the frozen pass and the training steps; bf16 (autocast, "
                             "weights and optimiser in float32) takes a step 1.3-1.5x faster than fp32 on a "
                             "CPU with AVX512-BF16 and trained the shipped weights (63 minutes; measured on "
                             "that CPU only: elsewhere compare a few steps of each first; docs/answers.md)")
    parser.add_argument("--limit", type=int, default=0, help="train on this many pairs (a smoke run)")
    args = parser.parse_args()

    import torch

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bf16 = args.precision == "bf16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    started = time.time()
    if not (args.eval / "cmrc2018-dev").is_dir():
        print(f"no development sets at {args.eval}: the reader is trained from them", file=sys.stderr)
        return 2

    pairs = make_pairs(args.eval, args.seed, args.english)
    if args.limit:
        random.Random(args.seed).shuffle(pairs)
        pairs = pairs[: args.limit]
    network = ReaderNetwork.from_base(base_model_dir(), frozen=args.frozen)
    rows = _features(pairs, pair_tokenizer(base_model_dir() / "tokenizer.json"))
    train = [r for r in rows if not pairs[r[3]].held_out]
    held = [r for r in rows if pairs[r[3]].held_out]
    print(f"{len(train)} training pairs ({sum(1 for r in train if r[1] == 0)} without an answer), "
          f"{len(held)} held out", flush=True)

    # The frozen part runs once per pair; its output is kept in float16 (about 200 KB a pair).
    def lower(batch_rows):
        ids, mask = _pad([r[0] for r in batch_rows])
        with torch.no_grad(), autocast():
            return network.lower(ids, mask).to(torch.float16), mask

    def cache(all_rows, label):
        order = sorted(range(len(all_rows)), key=lambda i: len(all_rows[i][0]))
        batches = []
        t0 = time.time()
        for n, at in enumerate(range(0, len(order), 32)):
            chunk = [all_rows[i] for i in order[at : at + 32]]
            hidden, mask = lower(chunk)
            starts = torch.tensor([r[1] for r in chunk])
            ends = torch.tensor([r[2] for r in chunk])
            batches.append((hidden, mask, starts, ends, [r[3] for r in chunk]))
            if n % 20 == 0:
                done = min(at + 32, len(order))
                rate = done / max(time.time() - t0, 1e-6)
                print(f"  {label}: {done}/{len(order)} pairs through the frozen layers, {rate:.0f}/s, "
                      f"ETA {(len(order) - done) / rate:.0f} s", flush=True)
        return batches

    network.upper_train()
    train_batches = _rebatch(cache(train, "train"), args.batch)
    held_batches = cache(held, "held out")
    params = [p for p in network.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps = int(math.ceil(len(train_batches) * args.epochs))
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    rng = random.Random(args.seed)
    step = 0
    best = None
    t0 = time.time()
    epoch = 0
    while step < steps:
        order = list(range(len(train_batches)))
        rng.shuffle(order)
        network.upper_train()
        for b in order:
            if step >= steps:
                break
            hidden, mask, starts, ends, _ = train_batches[b]
            with autocast():
                start_logits, end_logits = network.upper(hidden.float(), mask)
            loss = (torch.nn.functional.cross_entropy(start_logits.float(), starts)
                    + torch.nn.functional.cross_entropy(end_logits.float(), ends)) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 25 == 0:
                rate = step / (time.time() - t0)
                print(f"  step {step}/{steps} loss {loss.item():.3f} {rate * args.batch:.1f} pairs/s "
                      f"ETA {(steps - step) / rate / 60:.1f} min", flush=True)
        epoch += 1
        score = _held_out_score(network, held_batches, pairs, rows)
        print(f"epoch {epoch}: held out {score}", flush=True)
        if best is None or score["f1"] + score["null_acc"] > best["f1"] + best["null_acc"]:
            best = score
            meta = network.save(args.out, {
                "trained_on": ["cmrc2018-dev (CC BY-SA 4.0, github ymcui/cmrc2018)",
                               "drcd-dev (CC BY-SA 3.0, github DRCKnowledgeTeam/DRCD)",
                               "their questions glossed in English with CC-CEDICT (CC BY-SA 4.0, mdbg.net)"],
                "english_share": args.english,
                "held_out_share_of_documents": HELD_OUT_SHARE,
                "held_out": score, "epoch": epoch,
                "seed": args.seed, "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
                "precision": args.precision,
                "training_pairs": len(train), "minutes": round((time.time() - started) / 60, 1),
                "command": "python " + " ".join(sys.argv[:1] + [a for a in sys.argv[1:]]),
            })
            print(f"saved to {args.out}", flush=True)
    print(json.dumps(meta, ensure_ascii=False, indent=1))
    return 0


def _pad(sequences):
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), 1, dtype=torch.long)  # 1: e5's <pad>
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for k, s in enumerate(sequences):
        ids[k, : len(s)] = torch.tensor(s)
        mask[k, : len(s)] = 1
    return ids, mask


def _rebatch(batches, size):
    """Cached batches of 32 split to the training batch size (neighbours in length stay together)."""
    out = []
    for hidden, mask, starts, ends, keys in batches:
        for at in range(0, hidden.shape[0], size):
            width = int(mask[at : at + size].sum(1).max())
            out.append((hidden[at : at + size, :width], mask[at : at + size, :width], starts[at : at + size],
                        ends[at : at + size], keys[at : at + size]))
    return out


def _held_out_score(network, batches, pairs, rows) -> dict:
    """Token EM, F1 and no-answer accuracy on the held-out pairs: all of them, and the English copies
    alone under `english`."""
    score = _score(network, batches, pairs, lambda pair: True)
    if any(pair.english for pair in pairs):
        score["english"] = _score(network, batches, pairs, lambda pair: pair.english)
    return score


def _score(network, batches, pairs, chosen) -> dict:
    import torch

    network.eval()
    exact = f1_sum = answered = 0
    null_right = nulls = 0
    with torch.no_grad():
        for hidden, mask, starts, ends, keys in batches:
            picked = [k for k, key in enumerate(keys) if chosen(pairs[key])]
            if not picked:
                continue
            hidden, mask, starts, ends = hidden[picked], mask[picked], starts[picked], ends[picked]
            start_logits, end_logits = (t.numpy() for t in network.upper(hidden.float(), mask))
            allowed = mask.numpy().astype(bool)
            allowed[:, 0] = False  # the first token is "no answer", never a span
            for k, (s, e, span_score) in enumerate(best_spans(start_logits, end_logits, allowed)):
                null_score = float(start_logits[k, 0] + end_logits[k, 0])
                if int(starts[k]) == 0:
                    nulls += 1
                    null_right += int(null_score > span_score)
                else:
                    answered += 1
                    gold = set(range(int(starts[k]), int(ends[k]) + 1))
                    got = set(range(s, e + 1))
                    exact += int(gold == got)
                    common = len(gold & got)
                    if common:
                        p, r = common / len(got), common / len(gold)
                        f1_sum += 2 * p * r / (p + r)
                    null_right += int(span_score >= null_score)
    network.upper_train()
    return {
        "token_em": round(exact / max(answered, 1), 4),
        "f1": round(f1_sum / max(answered, 1), 4),
        "null_acc": round(null_right / max(answered + nulls, 1), 4),
        "pairs": answered + nulls,
    }


if __name__ == "__main__":
    sys.exit(main())
