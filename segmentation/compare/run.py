"""One comparison job: an encoder, a data set and an evaluation seed -> ``metrics.json`` and ``config.yaml``.

    DIR/config.yaml    the resolved configuration
    DIR/metrics.json   {"encoder", "data", "seed", "splits", "clustering", "linear_probe", "few_shot",
                        "pretraining", "budget", "timings", "config"}
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from segmentation.cache import EmbeddingCache
from segmentation.compare.config import CompareConfig
from segmentation.compare.protocol import clustering_protocol, linear_probe
from segmentation.compare.splits import load_labelled_splits
from segmentation.compare.variants import materialize_encoder
from segmentation.encoders import build_encoder

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


@dataclass
class ComparisonResult:
    output_dir: Path
    metrics: dict


def _embed(encoder, texts: list[str], cache: EmbeddingCache | None) -> np.ndarray:
    return np.asarray(cache.get_or_encode(encoder, texts) if cache else encoder.encode(texts), dtype=np.float32)


def _tokens(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def budget_summary(records: list[dict]) -> dict:
    """The compute a pretrained variant got: per stage and in total, with a one-line label for tables."""
    if not records:
        return {"pretrained": False, "label": "none"}
    parts = []
    for r in records:
        amount = f"{_tokens(r['token_budget'])} tokens" if r["token_budget"] else f"{r['steps']} steps x {r['batch_size']}"
        parts.append(f"{r['objective']} {amount}")
    return {"pretrained": True, "label": " + ".join(parts),
            "token_budget": [r["token_budget"] for r in records], "steps": [r["steps"] for r in records],
            "tokens_seen": sum(r["tokens_seen"] for r in records), "wall_s": round(sum(r["wall_s"] for r in records), 1),
            "tokens_per_s": [r["tokens_per_s"] for r in records]}


def run_comparison(cfg: CompareConfig) -> ComparisonResult:
    """Evaluate one encoder on one data set with one evaluation seed; write the outputs."""
    cfg = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    data = OmegaConf.to_object(cfg.data)
    encoder_cfg = OmegaConf.to_object(cfg.encoder)
    encoder_cfg.progress = encoder_cfg.progress and cfg.progress
    name = cfg.name or "encoder"
    if encoder_cfg.dominant_share is not None:
        raise ValueError("the comparison protocol scores plain pooled embeddings; set encoder.dominant_share=null "
                         f"(encoder {name!r} sets {encoder_cfg.dominant_share})")
    timings: dict[str, float] = {}

    mark = time.perf_counter()
    splits = load_labelled_splits(data, cfg.label_column, cfg.test_fraction, cfg.split_seed)
    timings["load"] = time.perf_counter() - mark
    log.info("%s: %d training and %d test texts, %d test labels (%s)", data.name, splits.summary["n_train"],
             splits.summary["n_test"], splits.summary["n_labels_test"], splits.label_column)

    mark = time.perf_counter()
    encoder_cfg, pretraining = materialize_encoder(encoder_cfg, splits.train_texts, Path(data.cache_dir) / "pretrained",
                                                   cfg.encoder_seed, data.name, cfg.progress)
    timings["pretrain"] = time.perf_counter() - mark

    mark = time.perf_counter()
    encoder = build_encoder(encoder_cfg, random_state=cfg.encoder_seed)
    if encoder_cfg.kind == "tfidf":
        encoder.fit(splits.train_texts)  # unlabelled training text only, like pretraining
    cache = EmbeddingCache(Path(data.cache_dir) / "embeddings", encoder_cfg.chunk_size, cfg.progress) \
        if encoder_cfg.cache else None
    train_x = _embed(encoder, splits.train_texts, cache)
    test_x = _embed(encoder, splits.test_texts, cache)
    timings["encode"] = time.perf_counter() - mark

    mark = time.perf_counter()
    clustering = clustering_protocol(test_x, splits.test_labels, cfg.clustering, cfg.seed)
    timings["cluster"] = time.perf_counter() - mark
    probes = {}
    for key in ("linear_probe", "few_shot"):
        probe_cfg = cfg[key]
        if probe_cfg.enabled:
            mark = time.perf_counter()
            probes[key] = linear_probe(train_x, splits.train_labels, test_x, splits.test_labels, probe_cfg, cfg.seed)
            timings[key] = time.perf_counter() - mark

    metrics = {
        "encoder": name, "data": data.name, "seed": int(cfg.seed), "encoder_seed": int(cfg.encoder_seed),
        "model": encoder_cfg.name_or_path if encoder_cfg.kind == "hf" else f"tfidf+svd({encoder.dimension})",
        "dimension": int(train_x.shape[1]), "splits": splits.summary, "clustering": clustering, **probes,
        "pretraining": pretraining, "budget": budget_summary(pretraining),
        "timings": {k: round(v, 2) for k, v in timings.items()}, "config": resolved,
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=1, default=str))
    return ComparisonResult(out, metrics)
