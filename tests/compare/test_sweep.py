"""The Hydra entry point end to end: a two-job sweep, its metrics files, and the summary of every row."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from segmentation.compare.summary import aggregate, collect, to_markdown, write_summary
from tests.helpers import PYTHON, REPO


def test_sweep_writes_one_metrics_file_per_job_and_summary_has_every_row(tmp_path, labelled_dir, tiny_bert_dir):
    out = tmp_path / "sweep"
    command = [PYTHON, "scripts/compare.py", "-m", "encoder=tfidf,stock", f"encoder.name_or_path={tiny_bert_dir}",
               "data=text", f"data.path={labelled_dir}", "data.name=tiny", "data.test_split=test",
               "data.schema.label_columns=[label]", f"data.cache_dir={tmp_path / 'cache'}", "seed=3",
               "few_shot.shots=4", "few_shot.draws=2", "progress=false", f"output_dir={out}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p.parent.name for p in out.rglob("metrics.json"))
    common = "data.name=tiny,data.schema.label_columns=[label],data.test_split=test,data=text"
    # Path-valued keys and progress stay out of the job names.
    assert jobs == [f"{common},encoder={e},few_shot.draws=2,few_shot.shots=4,seed=3" for e in ("stock", "tfidf")]
    stock_job, tfidf_job = jobs
    for job in jobs:
        metrics = json.loads((out / job / "metrics.json").read_text())
        assert (out / job / "config.yaml").is_file()
        assert metrics["config"]["seed"] == 3 and metrics["config"]["data"]["path"] == str(labelled_dir)
        assert metrics["splits"]["n_train"] == 36 and metrics["splits"]["n_test"] == 18
        assert set(metrics["clustering"]) == {"kmeans", "minibatch_kmeans"}
        assert metrics["clustering"]["kmeans"]["k"] == 3 and metrics["clustering"]["kmeans"]["n"] == 18
        assert metrics["few_shot"]["n_train"] == 12 and metrics["budget"] == {"pretrained": False, "label": "none"}
    stock = json.loads((out / stock_job / "metrics.json").read_text())
    assert stock["encoder"] == "stock" and stock["model"] == str(tiny_bert_dir) and stock["dimension"] == 32
    assert "stock on tiny (seed 3): NMI" in done.stdout

    done = subprocess.run([PYTHON, "scripts/compare.py", "summarize", str(out), "--output", str(tmp_path / "table")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "table" / "summary.csv")
    assert table[["data", "encoder", "runs"]].values.tolist() == [["tiny", "tfidf", 1], ["tiny", "stock", 1]]
    assert table.loc[1, "kmeans_nmi_mean"] == pytest.approx(stock["clustering"]["kmeans"]["nmi"])
    markdown = (tmp_path / "table" / "summary.md").read_text()
    assert "| tfidf | none | 1 |" in markdown and "| stock | none | 1 |" in markdown
    assert (tmp_path / "table" / "summary.png").stat().st_size > 10000


def test_unknown_keys_fail_before_any_work(tmp_path):
    done = subprocess.run([PYTHON, "scripts/compare.py", "encoder=tfidf", "clustering.algoritms=[kmeans]",
                           f"output_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "algoritms" in done.stderr
    assert not (tmp_path / "metrics.json").exists()


def fake_job(directory, encoder: str, seed: int, nmi: float, accuracy: float, data: str = "d", budget: str = "none",
             config: dict | None = None):
    directory.mkdir(parents=True, exist_ok=True)
    metrics = {"data": data, "encoder": encoder, "seed": seed, "encoder_seed": 0,
               "config": {"seed": seed, "output_dir": str(directory), **(config or {})},
               "clustering": {"kmeans": {"nmi": nmi, "ari": nmi / 2, "accuracy": nmi, "v_measure": nmi}},
               "linear_probe": {"accuracy": accuracy, "macro_f1": accuracy},
               "budget": {"label": budget, "wall_s": 12.0, "tokens_seen": 100}}
    (directory / "metrics.json").write_text(json.dumps(metrics))


def test_summary_is_mean_and_sample_std_over_seeds_per_encoder(tmp_path):
    fake_job(tmp_path / "a0", "dapt_rtd", 0, 0.50, 0.80, budget="rtd 300k tokens")
    fake_job(tmp_path / "a1", "dapt_rtd", 1, 0.60, 0.90, budget="rtd 300k tokens")
    fake_job(tmp_path / "a2", "dapt_rtd", 2, 0.70, 1.00, budget="rtd 300k tokens")
    fake_job(tmp_path / "b0", "tfidf", 0, 0.40, 0.70)
    fake_job(tmp_path / "c0", "my_encoder", 0, 0.10, 0.20)
    table = aggregate(collect(tmp_path))
    assert table.encoder.tolist() == ["tfidf", "dapt_rtd", "my_encoder"]  # canonical order, then others
    rtd = table.set_index("encoder").loc["dapt_rtd"]
    assert rtd.runs == 3 and rtd.seeds == [0, 1, 2] and rtd.budget == "rtd 300k tokens"
    assert rtd.kmeans_nmi_mean == pytest.approx(0.60) and rtd.kmeans_nmi_std == pytest.approx(0.10)
    assert rtd.linear_probe_accuracy_mean == pytest.approx(0.90) and rtd.linear_probe_accuracy_std == pytest.approx(0.10)
    assert table.set_index("encoder").loc["tfidf", "kmeans_nmi_std"] == 0.0  # one run: no spread
    markdown = to_markdown(table)
    assert "| dapt_rtd | rtd 300k tokens | 3 | 60.00 ± 10.00 | 30.00 ± 5.00 | 60.00 ± 10.00 |" in markdown
    assert markdown.count("\n| ") == 1 + 3  # header and one row per encoder


def test_repeated_jobs_count_once_and_empty_directories_are_explained(tmp_path):
    fake_job(tmp_path / "old", "tfidf", 0, 0.1, 0.1)
    fake_job(tmp_path / "new", "tfidf", 0, 0.3, 0.3)
    import os

    os.utime(tmp_path / "old" / "metrics.json", (1, 1))  # older
    jobs = collect(tmp_path)
    assert len(jobs) == 1 and jobs.kmeans_nmi[0] == 0.3
    paths = write_summary(tmp_path)
    assert set(paths) == {"markdown", "csv", "jobs", "plot"} and all(p.is_file() for p in paths.values())
    with pytest.raises(FileNotFoundError, match="no metrics.json under"):
        collect(tmp_path / "nothing")


def test_one_name_for_two_configurations_is_refused(tmp_path):
    fake_job(tmp_path / "a", "dapt_rtd", 0, 0.5, 0.5, config={"token_budget": 300000})
    fake_job(tmp_path / "b", "dapt_rtd", 1, 0.5, 0.5, config={"token_budget": 300000})
    assert aggregate(collect(tmp_path)).runs.tolist() == [2]  # seeds differ: pooled
    fake_job(tmp_path / "c", "dapt_rtd", 2, 0.5, 0.5, config={"token_budget": 100000})
    with pytest.raises(ValueError, match="jobs named 'dapt_rtd' on 'd' have different configurations"):
        aggregate(collect(tmp_path))
