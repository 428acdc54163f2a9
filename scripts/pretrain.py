"""Pretrain or continue pretraining an ELECTRA discriminator with replaced-token detection.

    python scripts/pretrain.py experiment=tiny output_dir=DIR
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/pretrain.py experiment=tiny output_dir=DIR
    python scripts/pretrain.py experiment=dapt model.init_from=PATH_OR_NAME data.path=FILE output_dir=DIR
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from electra.config import register_configs
from electra.launch import relaunch_if_cpu_processes_ignored
from electra.trainer import pretrain

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="pretrain")
def main(cfg: DictConfig) -> None:
    cfg.output_dir = HydraConfig.get().runtime.output_dir  # output_dir itself, or its sweep subdirectory
    result = pretrain(cfg)
    if result.exported:
        for kind, path in result.exported.items():
            print(f"{kind}: {path}")


if __name__ == "__main__":
    relaunch_if_cpu_processes_ignored()
    main()
