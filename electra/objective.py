"""Pretraining objectives: ELECTRA replaced-token detection (RTD) and masked language modelling (MLM).

RTD (Clark et al., 2020) trains two encoders that share their embeddings:

    1. select 15% of the non-special tokens; replace 85% of the selected ones by [MASK], keep the rest;
    2. the generator (a small masked LM) predicts the original token at each selected position;
    3. a replacement is sampled from the generator's softmax at each selected position (no gradient);
    4. the discriminator labels every token of the corrupted sequence original (0) or replaced (1);
       a sampled token that equals the original counts as original;
    5. loss = gen_loss + disc_weight * disc_loss  (disc_weight = 50 in the paper).

The generator's vocabulary projection runs only at the selected positions (about 15% of the sequence),
which is where most of a naive implementation's compute goes. Padding and special tokens take part in
neither loss. The discriminator is any Hugging Face encoder plus a two-layer token head; building and
tying the models is in ``electra/modeling.py``, this file only computes the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PretrainingOutput:
    """Result of one forward pass. Metric fields are detached; only ``loss`` carries a graph."""

    loss: torch.Tensor
    gen_loss: torch.Tensor
    disc_loss: torch.Tensor
    gen_accuracy: torch.Tensor
    disc_accuracy: torch.Tensor
    replaced_fraction: torch.Tensor
    disc_precision: torch.Tensor
    disc_recall: torch.Tensor
    selected: torch.Tensor  # (batch, seq) bool: positions chosen for prediction
    gen_logits: torch.Tensor  # (n_selected, vocab): only the selected positions are projected
    corrupted_ids: torch.Tensor | None = None  # (batch, seq) the discriminator's input
    disc_labels: torch.Tensor | None = None  # (batch, seq) True where the token was replaced
    disc_logits: torch.Tensor | None = None

    METRICS = ("loss", "gen_loss", "disc_loss", "gen_accuracy", "disc_accuracy", "replaced_fraction",
               "disc_precision", "disc_recall")

    def metrics(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).detach() for name in self.METRICS}


def select_positions(maskable: torch.Tensor, mask_prob: float) -> torch.Tensor:
    """Choose each maskable token independently with probability ``mask_prob``."""
    return (torch.rand(maskable.shape, device=maskable.device) < mask_prob) & maskable


def corrupt_with_mask(input_ids: torch.Tensor, selected: torch.Tensor, mask_token_id: int,
                      mask_token_prob: float) -> torch.Tensor:
    """Replace a ``mask_token_prob`` share of the selected tokens by [MASK]; the rest stay unchanged."""
    to_mask = selected & (torch.rand(selected.shape, device=selected.device) < mask_token_prob)
    return input_ids.masked_fill(to_mask, mask_token_id)


def sample_tokens(logits: torch.Tensor, temperature: float = 1.0, method: str = "gumbel") -> torch.Tensor:
    """Draw one token per row of ``logits`` from softmax(logits / temperature), without gradient."""
    with torch.no_grad():
        logits = logits.float() / temperature
        if method == "gumbel":
            uniform = torch.rand_like(logits).clamp_(1e-9, 1.0 - 1e-9)
            return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)
        if method == "multinomial":
            return torch.multinomial(logits.softmax(dim=-1), num_samples=1).squeeze(-1)
        raise ValueError(f"unknown sampling method {method!r}; use 'gumbel' or 'multinomial'")


def _safe_mean(values: torch.Tensor) -> torch.Tensor:
    # An empty selection (tiny batches) must not turn the loss into NaN.
    return values.mean() if values.numel() else values.sum()


class MaskedTokenHead(nn.Module):
    """Dense -> GELU -> LayerNorm -> vocabulary projection tied to the input embeddings (BERT/ELECTRA style)."""

    def __init__(self, hidden_size: int, embedding_size: int, word_embeddings: nn.Embedding, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, embedding_size)
        self.layer_norm = nn.LayerNorm(embedding_size, eps=eps)
        self.decoder_bias = nn.Parameter(torch.zeros(word_embeddings.num_embeddings))
        self.word_embeddings = word_embeddings  # not a copy: the projection is the embedding matrix

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.layer_norm(F.gelu(self.dense(hidden)))
        return F.linear(hidden, self.word_embeddings.weight, self.decoder_bias)


class ReplacedTokenDetection(nn.Module):
    """ELECTRA's objective over a generator (``ElectraForMaskedLM``) and a discriminator encoder with a token head.

    Args:
        generator: ``ElectraForMaskedLM`` whose embeddings are already shared with the discriminator.
        discriminator: the encoder (``ElectraModel``, ``BertModel``, ...) returning ``last_hidden_state``.
        disc_head: maps hidden states (batch, seq, hidden) to one logit per token.
        mask_token_id: id of [MASK].
        disc_weight: lambda in loss = gen_loss + lambda * disc_loss.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, disc_head: nn.Module, mask_token_id: int,
                 disc_weight: float = 50.0, mask_prob: float = 0.15, mask_token_prob: float = 0.85,
                 sampling: str = "gumbel", temperature: float = 1.0):
        super().__init__()
        if sampling not in ("gumbel", "multinomial"):
            raise ValueError(f"unknown sampling method {sampling!r}; use 'gumbel' or 'multinomial'")
        self.generator = generator
        self.discriminator = discriminator
        self.disc_head = disc_head
        self.mask_token_id = mask_token_id
        self.disc_weight = disc_weight
        self.mask_prob = mask_prob
        self.mask_token_prob = mask_token_prob
        self.sampling = sampling
        self.temperature = temperature

    def generator_logits(self, masked_ids: torch.Tensor, selected: torch.Tensor,
                         attention_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = self.generator.electra(input_ids=masked_ids, attention_mask=attention_mask).last_hidden_state
        at_selected = hidden[selected]  # (n_selected, gen_hidden): project only where a token is predicted
        return self.generator.generator_lm_head(self.generator.generator_predictions(at_selected))

    def forward(self, input_ids: torch.Tensor, maskable: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> PretrainingOutput:
        """``maskable``: bool (batch, seq), True for real non-special tokens (the only ones that are scored)."""
        selected = select_positions(maskable, self.mask_prob)
        masked_ids = corrupt_with_mask(input_ids, selected, self.mask_token_id, self.mask_token_prob)
        originals = input_ids[selected]

        gen_logits = self.generator_logits(masked_ids, selected, attention_mask)
        gen_loss = _safe_mean(F.cross_entropy(gen_logits.float(), originals, reduction="none"))

        sampled = sample_tokens(gen_logits, self.temperature, self.sampling)
        disc_input = input_ids.masked_scatter(selected, sampled)
        disc_labels = (disc_input != input_ids) & maskable

        hidden = self.discriminator(input_ids=disc_input, attention_mask=attention_mask).last_hidden_state
        disc_logits = self.disc_head(hidden)
        scored_logits, scored_labels = disc_logits[maskable].float(), disc_labels[maskable].float()
        disc_loss = _safe_mean(F.binary_cross_entropy_with_logits(scored_logits, scored_labels, reduction="none"))

        loss = gen_loss + self.disc_weight * disc_loss
        with torch.no_grad():
            predicted = scored_logits > 0
            actual = scored_labels.bool()
            true_pos = (predicted & actual).sum().float()
            out = PretrainingOutput(
                loss=loss,
                gen_loss=gen_loss.detach(),
                disc_loss=disc_loss.detach(),
                gen_accuracy=_safe_mean((gen_logits.argmax(-1) == originals).float()),
                disc_accuracy=_safe_mean((predicted == actual).float()),
                replaced_fraction=_safe_mean(actual.float()),
                disc_precision=true_pos / predicted.sum().clamp(min=1),
                disc_recall=true_pos / actual.sum().clamp(min=1),
                selected=selected,
                gen_logits=gen_logits.detach(),
                corrupted_ids=disc_input,
                disc_labels=disc_labels,
                disc_logits=disc_logits.detach(),
            )
        return out


class MaskedLanguageModeling(nn.Module):
    """MLM on a single encoder, with the same masking and the projection only at selected positions.

    The baseline for RTD-versus-MLM comparisons at equal compute: ``loss == gen_loss``; the discriminator
    fields of the result are zero.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, mask_token_id: int, mask_prob: float = 0.15,
                 mask_token_prob: float = 0.85):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.mask_token_id = mask_token_id
        self.mask_prob = mask_prob
        self.mask_token_prob = mask_token_prob

    def forward(self, input_ids: torch.Tensor, maskable: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> PretrainingOutput:
        selected = select_positions(maskable, self.mask_prob)
        masked_ids = corrupt_with_mask(input_ids, selected, self.mask_token_id, self.mask_token_prob)
        originals = input_ids[selected]
        hidden = self.encoder(input_ids=masked_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.head(hidden[selected])
        loss = _safe_mean(F.cross_entropy(logits.float(), originals, reduction="none"))
        zero = loss.detach() * 0
        return PretrainingOutput(
            loss=loss, gen_loss=loss.detach(), disc_loss=zero,
            gen_accuracy=_safe_mean((logits.detach().argmax(-1) == originals).float()),
            disc_accuracy=zero, replaced_fraction=zero, disc_precision=zero, disc_recall=zero,
            selected=selected, gen_logits=logits.detach(),
        )
