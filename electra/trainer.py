"""The pretraining loop under Hugging Face Accelerate: one CPU, several processes, GPUs, nodes.

Everything about scale (processes, devices, mixed precision, DeepSpeed/FSDP) comes from the
``accelerate launch`` configuration; this file is the same for all of them. Data order, RNG states,
optimizer and scheduler are checkpointed, so a resumed run ends with the weights of one that never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast_object_list, set_seed
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from electra.checkpoint import TrainerState, latest_checkpoint, read_state, save_checkpoint
from electra.config import PretrainConfig, TrainerConfig
from electra.data import (EpochShuffleSampler, PadCollator, load_documents, pack_documents, packing_efficiency,
                          tokenize_documents)
from electra.modeling import (ARCHITECTURE_FILE, build_objective, check_model_source, export_pretrained, load_tokenizer,
                              save_architecture)
from electra.tokenizer import train_wordpiece
from electra.tracking import MetricsLog, start_tracking, tracker_kwargs
from segmentation.atomic import check_writable, write_text, write_with
from segmentation.privacy import privacy_record

log = logging.getLogger(__name__)
# Accelerate logs every file of every checkpoint at INFO, and warns on each save that the shared
# embeddings are stored once (expected: they are one tensor, re-tied by the model structure at load).
logging.getLogger("accelerate.checkpointing").setLevel(logging.WARNING)
logging.getLogger("accelerate.accelerator").setLevel(logging.WARNING)
logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)


class NonFiniteLossError(RuntimeError):
    pass


class CheckpointError(RuntimeError):
    pass


@dataclass
class PretrainResult:
    run_dir: Path
    exported: dict[str, Path] = field(default_factory=dict)
    state: TrainerState = field(default_factory=TrainerState)
    last_metrics: dict = field(default_factory=dict)
    world_size: int = 1


def fresh_accelerator(**kwargs) -> Accelerator:
    """An ``Accelerator`` on the GPU when there is one, else the CPU, with this run's own settings.

    Accelerate keeps one state per process; a second run in the same process (a comparison harness, a
    notebook, a test session) may ask for another precision. The process group (PartialState) is kept.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=not torch.cuda.is_available() or None, **kwargs)


class MetricWindow:
    """Sums of per-micro-batch metrics since the last log, reduced over processes only when logged."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = torch.zeros((), device=self.device)  # micro-batches with a finite loss
        self.tokens = torch.zeros((), device=self.device)
        self.start = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor], loss: torch.Tensor, real_tokens: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach())  # a skipped step must not poison the averages
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0) + torch.where(finite, value.float(), 0.0)
        self.count += finite.float()
        self.tokens += real_tokens

    def flush(self, accelerator: Accelerator) -> tuple[dict[str, float], int]:
        """Averages over the window and all processes, and the window's real tokens (all processes)."""
        names = sorted(self.sums)
        totals = accelerator.reduce(torch.stack([self.tokens.float(), self.count,
                                                 *(self.sums[k] for k in names)]), reduction="sum").tolist()
        tokens, count, values = totals[0], totals[1], totals[2:]
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        averages = {k: (v / count if count else float("nan")) for k, v in zip(names, values)}
        averages["tokens_per_s"] = tokens / elapsed
        self.reset()
        return averages, int(tokens)


def _configure_threads(accelerator: Accelerator, threads: int | None) -> None:
    if accelerator.device.type != "cpu":
        return
    if threads is None:  # share the cores between the processes on this machine
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
        threads = max(1, (os.cpu_count() or 1) // local_processes)
    torch.set_num_threads(threads)


def _resolve_resume(resume, checkpoint_dir: Path) -> Path | None:
    if resume in (False, None, "false", "False", ""):
        return None
    if resume in (True, "true", "True"):
        latest = latest_checkpoint(checkpoint_dir)
        if latest is None:
            log.info("trainer.resume=true but %s holds no complete checkpoint: starting from step 0", checkpoint_dir)
        return latest
    path = Path(str(resume))
    if not path.is_dir():
        raise FileNotFoundError(f"trainer.resume={resume!r} is not a checkpoint directory")
    return path


def _tokenizer(cfg: PretrainConfig, accelerator: Accelerator, run_dir: Path, documents) -> PreTrainedTokenizerBase:
    """The run's tokenizer, created once by the main process in ``run_dir/tokenizer`` and read by all."""
    saved = run_dir / "tokenizer"
    if accelerator.is_main_process and not (saved / "tokenizer_config.json").exists():
        if cfg.model.init_from:
            check_model_source(cfg.model.init_from)
            tokenizer = load_tokenizer(cfg.model.init_from, cfg.model.trust_remote_code)
        else:
            tokenizer = train_wordpiece(documents["text"], cfg.model.vocab_size, cfg.model.lowercase,
                                        model_max_length=cfg.model.max_position_embeddings)
        tokenizer.save_pretrained(saved)
    accelerator.wait_for_everyone()  # unconditional: every process must reach the same barriers
    return load_tokenizer(str(saved))


def _optimizer(model: torch.nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():  # named_parameters() yields each shared tensor once
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2),
                             eps=cfg.adam_epsilon, fused=cfg.fused_adamw or None)


def batch_inputs(input_ids: torch.Tensor, special_ids: torch.Tensor, pad_id: int):
    """(maskable, attention_mask, real token count) for a batch of packed blocks.

    Packed blocks rarely contain padding; without any, the attention mask is dropped so that SDPA can
    take its unmasked (faster) path.
    """
    padding = input_ids == pad_id
    attention_mask = (~padding).long() if padding.any() else None
    return ~torch.isin(input_ids, special_ids), attention_mask, (~padding).sum()


def apply_update(accelerator: Accelerator, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler, tcfg: TrainerConfig) -> tuple[torch.Tensor, bool]:
    """Clip, step and zero the gradients; skip the step when the gradient is not finite."""
    # A non-finite loss on any process makes the all-reduced gradient non-finite everywhere, so every
    # process takes the same decision without an extra collective.
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), tcfg.max_grad_norm or float("inf"))
    step_ok = bool(torch.isfinite(grad_norm))
    if step_ok or tcfg.mixed_precision == "fp16":  # fp16: the loss scaler skips overflow itself
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, step_ok


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Train (or continue training) and export. ``cfg`` is the resolved ``PretrainConfig``."""
    cfg = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    tcfg = cfg.trainer
    if cfg.model.name == "dapt" and not cfg.model.init_from:
        raise ValueError("experiment=dapt continues pretraining a pretrained encoder: set model.init_from=PATH_OR_NAME "
                         "(a Hugging Face model directory or hub name)")
    if tcfg.mixed_precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"trainer.mixed_precision must be no, bf16 or fp16, got {tcfg.mixed_precision!r}")
    accelerator = fresh_accelerator(
        mixed_precision=tcfg.mixed_precision,
        gradient_accumulation_steps=tcfg.gradient_accumulation_steps,
        **tracker_kwargs(cfg.logger),
    )
    _configure_threads(accelerator, tcfg.threads)
    # Decisions that depend on the file system are taken by the main process and shared, so that every
    # process follows the same path (and meets the same barriers). The run directory matters too: a
    # timestamped default can differ by a second between processes.
    run_dir = Path(str(Path(cfg.output_dir).resolve()))
    resume_from = _resolve_resume(tcfg.resume, run_dir / "checkpoints") if accelerator.is_main_process else None
    has_architecture = (run_dir / ARCHITECTURE_FILE).exists()
    run_dir, resume_from, has_architecture = broadcast_object_list([run_dir, resume_from, has_architecture])
    checkpoint_dir = run_dir / "checkpoints"
    if tcfg.token_budget:
        tokens_per_step = tcfg.batch_size * tcfg.block_size * accelerator.num_processes * tcfg.gradient_accumulation_steps
        tcfg.max_steps = max(1, math.ceil(tcfg.token_budget / tokens_per_step))
    if accelerator.is_main_process:
        check_writable(run_dir)  # fail now, not at the first checkpoint
        write_with(run_dir / "config.yaml", lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))
        write_text(run_dir / "privacy.json", json.dumps(privacy_record(cfg.data), indent=1))
    accelerator.wait_for_everyone()
    set_seed(tcfg.seed, device_specific=True)  # each process draws its own masks

    with accelerator.main_process_first():
        documents = load_documents(cfg.data)
    if len(documents) == 0:
        raise ValueError(f"data set {cfg.data.name!r} produced no documents for split {cfg.data.train_split!r}")
    tokenizer = _tokenizer(cfg, accelerator, run_dir, documents)
    with accelerator.main_process_first():
        if cfg.model.objective == "contrastive":  # sentence-level: one text per row, no packing
            blocks = tokenize_documents(documents, tokenizer, tcfg.block_size)
        else:
            blocks = pack_documents(documents, tokenizer, tcfg.block_size)
    needed = tcfg.batch_size * accelerator.num_processes * tcfg.gradient_accumulation_steps
    if len(blocks) < needed:
        raise ValueError(f"only {len(blocks)} blocks of {tcfg.block_size} tokens, fewer than one optimizer step needs "
                         f"({needed}); lower trainer.batch_size or block_size, or add data")

    architecture = run_dir if resume_from is not None and has_architecture else None
    model = build_objective(cfg.model, tokenizer, architecture_dir=architecture)
    if tcfg.block_size > model_max_positions(model):
        raise ValueError(f"trainer.block_size {tcfg.block_size} exceeds the model's {model_max_positions(model)} positions")
    if accelerator.is_main_process and architecture is None:
        save_architecture(model, run_dir)

    sampler = EpochShuffleSampler(len(blocks), seed=tcfg.seed)
    loader = DataLoader(blocks.with_format("torch"), batch_size=tcfg.batch_size, sampler=sampler, drop_last=True,
                        collate_fn=PadCollator(tokenizer.pad_token_id), num_workers=tcfg.num_workers,
                        # Its own generator: starting an epoch must not draw from the global RNG, or a
                        # resumed run (which starts one mid-epoch) would shift every later random mask.
                        generator=torch.Generator().manual_seed(tcfg.seed))
    optimizer = _optimizer(model, tcfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, tcfg.warmup_steps, tcfg.max_steps)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if tcfg.compile:
        model = torch.compile(model, dynamic=True)

    state = TrainerState()
    if resume_from is not None:
        state = read_state(resume_from)
        scheduler.load_state_dict(state.scheduler)
        try:
            accelerator.load_state(str(resume_from))
        except Exception as err:  # safetensors, torch and accelerate raise different types for a damaged file
            raise CheckpointError(
                f"checkpoint {resume_from} cannot be loaded ({type(err).__name__}: {err}). Resume from an earlier "
                f"one with trainer.resume=PATH (in {checkpoint_dir}), or move this one away and use trainer.resume=true"
            ) from err
        log.info("resumed from %s at step %d", resume_from, state.step)
    metrics_log = MetricsLog(run_dir / "metrics.jsonl", accelerator, resume_step=state.step if resume_from else None)
    start_tracking(accelerator, cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True), run_dir.name)
    if accelerator.is_main_process:
        log.info("world_size=%d device=%s sequences=%d", accelerator.num_processes, accelerator.device, len(blocks))
        if cfg.model.objective != "contrastive":
            log.info("packing efficiency %.4f", packing_efficiency(blocks, tokenizer.pad_token_id))

    special_ids = torch.tensor(tokenizer.all_special_ids, device=accelerator.device)
    pad_id = tokenizer.pad_token_id
    accum = tcfg.gradient_accumulation_steps
    batches_per_epoch = len(loader)
    micro = state.step * accum
    epoch, skip = divmod(micro, batches_per_epoch)

    window = MetricWindow(accelerator.device)
    last_metrics: dict = {}
    progress = tqdm(total=tcfg.max_steps, initial=state.step, disable=not (accelerator.is_main_process and tcfg.progress_bar),
                    desc="pretraining", unit="step")
    unwrapped = accelerator.unwrap_model(model)
    while state.step < tcfg.max_steps:
        loader.set_epoch(epoch)
        active = accelerator.skip_first_batches(loader, skip) if skip else loader
        skip = 0
        for batch in active:
            input_ids = batch["input_ids"]
            maskable, attention_mask, real_tokens = batch_inputs(input_ids, special_ids, pad_id)
            with accelerator.accumulate(model):
                out = model(input_ids, maskable, attention_mask)
                loss = out.loss
                if state.step + 1 in tcfg.debug_nonfinite_steps:
                    loss = loss * float("nan")
                accelerator.backward(loss)
                window.add(out.metrics(), loss, real_tokens)
                if accelerator.sync_gradients:
                    grad_norm, step_ok = apply_update(accelerator, model, optimizer, scheduler, tcfg)
            if not accelerator.sync_gradients:
                continue

            state.step += 1
            if step_ok:
                state.nonfinite_consecutive = 0
            else:
                state.nonfinite_total += 1
                state.nonfinite_consecutive += 1
                log.warning("step %d: non-finite loss or gradient, update skipped (%d in a row, %d in total)",
                            state.step, state.nonfinite_consecutive, state.nonfinite_total)
                if state.nonfinite_consecutive >= tcfg.max_consecutive_nonfinite:
                    raise NonFiniteLossError(
                        f"{state.nonfinite_consecutive} consecutive non-finite losses at step {state.step}: aborting. "
                        "Lower trainer.learning_rate, use trainer.mixed_precision=no or bf16, check the data, or "
                        f"resume from the last checkpoint in {checkpoint_dir}"
                    )
            progress.update(1)

            saving = state.step % tcfg.save_every_steps == 0 or state.step == tcfg.max_steps
            # Logging at every checkpoint too: a window never spans a checkpoint, so a resumed run logs
            # exactly what an uninterrupted one does.
            if saving or state.step % tcfg.log_every_steps == 0:
                last_metrics, tokens = window.flush(accelerator)
                state.tokens_seen += tokens
                last_metrics.update(lr=scheduler.get_last_lr()[0], grad_norm=float(grad_norm),
                                    tokens_seen=state.tokens_seen, epoch=epoch, world_size=accelerator.num_processes,
                                    nonfinite_total=state.nonfinite_total)
                metrics_log.log(last_metrics, state.step)
                progress.set_postfix(loss=f"{last_metrics['loss']:.3f}", tok_s=f"{last_metrics['tokens_per_s']:.0f}")

            if saving:
                state.scheduler = scheduler.state_dict()
                try:
                    save_checkpoint(accelerator, checkpoint_dir, state, tcfg.keep_last,
                                    _fail_midway=state.step == tcfg.debug_exit_in_save_at_step)
                except OSError as err:
                    raise CheckpointError(
                        f"saving the step-{state.step} checkpoint failed ({err}); the last complete checkpoint is "
                        f"{latest_checkpoint(checkpoint_dir)}. Free disk space (or lower trainer.keep_last) and "
                        "rerun with trainer.resume=true") from err
                window.start = time.perf_counter()  # saving is not training time
            if state.step == tcfg.debug_exit_after_step:
                os._exit(137)  # fault injection: as abrupt as kill -9
            if state.step >= tcfg.max_steps:
                break
        epoch += 1
    progress.close()

    result = PretrainResult(run_dir=run_dir, state=state, last_metrics=last_metrics, world_size=accelerator.num_processes)
    accelerator.wait_for_everyone()
    if tcfg.export and accelerator.is_main_process:
        result.exported = export_pretrained(unwrapped, tokenizer, run_dir)
        for kind, path in result.exported.items():
            log.info("exported %s to %s", kind, path)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def model_max_positions(model: torch.nn.Module) -> int:
    from electra.modeling import encoder_of

    return int(getattr(encoder_of(model).config, "max_position_embeddings", 512))
