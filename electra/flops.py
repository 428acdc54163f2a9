"""Useful training FLOPs per token, for model FLOP utilisation (MFU).

Training costs 6 FLOPs per matmul weight per token (2 forward, 4 backward) plus attention's two
sequence-length matmuls (QK^T and AV: 4·T·d forward per layer, 12·T·d with backward). Embedding lookups,
norms and activations are not counted. Only useful work counts: the generator's vocabulary projection
runs at the selected positions (``mask_prob`` of the tokens), so a naive step that projects every
position does more FLOPs than it gets credit for.

    per token = 6·N_disc + 12·L·T·d                                 discriminator (+ its RTD head)
              + 6·N_gen  + 12·L_g·T·d_g                              generator body
              + mask_prob · 6·(d_g·E + E·V)                          generator head at selected positions
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderShape:
    layers: int
    hidden: int
    intermediate: int
    embedding: int

    @property
    def matmul_params(self) -> int:
        per_layer = 4 * self.hidden ** 2 + 2 * self.hidden * self.intermediate
        projection = self.embedding * self.hidden if self.embedding != self.hidden else 0
        return self.layers * per_layer + projection

    def attention_flops(self, seq_len: int) -> int:
        return 12 * self.layers * seq_len * self.hidden


def shape_of(config) -> EncoderShape:
    """An ``EncoderShape`` from a Hugging Face config (ELECTRA, BERT, ...)."""
    return EncoderShape(config.num_hidden_layers, config.hidden_size, config.intermediate_size,
                        getattr(config, "embedding_size", config.hidden_size))


def rtd_flops_per_token(disc: EncoderShape, gen: EncoderShape, vocab_size: int, seq_len: int,
                        mask_prob: float = 0.15, projected_share: float | None = None) -> float:
    """Training FLOPs per token of an RTD step; ``projected_share`` = share of positions whose generator
    output is projected onto the vocabulary (``mask_prob`` for this project's step, 1.0 for a naive one)."""
    share = mask_prob if projected_share is None else projected_share
    disc_head = disc.hidden ** 2 + disc.hidden
    discriminator = 6 * (disc.matmul_params + disc_head) + disc.attention_flops(seq_len)
    generator = 6 * gen.matmul_params + gen.attention_flops(seq_len)
    gen_head = 6 * (gen.hidden * gen.embedding + gen.embedding * vocab_size)
    return discriminator + generator + share * gen_head
