"""Need prediction by fine-tuning: the encoder plus a classification head, trained end to end under Accelerate.

    python scripts/finetune.py encoder_path=DIR/pretrain/discriminator target=next_category output_dir=OUT
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/finetune.py ...
    python scripts/finetune.py model_dir=DIR/model target=next_category output_dir=OUT   # registered for scoring

The model is ``AutoModelForSequenceClassification`` over any Hugging Face encoder directory (an exported
ELECTRA discriminator keeps its encoder weights and gets a fresh head), ``trust_remote_code`` off unless
configured. The input text is the customer profile (``segmentation.profiles``): the saved model's own
profile builder when ``model_dir`` is given, so that a registered head reads exactly what it will read
at scoring time.

Layer-wise learning-rate decay, as in ELECTRA fine-tuning: parameters get a depth d (0 for the
embeddings, i + 1 for transformer layer i = 0..L-1, L + 1 for everything above the last layer: pooler and
classification head) and the learning rate

    lr(d) = learning_rate * layer_decay ** (L + 1 - d)

so the head trains at ``learning_rate``, the top layer at ``learning_rate * layer_decay`` and the
embeddings at ``learning_rate * layer_decay ** (L + 1)``; the linear warm-up/decay schedule scales every
group by the same factor. Weight decay skips biases and LayerNorm weights.

Early stopping: after every epoch the model is scored on a validation split carved (stratified) from the
training rows; training stops after ``patience`` epochs without improvement of the chosen metric and the
best epoch's weights are kept. The result is exported with ``save_pretrained`` (model + tokenizer, a
standard sequence-classification directory with ``id2label``) beside ``finetune.json`` (metrics, history).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segmentation.needs import evaluate_predictions, read_manifest
from segmentation.targets import Target, parse_target

log = logging.getLogger(__name__)

LAYER = re.compile(r"\.layers?\.(\d+)\.")
METRICS_FILE = "finetune.json"


def layer_depth(name: str, num_layers: int) -> int:
    """0 for embedding parameters, i + 1 for transformer layer i, ``num_layers + 1`` for the rest (head, pooler)."""
    match = LAYER.search(name)
    if match:
        return int(match.group(1)) + 1
    if "embeddings" in name:  # embeddings, ELECTRA's embeddings_project
        return 0
    return num_layers + 1


def layerwise_lr_groups(model, learning_rate: float, layer_decay: float, weight_decay: float = 0.0,
                        num_layers: int | None = None) -> list[dict]:
    """AdamW parameter groups with ``lr = learning_rate * layer_decay ** (num_layers + 1 - depth)``.

    One group per (depth, weight decay or not); each carries its ``depth`` and parameter ``names``.
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
    if num_layers is None:
        num_layers = int(model.config.num_hidden_layers)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = layer_depth(name, num_layers)
        if depth > num_layers + 1:
            raise ValueError(f"parameter {name} is in layer {depth - 1}, but the model has {num_layers} layers")
        decay = not (param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name)
        group = groups.setdefault((depth, decay), {
            "params": [], "names": [], "depth": depth, "weight_decay": weight_decay if decay else 0.0,
            "lr": learning_rate * layer_decay ** (num_layers + 1 - depth)})
        group["params"].append(param)
        group["names"].append(name)
    return [groups[key] for key in sorted(groups)]


@dataclass
class TextExamples:
    """Texts with their targets: class indices (binary, multi-class) or an indicator matrix (multi-label)."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray]:
        return self.texts[i], self.labels[i]


class _Collate:
    def __init__(self, tokenizer, max_length: int, multilabel: bool):
        self.tokenizer, self.max_length, self.multilabel = tokenizer, max_length, multilabel

    def __call__(self, batch):
        import torch

        texts, labels = zip(*batch)
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        dtype = torch.float32 if self.multilabel else torch.long
        encoded["labels"] = torch.as_tensor(np.stack(labels) if self.multilabel else np.asarray(labels), dtype=dtype)
        return dict(encoded)


@dataclass
class TrainedClassifier:
    model: object
    tokenizer: object
    classes: list[str]
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    world_size: int = 1


def encode_labels(target: Target, labels, classes: Sequence[str]) -> np.ndarray:
    position = {str(c): i for i, c in enumerate(classes)}
    if target.kind == "multilabel":
        out = np.zeros((len(labels), len(classes)), dtype=np.float32)
        for row, values in enumerate(labels):
            for value in values:
                if value in position:
                    out[row, position[value]] = 1.0
        return out
    if target.kind == "binary":
        return np.asarray(labels, dtype=np.int64)
    indices = np.array([position.get(str(v), -1) for v in labels], dtype=np.int64)
    if (indices < 0).any():
        raise ValueError(f"target {target.spec!r}: labels {sorted({str(v) for v in labels if str(v) not in position})} "
                         "are not among the training classes")
    return indices


def _loss(logits, labels, multilabel: bool, class_weights):
    import torch.nn.functional as F

    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.cross_entropy(logits, labels, weight=class_weights)


def _probabilities(logits, multilabel: bool):
    return logits.sigmoid() if multilabel else logits.softmax(dim=-1)


def predict_loader(accelerator, model, loader, multilabel: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilities, labels and mean loss over a prepared loader (gathered across processes)."""
    import torch

    model.eval()
    probabilities, labels, losses, counts = [], [], 0.0, 0
    with torch.inference_mode():
        for batch in loader:
            target = batch.pop("labels")
            logits = model(**batch).logits.float()
            loss = _loss(logits, target, multilabel, None)
            logits, target = accelerator.gather_for_metrics((logits, target))
            probabilities.append(_probabilities(logits, multilabel).cpu().numpy())
            labels.append(target.cpu().numpy())
            losses += float(loss) * len(target)
            counts += len(target)
    model.train()
    return np.concatenate(probabilities), np.concatenate(labels), losses / max(counts, 1)


def _score(target: Target, classes: list[str], labels: np.ndarray, proba: np.ndarray) -> dict:
    if target.kind == "multilabel":
        truth = [[classes[j] for j in np.flatnonzero(row)] for row in labels]
    elif target.kind == "binary":
        truth = labels.astype(np.int64)
    else:
        truth = np.asarray(classes, dtype=object)[labels.astype(np.int64)]
    return evaluate_predictions(target, np.asarray(classes, dtype=object), truth, proba)


def train_classifier(encoder: str, target: Target, classes: Sequence[str], train: TextExamples,
                     validation: TextExamples | None, tcfg, trust_remote_code: bool = False,
                     metrics_path: Path | None = None) -> TrainedClassifier:
    """Fine-tune ``encoder`` with a fresh classification head on ``train``, early-stopped on ``validation``.

    ``tcfg`` is a ``FinetuneTrainerConfig``. Runs on every process of an ``accelerate launch``; the returned
    model is the unwrapped best model (identical on every process).
    """
    import torch
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from electra.tracking import MetricsLog
    from electra.trainer import apply_update, fresh_accelerator

    if tcfg.early_stopping_metric not in ("macro_f1", "loss"):
        raise ValueError(f"trainer.early_stopping_metric must be macro_f1 or loss, got {tcfg.early_stopping_metric!r}")
    start = time.perf_counter()
    accelerator = fresh_accelerator(mixed_precision=tcfg.mixed_precision,
                                    gradient_accumulation_steps=tcfg.gradient_accumulation_steps)
    if accelerator.device.type == "cpu" and tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    set_seed(tcfg.seed)
    classes = [str(c) for c in classes]
    multilabel = target.kind == "multilabel"
    tokenizer = AutoTokenizer.from_pretrained(encoder, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=len(classes), id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)}, problem_type="multi_label_classification" if multilabel else "single_label_classification",
        trust_remote_code=trust_remote_code)
    collate = _Collate(tokenizer, tcfg.max_length, multilabel)
    loader = DataLoader(train, batch_size=tcfg.batch_size, shuffle=True, collate_fn=collate, drop_last=False,
                        generator=torch.Generator().manual_seed(tcfg.seed))
    val_loader = DataLoader(validation, batch_size=tcfg.eval_batch_size, collate_fn=collate) if validation else None
    groups = layerwise_lr_groups(model, tcfg.learning_rate, tcfg.layer_decay, tcfg.weight_decay)
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups],
                                  lr=tcfg.learning_rate, eps=tcfg.adam_epsilon)
    class_weights = None
    if tcfg.class_weight == "balanced" and not multilabel:
        counts = np.bincount(train.labels.astype(np.int64), minlength=len(classes)).astype(np.float64)
        class_weights = torch.tensor(len(train) / (len(classes) * np.maximum(counts, 1)), dtype=torch.float32,
                                     device=accelerator.device)
    elif tcfg.class_weight not in (None, "balanced"):
        raise ValueError(f"trainer.class_weight must be null or balanced, got {tcfg.class_weight!r}")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # After prepare: len(loader) is this process's share. The scheduler is not prepared (accelerate would
    # step it once per process), as in electra/trainer.py.
    steps_per_epoch = -(-len(loader) // tcfg.gradient_accumulation_steps)
    total_steps = max(1, steps_per_epoch * tcfg.epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tcfg.warmup_ratio * total_steps), total_steps)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    metrics_log = MetricsLog(metrics_path, accelerator) if metrics_path is not None else None
    unwrapped = accelerator.unwrap_model(model)

    def snapshot() -> dict:
        return {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}

    history: list[dict] = []
    best, best_state, best_epoch, waited, step, stopped = None, snapshot(), 0, 0, 0, False
    model.train()
    bar = tqdm(total=total_steps, desc="fine-tuning", unit="step",
               disable=not (accelerator.is_main_process and tcfg.progress_bar))
    for epoch in range(1, tcfg.epochs + 1):
        running, seen = 0.0, 0
        for batch in loader:
            labels = batch.pop("labels")
            with accelerator.accumulate(model):
                logits = model(**batch).logits.float()
                loss = _loss(logits, labels, multilabel, class_weights)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    apply_update(accelerator, model, optimizer, scheduler, tcfg)
                    step += 1
                    bar.update(1)
            running += float(loss.detach()) * len(labels)
            seen += len(labels)
        record = {"epoch": epoch, "train_loss": running / max(seen, 1), "lr": scheduler.get_last_lr()[-1]}
        if val_loader is not None:
            proba, labels, val_loss = predict_loader(accelerator, model, val_loader, multilabel)
            scores = _score(target, classes, labels, proba)
            record.update(val_n=int(len(labels)), val_loss=val_loss, val_macro_f1=scores["macro_f1"],
                          val_accuracy=scores.get("accuracy", scores.get("subset_accuracy")))
            value = val_loss if tcfg.early_stopping_metric == "loss" else -scores["macro_f1"]
            if best is None or value < best - tcfg.min_delta:
                best, best_state, best_epoch, waited = value, snapshot(), epoch, 0
            else:
                waited += 1
        else:
            best_state, best_epoch = snapshot(), epoch
        history.append(record)
        if metrics_log is not None:
            metrics_log.log(record, step)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("train_loss", "val_loss", "val_macro_f1")})
        if val_loader is not None and waited >= tcfg.patience:
            stopped = True
            log.info("early stopping after epoch %d: no improvement for %d epochs (best epoch %d)", epoch, waited,
                     best_epoch)
            break
    bar.close()
    unwrapped.load_state_dict(best_state)
    unwrapped.eval()
    accelerator.wait_for_everyone()
    return TrainedClassifier(unwrapped, tokenizer, classes, history, best_epoch, stopped, time.perf_counter() - start,
                             accelerator.num_processes)


def predict_texts(model, tokenizer, texts: Sequence[str], multilabel: bool, max_length: int = 128,
                  batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Class probabilities of ``texts`` (softmax, or sigmoid per label), in input order."""
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out = []
    model.eval()
    with torch.inference_mode():
        for lo in tqdm(range(0, len(texts), batch_size), desc="fine-tuned head", disable=not progress, leave=False):
            batch = tokenizer(list(texts[lo:lo + batch_size]), padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            out.append(_probabilities(model(**batch).logits.float(), multilabel).cpu().numpy().astype(np.float64))
    n_classes = model.config.num_labels
    return np.concatenate(out) if out else np.zeros((0, n_classes))


class FinetunedHead:
    """A registered fine-tuned head inside a model directory, used by ``ScoringPipeline`` like a frozen one."""

    def __init__(self, target: Target, model, tokenizer, classes: np.ndarray, max_length: int, entry: dict,
                 progress: bool = False):
        self.target, self.model, self.tokenizer = target, model, tokenizer
        self.classes_, self.max_length, self.entry, self.progress = classes, max_length, entry, progress

    @classmethod
    def load(cls, needs_dir: Path, entry: dict, progress: bool = False) -> FinetunedHead:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = needs_dir / entry["path"]
        model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=False).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        target = Target(**entry["target"])
        classes = np.array(entry["classes"], dtype=np.int64 if target.kind == "binary" else object)
        head = cls(target, model, tokenizer, classes, entry["max_length"], entry, progress)
        head.source_ = path
        return head

    def save(self, needs_dir: Path) -> dict:
        """Write the model into ``needs_dir`` (unless it was loaded from there); returns its manifest entry."""
        path = needs_dir / self.entry["path"]
        if getattr(self, "source_", None) is None or Path(self.source_).resolve() != path.resolve():
            self.model.save_pretrained(path)
            self.tokenizer.save_pretrained(path)
        return self.entry

    def predict_proba_texts(self, texts: Sequence[str]) -> np.ndarray:
        return predict_texts(self.model, self.tokenizer, texts, self.target.kind == "multilabel", self.max_length,
                             progress=self.progress)


def register_head(model_dir: Path, exported: Path, target: Target, classes: list, max_length: int,
                  metrics: dict) -> Path:
    """Copy a fine-tuned model into ``model_dir/needs/`` and make it the head of its target for scoring."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        manifest = {"features": ["text"], "heads": {}}
    needs_dir = model_dir / "needs"
    needs_dir.mkdir(parents=True, exist_ok=True)
    name = f"{target.slug}.finetuned"
    destination = needs_dir / name
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(exported, destination)
    previous = manifest["heads"].get(target.spec)
    if previous and previous.get("kind") == "frozen":  # replaced: its file would only confuse
        (needs_dir / previous["file"]).unlink(missing_ok=True)
    manifest["heads"][target.spec] = {"kind": "finetuned", "path": name, "target": target.as_dict(),
                                      "classes": classes, "max_length": max_length, "metrics": metrics}
    (needs_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return destination


def _profiles(cfg, frame):
    """Profile texts: the saved model's builder (``model_dir``), else one built from ``cfg.profile``."""
    from segmentation.features import AnalystFeatures
    from segmentation.profiles import ProfileBuilder, scrub_text_columns

    if cfg.model_dir:
        from segmentation.pipeline import SegmentationPipeline

        pipeline = SegmentationPipeline.load(cfg.model_dir, progress=False)
        return pipeline._prepare(frame)[1]
    schema = cfg.data.schema
    analyst = AnalystFeatures(cfg.features.age_column, list(cfg.features.age_bins), cfg.features.income_column).fit(frame)
    prepared, _ = scrub_text_columns(analyst.transform(frame), schema.text_columns, schema.name_columns,
                                     cfg.data.scrub_pii)
    fields = cfg.profile.field_columns
    if fields is None:
        fields = list(schema.categorical_columns) + list(analyst.derived_columns_)
    return ProfileBuilder(cfg.profile.template, fields, schema.text_columns, cfg.profile.text_separator,
                          schema.pii_columns).build(prepared)


def _encoder_of(cfg) -> str:
    if cfg.encoder_path:
        return cfg.encoder_path
    if cfg.model_dir:
        state = json.loads((Path(cfg.model_dir) / "encoder.json").read_text())
        if state["kind"] == "hf":
            return state["name_or_path"]
    raise ValueError("set encoder_path=PATH (a Hugging Face encoder directory or hub name); model_dir's encoder is "
                     "TF-IDF or absent")


@dataclass
class FinetuneResult:
    output_dir: Path
    exported: Path | None
    metrics: dict
    registered: Path | None = None


def finetune(cfg) -> FinetuneResult:
    """Load and split the data, fine-tune, evaluate on the test split, export (and register) the head.

    ``cfg`` is a ``FinetuneConfig`` (``configs/finetune.yaml``).
    """
    from omegaconf import OmegaConf
    from sklearn.model_selection import train_test_split

    from segmentation.io import load_customers
    from segmentation.needs import split_labels

    cfg = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
    out = Path(cfg.output_dir)
    data = OmegaConf.to_object(cfg.data)
    plain = OmegaConf.to_object(cfg)
    tcfg = plain.trainer
    encoder = _encoder_of(cfg)
    target = parse_target(cfg.target, cfg.basket_column, cfg.label_separator)
    loaded = load_customers(data, cfg.split)
    frame = loaded.frame
    known = np.flatnonzero(target.known(frame))
    if len(known) < 4:
        raise ValueError(f"target {target.spec!r} has only {len(known)} labelled rows")
    frame = frame.iloc[known].reset_index(drop=True)
    texts = _profiles(plain, frame)
    labels = target.labels(frame)
    splits = split_labels(frame, data.split_column)
    rng_state = tcfg.seed
    all_rows = np.arange(len(frame))
    strata = None if target.kind == "multilabel" else np.asarray([str(v) for v in labels])

    def stratify(rows):
        if strata is None:
            return None
        values, counts = np.unique(strata[rows], return_counts=True)
        return strata[rows] if counts.min() >= 2 else None

    if splits is not None and data.test_split and (splits == data.test_split).any() and (splits != data.test_split).any():
        train_rows, test_rows = all_rows[splits != data.test_split], all_rows[splits == data.test_split]
    else:
        train_rows, test_rows = train_test_split(all_rows, test_size=tcfg.test_size, random_state=rng_state,
                                                 stratify=stratify(all_rows))
    validation_rows = np.array([], dtype=np.int64)
    if tcfg.validation_size > 0:
        train_rows, validation_rows = train_test_split(train_rows, test_size=tcfg.validation_size,
                                                       random_state=rng_state, stratify=stratify(train_rows))
    pick = (lambda rows: [labels[i] for i in rows]) if isinstance(labels, list) else (lambda rows: labels[rows])
    if target.kind == "multilabel":
        classes = sorted({v for i in train_rows for v in labels[i]})
    elif target.kind == "binary":
        classes = [0, 1]
    else:
        classes = sorted({str(v) for v in pick(train_rows)})
    class_names = [str(c) for c in classes]

    def examples(rows) -> TextExamples:
        kept = rows
        if target.kind == "multiclass":  # classes that appear only outside the training rows cannot be learned
            kept = np.array([i for i in rows if str(labels[i]) in set(class_names)], dtype=np.int64)
        return TextExamples([texts[i] for i in kept], encode_labels(target, pick(kept), class_names))

    out.mkdir(parents=True, exist_ok=True)
    train = examples(train_rows)
    validation = examples(validation_rows) if len(validation_rows) else None
    test = examples(test_rows)
    trained = train_classifier(encoder, target, class_names, train, validation, tcfg, cfg.trust_remote_code,
                               metrics_path=out / "metrics.jsonl")
    proba = predict_texts(trained.model, trained.tokenizer, test.texts, target.kind == "multilabel", tcfg.max_length,
                          tcfg.eval_batch_size)
    test_scores = _score(target, class_names, test.labels, proba)
    metrics = {"target": target.spec, "kind": target.kind, "encoder": encoder, "classes": class_names,
               "rows": {"train": len(train), "validation": len(validation) if validation else 0, "test": len(test)},
               "best_epoch": trained.best_epoch, "stopped_early": trained.stopped_early,
               "seconds": round(trained.seconds, 1), "world_size": trained.world_size, "history": trained.history,
               "test": test_scores,
               "layer_decay": tcfg.layer_decay, "learning_rate": tcfg.learning_rate}
    result = FinetuneResult(out, None, metrics)
    from accelerate import PartialState

    if PartialState().is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
        result.exported = out / "model"
        trained.model.save_pretrained(result.exported)
        trained.tokenizer.save_pretrained(result.exported)
        (out / METRICS_FILE).write_text(json.dumps(metrics, indent=1, default=float))
        if cfg.model_dir and cfg.register:
            digest = {k: test_scores[k] for k in ("accuracy", "subset_accuracy", "macro_f1", "ece")
                      if isinstance(test_scores.get(k), float)}
            result.registered = register_head(Path(cfg.model_dir), result.exported, target, classes, tcfg.max_length,
                                              digest)
    PartialState().wait_for_everyone()
    return result
