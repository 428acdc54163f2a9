"""Targets, heads (probabilities as scikit-learn computes them), saving without pickle, evaluation, few-shot curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from segmentation.needs import NeedHead, evaluate_predictions, few_shot_curve, head_inputs, sample_per_class
from segmentation.targets import Target, parse_target, resolve_targets

FRAME = pd.DataFrame({"next_category": ["books", "toys", "", "books"],
                      "next_categories": ["books;toys", "toys", "books", None],
                      "churned": ["yes", "no", "no", "yes"]})


def test_target_specs_and_labels():
    multiclass = parse_target("next_category")
    assert (multiclass.kind, multiclass.column) == ("multiclass", "next_category")
    assert multiclass.known(FRAME).tolist() == [True, True, False, True]
    assert multiclass.labels(FRAME).tolist() == ["books", "toys", "", "books"]
    multilabel = parse_target("multilabel:next_categories")
    assert multilabel.labels(FRAME) == [["books", "toys"], ["toys"], ["books"], []]
    assert multilabel.known(FRAME).tolist() == [True, True, True, False]
    will_buy = parse_target("will_buy:toys")
    assert (will_buy.kind, will_buy.column, will_buy.slug) == ("binary", "next_categories", "will_buy_toys")
    assert will_buy.labels(FRAME).tolist() == [1, 1, 0, 0]
    assert parse_target("binary:churned=yes").labels(FRAME).tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="unknown kind 'maybe'"):
        parse_target("maybe:churned")
    with pytest.raises(ValueError, match="binary:COLUMN=VALUE"):
        parse_target("binary:churned")
    with pytest.raises(ValueError, match=r"read columns \['segment'\]"):
        resolve_targets(["segment"], [], FRAME.columns)
    assert [t.spec for t in resolve_targets(None, ["next_category", "absent"], FRAME.columns)] == ["next_category"]


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    return X, y


def test_multiclass_probabilities_sum_to_one_and_match_sklearn(toy):
    X, y = toy
    head = NeedHead(Target("y", "multiclass", "y")).fit(X, y)
    proba = head.predict_proba(X)
    assert proba.shape == (120, 3) and head.classes_.tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=0)).fit(X, y)
    np.testing.assert_array_equal(proba, reference.predict_proba(X))
    np.testing.assert_array_equal(head.predict(X), reference.predict(X))


def test_binary_and_multilabel_heads_match_sklearn(toy):
    X, _ = toy
    y = (X[:, 2] > 0).astype(int)
    head = NeedHead(Target("will_buy:x", "binary", "basket", "x", member=True), class_weight="balanced").fit(X, y)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced",
                                                                   random_state=0)).fit(X, y)
    np.testing.assert_array_equal(head.predict_proba(X), reference.predict_proba(X))
    labels = [[v for v, keep in zip("pq", row) if keep] for row in (X[:, 3:5] > 0)]
    multi = NeedHead(Target("multilabel:m", "multilabel", "m")).fit(X, labels)
    indicator = (X[:, 3:5] > 0).astype(int)
    reference = make_pipeline(StandardScaler(), OneVsRestClassifier(
        LogisticRegression(C=0.1, max_iter=2000, random_state=0))).fit(X, indicator)
    np.testing.assert_array_equal(multi.predict_proba(X), reference.predict_proba(X))
    assert multi.classes_.tolist() == ["p", "q"]


def test_any_sklearn_classifier_by_config_and_clear_errors(toy):
    X, y = toy
    forest = NeedHead(Target("y", "multiclass", "y"), {"_target_": "sklearn.ensemble.RandomForestClassifier",
                                                       "n_estimators": 10}, random_state=1).fit(X, y)
    np.testing.assert_allclose(forest.predict_proba(X).sum(axis=1), 1.0)
    assert forest.estimator_[-1].random_state == 1
    with pytest.raises(ValueError, match="takes no class_weight"):
        NeedHead(Target("y", "multiclass", "y"), {"_target_": "sklearn.naive_bayes.GaussianNB"},
                 class_weight="balanced").fit(X, y)
    with pytest.raises(ValueError, match="not a scikit-learn classifier"):
        NeedHead(Target("y", "multiclass", "y"), {"_target_": "sklearn.linear_model.LinearRegression"}).fit(X, y)
    with pytest.raises(ValueError, match="one class only"):
        NeedHead(Target("y", "multiclass", "y")).fit(X[:3], ["a", "a", "a"])
    with pytest.raises(ValueError, match="calibration must be"):
        NeedHead(Target("y", "multiclass", "y"), calibration="platt").fit(X, y)


def test_calibrated_head_saves_and_loads_without_pickle(toy, tmp_path):
    X, y = toy
    head = NeedHead(Target("y", "multiclass", "y"), calibration="sigmoid").fit(X, y)
    entry = head.save(tmp_path / "y.skops")
    loaded = NeedHead.load(tmp_path, entry)
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    assert loaded.classes_.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="expects 5 features, got 4"):
        loaded.predict_proba(X[:, :4])


class Intruder(LogisticRegression):
    """A class outside scikit-learn: its file must not be loaded."""


def test_loading_refuses_types_outside_sklearn(toy, tmp_path):
    import skops.io as sio

    X, y = toy
    head = NeedHead(Target("y", "multiclass", "y")).fit(X, y)
    entry = head.save(tmp_path / "y.skops")
    sio.dump(Intruder().fit(X, y), tmp_path / "y.skops")
    with pytest.raises(ValueError, match="Intruder.*refusing"):
        NeedHead.load(tmp_path, entry)


def test_evaluation_of_a_fixed_example():
    target = Target("y", "multiclass", "y")
    classes = np.array(["a", "b"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]])
    evaluation = evaluate_predictions(target, classes, ["a", "b", "b", "b"], proba, n_bins=10)
    assert evaluation["accuracy"] == 0.75
    assert evaluation["confusion"] == [[1, 0], [1, 2]]
    # macro-F1: class a P=1/2 R=1 F1=2/3; class b P=1 R=2/3 F1=0.8.
    assert evaluation["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert evaluation["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    # Binary: the negative (0.5) ranks above one positive (0.3) and below two (0.6, 0.8).
    positive = np.array([0.5, 0.6, 0.3, 0.8])
    binary = evaluate_predictions(Target("b", "binary", "c", "x"), np.array([0, 1]), [0, 1, 1, 1],
                                  np.column_stack([1 - positive, positive]))
    assert binary["roc_auc"] == pytest.approx(2 / 3) and binary["positive_rate"] == 0.75
    assert binary["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)  # precision 1, 1, 3/4 at the positives
    # Predicted positive at P >= 0.5: [1, 1, 0, 1].
    assert binary["accuracy"] == 0.5 and binary["confusion"] == [[0, 1], [1, 2]]


def test_few_shot_curve_draws_k_per_class(toy):
    X, y = toy
    rng = np.random.default_rng(0)
    rows = sample_per_class(y, 2, rng)
    assert sorted(y[rows].tolist()) == ["a", "a", "b", "b", "c", "c"]
    curve = few_shot_curve(lambda: NeedHead(Target("y", "multiclass", "y")), X[:80], y[:80], X[80:], y[80:],
                           shots=[1, 4, 20], repeats=3, random_state=0)
    assert [p["shots"] for p in curve] == [1, 4, 20]
    sizes = np.unique(y[:80], return_counts=True)[1]
    assert [p["n_labelled"] for p in curve] == [3, 12, int(np.minimum(sizes, 20).sum())]
    assert curve[-1]["accuracy"] > curve[0]["accuracy"]  # more labels, better head
    again = few_shot_curve(lambda: NeedHead(Target("y", "multiclass", "y")), X[:80], y[:80], X[80:], y[80:],
                           shots=[1, 4, 20], repeats=3, random_state=0)
    assert again == curve


def test_head_inputs_concatenate_named_blocks():
    blocks = {"text": np.ones((2, 3)), "numeric": np.zeros((2, 2)), "categorical": np.zeros((2, 0))}
    assert head_inputs(blocks, ["text", "numeric", "categorical"]).shape == (2, 5)
    with pytest.raises(ValueError, match="not \\['prices'\\]"):
        head_inputs(blocks, ["prices"])


def test_a_wrong_few_shot_target_fails_before_any_fitting(toy):
    from segmentation.config import FewShotConfig, NeedsConfig
    from segmentation.needs import fit_need_heads

    X, y = toy
    frame = pd.DataFrame({"y": y, "m": ["p;q"] * len(y)})
    cfg = NeedsConfig(features=["text"], few_shot=FewShotConfig(targets=["multilabel:m"]))
    targets = [Target("y", "multiclass", "y"), Target("multilabel:m", "multilabel", "m")]
    with pytest.raises(ValueError, match="'multilabel:m' is not one of the binary or multi-class targets \\['y'\\]"):
        fit_need_heads({"text": X}, frame, targets, cfg, progress=False)
    cfg = NeedsConfig(features=["text"], evaluation="holdout", few_shot=FewShotConfig(shots=[2], repeats=1))
    result = fit_need_heads({"text": X}, frame, targets[:1], cfg, progress=False)
    assert result.scheme == "holdout" and result.evaluation["y"]["n_evaluated"] == 24  # 20% of 120
    assert list(result.few_shot) == ["y"] and result.few_shot["y"][0]["n_labelled"] == 6
    np.testing.assert_array_equal(result.held_out["y"].rows, np.sort(result.held_out["y"].rows))
