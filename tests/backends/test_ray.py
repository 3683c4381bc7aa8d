"""`semsearch index --ray`: embedding on a local Ray cluster gives the index a local build gives.

Ray listens on every interface whatever it is told, so the cluster runs inside a network namespace of its
own (`unshare --net`, loopback up), and the whole namespace ends with its first process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import EVAL, ROOT

pytestmark = pytest.mark.integration

DOCS, QUERIES = 30, 15

SCRIPT = """
set -e
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled PYTHONPATH={root}
"{ray}" start --head --node-ip-address=127.0.0.1 --port=6390 --include-dashboard=false --num-cpus=2 \\
    --disable-usage-stats --temp-dir={tmp}/ray --block > {tmp}/ray.log 2>&1 &
RAYPID=$!
for i in $(seq 150); do (echo > /dev/tcp/127.0.0.1/6390) 2>/dev/null && break; sleep 0.2; done
(echo > /dev/tcp/127.0.0.1/6390) 2>/dev/null || {{ echo "no ray" >&2; tail -5 {tmp}/ray.log >&2; exit 1; }}
cd {root}
"{python}" -m api.cli index {corpus} --index {index} --ray 127.0.0.1:6390 --quiet --json > {tmp}/summary.json
kill -TERM $RAYPID
"""


def _can_namespace() -> bool:
    return shutil.which("unshare") is not None and shutil.which("ip") is not None and os.geteuid() == 0


@pytest.mark.skipif(not _can_namespace(), reason="needs root, unshare and ip for a private network namespace")
def test_an_index_embedded_on_ray_answers_like_a_local_build(tmp_path: Path, shared_embedder: Any) -> None:
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        if os.environ.get("CI"):
            pytest.fail("the ray extra is not installed (make setup installs it)")
        pytest.skip("ray is not installed: pip install -e '.[ray]'")
    from index.builder import IndexBuilder
    from search.engine import Engine

    corpus = tmp_path / "corpus.jsonl"
    lines = (EVAL / "xquad" / "zh" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:DOCS]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = {json.loads(line)["doc_id"] for line in lines}
    queries = [q for q in map(json.loads, (EVAL / "xquad" / "zh" / "queries.jsonl").open(encoding="utf-8"))
               if q["doc_id"] in kept][:QUERIES]
    # Ray's socket paths must stay under 108 bytes: its folder is a short one of its own.
    ray_tmp = Path(tempfile.mkdtemp(prefix="sray", dir="/tmp"))
    script = SCRIPT.format(root=ROOT, ray=ray, python=sys.executable, tmp=ray_tmp, corpus=corpus,
                           index=tmp_path / "ray_index")
    try:
        done = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        # --quiet: the build's own summary only, not Ray Data's plan and timing of every dataset
        assert "INFO" not in done.stderr and "Dataset" not in done.stderr, done.stderr[-2000:]
        summary = json.loads((ray_tmp / "summary.json").read_text())
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert summary["embedded"] == summary["passages"] > 0

    IndexBuilder(tmp_path / "local_index", embedder=shared_embedder).index_paths([corpus])
    on_ray, local = Engine(tmp_path / "ray_index"), Engine(tmp_path / "local_index")
    on_ray._embedder = local._embedder = shared_embedder
    for q in queries:
        got = [r.text for r in on_ray.search(q["question"], k=5).results]
        want = [r.text for r in local.search(q["question"], k=5).results]
        assert got == want, q["question"]
    a, b = on_ray.snapshot(), local.snapshot()
    ids = np.asarray(sorted(a.passages.passages(range(1, summary["passages"] + 1))), dtype=np.int64)
    texts_a = a.passages.passages(ids.tolist())
    texts_b = b.passages.passages(ids.tolist())
    assert all(texts_a[i].text == texts_b[i].text for i in ids.tolist())  # the same passages, the same ids
    np.testing.assert_allclose(a.vectors.vectors(ids), b.vectors.vectors(ids), atol=1e-4)

    # Again: the embedding cache holds every passage, so nothing goes to the cluster (none is running).
    again = IndexBuilder(tmp_path / "ray_index", ray="127.0.0.1:1", embedder=shared_embedder, rebuild=True)
    assert again.index_paths([corpus]).embedded == 0
