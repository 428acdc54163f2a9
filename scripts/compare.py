"""Stock versus domain-adapted encoders: one job per encoder x data set x seed, then a summary table.

    python scripts/compare.py -m encoder=tfidf,stock,dapt_rtd,dapt_mlm data=banking77 seed=0,1,2 output_dir=DIR
    python scripts/compare.py summarize DIR [--output OUT]

Each job writes DIR/<overrides>/metrics.json and config.yaml (segmentation/compare/run.py); pretrained
variants are built on first use and cached under data.cache_dir/pretrained. ``summarize`` writes
summary.md, summary.csv, jobs.csv and summary.png (segmentation/compare/summary.py).
"""

import os
import sys

# Before scikit-learn loads OpenMP: idle OpenMP workers sleep instead of spinning (see scripts/segment.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def summarize(arguments: list[str]) -> None:
    import argparse

    from segmentation.compare.summary import write_summary

    parser = argparse.ArgumentParser(prog="scripts/compare.py summarize",
                                     description="Table and bar plot of the comparison jobs under DIR")
    parser.add_argument("directory", help="a directory holding metrics.json files (a sweep's output_dir)")
    parser.add_argument("--output", default=None, help="where to write the summary (default: DIR)")
    args = parser.parse_args(arguments)
    for kind, path in write_summary(args.directory, args.output).items():
        print(f"{kind}: {path}")


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from segmentation.compare.config import register_configs
    from segmentation.compare.run import run_comparison

    register_configs()

    @hydra.main(version_base="1.3", config_path="../configs", config_name="compare")
    def job(cfg: DictConfig) -> None:
        runtime = HydraConfig.get().runtime
        cfg.output_dir = runtime.output_dir  # output_dir itself, or its sweep subdirectory
        if cfg.name is None:
            cfg.name = runtime.choices.get("encoder") or "encoder"
        result = run_comparison(cfg)
        m = result.metrics
        kmeans = m["clustering"].get("kmeans") or next(iter(m["clustering"].values()))
        line = f"{m['encoder']} on {m['data']} (seed {m['seed']}): NMI {100 * kmeans['nmi']:.2f}, " \
               f"ARI {100 * kmeans['ari']:.2f}, ACC {100 * kmeans['accuracy']:.2f}"
        for probe in ("linear_probe", "few_shot"):
            if probe in m:
                line += f"; {probe} accuracy {100 * m[probe]['accuracy']:.2f}"
        print(line)
        print(f"metrics: {result.output_dir / 'metrics.json'}")

    job()


if __name__ == "__main__":
    # A Hydra main takes no positional subcommand: dispatch it before Hydra reads argv.
    if len(sys.argv) > 1 and sys.argv[1] == "summarize":
        summarize(sys.argv[2:])
    else:
        main()
