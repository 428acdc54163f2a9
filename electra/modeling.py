"""Building the generator and discriminator, sharing their embeddings, and exporting the result.

Two starting points:
  * from scratch: an ELECTRA discriminator of a configured size and a generator a fraction of its width;
  * domain-adaptive: the discriminator is any pretrained Hugging Face encoder (ELECTRA discriminators keep
    their RTD head; BERT-family encoders such as MiniLM get a fresh one), and the generator is either a
    given generator checkpoint or a fresh, smaller ELECTRA generator built around the discriminator's
    embeddings.

Embedding sharing (``embedding_sharing``):
  * ``shared``: the generator uses the discriminator's embedding module itself (token, position, type
    embeddings and their LayerNorm), and its output projection is the token embedding matrix;
  * ``gdes``: gradient-disentangled sharing (DeBERTaV3): the generator owns the embeddings E, the
    discriminator sees sg(E) + E_delta, so the discriminator's gradient never reaches E.
"""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (AutoConfig, AutoModel, AutoTokenizer, ElectraConfig, ElectraForMaskedLM,
                          ElectraForPreTraining, ElectraModel, PretrainedConfig, PreTrainedModel,
                          PreTrainedTokenizerBase)
from transformers.models.electra.modeling_electra import ElectraDiscriminatorPredictions

from electra.config import ModelConfig
from segmentation.atomic import replacing
from electra.objective import MaskedLanguageModeling, MaskedTokenHead, ReplacedTokenDetection

RTD_HEAD_FILE = "rtd_head.safetensors"
MLM_HEAD_FILE = "mlm_head.safetensors"
ARCHITECTURE_FILE = "architecture.json"


class GradientDisentangledEmbedding(nn.Module):
    """Token embeddings sg(E) + E_delta: reads the shared matrix E without sending gradient into it."""

    def __init__(self, shared: nn.Embedding):
        super().__init__()
        self.shared = shared
        self.delta = nn.Parameter(torch.zeros_like(shared.weight))
        self.padding_idx = shared.padding_idx
        self.num_embeddings, self.embedding_dim = shared.weight.shape

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.shared.weight).detach() + F.embedding(input_ids, self.delta)

    def materialize(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` holding E + E_delta, for export."""
        emb = nn.Embedding(self.num_embeddings, self.embedding_dim, padding_idx=self.padding_idx)
        with torch.no_grad():
            emb.weight.copy_(self.shared.weight + self.delta)
        return emb


def embedding_dim(encoder: PreTrainedModel) -> int:
    return encoder.get_input_embeddings().embedding_dim


def _check_shareable(encoder: PreTrainedModel) -> nn.Module:
    embeddings = getattr(encoder, "embeddings", None)
    if embeddings is None or not hasattr(embeddings, "word_embeddings"):
        raise ValueError(
            f"{type(encoder).__name__} has no BERT-style `embeddings.word_embeddings` module, so its embeddings "
            "cannot be shared with an ELECTRA generator; use an ELECTRA, BERT, RoBERTa or MiniLM-style encoder"
        )
    if "token_type_ids" not in inspect.signature(embeddings.forward).parameters:
        raise ValueError(f"{type(embeddings).__name__}.forward takes no token_type_ids; it cannot be shared")
    return embeddings


def share_embeddings(generator: ElectraForMaskedLM, discriminator: PreTrainedModel, mode: str = "shared") -> None:
    """Tie the generator's embeddings (and output projection) to the discriminator's, in place."""
    disc_embeddings = _check_shareable(discriminator)
    if embedding_dim(discriminator) != generator.config.embedding_size:
        raise ValueError(
            f"generator embedding_size {generator.config.embedding_size} != discriminator embedding size "
            f"{embedding_dim(discriminator)}; they must match to share embeddings"
        )
    if mode == "shared":
        generator.electra.embeddings = disc_embeddings
    elif mode == "gdes":
        generator.electra.embeddings = copy.deepcopy(disc_embeddings)
        disc_embeddings.word_embeddings = GradientDisentangledEmbedding(generator.electra.embeddings.word_embeddings)
    else:
        raise ValueError(f"unknown embedding_sharing {mode!r}; use 'shared' or 'gdes'")
    # Replacing the module is not enough: the LM head keeps its own matrix unless pointed at the new one.
    generator.generator_lm_head.weight = generator.electra.embeddings.word_embeddings.weight


def generator_config(disc_config: PretrainedConfig, emb_dim: int, size: float,
                     num_layers: int | None, dropout: float | None = None,
                     attention_dropout: float | None = None) -> ElectraConfig:
    """An ELECTRA generator config ``size`` times as wide as the discriminator (1/4 for ELECTRA-small)."""
    hidden = max(16, int(round(disc_config.hidden_size * size)))
    heads = max(1, int(round(disc_config.num_attention_heads * size)))
    while hidden % heads:
        heads -= 1
    drop = disc_config.hidden_dropout_prob if dropout is None else dropout
    attention_drop = getattr(disc_config, "attention_probs_dropout_prob", drop) if attention_dropout is None \
        else attention_dropout
    return ElectraConfig(
        vocab_size=disc_config.vocab_size,
        embedding_size=emb_dim,
        hidden_size=hidden,
        num_hidden_layers=num_layers or disc_config.num_hidden_layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=disc_config.max_position_embeddings,
        type_vocab_size=getattr(disc_config, "type_vocab_size", 2),
        pad_token_id=disc_config.pad_token_id,
        hidden_dropout_prob=drop,
        attention_probs_dropout_prob=attention_drop,
        layer_norm_eps=getattr(disc_config, "layer_norm_eps", 1e-12),
    )


def discriminator_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> ElectraConfig:
    return ElectraConfig(
        vocab_size=len(tokenizer),
        embedding_size=cfg.embedding_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout if cfg.attention_dropout is None else cfg.attention_dropout,
    )


def _init_linear(module: nn.Module, std: float) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)


def check_model_source(name_or_path: str, key: str = "model.init_from") -> str:
    """Fail with advice when a model reference is a local path that does not hold a model.

    Hub names (``org/name``) pass through: loading them needs a network, and transformers' own error
    says so. A path that exists but lacks ``config.json`` is reported here, not as a cryptic hub error.
    """
    path = Path(name_or_path).expanduser()
    looks_local = path.is_absolute() or name_or_path.startswith((".", "~")) or path.exists() \
        or len(Path(name_or_path).parts) > 2
    if not looks_local:
        return name_or_path
    if not path.exists():
        raise FileNotFoundError(f"{key}={name_or_path!r}: no such directory. Give a Hugging Face model directory "
                                "(config.json, weights, tokenizer files) or a hub name such as "
                                "google/electra-small-discriminator (needs a network)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{key}={name_or_path!r} holds no config.json: not a Hugging Face model directory "
                                "(an exported run has it in DIR/discriminator or DIR/encoder)")
    return str(path)


def check_tokenizer_matches(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig, source: str) -> None:
    """A tokenizer with more ids than the model has embeddings belongs to another model."""
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"the tokenizer in {source} has {len(tokenizer)} tokens but the model has only "
                         f"{config.vocab_size} embeddings: model and tokenizer come from different models; "
                         "save the model's own tokenizer beside it")


def load_pretrained_discriminator(name_or_path: str, trust_remote_code: bool = False) -> tuple[PreTrainedModel, nn.Module]:
    """The encoder and its RTD head. ELECTRA checkpoints keep their head; other encoders get a fresh one."""
    name_or_path = check_model_source(name_or_path)
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    if config.model_type == "electra":
        full = ElectraForPreTraining.from_pretrained(name_or_path)
        return full.electra, full.discriminator_predictions
    encoder = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    head = ElectraDiscriminatorPredictions(encoder.config)
    _init_linear(head, getattr(encoder.config, "initializer_range", 0.02))
    saved_head = Path(name_or_path) / RTD_HEAD_FILE
    if saved_head.is_file():  # our own export of a non-ELECTRA encoder: keep training its head
        head.load_state_dict(load_file(saved_head))
    return encoder, head


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    path = Path(name_or_path)
    if not path.is_dir():
        check_model_source(name_or_path)  # a missing local path gets advice; hub names pass
    elif not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        raise FileNotFoundError(f"{name_or_path} holds no tokenizer files (tokenizer.json, tokenizer_config.json); "
                                "save the model's tokenizer beside it with tokenizer.save_pretrained")
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    missing = [t for t in ("mask_token", "pad_token", "cls_token", "sep_token") if getattr(tokenizer, t) is None]
    if missing:
        raise ValueError(f"tokenizer of {name_or_path!r} lacks {missing}; RTD/MLM pretraining needs them")
    return tokenizer


def build_objective(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase,
                    architecture_dir: str | Path | None = None) -> nn.Module:
    """The model to train: ``ReplacedTokenDetection`` (``objective=rtd``) or ``MaskedLanguageModeling`` (``mlm``).

    ``architecture_dir``: rebuild the same architecture from configs saved by ``save_architecture``
    (weights then come from a checkpoint), instead of reading ``cfg.init_from`` again.
    """
    if architecture_dir is not None:
        encoder, disc_head, gen_config = _from_saved_architecture(Path(architecture_dir))
    elif cfg.init_from:
        encoder, disc_head = load_pretrained_discriminator(cfg.init_from, cfg.trust_remote_code)
        check_tokenizer_matches(tokenizer, encoder.config, cfg.init_from)
        gen_config = None
    else:
        full = ElectraForPreTraining(discriminator_config(cfg, tokenizer))
        encoder, disc_head, gen_config = full.electra, full.discriminator_predictions, None

    if cfg.objective == "contrastive":
        from electra.contrastive import SimCSE

        return SimCSE(encoder, cfg.pooling, cfg.contrastive_temperature)
    if cfg.objective == "mlm":
        head = MaskedTokenHead(encoder.config.hidden_size, embedding_dim(encoder), encoder.get_input_embeddings(),
                               eps=getattr(encoder.config, "layer_norm_eps", 1e-12))
        _init_linear(head, getattr(encoder.config, "initializer_range", 0.02))
        return MaskedLanguageModeling(encoder, head, tokenizer.mask_token_id, cfg.mask_prob, cfg.mask_token_prob)
    if cfg.objective != "rtd":
        raise ValueError(f"unknown objective {cfg.objective!r}; use 'rtd', 'mlm' or 'contrastive'")

    if gen_config is not None:
        generator = ElectraForMaskedLM(gen_config)
    elif cfg.generator_init_from and architecture_dir is None:
        generator = ElectraForMaskedLM.from_pretrained(cfg.generator_init_from)
        if generator.config.vocab_size != encoder.config.vocab_size:
            raise ValueError(
                f"generator {cfg.generator_init_from!r} has vocabulary {generator.config.vocab_size}, "
                f"discriminator has {encoder.config.vocab_size}: they must use the same tokenizer"
            )
    else:
        generator = ElectraForMaskedLM(generator_config(encoder.config, embedding_dim(encoder), cfg.generator_size,
                                                        cfg.generator_layers))
    share_embeddings(generator, encoder, cfg.embedding_sharing)
    return ReplacedTokenDetection(
        generator, encoder, disc_head, tokenizer.mask_token_id, disc_weight=cfg.disc_weight,
        mask_prob=cfg.mask_prob, mask_token_prob=cfg.mask_token_prob, sampling=cfg.sampling,
        temperature=cfg.temperature,
    )


def encoder_of(model: nn.Module) -> PreTrainedModel:
    """The encoder that downstream work uses: the discriminator (RTD) or the MLM encoder."""
    model = getattr(model, "module", model)  # unwrap DDP
    return model.discriminator if isinstance(model, ReplacedTokenDetection) else model.encoder  # MLM, SimCSE


def save_architecture(model: nn.Module, directory: str | Path) -> None:
    """Record the configs needed to rebuild ``model`` without its weight source (for resume and export)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arch = {"encoder": encoder_of(model).config.to_dict()}
    if isinstance(model, ReplacedTokenDetection):
        arch["generator"] = model.generator.config.to_dict()
    (directory / ARCHITECTURE_FILE).write_text(json.dumps(arch, indent=1, default=str))


def _from_saved_architecture(directory: Path):
    arch = json.loads((directory / ARCHITECTURE_FILE).read_text())
    enc_dict = dict(arch["encoder"])
    enc_config = AutoConfig.for_model(enc_dict.pop("model_type"), **enc_dict)
    if enc_config.model_type == "electra":
        full = ElectraForPreTraining(enc_config)
        encoder, head = full.electra, full.discriminator_predictions
    else:
        encoder = AutoModel.from_config(enc_config)
        head = ElectraDiscriminatorPredictions(enc_config)
    gen_config = ElectraConfig(**{k: v for k, v in arch["generator"].items() if k != "model_type"}) \
        if "generator" in arch else None
    return encoder, head, gen_config


def _plain_encoder(encoder: PreTrainedModel) -> PreTrainedModel:
    """A copy of the encoder with gradient-disentangled embeddings folded into a plain matrix."""
    word = encoder.get_input_embeddings()
    if not isinstance(word, GradientDisentangledEmbedding):
        return encoder
    encoder = copy.deepcopy(encoder)
    encoder.set_input_embeddings(encoder.get_input_embeddings().materialize())
    return encoder


def export_pretrained(model: nn.Module, tokenizer: PreTrainedTokenizerBase, output_dir: str | Path) -> dict[str, Path]:
    """Save standard Hugging Face directories (safetensors + tokenizer), loadable without this project's code.

    RTD: ``discriminator/`` (``ElectraForPreTraining`` for ELECTRA encoders, else the encoder plus
    ``rtd_head.safetensors``) and ``generator/`` (``ElectraForMaskedLM``). MLM and contrastive: ``encoder/``.
    """
    model = getattr(model, "module", model)
    output_dir = Path(output_dir)
    paths: dict[str, Path] = {}
    # Each directory is written beside its final name and swapped in, so a failed export (full disk,
    # kill) never leaves a half-written model where a good earlier one was.
    encoder = _plain_encoder(encoder_of(model))
    if isinstance(model, ReplacedTokenDetection):
        paths["discriminator"] = output_dir / "discriminator"
        with replacing(paths["discriminator"]) as target:
            if isinstance(encoder, ElectraModel):
                full = ElectraForPreTraining(encoder.config)
                full.electra, full.discriminator_predictions = encoder, model.disc_head
                full.save_pretrained(target)
            else:
                encoder.save_pretrained(target)
                save_file({k: v.contiguous() for k, v in model.disc_head.state_dict().items()}, target / RTD_HEAD_FILE)
            tokenizer.save_pretrained(target)
        paths["generator"] = output_dir / "generator"
        with replacing(paths["generator"]) as target:
            model.generator.save_pretrained(target)
            tokenizer.save_pretrained(target)
    else:
        paths["encoder"] = output_dir / "encoder"
        with replacing(paths["encoder"]) as target:
            encoder.save_pretrained(target)
            if isinstance(model, MaskedLanguageModeling):
                head_state = {k: v.contiguous() for k, v in model.head.state_dict().items()
                              if not k.startswith("word_embeddings")}
                save_file(head_state, target / MLM_HEAD_FILE)
            tokenizer.save_pretrained(target)
    return paths


def export_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None,
                      output_dir: str | Path | None = None) -> dict[str, Path]:
    """Export a training checkpoint of ``run_dir`` (default: its latest complete one) as Hugging Face directories."""
    from omegaconf import OmegaConf

    from electra.checkpoint import latest_checkpoint

    run_dir = Path(run_dir)
    for needed in ("config.yaml", ARCHITECTURE_FILE, "tokenizer"):
        if not (run_dir / needed).exists():
            raise FileNotFoundError(f"{run_dir} is not a pretraining run directory (no {needed})")
    checkpoint = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise FileNotFoundError(f"no complete checkpoint in {run_dir / 'checkpoints'}")
    weights = checkpoint / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{checkpoint} has no model.safetensors; is it a checkpoint directory?")
    cfg = OmegaConf.load(run_dir / "config.yaml")
    tokenizer = load_tokenizer(str(run_dir / "tokenizer"))
    model = build_objective(cfg.model, tokenizer, architecture_dir=run_dir)
    state = load_file(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Shared tensors are stored once; the other names of a tie are restored by the model structure.
    params = dict(model.named_parameters(remove_duplicate=False))
    untied = [k for k in missing if not any(params.get(k) is params.get(stored) for stored in state)]
    if unexpected or untied:
        raise ValueError(f"{weights} does not match the run's architecture (unexpected {unexpected[:5]}, "
                         f"missing {untied[:5]}): corrupt, or from another run")
    return export_pretrained(model, tokenizer, output_dir or run_dir)

