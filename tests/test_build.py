"""tfvae.build: the train switches a user sets from the command line reach the build."""

import os

import pytest
import tensorflow as tf
from absl import flags
from ml_collections import config_flags

import configs
from tfvae.build import resolve_jit_compile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(*overrides, name="dpvae"):
    """The config of configs/<name>.py as ``python -m tfvae.train`` parses it."""
    argv = ["train", f"--config={os.path.join(REPO, 'configs', name + '.py')}", *overrides]
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


@pytest.mark.parametrize("name", ["dpvae", "info_vae", "nevae_se", "wae_mmd", "aae", "mask_aae"])
def test_every_config_leaves_xla_to_auto_and_the_switch_overrides_it(name):
    # On CPU oneDNN beats XLA for the conv VAEs and, since the fused Adam, for the MLP-only
    # WAE/AAE/MaskAAE too (docs/benchmarks.md), so no config forces it on.
    assert _parse(name=name).train.jit_compile == "auto"
    on = _parse("--config.train.jit_compile=true", name=name).train.jit_compile
    assert resolve_jit_compile(on) is True


@pytest.mark.parametrize("initializer", ["glorot", "torch"])
def test_model_initializer_reaches_the_encoder_and_decoder(initializer):
    # torch: every bias ~ U(+-1/sqrt(fan_in)), so nonzero; glorot: Keras' zero biases.
    import numpy as np

    from tfvae.build import build_model
    from tfvae.config_loader import load_config

    config = load_config(os.path.join(REPO, "configs", "vae.py:smoke"))
    with config.unlocked():
        config.model.initializer = initializer
    model = build_model(config, (28, 28, 1), 100)
    for net in (model.encoder, model.decoder):
        biases = [np.abs(layer.bias.numpy()).max() for layer in net.layers if layer.weights]
        assert all((b > 0) == (initializer == "torch") for b in biases), (net.name, biases)
    with config.unlocked():
        config.model.initializer = "he"
    with pytest.raises(ValueError, match="glorot"):
        build_model(config, (28, 28, 1), 100)


def _first_draws(model, seen: dict, label: str) -> None:
    """Records the first four values of each randomly drawn trainable variable, divided by the
    first (a draw rescaled to another layer's bound is the same draw), and fails on a repeat.
    Independent draws of continuous values never share these ratios."""
    import numpy as np

    for variable in model.trainable_variables:
        values = np.ravel(variable.numpy()).astype(np.float64)
        if len(np.unique(values[:4])) < 4:  # constant (zeros, ones) or too small to be a draw
            continue
        key = tuple(np.round(values[1:4] / values[0], 4))
        where = f"{label}{variable.path}"
        assert key not in seen, f"{where} repeats the draw of {seen[key]}"
        seen[key] = where


def _built(name: str, seed: int = 0):
    from tfvae import data as data_lib
    from tfvae import experiment
    from tfvae.config_loader import load_config

    config = load_config(os.path.join(REPO, "configs", f"{name}.py"))
    with config.unlocked():
        config.seed = seed
    spec = experiment.DataSpec(data_lib.example_shape(config.data), 1000)
    experiment.seed(config)
    return experiment.build(config, spec)[0]


@pytest.mark.parametrize("name", configs.NAMES)
def test_every_randomly_initialized_variable_is_its_own_draw(name):
    # A Keras initializer instance holds one seed, so one instance shared by two variables gives
    # both the same numbers. The decoupled prior's coupling networks did that: each bias was a
    # copy of its kernel's first row, so at initialization every layer computed W^T (x + e_0),
    # a structure PyTorch's independent draws do not have (issue 17).
    _first_draws(_built(name), {}, "")


@pytest.mark.parametrize("name", ["vae", "dpvae"])
def test_neighbouring_seeds_draw_independent_weights(name):
    # The encoder once drew from default_rng(seed) and the decoder from default_rng(seed + 1),
    # so the decoder of seed 0 was the encoder of seed 1 rescaled: two seeds of a study were not
    # two independent samples of the initialization.
    seen = {}
    for seed in (0, 1):
        _first_draws(_built(name, seed), seen, f"seed {seed}: ")
