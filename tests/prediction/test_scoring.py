"""Scoring new customers: the Python API, field-only records, streamed files with rejects, and scripts/predict.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from segmentation.playbook import FIELDS
from segmentation.scoring import ScoringPipeline, score_file
from tests.helpers import REPO

LABELS = ["next_category", "next_categories", "true_segment", "moved", "snapshot", "split"]


@pytest.fixture(scope="module")
def scorer(fitted_run):
    return ScoringPipeline.load(fitted_run.model_dir, progress=False)


@pytest.fixture(scope="module")
def new_customers(fitted_run):
    """The later snapshot as a file of new customers: no labels."""
    later = fitted_run.customers[fitted_run.customers.snapshot == 1]
    return later.drop(columns=LABELS).reset_index(drop=True)


def test_score_returns_segment_needs_strategy_and_products(scorer, new_customers, fitted_run):
    scored = scorer.score(new_customers.iloc[:40])
    assert len(scored) == 40 and scored.id.tolist() == new_customers.customer_id[:40].tolist()
    assert scored.columns.tolist() == scorer.output_columns()
    classes = [c for c in scored.columns if c.startswith("need.next_category.")]
    assert len(classes) == 10
    np.testing.assert_allclose(scored[classes].sum(axis=1), 1.0, atol=1e-5)  # rounded to 6 decimals
    assert scored["need.next_category"].tolist() == [c.split(".", 2)[2] for c in scored[classes].idxmax(axis=1)]
    assert scored["need.will_buy:electronics"].between(0, 1).all()
    # A binary head and the multi-label head's label fit the same rows on the same labels: same probability.
    np.testing.assert_allclose(scored["need.will_buy:electronics"],
                               scored["need.multilabel:next_categories.electronics"], atol=1e-6)
    strategies = {s.segment: s for s in scorer.segmentation.strategies_}
    for field in FIELDS:
        assert scored[f"strategy.{field}"].tolist() == [strategies[s].recommendations[field].text for s in scored.segment]
    products = scored.recommended_products.str.split(";")
    assert products.map(len).eq(3).all() and products.map(lambda p: len(set(p)) == 3).all()
    # The same customers scored by the fitted pipeline: the same segments.
    np.testing.assert_array_equal(scored.segment, scorer.segmentation.predict(new_customers.iloc[:40]))


def test_a_customer_given_by_fields_only_is_scored(scorer, new_customers):
    record = new_customers.iloc[0][["age", "gender", "region", "annual_income", "browsing_time", "num_purchases",
                                    "avg_order_value", "payment_method", "channel"]].to_dict()
    record.update({c: float(new_customers.iloc[0][c]) for c in new_customers.columns if c.startswith("purchases_")})
    record["region"] = "mars"  # a category the model never saw
    scored = scorer.score(record, top_k=2)
    assert len(scored) == 1 and scored.id.tolist() == ["row-1"]
    assert scorer.rejects_.empty
    assert scorer.unknown_categories_ == {"region": 1}
    assert len(scored.recommended_products[0].split(";")) == 2
    assert 0 <= scored["need.will_buy:electronics"][0] <= 1
    # Empty free text is a reject when fitting, never when scoring.
    blank = new_customers.iloc[:2].assign(review="", support_message=" ", search_queries=None)
    assert len(scorer.score(blank)) == 2 and scorer.rejects_.empty


def test_invalid_rows_are_rejected_with_reasons(scorer, new_customers):
    bad = new_customers.iloc[:3].astype({"age": object}).copy()
    bad.loc[1, "age"] = "forty"
    scored = scorer.score(bad)
    assert scored.id.tolist() == [bad.customer_id[0], bad.customer_id[2]]
    assert scorer.rejects_[["row_number", "column", "check"]].values.tolist() == [[2, "age", "unparsable_number"]]


def test_streamed_file_matches_the_api_and_accounts_for_every_row(scorer, new_customers, tmp_path):
    table = new_customers.iloc[:130].astype({"age": object}).copy()
    table.loc[5, "age"] = "unknown"
    table.loc[100, "customer_id"] = table.customer_id[3]  # a duplicate id in a later chunk
    table.loc[7, ["review", "support_message", "search_queries"]] = ""  # field-only customer: scored
    path = tmp_path / "new.csv"
    table.to_csv(path, index=False)
    output = tmp_path / "out" / "scored.csv"
    summary = score_file(scorer, path, output, chunk_size=50, progress=False)
    assert (summary["rows_read"], summary["rows_scored"], summary["rows_rejected"], summary["chunks"]) == (130, 128, 2, 3)
    assert summary["rejects_by_check"] == {"unparsable_number": 1, "duplicate_id": 1}
    assert summary["rows_without_text"] == 1
    rejects = pd.read_csv(tmp_path / "out" / "scored.rejects.csv")
    assert rejects[["row_number", "check"]].values.tolist() == [[6, "unparsable_number"], [101, "duplicate_id"]]
    assert "first seen at row 4 of new.csv" in rejects.reason[1]
    assert json.loads((tmp_path / "out" / "scored.summary.json").read_text())["rows_scored"] == 128
    streamed = pd.read_csv(output, keep_default_na=False)
    whole = scorer.score(table.drop(index=[5, 100]))
    assert streamed.id.tolist() == whole.id.tolist()
    np.testing.assert_allclose(streamed["need.next_category.books"], whole["need.next_category.books"])
    assert streamed.recommended_products.tolist() == whole.recommended_products.tolist()


def test_jsonl_input_and_a_broken_line(scorer, new_customers, tmp_path):
    lines = [new_customers.iloc[i].to_json() for i in range(4)]
    lines.insert(2, "{not json")
    path = tmp_path / "new.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = score_file(scorer, path, tmp_path / "scored.csv", chunk_size=2, progress=False)
    assert (summary["rows_read"], summary["rows_scored"], summary["rows_rejected"]) == (5, 4, 1)
    assert summary["rejects_by_check"] == {"bad_json": 1}


def test_segmentation_only_model_still_scores(fitted_run, new_customers, tmp_path):
    scorer = ScoringPipeline.load(fitted_run.model_dir, progress=False)
    scorer.segmentation.save(tmp_path / "plain")  # no need heads, no scoring.json
    plain = ScoringPipeline.load(tmp_path / "plain", progress=False)
    scored = plain.score(new_customers.iloc[:5])
    assert scored.columns.tolist() == ["id", "segment", "segment_name", "distance", "far_from_segments",
                                       *[f"strategy.{f}" for f in FIELDS]]
    assert not scored.far_from_segments.any()


def test_predict_script_end_to_end(fitted_run, new_customers, tmp_path):
    path = tmp_path / "new_customers.csv"
    new_customers.iloc[:60].to_csv(path, index=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"), f"model_dir={fitted_run.model_dir}",
                             f"input={path}", "output=results/scored.csv", "progress=false"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "60 customers scored, 0 rejected (60 read)" in result.stdout
    out = tmp_path / "results"
    assert sorted(p.name for p in out.iterdir()) == ["predict.log", "scored.config.yaml", "scored.csv",
                                                     "scored.summary.json"]
    assert len(pd.read_csv(out / "scored.csv")) == 60
    assert "chunk_size: 2048" in (out / "scored.config.yaml").read_text()


def test_saving_elsewhere_keeps_exactly_the_listed_heads(scorer, new_customers, tmp_path):
    target = tmp_path / "copy"
    (target / "needs").mkdir(parents=True)
    (target / "needs" / "old_target.skops").write_bytes(b"left by an earlier run")
    scorer.save(target)
    assert sorted(p.name for p in (target / "needs").iterdir()) == [
        "manifest.json", "multilabel_next_categories.skops", "next_category.skops", "will_buy_electronics.skops"]
    copy = ScoringPipeline.load(target, progress=False)
    pd.testing.assert_frame_equal(copy.score(new_customers.iloc[:10]), scorer.score(new_customers.iloc[:10]))
    ScoringPipeline(scorer.segmentation).save(target)  # no heads: no needs/ left behind
    assert not (target / "needs").exists()


def test_entry_point_configs_are_typed():
    from hydra.errors import ConfigCompositionException

    from tests.prediction.conftest import compose_entry

    cfg = compose_entry("predict", ["model_dir=m", "input=in.csv", "output=out/scored.csv"])
    assert cfg.output_dir == "out" and cfg.chunk_size == 2048
    for name, typo in (("predict", "chunk_sise=5"), ("migrate", "dynamics.refit_treshold=1"),
                       ("finetune", "trainer.layer_dacay=0.9")):
        required = ["model_dir=m", "input=i", "output=o"] if name == "predict" else ["model_dir=m"]
        with pytest.raises(ConfigCompositionException, match=typo.split("=")[0].split(".")[-1]):
            compose_entry(name, [*required, typo])
    with pytest.raises(ConfigCompositionException, match="chunk_size"):
        compose_entry("predict", ["model_dir=m", "input=i", "output=o", "chunk_size=many"])
