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
