"""Segmentation at scale: fit, choose k, profile and assign up to a million customers.

    python scripts/bench_segment.py                       # 10k ... 1M customers
    python scripts/bench_segment.py 'sizes=[1000000]' baseline=false
    python scripts/bench_segment.py score_model_dir=outputs/demo/segment/model   # + scripts/predict.py at 20k, 100k

Customers are synthetic (resampled with new ids) with precomputed 256-d embeddings (segment centre +
noise, memory-mapped from disk). Each size runs in its own process so that its peak memory (max RSS) is
its own. The baseline, in its own process on the same embeddings, is a single scikit-learn KMeans fit
at the true k (no choice of k, no profiling, no assignment): the ratio says how much faster the whole
pipeline is than that one step done the textbook way. With ``score_model_dir`` set, synthetic customer
tables of ``score_sizes`` rows are scored through ``scripts/predict.py`` and its peak memory recorded:
bounded memory means the peak does not grow with the number of rows. Prints a table, writes
`result.json` and a log-log plot of how time and memory grow, and ends with a `RESULT` line.
"""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]


def _baseline_worker(cfg: DictConfig) -> dict:
    """Textbook scikit-learn: one KMeans fit (k-means++, Lloyd, n_init=1) at the true k."""
    from sklearn.cluster import KMeans

    from segmentation.benchmark import synthetic_at_scale

    frame, embeddings, _ = synthetic_at_scale(cfg.size, cfg.dim, cfg.base_customers, Path(cfg.output_dir) / "data")
    start = time.perf_counter()
    KMeans(n_clusters=cfg.true_k, n_init=1, random_state=0).fit(np.asarray(embeddings))
    return {"size": cfg.size, "seconds": time.perf_counter() - start,
            "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _worker(cfg: DictConfig) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    from segmentation.benchmark import synthetic_at_scale
    from segmentation.config import ClusterConfig, DescribeConfig, EncoderConfig, FeatureConfig, ProfileConfig
    from segmentation.metrics import clustering_scores
    from segmentation.pipeline import SegmentationPipeline

    timings = {}
    start = time.perf_counter()
    frame, embeddings, schema = synthetic_at_scale(cfg.size, cfg.dim, cfg.base_customers, Path(cfg.output_dir) / "data")
    timings["data"] = time.perf_counter() - start
    cluster = ClusterConfig(**OmegaConf.to_container(cfg.cluster))
    pipeline = SegmentationPipeline(schema, EncoderConfig(kind="hf", name_or_path="precomputed"), ProfileConfig(),
                                    FeatureConfig(), cluster, DescribeConfig(), progress=False, keep_features=False)
    mark = time.perf_counter()
    pipeline.fit(frame, embeddings=embeddings)  # choose k, fit, profile (describe), strategies
    timings["fit_select_profile"] = time.perf_counter() - mark
    mark = time.perf_counter()
    labels = pipeline.predict(frame, embeddings=embeddings)  # assign every customer again, as for new ones
    timings["assign"] = time.perf_counter() - mark
    timings["total_excl_data"] = timings["fit_select_profile"] + timings["assign"]
    scores = clustering_scores(frame.true_segment.to_numpy(), labels)
    return {"size": cfg.size, "timings_s": timings, "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "k": pipeline.n_segments_, "nmi": scores["nmi"], "k_selection": pipeline.k_selection_.as_dict()}


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for key in ("fit_select_profile", "assign", "total_excl_data"):
        left.loglog(sizes, [r["timings_s"][key] for r in results], marker="o", label=key)
    left.loglog(sizes, [results[0]["timings_s"]["total_excl_data"] * s / sizes[0] for s in sizes], "k:", label="linear")
    right.loglog(sizes, [r["max_rss_gib"] for r in results], marker="o", label="pipeline")
    if all("baseline" in r for r in results):
        for axis, key in ((left, "seconds"), (right, "max_rss_gib")):
            axis.loglog(sizes, [r["baseline"][key] for r in results], marker="s", ls="--",
                        label="sklearn KMeans fit (baseline)")
    left.set(xlabel="customers", ylabel="seconds", title="time")
    right.set(xlabel="customers", ylabel="peak RSS (GiB)", title="memory")
    for axis in (left, right):
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _run_worker(cfg: DictConfig, size: int, mode: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), f"size={size}", f"mode={mode}", f"output_dir={cfg.output_dir}",
           f"dim={cfg.dim}", f"base_customers={cfg.base_customers}", f"threads={cfg.threads}", f"true_k={cfg.true_k}",
           *(f"cluster.{k}={v}" for k, v in cfg.cluster.items())]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(cfg.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [l for l in proc.stdout.splitlines() if l.startswith("WORKER ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"size {size} ({mode}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][len("WORKER "):])


def _score(cfg: DictConfig, size: int) -> dict:
    """scripts/predict.py on a fresh synthetic table of ``size`` customers; its own summary gives memory."""
    data_dir = Path(cfg.output_dir) / "score" / f"customers_{size}"
    if not (data_dir / "customers.csv").is_file():
        subprocess.run([sys.executable, str(REPO / "scripts" / "make_synthetic.py"), f"n_customers={size}", "seed=1",
                        f"output_dir={data_dir}"], check=True, capture_output=True)
    output = Path(cfg.output_dir) / "score" / f"scored_{size}.csv"
    subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"), f"model_dir={cfg.score_model_dir}",
                    f"input={data_dir / 'customers.csv'}", f"output={output}", "progress=false",
                    "+filters.snapshot=0"],  # the table's first snapshot: one row per customer
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(cfg.threads)})
    summary = json.loads(output.with_suffix(".summary.json").read_text())
    return {"size": size, "rows_scored": summary["rows_scored"], "rows_rejected": summary["rows_rejected"],
            "seconds": summary["seconds"], "peak_rss_gib": summary["peak_rss_mib"] / 1024}


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_segment")
def main(cfg: DictConfig) -> None:
    if cfg.size is not None:
        work = _baseline_worker if cfg.mode == "baseline" else _worker
        print("WORKER " + json.dumps(work(cfg)), flush=True)
        return
    results = []
    for size in cfg.sizes:
        results.append(_run_worker(cfg, size, "pipeline"))
        r = results[-1]
        print(f"{size:>9,d} customers: fit+choose k+profile {r['timings_s']['fit_select_profile']:6.1f} s, "
              f"assign {r['timings_s']['assign']:5.1f} s, total {r['timings_s']['total_excl_data']:6.1f} s "
              f"(data generation {r['timings_s']['data']:.1f} s, not counted), peak RSS {r['max_rss_gib']:.2f} GiB, "
              f"k={r['k']}, NMI {r['nmi']:.3f}", flush=True)
        if cfg.baseline:
            r["baseline"] = _run_worker(cfg, size, "baseline")
            print(f"{size:>9,d} customers: sklearn KMeans fit at k={cfg.true_k} (baseline) {r['baseline']['seconds']:6.1f} s, "
                  f"peak RSS {r['baseline']['max_rss_gib']:.2f} GiB", flush=True)
    scoring = []
    if cfg.score_model_dir:
        for size in cfg.score_sizes:
            scoring.append(_score(cfg, size))
            s = scoring[-1]
            print(f"scripts/predict.py, {size:,d} customers: {s['rows_scored']:,d} scored, {s['rows_rejected']} rejected, "
                  f"{s['seconds']:.1f} s ({s['rows_scored'] / s['seconds']:.0f} customers/s), peak RSS "
                  f"{s['peak_rss_gib']:.2f} GiB", flush=True)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"segment": results, "score": scoring}, indent=1))
    _plot(results, out / "scaling.png")
    largest = results[-1]
    summary = {"size": largest["size"], "seconds": largest["timings_s"]["total_excl_data"],
               "peak_rss_gib": largest["max_rss_gib"], "k": largest["k"], "nmi": largest["nmi"]}
    if "baseline" in largest:
        summary["speedup_vs_kmeans_fit"] = largest["baseline"]["seconds"] / largest["timings_s"]["total_excl_data"]
    if scoring:
        summary.update(score_size=scoring[-1]["size"], score_peak_rss_gib=scoring[-1]["peak_rss_gib"],
                       score_memory_growth=scoring[-1]["peak_rss_gib"] / scoring[0]["peak_rss_gib"])
    print("RESULT " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
