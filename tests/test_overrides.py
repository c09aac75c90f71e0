"""Command-line overrides: every field, None defaults included, takes --config.<field>=value.

The README and the data loaders' error messages tell users to pass ``--config.data.path=DIR``
and ``--config.data.data_dir=DIR``; both fields default to None, which ml_collections refuses to
override unless the field has a type. The subprocess tests type the commands as a user does.
"""

import json
import os
import subprocess
import sys

import pytest
from ml_collections.config_flags import config_path

import configs
from tfvae.config_loader import load_config

CONFIGS = [f"configs/{name}.py" for name in configs.NAMES]


def _none_fields(config, prefix=""):
    for key, value in config.items():
        if hasattr(value, "items"):
            yield from _none_fields(value, f"{prefix}{key}.")
        elif value is None:
            yield f"{prefix}{key}"


@pytest.mark.parametrize("path", CONFIGS)
def test_every_none_default_has_an_overridable_type(path):
    config = load_config(path)
    fields = list(_none_fields(config))
    assert "data.path" in fields and "data.data_dir" in fields
    for field in fields:
        assert config_path.get_type(field, config) is not type(None), field


def _train(*args, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TFVAE_TRACEBACK"}
    command = [sys.executable, "-m", "tfvae.train", *args, f"--workdir={tmp_path / 'run'}"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    "config, flag, expected",
    [
        # README: local MNIST-format IDX files with --config.data.path=<folder>.
        ("configs/vae.py:smoke", "--config.data.path={dir}", "idx3-ubyte"),
        # The offline-TFDS error message: --config.data.data_dir=DIR.
        ("configs/vae.py:mnist,smoke", "--config.data.data_dir={dir}", "not prepared in"),
        # The NE-VAE configs: omniglot with --config.data.path=<chardata.mat>.
        ("configs/nevae_se.py:omniglot,smoke", "--config.data.path={dir}/chardata.mat", "chardata"),
    ],
)
@pytest.mark.slow
def test_readme_overrides_of_none_fields_reach_the_data_loader(config, flag, expected, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = _train(f"--config={config}", flag.format(dir=data), tmp_path=tmp_path)
    assert "not supported for overriding" not in result.stderr
    # The empty folder is what the loader complains about: the override reached the config.
    assert result.returncode == 2, result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error:") and str(data) in error and expected in error, error


@pytest.mark.slow
def test_readme_adam_epsilon_flags_train_and_are_recorded(tmp_path):
    # README: --config.optimizers.main.epsilon / .epsilon_hat, typed as a user does.
    result = _train(
        "--config=configs/dpvae.py:smoke",
        "--config.optimizers.main.epsilon_hat=true",
        "--config.optimizers.main.epsilon=1e-7",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "run" / "config.json") as f:
        main = json.load(f)["optimizers"]["main"]
    assert main["epsilon_hat"] is True and main["epsilon"] == 1e-7
    # The config's own values (the authors' PyTorch Adam) are what these flags replaced.
    config = load_config("configs/dpvae.py:smoke")
    assert config.optimizers.main.epsilon_hat is False and config.optimizers.main.epsilon == 1e-10
