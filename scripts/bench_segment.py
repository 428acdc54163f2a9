"""Segmentation at scale: fit, choose k, profile and assign up to a million customers.

    python scripts/bench_segment.py                       # 10k, 100k, 1M customers
    python scripts/bench_segment.py 'sizes=[1000000]'

Customers are synthetic (resampled with new ids) with precomputed 256-d embeddings (segment centre +
noise, memory-mapped from disk). Each size runs in its own process so that its peak memory (max RSS) is
its own. Prints a table of time and memory by phase, writes `result.json` and a log-log plot of how
time and memory grow, and ends with a `RESULT` line for the largest size.
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
    left.set(xlabel="customers", ylabel="seconds", title="time")
    left.legend(fontsize=7)
    right.loglog(sizes, [r["max_rss_gib"] for r in results], marker="o")
    right.set(xlabel="customers", ylabel="peak RSS (GiB)", title="memory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


@hydra.main(version_base="1.3", config_path="../configs", config_name="bench_segment")
def main(cfg: DictConfig) -> None:
    if cfg.size is not None:
        print("WORKER " + json.dumps(_worker(cfg)), flush=True)
        return
    results = []
    for size in cfg.sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), f"size={size}", f"output_dir={cfg.output_dir}",
               f"dim={cfg.dim}", f"base_customers={cfg.base_customers}", f"threads={cfg.threads}",
               *(f"cluster.{k}={v}" for k, v in cfg.cluster.items())]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = [l for l in proc.stdout.splitlines() if l.startswith("WORKER ")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"size {size} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(line[-1][len("WORKER "):]))
        r = results[-1]
        print(f"{size:>9,d} customers: fit+choose k+profile {r['timings_s']['fit_select_profile']:6.1f} s, "
              f"assign {r['timings_s']['assign']:5.1f} s, total {r['timings_s']['total_excl_data']:6.1f} s "
              f"(data generation {r['timings_s']['data']:.1f} s, not counted), peak RSS {r['max_rss_gib']:.2f} GiB, "
              f"k={r['k']}, NMI {r['nmi']:.3f}", flush=True)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(results, indent=1))
    _plot(results, out / "scaling.png")
    largest = results[-1]
    print(f"RESULT size={largest['size']} seconds={largest['timings_s']['total_excl_data']:.3g} "
          f"peak_rss_gib={largest['max_rss_gib']:.3g} k={largest['k']} nmi={largest['nmi']:.3g}")


if __name__ == "__main__":
    main()
