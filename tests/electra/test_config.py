"""Hydra configuration: groups compose, typed schema rejects mistakes loudly."""

import subprocess

import pytest
from omegaconf import OmegaConf

from tests.helpers import PYTHON, REPO, compose_config


@pytest.mark.parametrize("experiment", ["tiny", "small"])
def test_experiments_compose(experiment):
    cfg = compose_config("pretrain", [f"experiment={experiment}", "output_dir=x"])
    assert cfg.model.name == experiment
    assert cfg.trainer.max_steps > 0 and cfg.model.disc_weight == 50.0


def test_dapt_without_init_from_fails_before_training(tmp_path):
    from electra.trainer import pretrain

    cfg = compose_config("pretrain", ["experiment=dapt", "data.path=corpus.txt", f"output_dir={tmp_path}", "logger=none"])
    with pytest.raises(ValueError, match="model.init_from"):
        pretrain(cfg)


def test_dapt_composes():
    cfg = compose_config("pretrain", ["experiment=dapt", "model.init_from=some/dir", "data.path=c.txt", "output_dir=x"])
    assert cfg.model.init_from == "some/dir" and cfg.data.name == "text"


@pytest.mark.parametrize("group,option", [("model", "base"), ("data", "banking77"), ("logger", "none")])
def test_group_options_compose(group, option):
    cfg = compose_config("pretrain", [f"{group}={option}", "output_dir=x"])
    assert cfg[group] is not None


def test_required_interface_keys_exist():
    cfg = compose_config("pretrain", ["experiment=tiny", "output_dir=x"])
    for key in ("trainer.max_steps", "trainer.save_every_steps", "trainer.resume", "model.init_from"):
        assert OmegaConf.select(cfg, key, throw_on_missing=False) is not None or key == "model.init_from"


def test_unknown_key_fails_naming_it():
    with pytest.raises(Exception, match="max_stepz"):
        compose_config("pretrain", ["trainer.max_stepz=3"])


def test_wrong_type_fails():
    with pytest.raises(Exception, match="max_steps"):
        compose_config("pretrain", ["trainer.max_steps=many"])


def test_typo_in_a_yaml_file_fails(tmp_path):
    """A key that the schema lacks fails even when it comes from a config file, not the command line."""
    bad = tmp_path / "configs"
    subprocess.run(["cp", "-r", str(REPO / "configs"), str(bad)], check=True)
    (bad / "trainer" / "default.yaml").write_text((bad / "trainer" / "default.yaml").read_text() + "lerning_rate: 1\n")
    proc = subprocess.run([PYTHON, str(REPO / "scripts" / "pretrain.py"), f"--config-path={bad}", "--cfg", "job"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "lerning_rate" in proc.stderr


def test_script_rejects_unknown_override():
    proc = subprocess.run([PYTHON, str(REPO / "scripts" / "pretrain.py"), "experiment=tiny", "trainer.bach_size=4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "bach_size" in proc.stderr
