"""Segment customers: validated table -> profiles -> encoder -> clusters -> descriptions, strategies, report.

    python scripts/segment.py data=synthetic encoder.name_or_path=PATH output_dir=DIR
    python scripts/segment.py encoder=tfidf cluster.k=6 output_dir=DIR
    python scripts/segment.py data=text data.path=customers.parquet data.schema.text_columns=[notes] encoder=tfidf

Writes DIR/segments.csv, profiles.json, strategies.md, report.html, summary.json, config.yaml,
rejects.csv (when rows were rejected) and model/ (segmentation/run.py lists them).
"""

import os

# Before scikit-learn loads OpenMP: idle OpenMP workers sleep instead of spinning. Spinning workers take
# the cores that BLAS threads need between K-Means iterations (measured 10-30x slower on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from segmentation.config import register_configs  # noqa: E402
from segmentation.run import run_segmentation  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="segment")
def main(cfg: DictConfig) -> None:
    run = run_segmentation(cfg)
    print(f"{run.loaded.summary['rows_used']} customers in {run.pipeline.n_segments_} segments "
          f"({run.loaded.summary['rows_rejected']} rows rejected)")
    if run.evaluation:
        print(f"agreement with {run.evaluation['label_column']}: NMI {run.evaluation['nmi']:.3f}, "
              f"ARI {run.evaluation['ari']:.3f}, accuracy {run.evaluation['accuracy']:.3f}")
    for kind, path in run.paths.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
