"""Write the synthetic customer data set: customers.csv (two snapshots), corpus.txt, planted_pii.json.

    python scripts/make_synthetic.py n_customers=5000 seed=0 output_dir=DIR
"""

import hydra
from omegaconf import DictConfig

from segmentation.synthetic import make_synthetic


@hydra.main(version_base="1.3", config_path="../configs", config_name="synthetic")
def main(cfg: DictConfig) -> None:
    data = make_synthetic(n_customers=cfg.n_customers, seed=cfg.seed, n_segments=cfg.n_segments,
                          migration_rate=cfg.migration_rate, text_noise=cfg.text_noise, pii_rate=cfg.pii_rate)
    for kind, path in data.write(cfg.output_dir).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
