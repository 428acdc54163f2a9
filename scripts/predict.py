"""Score new customers with a saved model: segment, need probabilities, strategy, recommended products.

    python scripts/predict.py model_dir=DIR/model input=new_customers.csv output=scored.csv
    python scripts/predict.py model_dir=DIR/model input=customers.jsonl output=out/scored.csv chunk_size=4096

The input (CSV, JSONL or Parquet) is read, validated, scored and written chunk by chunk. Writes OUTPUT,
<stem>.rejects.csv (rows that failed validation, with reasons), <stem>.summary.json (rows read = scored +
rejected, unknown categories, timings, peak memory) and <stem>.config.yaml beside it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in segment.py: idle OpenMP workers sleep

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from segmentation.prediction_config import register_configs  # noqa: E402
from segmentation.scoring import run_predict  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    summary = run_predict(cfg)
    print(f"{summary['rows_scored']} customers scored, {summary['rows_rejected']} rejected "
          f"({summary['rows_read']} read) in {summary['seconds']:.1f} s")
    print(f"output: {summary['output']}")
    if summary["rejects"]:
        print(f"rejects: {summary['rejects']}")


if __name__ == "__main__":
    main()
