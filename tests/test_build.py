"""tfvae.build: the train switches a user sets from the command line reach the build."""

import os

import pytest
import tensorflow as tf
from absl import flags
from ml_collections import config_flags

from tfvae.build import resolve_jit_compile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(*overrides):
    """The config of configs/dpvae.py as ``python -m tfvae.train`` parses it."""
    argv = ["train", f"--config={os.path.join(REPO, 'configs', 'dpvae.py')}", *overrides]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, sys_argv=argv)
    values(argv)
    return values.config


def test_precision_and_xla_switches_are_settable_from_the_command_line():
    default = _parse()
    assert default.train.mixed_precision == "float32"
    assert default.train.jit_compile == "auto"
    config = _parse(
        "--config.train.mixed_precision=mixed_bfloat16", "--config.train.jit_compile=True"
    )
    assert config.train.mixed_precision == "mixed_bfloat16"
    assert resolve_jit_compile(config.train.jit_compile) is True
    assert (
        resolve_jit_compile(_parse("--config.train.jit_compile=false").train.jit_compile) is False
    )


def test_jit_compile_auto_means_xla_only_on_accelerators():
    accelerator = bool(
        tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    )
    assert resolve_jit_compile("auto") is accelerator
    assert resolve_jit_compile(True) is True
    assert resolve_jit_compile("False") is False
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        resolve_jit_compile("sometimes")
