"""Whole runs: every output file, every report section, reject accounting, and the Hydra script end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from segmentation.config import register_configs
from segmentation.report import SECTIONS
from segmentation.run import run_segmentation
from segmentation.synthetic import make_synthetic

ROOT = Path(__file__).resolve().parents[2]


def compose_config(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="segment", overrides=overrides)


def assert_report_complete(report: Path, charts: int = 4) -> str:
    text = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"<section id='{section}'>" in text, section
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?:", text)  # opens offline
    assert text.count("data:image/png;base64,") == charts  # projection, sizes, lifts, k selection
    return text


def test_run_writes_every_output(tmp_path):
    cfg = compose_config(["encoder=tfidf", "encoder.progress=false", "encoder.n_components=32",
                          "data.synthetic.n_customers=300", f"data.cache_dir={tmp_path / 'cache'}",
                          "cluster.k_min=4", "cluster.k_max=7", "cluster.stability_runs=3",
                          f"output_dir={tmp_path / 'out'}"])
    run = run_segmentation(cfg)
    out = tmp_path / "out"
    for name in ("config.yaml", "summary.json", "segments.csv", "profiles.json", "strategies.md", "report.html",
                 "model/pipeline.json", "model/arrays.safetensors"):
        assert (out / name).is_file(), name
    assert not (out / "rejects.csv").exists()  # the synthetic data has nothing to reject
    segments = pd.read_csv(out / "segments.csv")
    assert segments.columns.tolist() == ["id", "segment", "segment_name", "distance"]
    assert len(segments) == 300 and segments.id.is_unique
    profiles = json.loads((out / "profiles.json").read_text())
    assert profiles["data"]["rows_read"] == 300 == profiles["data"]["rows_used"]
    assert profiles["scrubbing"]["rules"] == ["email", "iban", "card", "phone", "name"]
    assert profiles["k_selection"]["k_values"] == [4, 5, 6, 7]
    assert len(profiles["segments"]) == run.pipeline.n_segments_
    assert set(profiles["segments"][0]["strategy"]["recommendations"]) == {"product", "price", "channel", "promotion"}
    assert run.evaluation["label_column"] == "true_segment" and run.evaluation["nmi"] > 0.9
    text = assert_report_complete(out / "report.html")
    customers = make_synthetic(n_customers=300, seed=0).customers
    for value in customers.email.tolist() + customers.name.tolist():  # no personal data in the report
        assert value not in text
    assert OmegaConf.load(out / "config.yaml").encoder.kind == "tfidf"


def test_rejected_rows_are_written_and_accounted_for(tmp_path):
    customers = make_synthetic(n_customers=120, seed=2).customers
    customers = customers[customers.snapshot == 0].astype({"age": object})
    customers.loc[customers.index[3], "age"] = "forty"
    customers.loc[customers.index[7], "customer_id"] = customers.customer_id.iloc[6]
    customers.loc[customers.index[9], ["review", "support_message", "search_queries"]] = ""
    path = tmp_path / "customers.csv"
    customers.to_csv(path, index=False)
    cfg = compose_config(["encoder=tfidf", "encoder.progress=false", "encoder.n_components=16", f"data.path={path}",
                          "cluster.k=4", f"output_dir={tmp_path / 'out'}"])
    run = run_segmentation(cfg)
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert rejects[["row_number", "column", "check"]].values.tolist() == [
        [4, "age", "unparsable_number"], [8, "customer_id", "duplicate_id"],
        [10, "review,support_message,search_queries", "empty_text"]]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["rows_read"], summary["rows_used"], summary["rows_rejected"]) == (120, 117, 3)
    assert len(pd.read_csv(tmp_path / "out" / "segments.csv")) == 117 == len(run.pipeline.labels_)


def test_unknown_config_key_fails_before_any_work():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="poolng"):
        compose_config(["encoder=tfidf", "encoder.poolng=cls"])


def test_segment_script_end_to_end(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "segment.py"), "data=synthetic", "encoder=tfidf",
         "encoder.progress=false", "data.synthetic.n_customers=300", f"data.cache_dir={tmp_path / 'cache'}",
         "cluster.k_max=8", "cluster.stability_runs=3", f"output_dir={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("segments.csv", "profiles.json", "strategies.md", "report.html", "summary.json", "config.yaml"):
        assert (out / name).is_file(), name
    assert (out / "model" / "pipeline.json").is_file()
    assert_report_complete(out / "report.html")
    assert "300 customers in" in result.stdout and "report: " in result.stdout
    assert "## Segment 0:" in (out / "strategies.md").read_text()


def test_text_only_table_without_labels(tmp_path):
    words = [["refund", "late", "parcel"], ["card", "pin", "atm"], ["garden", "seeds", "hose"]]
    rng = __import__("numpy").random.default_rng(0)
    texts = [" ".join(rng.choice(words[i % 3], size=4)) + f" note {i}" for i in range(90)]
    path = tmp_path / "notes.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    cfg = compose_config(["data=text", f"data.path={path}", "encoder=tfidf", "encoder.progress=false",
                          "encoder.n_components=8", "encoder.min_df=1", "cluster.k=3", f"output_dir={tmp_path / 'out'}"])
    run = run_segmentation(cfg)
    assert run.evaluation is None
    assert set(run.pipeline.fusion_.scales_) == {"text"}  # no numeric or categorical columns to fuse
    segments = pd.read_csv(tmp_path / "out" / "segments.csv")
    assert segments.id.tolist()[:2] == ["notes-1", "notes-2"]
    assert segments.segment.nunique() == 3
    text = assert_report_complete(tmp_path / "out" / "report.html", charts=2)  # no numbers, k fixed
    assert "No ground-truth label column" in text and "No numeric columns" in text
    terms = {tuple(t for t, _ in d.terms[:3]) for d in run.pipeline.descriptions_}
    assert {frozenset(t) for t in terms} == {frozenset(w) for w in words}
