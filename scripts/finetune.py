"""Fine-tune an encoder with a classification head (need prediction, Head 2) under Accelerate.

    python scripts/finetune.py encoder_path=DIR/pretrain/discriminator target=next_category output_dir=OUT
    python scripts/finetune.py model_dir=DIR/model target=next_category output_dir=OUT   # registered for predict.py
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/finetune.py encoder_path=... output_dir=OUT

Writes OUT/model/ (a standard Hugging Face sequence-classification directory: weights, config with
id2label, tokenizer), finetune.json (test metrics, history, best epoch), metrics.jsonl and config.yaml.
"""

import os

# Before torch or scikit-learn load OpenMP: with two OpenMP runtimes in one process (torch's and
# scikit-learn's, loaded for the validation metrics), spinning idle workers made each training step
# about 6x slower on 2 cores; sleeping ones do not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from electra.launch import relaunch_if_cpu_processes_ignored  # noqa: E402
from segmentation.finetune import finetune  # noqa: E402
from segmentation.prediction_config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="finetune")
def main(cfg: DictConfig) -> None:
    cfg.output_dir = HydraConfig.get().runtime.output_dir
    result = finetune(cfg)
    if result.exported is None:  # not the main process
        return
    test = result.metrics["test"]
    score = test.get("accuracy", test.get("subset_accuracy"))
    print(f"{result.metrics['target']}: test accuracy {score:.3f}, macro-F1 {test['macro_f1']:.3f} "
          f"(best epoch {result.metrics['best_epoch']}{', stopped early' if result.metrics['stopped_early'] else ''})")
    print(f"model: {result.exported}")
    if result.registered:
        print(f"registered for scoring: {result.registered}")


if __name__ == "__main__":
    relaunch_if_cpu_processes_ignored()
    main()
