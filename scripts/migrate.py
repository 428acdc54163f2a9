"""Segment migration between two snapshots with a saved model; re-fits when drift exceeds the threshold.

    python scripts/migrate.py model_dir=DIR/model output_dir=OUT               # synthetic snapshot 0 -> 1
    python scripts/migrate.py model_dir=DIR/model before=t0.csv after=t1.csv 'before_filters={}' \
        'after_filters={}' output_dir=OUT

Writes OUT/migration.csv (customers per segment before x after), movers.csv, migration.json (moved share,
emerging groups, drift, re-fit decision), migration.html, config.yaml and, when re-fitted, model/.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from segmentation.dynamics import run_migration  # noqa: E402
from segmentation.prediction_config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="migrate")
def main(cfg: DictConfig) -> None:
    cfg.output_dir = HydraConfig.get().runtime.output_dir  # output_dir itself, or its sweep subdirectory
    result = run_migration(cfg)
    report = result.report
    print(f"{report['matched']} customers in both snapshots; {report['moved_share']:.1%} moved segment; "
          f"{report['emerging']['share']:.1%} far from every segment; drift score {report['drift']['score']:.3f}")
    if "ground_truth" in report:
        truth = report["ground_truth"]
        print(f"against {truth['column']}: precision {truth['precision']:.3f}, recall {truth['recall']:.3f}")
    print(f"re-fit: {'yes' if report['refit']['needed'] else 'no'} ({report['refit']['reason']})")
    print(f"report: {cfg.output_dir}/migration.html")


if __name__ == "__main__":
    main()
