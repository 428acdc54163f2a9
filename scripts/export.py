"""Export a pretraining checkpoint (default: the run's latest) to discriminator/ and generator/ directories.

    python scripts/export.py run_dir=DIR [checkpoint=DIR/checkpoints/step-0000500] [output_dir=OUT]
"""

import hydra
from omegaconf import DictConfig

from electra.modeling import export_checkpoint


@hydra.main(version_base="1.3", config_path="../configs", config_name="export")
def main(cfg: DictConfig) -> None:
    for kind, path in export_checkpoint(cfg.run_dir, cfg.checkpoint, cfg.output_dir).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
