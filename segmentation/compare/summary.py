"""A directory of comparison jobs -> one table (markdown + CSV) and a bar plot with error bars.

    python scripts/compare.py summarize DIR [--output OUT]

Every ``metrics.json`` under DIR is one job (an encoder, a data set, an evaluation seed). Jobs are grouped
by data set and encoder; each metric is reported as mean ± sample standard deviation over the group's
jobs, in percent. A job repeated in DIR (same data set, encoder and seeds) counts once: the newest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Table columns: (metric column, header).
METRICS = [
    ("kmeans_nmi", "K-Means NMI"), ("kmeans_ari", "ARI"), ("kmeans_accuracy", "ACC"), ("kmeans_v_measure", "V"),
    ("minibatch_kmeans_nmi", "MiniBatch NMI"), ("minibatch_kmeans_ari", "ARI"), ("minibatch_kmeans_accuracy", "ACC"),
    ("minibatch_kmeans_v_measure", "V"),
    ("linear_probe_accuracy", "LR acc"), ("linear_probe_macro_f1", "LR F1"),
    ("few_shot_accuracy", "few-shot acc"), ("few_shot_macro_f1", "few-shot F1"),
]
PLOTTED = [("kmeans_nmi", "K-Means NMI"), ("kmeans_ari", "K-Means ARI"), ("kmeans_accuracy", "K-Means ACC"),
           ("linear_probe_accuracy", "LR accuracy"), ("few_shot_accuracy", "few-shot accuracy")]
ENCODER_ORDER = ["tfidf", "tfidf_svd256", "stock", "dapt_rtd", "dapt_mlm", "scratch_rtd", "dapt_rtd_contrastive"]
KEYS = ["data", "encoder", "seed", "encoder_seed"]


# Settings that do not change a job's result (or are pooled on purpose: the seeds) are left out of its
# configuration fingerprint; jobs grouped under one encoder name must share the rest.
UNSCORED = {"": ["seed", "encoder_seed", "output_dir", "progress", "name"], "data": ["cache_dir"],
            "encoder": ["progress", "device", "batch_size", "cache", "chunk_size"]}


def config_fingerprint(config: dict) -> str:
    config = json.loads(json.dumps(config))
    for section, keys in UNSCORED.items():
        node = config.get(section, {}) if section else config
        for key in keys:
            node.pop(key, None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def flatten(metrics: dict) -> dict:
    """One job's ``metrics.json`` as a flat row."""
    row = {key: metrics[key] for key in KEYS}
    row["config"] = config_fingerprint(metrics.get("config", {}))
    for algorithm, scores in metrics.get("clustering", {}).items():
        for name in ("nmi", "ari", "accuracy", "v_measure"):
            row[f"{algorithm}_{name}"] = scores[name]
    for probe in ("linear_probe", "few_shot"):
        for name in ("accuracy", "macro_f1"):
            if probe in metrics:
                row[f"{probe}_{name}"] = metrics[probe][name]
    budget = metrics.get("budget", {})
    row["budget"] = budget.get("label", "none")
    row["pretrain_wall_s"] = budget.get("wall_s", 0.0)
    row["tokens_seen"] = budget.get("tokens_seen", 0)
    return row


def collect(directory: str | Path) -> pd.DataFrame:
    """One row per job under ``directory`` (newest wins among repeats)."""
    directory = Path(directory)
    paths = sorted(directory.rglob("metrics.json"))
    if not paths:
        raise FileNotFoundError(f"no metrics.json under {directory}: run scripts/compare.py -m ... output_dir={directory}")
    rows = []
    for path in paths:
        try:
            metrics = json.loads(path.read_text())
            row = flatten(metrics)
        except (ValueError, KeyError) as err:
            raise ValueError(f"{path} is not a comparison metrics file ({err})") from err
        rows.append({**row, "path": str(path), "mtime": path.stat().st_mtime})
    frame = pd.DataFrame(rows).sort_values("mtime")
    repeated = frame.duplicated(KEYS, keep="last")
    if repeated.any():
        log.warning("%d repeated jobs under %s; keeping the newest of each", int(repeated.sum()), directory)
    return frame[~repeated].drop(columns="mtime").reset_index(drop=True)


def _encoder_rank(name: str) -> tuple[int, str]:
    return (ENCODER_ORDER.index(name) if name in ENCODER_ORDER else len(ENCODER_ORDER), name)


def aggregate(jobs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1; 0 for a single job) per data set and encoder."""
    metric_columns = [m for m, _ in METRICS if m in jobs.columns]
    rows = []
    for (data, encoder), group in jobs.groupby(["data", "encoder"], sort=False):
        if group.config.nunique() > 1:
            example = group.drop_duplicates("config").path.tolist()[:2]
            raise ValueError(f"jobs named {encoder!r} on {data!r} have different configurations (e.g. {example}); "
                             "give each variant its own name=... or summarise them separately")
        row = {"data": data, "encoder": encoder, "runs": len(group), "seeds": sorted(group.seed.unique().tolist()),
               "encoder_seeds": sorted(group.encoder_seed.unique().tolist()),
               "budget": " / ".join(sorted(group.budget.unique())),
               "pretrain_wall_s": float(group.pretrain_wall_s.max())}
        for column in metric_columns:
            values = group[column].dropna().to_numpy(dtype=float)
            row[f"{column}_mean"] = float(values.mean()) if len(values) else np.nan
            row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows)
    order = sorted(range(len(table)), key=lambda i: (table.data[i], _encoder_rank(table.encoder[i])))
    return table.iloc[order].reset_index(drop=True)


def _cell(mean: float, std: float) -> str:
    return "—" if np.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def to_markdown(table: pd.DataFrame) -> str:
    """One markdown table per data set: metrics in percent, mean ± std over the runs."""
    lines = ["Metrics in percent, mean ± sample std over runs (evaluation seeds).", ""]
    present = [(m, h) for m, h in METRICS if f"{m}_mean" in table.columns]
    for data, group in table.groupby("data", sort=False):
        lines += [f"### {data}", "", "| encoder | pretraining budget | runs | " + " | ".join(h for _, h in present) + " |",
                  "|---|---|---|" + "---|" * len(present)]
        for _, row in group.iterrows():
            cells = [_cell(row[f"{m}_mean"], row[f"{m}_std"]) for m, _ in present]
            lines.append(f"| {row.encoder} | {row.budget} | {row.runs} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Grouped bars (one group per metric, one bar per encoder) with std error bars, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data_sets = list(dict.fromkeys(table.data))
    metrics = [(m, h) for m, h in PLOTTED if f"{m}_mean" in table.columns]
    fig, axes = plt.subplots(len(data_sets), 1, figsize=(max(8, 1.9 * len(metrics) + 2), 3.6 * len(data_sets)),
                             squeeze=False)
    encoders = sorted(dict.fromkeys(table.encoder), key=_encoder_rank)
    colours = {e: plt.cm.tab10(i % 10) for i, e in enumerate(encoders)}
    width = 0.8 / max(1, len(encoders))
    for ax, data in zip(axes[:, 0], data_sets):
        group = table[table.data == data].set_index("encoder")
        for i, encoder in enumerate(e for e in encoders if e in group.index):
            means = [100 * group.at[encoder, f"{m}_mean"] for m, _ in metrics]
            stds = [100 * group.at[encoder, f"{m}_std"] for m, _ in metrics]
            ax.bar(np.arange(len(metrics)) + (i - (len(encoders) - 1) / 2) * width, means, width, yerr=stds,
                   capsize=2, label=encoder, color=colours[encoder])
        ax.set_xticks(np.arange(len(metrics)), [h for _, h in metrics])
        ax.set_ylabel("percent")
        ax.set_ylim(0, 100)
        ax.set_title(data)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    # Outside the panels: bars reach the top of the axis for strong encoders.
    fig.legend(handles, labels, ncol=min(7, len(encoders)), fontsize=8, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.06 / len(data_sets), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_summary(directory: str | Path, output: str | Path | None = None) -> dict[str, Path]:
    """``summary.md``, ``summary.csv`` (and ``jobs.csv``, one row per job) and ``summary.png`` in ``output`` (default: DIR)."""
    jobs = collect(directory)
    table = aggregate(jobs)
    out = Path(output or directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "summary.md", "csv": out / "summary.csv", "jobs": out / "jobs.csv",
             "plot": out / "summary.png"}
    paths["markdown"].write_text(to_markdown(table), encoding="utf-8")
    table.to_csv(paths["csv"], index=False)
    jobs.to_csv(paths["jobs"], index=False)
    plot(table, paths["plot"])
    return paths
