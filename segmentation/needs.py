"""Need prediction on frozen embeddings: one scikit-learn classifier per target, evaluated out of sample.

    heads = fit_need_heads(pipeline.fit_blocks_, frame, targets, needs_cfg, splits)
    heads.heads["next_category"].predict_proba(head_inputs(blocks, heads.features))

A ``NeedHead`` is a scikit-learn pipeline: ``StandardScaler`` (optional), the configured classifier (any
scikit-learn classifier with ``predict_proba``, ``LogisticRegression`` by default; ``class_weight`` when
it takes one), optionally wrapped in ``CalibratedClassifierCV`` (sigmoid or isotonic, by cross-validation)
and, for multi-label targets, in ``OneVsRestClassifier``. Its input is the concatenation of the
configured feature blocks of ``SegmentationPipeline.feature_blocks``: the encoder's text embeddings,
standardised numerics, one-hot categoricals.

Evaluation is out of sample: the data's test split held out (``split``), stratified k-fold (``kfold``,
every row predicted by a model that did not see it) or a stratified hold-out (``holdout``). The saved
heads are then refitted on every labelled row. Heads are saved with skops (no pickle); loading accepts
only scikit-learn and NumPy types.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.calibration import calibration_summary
from segmentation.targets import Target

log = logging.getLogger(__name__)

BLOCKS = ("text", "numeric", "categorical")
DEFAULT_CLASSIFIER = {"_target_": "sklearn.linear_model.LogisticRegression", "C": 0.1, "max_iter": 2000}
CALIBRATIONS = ("none", "sigmoid", "isotonic")
# Types a saved head may contain: skops refuses anything else unless trusted, and we trust only these.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def head_inputs(blocks: dict[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """The heads' input matrix: the chosen feature blocks side by side (absent or empty blocks skipped)."""
    unknown = sorted(set(features) - set(BLOCKS))
    if unknown:
        raise ValueError(f"needs.features may name {list(BLOCKS)}, not {unknown}")
    parts = [np.asarray(blocks[name], dtype=np.float32) for name in features
             if name in blocks and blocks[name].shape[1] > 0]
    if not parts:
        raise ValueError(f"none of the feature blocks {list(features)} exists for this data (have {sorted(blocks)})")
    return np.hstack(parts)


class NeedHead:
    """Probabilities of one target from a feature matrix; scikit-learn conventions (``fit``/``predict_proba``).

    ``classes_``: multi-class, the class labels (sorted); binary, ``[0, 1]``; multi-label, the labels.
    ``predict_proba`` has one column per class, in that order (binary: negative, positive; multi-label:
    each label's own probability, so rows need not sum to one).
    """

    def __init__(self, target: Target, classifier: dict | None = None, class_weight: str | None = None,
                 standardize: bool = True, calibration: str = "none", calibration_folds: int = 3,
                 random_state: int = 0):
        self.target = target
        self.classifier = classifier
        self.class_weight = class_weight
        self.standardize = standardize
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def make_estimator(self):
        """The unfitted scikit-learn pipeline this head fits."""
        from hydra.utils import instantiate
        from sklearn.base import is_classifier
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"needs.calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        spec = dict(self.classifier or DEFAULT_CLASSIFIER)
        if "_target_" not in spec:
            raise ValueError(f"needs.classifier needs _target_ (a class path such as "
                             f"sklearn.linear_model.LogisticRegression), got {spec}")
        estimator = instantiate(spec)
        if not is_classifier(estimator) or not hasattr(estimator, "predict_proba"):
            raise ValueError(f"needs.classifier {spec['_target_']!r} is not a scikit-learn classifier with predict_proba")
        params = estimator.get_params()
        if "random_state" in params and "random_state" not in spec:
            estimator.set_params(random_state=self.random_state)
        if self.class_weight is not None:
            if "class_weight" not in params:
                raise ValueError(f"needs.class_weight={self.class_weight!r}, but {spec['_target_']} takes no class_weight")
            estimator.set_params(class_weight=self.class_weight)
        if self.calibration != "none":
            estimator = CalibratedClassifierCV(estimator, method=self.calibration, cv=self.calibration_folds)
        if self.target.kind == "multilabel":
            estimator = OneVsRestClassifier(estimator)
        return make_pipeline(*([StandardScaler()] if self.standardize else []), estimator)

    def encode(self, labels) -> np.ndarray:
        """Targets as the estimator sees them: class indices (unknown class: -1), 0/1, or an indicator matrix."""
        if self.target.kind == "multilabel":
            position = {c: i for i, c in enumerate(self.classes_)}
            out = np.zeros((len(labels), len(self.classes_)), dtype=np.int64)
            for row, values in enumerate(labels):
                for value in values:
                    if value in position:
                        out[row, position[value]] = 1
            return out
        if self.target.kind == "binary":
            return np.asarray(labels, dtype=np.int64)
        position = {c: i for i, c in enumerate(self.classes_)}
        return np.array([position.get(str(v), -1) for v in labels], dtype=np.int64)

    def fit(self, X: np.ndarray, y) -> NeedHead:
        kind = self.target.kind
        if kind == "multilabel":
            self.classes_ = np.array(sorted({v for values in y for v in values}), dtype=object)
            fit_y = self.encode(y)
            constant = [str(c) for c, column in zip(self.classes_, fit_y.T) if column.min() == column.max()]
            if constant:
                log.warning("target %s: labels %s are present in every row or in none", self.target.spec, constant)
        elif kind == "binary":
            self.classes_ = np.array([0, 1])
            fit_y = np.asarray(y, dtype=np.int64)
            if len(np.unique(fit_y)) < 2:
                raise ValueError(f"target {self.target.spec!r}: every training row has the same value ({fit_y[0]})")
        else:
            fit_y = np.asarray([str(v) for v in y], dtype=object)
            self.classes_ = np.unique(fit_y)
            if len(self.classes_) < 2:
                raise ValueError(f"target {self.target.spec!r}: one class only ({self.classes_.tolist()}) in the "
                                 "training rows")
        # float64: probabilities that sum to one to machine precision (float32 inputs give float32 ones).
        self.estimator_ = self.make_estimator().fit(np.asarray(X, dtype=np.float64), fit_y)
        self.n_features_in_ = int(np.asarray(X).shape[1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"head {self.target.spec!r} expects {self.n_features_in_} features, got {X.shape[1]}")
        return np.asarray(self.estimator_.predict_proba(X), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.target.kind == "multilabel":
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def save(self, path: Path) -> dict:
        """Write the fitted estimator to ``path`` (skops); returns what the manifest records about it."""
        import skops.io as sio

        sio.dump(self.estimator_, path)
        return {"kind": "frozen", "file": path.name, "target": self.target.as_dict(), "classes": self.classes_.tolist(),
                "n_features_in": self.n_features_in_, "classifier": self.classifier, "class_weight": self.class_weight,
                "standardize": self.standardize, "calibration": self.calibration}

    @classmethod
    def load(cls, directory: Path, entry: dict) -> NeedHead:
        import skops.io as sio

        path = directory / entry["file"]
        untrusted = sio.get_untrusted_types(file=path)
        refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if refused:
            raise ValueError(f"{path} holds types outside scikit-learn/NumPy/SciPy {refused}; refusing to load it")
        self = cls(Target(**entry["target"]), entry["classifier"], entry["class_weight"], entry["standardize"],
                   entry["calibration"])
        self.estimator_ = sio.load(path, trusted=untrusted)
        classes = entry["classes"]
        self.classes_ = np.array(classes, dtype=np.int64 if self.target.kind == "binary" else object)
        self.n_features_in_ = entry["n_features_in"]
        return self


def aligned_proba(head: NeedHead, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``head``'s probabilities in the column order of ``classes`` (0 for classes the head never saw)."""
    proba = head.predict_proba(X)
    if len(head.classes_) == len(classes) and np.array_equal(head.classes_, classes):
        return proba
    out = np.zeros((len(proba), len(classes)))
    position = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(head.classes_):
        out[:, position[c]] = proba[:, j]
    return out


def _rows_sum_to_one(proba: np.ndarray) -> np.ndarray:
    # Probabilities computed in float32 (a fine-tuned head) miss 1 by more than log_loss tolerates.
    return proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)


def evaluate_predictions(target: Target, classes: np.ndarray, labels, proba: np.ndarray, n_bins: int = 10) -> dict:
    """Accuracy, macro-F1, ROC-AUC/PR-AUC where defined, per-class report, confusion matrix, calibration."""
    from sklearn import metrics

    kind = target.kind
    out: dict = {"n": int(len(proba))}
    if kind == "multilabel":
        position = {c: i for i, c in enumerate(classes)}
        truth = np.zeros((len(labels), len(classes)), dtype=np.int64)
        for row, values in enumerate(labels):
            for value in values:
                if value in position:
                    truth[row, position[value]] = 1
        predicted = (proba >= 0.5).astype(np.int64)
        names = [str(c) for c in classes]
        both = [j for j in range(len(classes)) if 0 < truth[:, j].sum() < len(truth)]
        out.update({
            "subset_accuracy": float(metrics.accuracy_score(truth, predicted)),
            "micro_f1": float(metrics.f1_score(truth, predicted, average="micro", zero_division=0)),
            "macro_f1": float(metrics.f1_score(truth, predicted, average="macro", zero_division=0)),
            "hamming_loss": float(metrics.hamming_loss(truth, predicted)),
            "roc_auc_macro": float(np.mean([metrics.roc_auc_score(truth[:, j], proba[:, j]) for j in both]))
            if both else None,
            "pr_auc_macro": float(np.mean([metrics.average_precision_score(truth[:, j], proba[:, j]) for j in both]))
            if both else None,
            "per_class": metrics.classification_report(truth, predicted, target_names=names, output_dict=True,
                                                       zero_division=0),
            "classes": names,
        })
        out.update(calibration_summary("multilabel", truth, proba, n_bins))
        return out

    if kind == "binary":
        truth = np.asarray(labels, dtype=np.int64)
        predicted = (proba[:, 1] >= 0.5).astype(np.int64)
        names = ["no", "yes"]
        has_both = len(np.unique(truth)) == 2
        out.update({
            "accuracy": float(metrics.accuracy_score(truth, predicted)),
            "macro_f1": float(metrics.f1_score(truth, predicted, average="macro", labels=[0, 1], zero_division=0)),
            "f1": float(metrics.f1_score(truth, predicted, zero_division=0)),
            "roc_auc": float(metrics.roc_auc_score(truth, proba[:, 1])) if has_both else None,
            "pr_auc": float(metrics.average_precision_score(truth, proba[:, 1])) if has_both else None,
            "positive_rate": float(truth.mean()),
            "log_loss": float(metrics.log_loss(truth, _rows_sum_to_one(proba), labels=[0, 1])),
        })
        indices = truth
    else:
        position = {c: i for i, c in enumerate(classes)}
        indices = np.array([position.get(str(v), -1) for v in labels], dtype=np.int64)
        seen = indices >= 0
        if not seen.all():
            out["n_unseen_class"] = int((~seen).sum())  # classes the head never saw count as errors
        predicted = proba.argmax(axis=1)
        names = [str(c) for c in classes]
        present = np.unique(indices[seen])
        out.update({
            "accuracy": float(np.mean(predicted == indices)),
            "macro_f1": float(metrics.f1_score(indices, predicted, average="macro", labels=present, zero_division=0)),
            "weighted_f1": float(metrics.f1_score(indices, predicted, average="weighted", labels=present,
                                                  zero_division=0)),
            "log_loss": float(metrics.log_loss(indices[seen], _rows_sum_to_one(proba[seen]), labels=np.arange(len(classes))))
            if seen.any() else None,
        })
        try:  # one-vs-rest, over the classes present in the evaluated rows
            out["roc_auc_ovr"] = float(metrics.roc_auc_score(indices[seen], proba[seen][:, present] /
                                                             proba[seen][:, present].sum(axis=1, keepdims=True),
                                                             multi_class="ovr", labels=present)) \
                if len(present) > 2 else None
        except ValueError:
            out["roc_auc_ovr"] = None
        proba, indices, predicted = proba[seen], indices[seen], predicted[seen]
    out["per_class"] = metrics.classification_report(indices, predicted, labels=np.arange(len(names)),
                                                     target_names=names, output_dict=True, zero_division=0)
    out["confusion"] = metrics.confusion_matrix(indices, predicted, labels=np.arange(len(names))).tolist()
    out["classes"] = names
    out.update(calibration_summary(kind, indices, proba, n_bins))
    return out


def sample_per_class(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of ``shots`` random rows of each class (all rows of a rarer class), sorted."""
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        chosen.append(rng.choice(members, min(shots, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def _as_labels(values) -> np.ndarray:
    """Binary 0/1 targets as integers, class labels as strings."""
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.integer) else np.asarray([str(v) for v in values], dtype=object)


def few_shot_curve(make_head: Callable[[], NeedHead], X_train: np.ndarray, y_train, X_test: np.ndarray, y_test,
                   shots: Sequence[int], repeats: int = 3, random_state: int = 0) -> list[dict]:
    """Accuracy and macro-F1 on the test rows of heads fitted on ``k`` labelled training rows per class.

    Each point is the mean (and standard deviation) over ``repeats`` random draws of the labelled rows.
    """
    from sklearn.metrics import f1_score

    y_train, y_test = _as_labels(y_train), _as_labels(y_test)
    rng = np.random.default_rng(random_state)
    curve = []
    for k in shots:
        accuracy, macro_f1 = [], []
        for _ in range(repeats):
            rows = sample_per_class(y_train, int(k), rng)
            if len(np.unique(y_train[rows])) < 2:
                continue
            head = make_head().fit(X_train[rows], y_train[rows])
            predicted = head.predict(X_test)
            accuracy.append(float(np.mean(predicted == y_test)))
            macro_f1.append(float(f1_score(y_test.astype(str), predicted.astype(str), average="macro", zero_division=0)))
        if accuracy:
            curve.append({"shots": int(k), "n_labelled": int(len(rows)), "accuracy": float(np.mean(accuracy)),
                          "accuracy_std": float(np.std(accuracy)), "macro_f1": float(np.mean(macro_f1)),
                          "macro_f1_std": float(np.std(macro_f1)), "repeats": len(accuracy)})
    return curve


@dataclass
class HeldOut:
    """Out-of-sample probabilities of one target: the evaluated rows (positions in the table) and their scores."""

    rows: np.ndarray
    proba: np.ndarray
    classes: np.ndarray


@dataclass
class NeedsResult:
    heads: dict[str, NeedHead]
    features: list[str]
    evaluation: dict[str, dict]
    held_out: dict[str, HeldOut] = field(default_factory=dict)
    scheme: str = "kfold"
    few_shot: dict[str, list[dict]] = field(default_factory=dict)


def split_labels(frame: pd.DataFrame, split_column: str | None) -> np.ndarray | None:
    """Each row's split: the configured split column, else the name of the file it came from (train.csv -> train)."""
    if split_column and split_column in frame.columns:
        return frame[split_column].astype(str).to_numpy()
    if "__source__" in frame.columns:
        return frame["__source__"].astype(str).str.rsplit(".", n=1).str[0].to_numpy()
    return None


def evaluation_scheme(requested: str, splits: np.ndarray | None, train_split: str, test_split: str | None) -> str:
    if requested not in ("auto", "split", "kfold", "holdout"):
        raise ValueError(f"needs.evaluation must be auto, split, kfold or holdout, got {requested!r}")
    has_split = splits is not None and test_split is not None and (splits == test_split).any() \
        and (splits == train_split).any()
    if requested == "split" and not has_split:
        raise ValueError(f"needs.evaluation=split, but the table has no rows of both splits {train_split!r} and "
                         f"{test_split!r}; use kfold or holdout")
    if requested == "auto":
        return "split" if has_split else "kfold"
    return requested


def _folds(target: Target, labels, n: int, scheme: str, folds: int, test_size: float, random_state: int,
           splits: np.ndarray | None, train_split: str, test_split: str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) pairs, positions among the target's labelled rows."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if scheme == "split":
        return [(np.flatnonzero(splits == train_split), np.flatnonzero(splits == test_split))]
    strata = None if target.kind == "multilabel" else np.asarray([str(v) for v in labels])
    if strata is not None and np.unique(strata, return_counts=True)[1].min() < 2:
        log.warning("target %s has classes with a single row; splitting without stratification", target.spec)
        strata = None
    rows = np.arange(n)
    if scheme == "holdout":
        train, test = train_test_split(rows, test_size=test_size, random_state=random_state, stratify=strata)
        return [(np.sort(train), np.sort(test))]
    if strata is None:
        splitter = KFold(folds, shuffle=True, random_state=random_state)
        return list(splitter.split(rows))
    splitter = StratifiedKFold(min(folds, int(np.unique(strata, return_counts=True)[1].min())), shuffle=True,
                               random_state=random_state)
    return list(splitter.split(rows, strata))


def _subset(labels, rows: np.ndarray):
    return [labels[i] for i in rows] if isinstance(labels, list) else labels[rows]


def fit_need_heads(blocks: dict[str, np.ndarray], frame: pd.DataFrame, targets: Sequence[Target], cfg,
                   splits: np.ndarray | None = None, train_split: str = "train", test_split: str | None = "test",
                   random_state: int = 0, progress: bool = True) -> NeedsResult:
    """Evaluate every target out of sample, then fit its saved head on all its labelled rows.

    ``blocks`` are ``SegmentationPipeline.feature_blocks`` of ``frame`` (same rows, same order); ``cfg`` is
    a ``NeedsConfig``; ``splits`` each row's split name (``split_labels``).
    """
    from tqdm.auto import tqdm

    features = list(cfg.features)
    by_spec = {t.spec: t for t in targets}
    for spec in cfg.few_shot.targets or []:  # before any fitting: a typo should not cost a whole run
        if spec not in by_spec or by_spec[spec].kind == "multilabel":
            raise ValueError(f"needs.few_shot.targets: {spec!r} is not one of the binary or multi-class targets "
                             f"{[t.spec for t in targets if t.kind != 'multilabel']}")
    X_all = head_inputs(blocks, features)
    scheme = evaluation_scheme(cfg.evaluation, splits, train_split, test_split)
    result = NeedsResult({}, features, {}, scheme=scheme)

    def make(target: Target, seed: int = random_state) -> NeedHead:
        classifier = cfg.classifier if isinstance(cfg.classifier, dict) else dict(cfg.classifier)
        return NeedHead(target, classifier, cfg.class_weight, cfg.standardize, cfg.calibration, cfg.calibration_folds,
                        seed)

    for target in tqdm(targets, desc="need heads", unit="target", disable=not progress):
        known = np.flatnonzero(target.known(frame))
        if len(known) < 2:
            log.warning("target %s has %d labelled rows; skipped", target.spec, len(known))
            continue
        labels = _subset(target.labels(frame), known)
        X = X_all[known]
        target_splits = splits[known] if splits is not None else None
        head = make(target).fit(X, labels)  # the saved head: every labelled row
        pairs = _folds(target, labels, len(known), scheme, cfg.folds, cfg.test_size, random_state, target_splits,
                       train_split, test_split)
        rows, probas = [], []
        for train, test in pairs:
            fold_head = make(target).fit(X[train], _subset(labels, train))
            probas.append(aligned_proba(fold_head, X[test], head.classes_))
            rows.append(test)
        rows_eval = np.concatenate(rows)
        order = np.argsort(rows_eval, kind="stable")
        rows_eval, proba = rows_eval[order], np.vstack(probas)[order]
        evaluation = evaluate_predictions(target, head.classes_, _subset(labels, rows_eval), proba, cfg.calibration_bins)
        evaluation.update({"kind": target.kind, "scheme": scheme, "n_labelled": int(len(known)),
                           "n_evaluated": int(len(rows_eval)), "folds": len(pairs)})
        result.heads[target.spec] = head
        result.evaluation[target.spec] = evaluation
        result.held_out[target.spec] = HeldOut(known[rows_eval], proba, head.classes_)
        log.info("need head %s (%s): %s", target.spec, scheme,
                 ", ".join(f"{k} {evaluation[k]:.3f}" for k in ("accuracy", "subset_accuracy", "macro_f1", "ece")
                           if isinstance(evaluation.get(k), float)))

    few_shot_targets = cfg.few_shot.targets
    if few_shot_targets is None:
        few_shot_targets = [t.spec for t in targets if t.kind != "multilabel" and t.spec in result.heads][:1]
    if cfg.few_shot.shots:
        X_few = head_inputs(blocks, ["text"]) if cfg.few_shot.text_only else X_all
        for spec in few_shot_targets:
            target = by_spec[spec]
            if spec not in result.held_out:
                log.warning("no few-shot curve for %s: its head was not fitted", spec)
                continue
            known = np.flatnonzero(target.known(frame))
            labels = np.asarray(_subset(target.labels(frame), known))
            train, test = _folds(target, labels, len(known), scheme if scheme != "kfold" else "holdout", cfg.folds,
                                 cfg.test_size, random_state, splits[known] if splits is not None else None,
                                 train_split, test_split)[0]
            X = X_few[known]
            result.few_shot[spec] = few_shot_curve(lambda: make(target), X[train], labels[train], X[test], labels[test],
                                                   cfg.few_shot.shots, cfg.few_shot.repeats, random_state)
    return result


def save_heads(heads: dict, features: Sequence[str], directory: Path) -> Path | None:
    """``directory/needs/``: one skops file (or fine-tuned model directory) per head and ``manifest.json``.

    Files of heads that are no longer part of the model (an earlier run into the same directory) are
    removed, so that the directory holds exactly what the manifest lists; without heads there is no
    ``needs/`` at all.
    """
    import shutil

    target_dir = directory / "needs"
    if not heads:
        shutil.rmtree(target_dir, ignore_errors=True)
        return None
    target_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for spec, head in heads.items():
        if isinstance(head, NeedHead):
            entries[spec] = head.save(target_dir / f"{head.target.slug}.skops")
        else:  # a fine-tuned head (segmentation.finetune.FinetunedHead)
            entries[spec] = head.save(target_dir)
    manifest = {"features": list(features), "heads": entries}
    (target_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    listed = {"manifest.json", *(e.get("file") or e.get("path") for e in entries.values())}
    for stale in target_dir.iterdir():
        if stale.name not in listed:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return target_dir


def read_manifest(directory: Path) -> dict | None:
    path = directory / "needs" / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None
