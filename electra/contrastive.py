"""Unsupervised SimCSE (Gao et al., 2021): sentence geometry for pooled embeddings.

Token-level objectives (RTD, MLM) do not shape the space of pooled sentence embeddings, so domain
adaptation can help classification yet hurt clustering. SimCSE is the standard remedy: encode each text
twice with dropout on, treat the two views as a positive pair and every other text in the batch as a
negative, and minimise the cross-entropy of cosine similarities / temperature. Runs through the same
training loop as RTD (``model.objective=contrastive``) and exports ``encoder/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ContrastiveOutput:
    loss: torch.Tensor
    accuracy: torch.Tensor  # share of texts whose own second view is their nearest in-batch neighbour

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"loss": self.loss.detach(), "contrastive_accuracy": self.accuracy}


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Mean over real tokens (``mean``) or the first token (``cls``)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; use 'mean' or 'cls'")
    if attention_mask is None:
        return hidden.mean(dim=1)
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class SimCSE(nn.Module):
    def __init__(self, encoder: nn.Module, pooling: str = "mean", temperature: float = 0.05):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"unknown pooling {pooling!r}; use 'mean' or 'cls'")
        self.encoder = encoder
        self.pooling = pooling
        self.temperature = temperature

    def forward(self, input_ids: torch.Tensor, maskable: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> ContrastiveOutput:
        # Both views in one pass: dropout draws independent masks for the two copies.
        doubled_ids = torch.cat([input_ids, input_ids])
        doubled_mask = torch.cat([attention_mask, attention_mask]) if attention_mask is not None else None
        hidden = self.encoder(input_ids=doubled_ids, attention_mask=doubled_mask).last_hidden_state
        pooled = F.normalize(pool(hidden, doubled_mask, self.pooling).float(), dim=-1)
        first, second = pooled.chunk(2)
        logits = first @ second.T / self.temperature
        targets = torch.arange(len(first), device=logits.device)
        loss = F.cross_entropy(logits, targets)
        with torch.no_grad():
            accuracy = (logits.argmax(dim=-1) == targets).float().mean()
        return ContrastiveOutput(loss=loss, accuracy=accuracy)
