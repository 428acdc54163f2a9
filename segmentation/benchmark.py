"""Pieces of the encoding benchmark (``scripts/bench_encode.py``).

Baselines: the per-row loop of the blog post this project grew from (``tokenizer.encode`` one text,
``model(ids)[0][:, 0]``, ``.detach().numpy()``) and plain batching in the given order (padding to the
longest text of each batch). The project's path is ``segmentation.encoders.TextEncoder``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch


def per_row_cls(model, tokenizer, texts: Sequence[str]) -> np.ndarray:
    """The blog post's loop, verbatim in spirit: one customer at a time, [CLS] vector."""
    rows = []
    for text in texts:
        input_ids = tokenizer.encode(text, return_tensors="pt")
        output = model(input_ids)[0][:, 0]
        rows.append(output.detach().numpy())
    return np.concatenate(rows)


def unsorted_batches(model, tokenizer, texts: Sequence[str], batch_size: int = 64, max_length: int = 128,
                     pooling: str = "cls") -> tuple[np.ndarray, float]:
    """Batches in the given order; returns the embeddings and the share of positions that are padding."""
    out, padded, total = [], 0, 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            mask = batch["attention_mask"]
            padded += int((mask == 0).sum())
            total += mask.numel()
            hidden = model(**batch).last_hidden_state
            if pooling == "cls":
                out.append(hidden[:, 0].numpy())
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                out.append(((hidden * weights).sum(1) / weights.sum(1)).numpy())
    return np.concatenate(out), padded / max(total, 1)


def texts_per_second(encode: Callable[[Sequence[str]], object], texts: Sequence[str], repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    return rates


def synthetic_at_scale(n: int, dim: int, base_customers: int, cache_dir, true_k: int = 6, seed: int = 0):
    """``n`` synthetic customers (resampled from ``base_customers``, new ids) and their ``dim``-d embeddings.

    The embeddings (segment centre + noise) are written to ``cache_dir`` once and memory-mapped, as
    precomputed embeddings of a large table would be. Returns (frame, embeddings, schema).
    """
    from pathlib import Path

    import pandas as pd
    import yaml

    from segmentation.schema import SchemaConfig
    from segmentation.synthetic import make_synthetic

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = make_synthetic(base_customers, seed=seed).customers
    base = base[base.snapshot == 0].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    frame["customer_id"] = pd.Series(np.arange(n)).map("C{:08d}".format)
    path = cache_dir / f"embeddings_{n}_{dim}_{seed}.npy"
    if not path.exists():
        codes = frame.true_segment.astype("category").cat.codes.to_numpy()
        centres = rng.normal(size=(true_k, dim)).astype(np.float32)
        out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, dim))
        for lo in range(0, n, 100_000):
            hi = min(n, lo + 100_000)
            out[lo:hi] = centres[codes[lo:hi]] + rng.normal(scale=1.5, size=(hi - lo, dim)).astype(np.float32)
        out.flush()
        del out
        path.with_suffix(".tmp.npy").rename(path)
    embeddings = np.load(path, mmap_mode="r")
    repo_config = Path(__file__).resolve().parents[1] / "configs" / "data" / "synthetic.yaml"
    schema_values = yaml.safe_load(repo_config.read_text())["schema"]
    schema = SchemaConfig(**{k: v for k, v in schema_values.items() if k in SchemaConfig.__dataclass_fields__})
    return frame, embeddings, schema
