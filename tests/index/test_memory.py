"""Memory of reading a file stays bounded whatever its size (measured in a subprocess, real tokenizer)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import resource
    import types
    from pathlib import Path

    from transformers import AutoTokenizer

    from index.chunker import chunk_document
    from index.config import DEFAULT_MODEL
    from index.documents import Document
    from index.embedders.base import PromptedEmbedder
    from index.embedders.onnx import _transformer_folder
    from index.embedders.sbert import resolve_model_path

    folder = _transformer_folder(Path(resolve_model_path(DEFAULT_MODEL)))
    model = types.SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(str(folder)))
    def count(texts):
        return PromptedEmbedder.count_tokens(model, texts)
    sentence = "长三角地区研发投入强度持续提升，区域协同创新格局加快形成。"
    text = sentence * (2_000_000 // len(sentence))  # a file of one line, 6 MB of UTF-8
    count([sentence] * 100)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chunks = chunk_document(Document.from_paragraphs("x.txt", [text], repair=False), count)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(len(chunks), grown // 1024)
    """
)


def test_chunking_a_one_line_file_takes_bounded_memory() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr
    chunks, grown_mb = map(int, out.stdout.split())
    assert chunks > 1000
    # counted at once, these 2 million characters grew the peak by 351 MB (a 50 MB file: 4.9 GB in all here)
    assert grown_mb < 100, f"peak memory grew by {grown_mb} MB while chunking"
