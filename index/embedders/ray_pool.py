"""Embedding on a Ray cluster: Ray Data `map_batches` over a pool of actors, one model per actor.

    for hashes, vectors in RayEmbedding("10.0.0.5:6379", settings.embedder).embed(hashes, texts):
        cache.put(hashes, vectors)

The passages are split into several blocks per actor, so every actor works; results stream back in
batches as actors finish them (not in input order: each carries its text hash). The cluster's nodes need
semsearch and the model installed as on this machine (`make model`): only texts travel, never weights.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from index.config import EmbedderSettings
from index.embedders.base import EmbedderError

BLOCKS_PER_ACTOR = 4  # more blocks than actors, so a slow block does not leave the others idle
BATCH = 32  # passages per model call inside an actor


class _EmbedActor:
    """One per actor: the model is loaded once, in `__init__`."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from index.embedders.factory import create_embedder

        self.embedder = create_embedder(EmbedderSettings(**settings))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.encode_passages([str(t) for t in batch["text"]])
        return {"hash": batch["hash"], "vector": np.asarray(vectors, dtype=np.float32)}


def reachable(address: str, seconds: float = 5.0) -> str | None:
    """This machine's address on the way to the Ray head at `address` (None for `auto` or `ray://`).
    Fails at once, with the address, when no head answers there (`ray.init` would retry for minutes)."""
    if address == "auto" or address.startswith("ray://"):
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=seconds) as conn:
            return str(conn.getsockname()[0])
    except (OSError, ValueError) as exc:
        raise EmbedderError(
            f"no Ray cluster answers at {address} ({exc}); start one (`ray start --head`) or give the "
            f"address of its head as --ray HOST:PORT"
        ) from exc


class RayEmbedding:
    """Embeds passages on the cluster at `address` (`host:port` of its head, or `auto`)."""

    def __init__(self, address: str, settings: EmbedderSettings, *, actors: int | None = None) -> None:
        self.address, self.settings, self.actors = address, settings, actors

    def embed(self, hashes: Sequence[str], texts: Sequence[str]) -> Iterator[tuple[list[str], np.ndarray]]:
        import ray

        own_ip = reachable(self.address)
        if not ray.is_initialized():
            # The build reports its own progress, and its errors as exceptions: Ray Data would log each
            # dataset's plan and timing to stderr, through --quiet too (a level set by the user wins).
            # The address this machine reaches the head from is this node's: Ray would look for it by
            # connecting to 8.8.8.8 and warn when it cannot.
            os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
            ray.init(address=self.address, log_to_driver=False, logging_level="ERROR",
                     _node_ip_address=own_ip)
        ray.data.DataContext.get_current().enable_progress_bars = False  # the build shows its own
        cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = self.actors or max(1, cpus)
        per_actor = max(1, cpus // actors)
        data = ray.data.from_items([{"hash": h, "text": t} for h, t in zip(hashes, texts, strict=True)])
        # Split before the actors start: they take every CPU, and a split task waiting for one would wait
        # for ever.
        blocks = data.repartition(actors * BLOCKS_PER_ACTOR).materialize()
        embedded = blocks.map_batches(
            _EmbedActor,
            fn_constructor_kwargs={"settings": asdict(self.settings)},
            batch_size=BATCH,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=per_actor,
            batch_format="numpy",
            runtime_env={"env_vars": {"SEMSEARCH_THREADS": str(per_actor),
                                      "PYTHONPATH": os.environ.get("PYTHONPATH", "")}},
        )
        for batch in embedded.iter_batches(batch_size=BATCH, batch_format="numpy"):
            yield [str(h) for h in batch["hash"]], batch["vector"]
