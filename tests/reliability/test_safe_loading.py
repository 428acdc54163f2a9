"""No unsafe deserialisation in the project's code or its checkpoints."""

import re

from electra.checkpoint import latest_checkpoint
from tests.helpers import REPO, compose_config, tiny_pretrain_overrides

SOURCES = [p for d in ("electra", "segmentation", "scripts") for p in (REPO / d).rglob("*.py")]


def test_no_unsafe_loading_calls_in_the_code():
    problems = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"torch\.load\(", code) and "weights_only=True" not in code:
                problems.append(f"{path.name}:{number}: torch.load without weights_only=True")
            if re.search(r"\bpickle\.loads?\(|\bjoblib\.load\(|skops\.io\.load\(", code):
                problems.append(f"{path.name}:{number}: pickle-based load")
            if re.search(r"trust_remote_code\s*=\s*True", code):
                problems.append(f"{path.name}:{number}: trust_remote_code=True")
    assert not problems, problems


def test_checkpoints_hold_no_pickled_scheduler(tmp_path, corpus_file):
    from electra.trainer import pretrain

    run = pretrain(compose_config("pretrain", tiny_pretrain_overrides(tmp_path / "run", corpus_file,
                                                                      "trainer.max_steps=2", "trainer.export=false")))
    checkpoint = latest_checkpoint(run.run_dir / "checkpoints")
    assert not list(checkpoint.glob("custom_checkpoint_*"))
    assert (checkpoint / "model.safetensors").is_file()
    assert '"scheduler"' in (checkpoint / "trainer_state.json").read_text()
