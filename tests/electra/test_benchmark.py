"""The pieces of scripts/bench_pretrain.py on a tiny model: both steps train, and FLOPs count useful work."""

import math

import pytest
import torch

from electra import benchmark as bench
from electra.config import ModelConfig

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, embedding_size=16)
VOCAB, SEQ = 120, 16


def test_naive_and_project_steps_train_on_the_same_batches():
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    steps = {"naive": bench.NaiveRTDStep(cfg, VOCAB, SEQ),
             "project": bench.ProjectRTDStep(cfg, VOCAB, SEQ, mixed_precision="bf16", fused_adamw=True,
                                             attention_dropout=0.0)}
    batches = bench.random_batches(3, 4, SEQ, VOCAB)
    assert all(b.shape == (4, SEQ) and (b[:, 0] == 2).all() and (b[:, -1] == 3).all() for b in batches)
    for name, step in steps.items():
        losses = [step(ids) for ids in batches]
        assert all(math.isfinite(loss) and loss > 0 for loss in losses), name
    # The naive generator is tied by assignment: one embedding module, two models.
    naive = steps["naive"]
    assert naive.generator.electra.embeddings is naive.discriminator.electra.embeddings


def test_useful_flops_credit_only_the_selected_positions():
    cfg = ModelConfig(**TINY)
    shapes = bench.ProjectRTDStep(cfg, VOCAB, SEQ).shapes
    useful = bench.flops_per_token(shapes, VOCAB, SEQ)
    naive = bench.flops_per_token(shapes, VOCAB, SEQ, projected_share=1.0)
    gen = shapes[1]
    head = 6 * (gen.hidden * gen.embedding + gen.embedding * VOCAB)
    assert naive - useful == pytest.approx((1.0 - 0.15) * head)


def test_interleaved_timings_keep_every_repeat():
    batches = bench.random_batches(3, 2, SEQ, VOCAB)
    timings = bench.interleaved_timings({"a": lambda ids: 0.0, "b": lambda ids: 0.0}, batches, warmup=1, repeats=4)
    assert [len(t.tokens_per_s) for t in timings.values()] == [4, 4]
    assert all(rate > 0 for t in timings.values() for rate in t.tokens_per_s)
