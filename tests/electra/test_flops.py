"""FLOPs accounting used for MFU."""

import pytest
from transformers import ElectraConfig

from electra.flops import EncoderShape, rtd_flops_per_token, shape_of
from electra.modeling import generator_config

DISC = EncoderShape(layers=12, hidden=256, intermediate=1024, embedding=128)  # ELECTRA-small
GEN = EncoderShape(layers=12, hidden=64, intermediate=256, embedding=128)


def test_matmul_parameters_by_hand():
    assert DISC.matmul_params == 12 * (4 * 256 ** 2 + 2 * 256 * 1024) + 128 * 256
    assert EncoderShape(1, 8, 32, 8).matmul_params == 4 * 64 + 2 * 8 * 32  # no projection when E == H


def test_electra_small_step_costs():
    naive = rtd_flops_per_token(DISC, GEN, vocab_size=30522, seq_len=128, projected_share=1.0)
    useful = rtd_flops_per_token(DISC, GEN, vocab_size=30522, seq_len=128, mask_prob=0.15)
    assert naive == pytest.approx(90.2e6, rel=0.005)  # the ~90 MFLOP/token of a tutorial step
    head = 6 * (64 * 128 + 128 * 30522)
    assert naive - useful == pytest.approx(0.85 * head)


def test_shapes_from_configs_match_the_small_recipe():
    disc = ElectraConfig(embedding_size=128, hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                         intermediate_size=1024)
    assert shape_of(disc) == DISC
    assert shape_of(generator_config(disc, 128, 0.25, None)) == GEN
