"""Dynamic segmentation: migration counts by hand, movers against the synthetic ground truth, emerging groups, re-fit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from segmentation.dynamics import migrate, migration_matrix, run_migration
from segmentation.prediction_config import DynamicsConfig
from segmentation.prediction_report import MIGRATION_SECTIONS
from segmentation.scoring import ScoringPipeline
from tests.prediction.conftest import N_CUSTOMERS, compose_entry


def test_migration_matrix_of_a_hand_built_pair():
    before = pd.DataFrame({"id": list("abcdef"), "segment": [0, 0, 1, 1, 2, 2]})
    after = pd.DataFrame({"id": list("bcdefg"), "segment": [1, 1, 0, 2, 2, 0]})
    matrix, matched = migration_matrix(before, after, n_segments=3)
    # Matched b, c, d, e, f: b 0->1, c 1->1, d 1->0, e 2->2, f 2->2; a left, g is new.
    assert matrix.values.tolist() == [[0, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert (matrix.index.name, matrix.columns.name) == ("before", "after")
    assert matched.id.tolist() == list("bcdef")
    with pytest.raises(ValueError, match="after snapshot has duplicate ids, e.g. 'b'"):
        migration_matrix(before, pd.concat([after, after.iloc[:1]]), 3)


@pytest.fixture(scope="module")
def snapshots(fitted_run):
    customers = fitted_run.customers
    before, after = (customers[customers.snapshot == s].reset_index(drop=True) for s in (0, 1))
    return before, after


def test_movers_match_the_synthetic_ground_truth(fitted_run, snapshots):
    scorer = ScoringPipeline.load(fitted_run.model_dir, progress=False)
    before, after = snapshots
    result = migrate(scorer.segmentation, before, after, DynamicsConfig(), moved_column="moved")
    report = result.report
    assert report["matched"] == N_CUSTOMERS and report["only_before"] == report["only_after"] == 0
    assert result.matrix.to_numpy().sum() == N_CUSTOMERS
    counts = result.matrix.to_numpy()
    assert report["moved"] == int(counts.sum() - np.trace(counts)) == len(result.movers)
    truth = report["ground_truth"]
    assert truth["moved_share"] == pytest.approx(after.moved.mean())
    assert truth["precision"] > 0.9 and truth["recall"] > 0.9
    # Persona changes move customers between segments; the segments themselves stay as they were.
    assert report["emerging"]["share"] < 0.05
    assert report["drift"]["score"] < DynamicsConfig().refit_threshold and not report["refit"]["needed"]
    assert {"mean_abs_std_diff_change", "term_overlap", "top_changes"} <= set(report["drift"]["segments"][0])


def test_an_emerging_group_triggers_a_refit(fitted_run, snapshots, tmp_path):
    before, after = snapshots
    after = after.copy()
    newcomers = np.arange(len(after)) % 4 == 0  # a quarter of the customers turn into something new
    after.loc[newcomers, ["annual_income", "avg_order_value", "browsing_time"]] *= 8
    after.loc[newcomers, "review"] = "crypto mining rig and solar panels for the off grid cabin"
    before.to_csv(tmp_path / "before.csv", index=False)
    after.to_csv(tmp_path / "after.csv", index=False)
    cfg = compose_entry("migrate", [f"model_dir={fitted_run.model_dir}", f"before={tmp_path / 'before.csv'}",
                                    f"after={tmp_path / 'after.csv'}", "before_filters={}", "after_filters={}",
                                    f"data.cache_dir={fitted_run.cache}", f"output_dir={tmp_path / 'out'}"])
    result = run_migration(cfg)
    report = result.report
    assert report["emerging"]["share"] > 0.2
    assert report["emerging"]["signals"][0]["std_diff"] > 1  # far customers: high income / spend / browsing
    assert report["refit"]["needed"] and "far from every segment" in report["refit"]["reason"]
    out = tmp_path / "out"
    for name in ("migration.csv", "movers.csv", "migration.json", "migration.html", "config.yaml", "model/scoring.json"):
        assert (out / name).is_file(), name
    refitted = ScoringPipeline.load(out / "model", progress=False)
    assert len(refitted.score(after.iloc[:3])) == 3
    assert json.loads((out / "migration.json").read_text())["refit"]["model_dir"] == str(out / "model")
    text = (out / "migration.html").read_text()
    for section in MIGRATION_SECTIONS:
        assert f"<section id='{section}'>" in text
    assert "<script" not in text and text.count("data:image/png;base64,") == 1
    matrix = pd.read_csv(out / "migration.csv", index_col=0)
    assert matrix.to_numpy().sum() == N_CUSTOMERS


def test_migrate_reads_the_synthetic_snapshots_by_filter(fitted_run, tmp_path):
    cfg = compose_entry("migrate", [f"model_dir={fitted_run.model_dir}", f"data.synthetic.n_customers={N_CUSTOMERS}",
                                    f"data.cache_dir={fitted_run.cache}", "dynamics.refit=false",
                                    f"output_dir={tmp_path}"])
    report = run_migration(cfg).report
    assert report["data"]["before"]["rows_used"] == report["data"]["after"]["rows_used"] == N_CUSTOMERS
    assert report["ground_truth"]["recall"] > 0.9
    assert not (tmp_path / "model").exists()  # dynamics.refit=false
