"""Pieces of the pretraining-throughput benchmark (``scripts/bench_pretrain.py``).

The baseline is the replaced-token-detection step most tutorials write with Hugging Face classes:
``ElectraForMaskedLM`` projecting the whole vocabulary at every position, ``ElectraForPreTraining``,
embeddings tied by assignment, loss = gen + 50·disc, AdamW. The project's step is
``ReplacedTokenDetection`` with the trainer's own update (``electra.trainer.apply_update``). Both run on
the same random batches; throughput is reported as a ratio measured in the same process, because these
machines are shared and absolute numbers drift.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import BertTokenizer, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

from electra.config import ModelConfig
from electra.flops import EncoderShape, rtd_flops_per_token, shape_of
from electra.modeling import build_objective, generator_config

SMALL = dict(hidden_size=256, num_layers=12, num_heads=4, intermediate_size=1024, embedding_size=128)
# ELECTRA-base (Clark et al., 2020): generator 1/3 as wide.
BASE = dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072, embedding_size=768,
            generator_size=1 / 3)
SIZES = {"small": SMALL, "base": BASE}


def synthetic_tokenizer(vocab_size: int) -> BertTokenizer:
    """A tokenizer with ``vocab_size`` placeholder tokens: the benchmark needs ids, not words."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(vocab_size - 5)]
    return BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def random_batches(n: int, batch_size: int, seq_len: int, vocab_size: int, seed: int = 0,
                   device: str = "cpu") -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator)
        ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
        batches.append(ids.to(device))
    return batches


def measure_matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Best FLOP/s of a square matmul in ``dtype`` on ``device``, with the current thread setting."""
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


class NaiveRTDStep:
    """The tutorial step: full-vocabulary generator logits at every position, plain HF models."""

    def __init__(self, model_cfg: ModelConfig, vocab_size: int, seq_len: int, mask_token_id: int = 4,
                 device: str = "cpu"):
        disc_config = ElectraConfig(vocab_size=vocab_size, embedding_size=model_cfg.embedding_size,
                                    hidden_size=model_cfg.hidden_size, num_hidden_layers=model_cfg.num_layers,
                                    num_attention_heads=model_cfg.num_heads,
                                    intermediate_size=model_cfg.intermediate_size,
                                    max_position_embeddings=max(512, seq_len))
        self.discriminator = ElectraForPreTraining(disc_config)
        self.generator = ElectraForMaskedLM(generator_config(disc_config, model_cfg.embedding_size,
                                                             model_cfg.generator_size, None))
        self.generator.electra.embeddings = self.discriminator.electra.embeddings  # "tied" by assignment
        self.generator.to(device), self.discriminator.to(device)
        params = {id(p): p for m in (self.generator, self.discriminator) for p in m.parameters()}
        self.optimizer = torch.optim.AdamW(params.values(), lr=1e-4)
        self.mask_token_id = mask_token_id
        self.shapes = (shape_of(disc_config), shape_of(self.generator.config))

    def __call__(self, ids: torch.Tensor) -> float:
        special = ids < 5
        selected = (torch.rand(ids.shape, device=ids.device) < 0.15) & ~special
        labels = ids.masked_fill(~selected, -100)
        masked = ids.masked_fill(selected, self.mask_token_id)
        gen = self.generator(input_ids=masked, labels=labels)
        with torch.no_grad():
            sampled = torch.multinomial(F.softmax(gen.logits[selected], dim=-1), 1).squeeze(-1)
        corrupted = ids.masked_scatter(selected, sampled)
        disc = self.discriminator(input_ids=corrupted, labels=(corrupted != ids).long())
        loss = gen.loss + 50.0 * disc.loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()


class ProjectRTDStep:
    """This project's step: ``ReplacedTokenDetection`` with the trainer's update.

    Accelerate's state is one per process, so variants that differ in precision share an fp32
    Accelerator and enter bf16 autocast themselves (what ``mixed_precision=bf16`` does on CPU).
    """

    def __init__(self, model_cfg: ModelConfig, vocab_size: int, seq_len: int, mixed_precision: str = "no",
                 fused_adamw: bool = False, compile: bool = False, attention_dropout: float | None = None,
                 cpu: bool = True):
        from accelerate import Accelerator

        from electra.config import TrainerConfig
        from electra.trainer import _optimizer

        tokenizer = synthetic_tokenizer(vocab_size)
        model_cfg = ModelConfig(**{**model_cfg.__dict__, "max_position_embeddings": max(512, seq_len),
                                   "attention_dropout": attention_dropout})
        model = build_objective(model_cfg, tokenizer)
        self.tcfg = TrainerConfig(mixed_precision="no", fused_adamw=fused_adamw, learning_rate=1e-4)
        self.accelerator = Accelerator(cpu=cpu)
        self.autocast_dtype = {"no": None, "bf16": torch.bfloat16}[mixed_precision]
        optimizer = _optimizer(model, self.tcfg)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        if compile:
            self.model = torch.compile(self.model, dynamic=True)
        self.special_ids = torch.tensor(tokenizer.all_special_ids, device=self.accelerator.device)
        self.shapes = (shape_of(model.discriminator.config), shape_of(model.generator.config))

    def __call__(self, ids: torch.Tensor) -> float:
        from electra.trainer import apply_update, batch_inputs

        ids = ids.to(self.accelerator.device)
        maskable, attention_mask, _ = batch_inputs(ids, self.special_ids, 0)
        with torch.autocast(self.accelerator.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            out = self.model(ids, maskable, attention_mask)
        self.accelerator.backward(out.loss)
        apply_update(self.accelerator, self.model, self.optimizer, None, self.tcfg)
        return out.loss.item()


@dataclass
class Timing:
    name: str
    tokens_per_s: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.tokens_per_s)

    @property
    def best(self) -> float:
        return max(self.tokens_per_s)


def time_steps(step: Callable[[torch.Tensor], float], batches: list[torch.Tensor], warmup: int) -> float:
    """Tokens per second over ``batches`` after ``warmup`` untimed steps."""
    for ids in batches[:warmup]:
        step(ids)
    start = time.perf_counter()
    for ids in batches[warmup:]:
        step(ids)
    elapsed = time.perf_counter() - start
    return sum(b.numel() for b in batches[warmup:]) / elapsed


def interleaved_timings(steps: dict[str, Callable], batches: list[torch.Tensor], warmup: int,
                        repeats: int) -> dict[str, Timing]:
    """Round-robin over the variants so that machine noise hits all of them alike."""
    timings = {name: Timing(name) for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            timings[name].tokens_per_s.append(time_steps(step, batches, warmup))
    return timings


def flops_per_token(shapes: tuple[EncoderShape, EncoderShape], vocab_size: int, seq_len: int,
                    projected_share: float | None = None) -> float:
    return rtd_flops_per_token(shapes[0], shapes[1], vocab_size, seq_len, projected_share=projected_share)
