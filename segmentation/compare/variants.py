"""Pretrained encoder variants, produced on demand from the training texts and cached.

An encoder config with a ``pretrain`` block (``configs/encoder/dapt_rtd.yaml``, ...) names a start
(a model directory, hub name or ``package:MODULE/DIR``; null = from scratch) and stages, each one
``scripts/pretrain.py`` run composed from ``configs/pretrain.yaml`` (``experiment=``, objective, budget,
overrides) and run in-process by ``electra.trainer.pretrain``. The training texts of the comparison
(train split only, already scrubbed) are written to a corpus file that is the stage's only data.

Every stage is cached under ``CACHE_ROOT/<data>-<stage>-<key>/`` where the key hashes the corpus, the
start model's files, the stage chain so far and the seed: a sweep over evaluation seeds and encoders
pretrains each variant once, and ``dapt_rtd_contrastive`` reuses ``dapt_rtd``'s first stage. A stage
directory is complete when ``pretraining.json`` exists (written last); an interrupted stage resumes from
its last checkpoint. A lock file serialises concurrent jobs wanting the same stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from segmentation import atomic
from segmentation.config import EncoderConfig, PretrainStageConfig
from segmentation.encoders import model_identity, resolve_model_reference, texts_digest

log = logging.getLogger(__name__)

CACHE_VERSION = 1
RECORD = "pretraining.json"
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"
OBJECTIVES = ("rtd", "mlm", "contrastive")
# What each objective exports (electra.modeling.export_pretrained): the encoder used downstream.
EXPORTED = {"rtd": "discriminator", "mlm": "encoder", "contrastive": "encoder"}
_PLAIN_OVERRIDE_VALUE = re.compile(r"[A-Za-z0-9_./:+-]*")


def _quoted(value: str) -> str:
    """A value for a Hydra override: quoted unless it is plainly safe (paths with spaces, commas, '=')."""
    if _PLAIN_OVERRIDE_VALUE.fullmatch(value):
        return value
    if "'" in value:
        raise ValueError(f"cannot pass {value!r} as a Hydra override value (it contains a single quote)")
    return f"'{value}'"


def write_corpus(texts: Sequence[str], root: Path) -> Path:
    """The texts as a plain-text corpus (one document per line), named by their digest; written once."""
    path = root / "corpora" / f"{texts_digest(texts)[:24]}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (" ".join(text.split()) for text in texts)  # a newline inside a text would split the document
        atomic.write_text(path, "".join(f"{line}\n" for line in lines if line))
    return path


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def compose_pretrain_config(overrides: list[str]):
    """``configs/pretrain.yaml`` with ``overrides``, typed by ``electra.config`` (as ``scripts/pretrain.py`` sees it).

    Inside a Hydra application (``scripts/compare.py``) Hydra is initialised on ``configs/`` already;
    elsewhere the repository's ``configs/`` is used.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from electra.config import register_configs

    register_configs()
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="pretrain", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIGS_DIR), version_base="1.3"):
        return compose(config_name="pretrain", overrides=overrides)


def stage_overrides(stage: PretrainStageConfig, corpus: Path, init_from: str | None, seed: int,
                    data_name: str) -> list[str]:
    """The ``scripts/pretrain.py`` overrides of one stage (without ``output_dir``)."""
    if stage.objective not in OBJECTIVES:
        raise ValueError(f"encoder.pretrain stage objective must be one of {OBJECTIVES}, got {stage.objective!r}")
    overrides = [f"experiment={stage.experiment}", "logger=none", "data=text", f"data.name={_quoted(data_name)}",
                 f"data.path={_quoted(str(corpus))}", "data.scrub_pii=false",  # scrubbed before it was written
                 f"model.objective={stage.objective}", f"trainer.seed={seed}"]
    if init_from:
        overrides.append(f"model.init_from={_quoted(init_from)}")
    if stage.token_budget:
        overrides.append(f"trainer.token_budget={stage.token_budget}")
    if stage.max_steps:
        overrides.append(f"trainer.max_steps={stage.max_steps}")
    return overrides + list(stage.overrides)


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (POSIX); a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_stage(overrides: list[str], run_dir: Path, stage_index: int, stage: PretrainStageConfig, key: str,
               progress: bool) -> dict:
    from electra.trainer import pretrain
    from electra.tracking import read_metrics

    resume = (run_dir / "checkpoints").is_dir()
    cfg = compose_pretrain_config([*overrides, f"output_dir={_quoted(str(run_dir))}",
                                   f"trainer.progress_bar={str(progress).lower()}", f"trainer.resume={str(resume).lower()}"])
    log.info("pretraining stage %d (%s, %s) into %s%s", stage_index, stage.experiment, stage.objective, run_dir,
             " (resuming)" if resume else "")
    start = time.perf_counter()
    result = pretrain(cfg)
    wall = time.perf_counter() - start
    encoder_dir = result.exported[EXPORTED[stage.objective]]
    metrics = read_metrics(run_dir / "metrics.jsonl")
    trainer = cfg.trainer
    return {
        "stage": stage_index, "experiment": stage.experiment, "objective": stage.objective,
        "token_budget": stage.token_budget, "steps": result.state.step,
        "batch_size": trainer.batch_size, "block_size": trainer.block_size,
        "processes": result.world_size, "gradient_accumulation_steps": trainer.gradient_accumulation_steps,
        # Budgeted tokens per step (block_size per sequence); tokens_seen counts real (non-padding) tokens.
        "tokens_per_step": trainer.batch_size * trainer.block_size * result.world_size * trainer.gradient_accumulation_steps,
        "tokens_seen": result.state.tokens_seen, "wall_s": round(wall, 2),
        "tokens_per_s": round(result.state.tokens_seen / max(wall, 1e-9), 1), "resumed": resume,
        "final_metrics": {k: v for k, v in (metrics[-1] if metrics else {}).items() if isinstance(v, (int, float))},
        "learning_rate": trainer.learning_rate, "warmup_steps": trainer.warmup_steps,
        "init_from": cfg.model.init_from, "seed": trainer.seed, "key": key,
        "command": "python scripts/pretrain.py " + " ".join(overrides) + " output_dir=DIR",
        "run_dir": str(run_dir), "encoder_dir": str(encoder_dir),
    }


def materialize_encoder(encoder: EncoderConfig, train_texts: Sequence[str], cache_root: str | Path,
                        seed: int = 0, data_name: str = "data", progress: bool = True) -> tuple[EncoderConfig, list[dict]]:
    """``encoder`` with ``name_or_path`` set to its pretrained model (built now, or read from the cache).

    Returns the config and one record per stage (budget, steps, tokens seen, wall time, tokens/s, final
    losses, the ``scripts/pretrain.py`` command); a record read from the cache has ``cached: true``.
    """
    spec = encoder.pretrain
    if spec is None:
        return encoder, []
    if encoder.kind != "hf":
        raise ValueError(f"encoder.pretrain needs encoder.kind=hf, got {encoder.kind!r}")
    if not spec.stages:
        raise ValueError("encoder.pretrain.stages is empty: list at least one pretraining stage")
    if not train_texts:
        raise ValueError("no training texts to pretrain on")
    root = Path(cache_root)
    corpus = write_corpus(train_texts, root)
    start = resolve_model_reference(spec.start) if spec.start else None
    previous = _digest({"version": CACHE_VERSION, "corpus": texts_digest(train_texts), "seed": seed,
                        "start": model_identity(start) if start else "scratch"})
    init_from, records = start, []
    for index, stage in enumerate(spec.stages):
        stage = stage if isinstance(stage, PretrainStageConfig) else PretrainStageConfig(**stage)
        overrides = stage_overrides(stage, corpus, init_from, seed, data_name)
        key = _digest({"previous": previous, "stage": dataclasses.asdict(stage)})
        run_dir = root / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', data_name)}-{stage.experiment}-{stage.objective}-{key[:16]}"
        with _locked(root / "locks" / f"{key}.lock"):
            record_path = run_dir / RECORD
            if record_path.is_file():
                record = {**json.loads(record_path.read_text()), "cached": True}
                log.info("stage %d (%s, %s): cached in %s", index, stage.experiment, stage.objective, run_dir)
            else:
                record = _run_stage(overrides, run_dir, index, stage, key, progress)
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the exported encoder is what is kept
                atomic.write_text(record_path, json.dumps(record, indent=1))
                record = {**record, "cached": False}
        records.append(record)
        init_from, previous = record["encoder_dir"], key
    return dataclasses.replace(encoder, name_or_path=init_from), records
