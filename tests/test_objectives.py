"""Every objective x every prior: one real step, and each phase moves only its own variables.

The loops run over the registries, so a newly registered objective or prior is tested here the
moment it is listed. Each objective is built from its own config file (``configs/<key>.py``,
``CONFIG_FOR`` where the name differs) with small MLP networks on 8x8 images for speed;
autoregressive decoders keep their architecture.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.build import build_model, build_optimizers
from tfvae.config_loader import load_config
from tfvae.objectives import OBJECTIVES
from tfvae.priors import PRIORS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FOR = {"ne_vae": "nevae_se"}
SHAPE = (8, 8, 1)


def _config(objective: str, prior: str):
    path = os.path.join(REPO, "configs", CONFIG_FOR.get(objective, objective) + ".py")
    config = load_config(path + ":smoke")
    assert config.objective == objective, f"{path} does not train {objective!r}"
    with config.unlocked():
        config.model.prior.name = prior
        config.model.prior.options = {"num_blocks": 2} if prior == "decoupled" else {}
        config.model.latent_dim = 4
        config.model.encoder.name = "mlp"
        config.model.encoder.options = {"hidden_sizes": (32,)}
        if config.model.decoder.name != "pixelcnn":
            config.model.decoder.name = "mlp"
            config.model.decoder.options = {"hidden_sizes": (32,)}
        if config.model.adversary.options:
            config.model.adversary.options = {"hidden_sizes": (32, 32)}
    return config


def _build(objective, prior, batch_size=8, config=None, shape=SHAPE):
    config = config or _config(objective, prior)
    model = build_model(config, shape, dataset_size=1000)
    model.compile(build_optimizers(config, model))
    x = tf.cast(
        keras.random.uniform((batch_size * model.batches_per_step, *shape), seed=0) > 0.5,
        tf.float32,
    )
    model.build_all(x)
    return model, x


def _snapshot(variables):
    return [v.numpy().copy() for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables, strict=True)]


CASES = [(o, p) for o in sorted(OBJECTIVES) for p in sorted(PRIORS)]


@pytest.mark.parametrize("objective,prior", CASES)
def test_one_step_gives_finite_terms_and_trains_the_networks(objective, prior):
    model, x = _build(objective, prior)
    nets = model.encoder.trainable_variables + model.decoder.trainable_variables
    before = _snapshot(nets)
    logs = tf.function(model.train_step)(x)
    assert set(logs) == set(model.terms)
    for key, value in logs.items():
        assert np.isfinite(float(value)), f"{objective}/{prior}: term {key} = {value}"
    changed = _changed(before, nets)
    assert all(changed), f"{sum(not c for c in changed)} encoder/decoder variables did not move"
    assert int(model.step.numpy()) == 1


def _assert_phases_isolated(model, x, label):
    """Each phase changes no variable, trainable or not (batch-norm statistics), of a network it
    does not train; the step counter and the random state are the model's own bookkeeping."""
    nets = [model.encoder, model.decoder, model.prior, getattr(model, "adversary", None)]
    bookkeeping = {id(model.step), id(model.seed_generator.state)}
    everything = [v for v in model.variables if id(v) not in bookkeeping]
    batches = model._split(x)
    for phase in model.phases():
        own = {id(v) for v in phase.variables()}
        for net in filter(None, nets):
            if own & {id(v) for v in net.trainable_variables}:
                own |= {id(v) for v in net.variables}
        before = _snapshot(everything)
        tf.function(lambda b, phase=phase: model.apply_phase(phase, b))(batches)
        moved = _changed(before, everything)
        for m, v in zip(moved, everything, strict=True):
            if id(v) not in own:
                assert not m, f"{label}: phase {phase.loss_key!r} moved {v.path}"
        assert any(m for m, v in zip(moved, everything, strict=True) if id(v) in own)


@pytest.mark.parametrize("objective,prior", CASES)
def test_each_phase_moves_only_its_variables(objective, prior):
    model, x = _build(objective, prior)
    _assert_phases_isolated(model, x, objective)


def test_factor_vae_discriminator_step_keeps_the_encoders_batch_norm_statistics():
    # The svhn/celeba presets' conv stacks have batch norm: its moving statistics are encoder
    # variables that the discriminator's update must not move either.
    config = _config("factor_vae", "standard_normal")
    with config.unlocked():
        config.model.encoder.name, config.model.encoder.options = "svhn_conv", {}
    model, x = _build("factor_vae", "standard_normal", config=config, shape=(32, 32, 3))
    statistics = model.encoder.non_trainable_variables
    assert statistics and all("moving" in v.path for v in statistics)
    before = _snapshot(statistics)
    _assert_phases_isolated(model, x, "factor_vae/svhn_conv")
    # The VAE update runs in training mode: it does move them.
    assert all(_changed(before, statistics))


def test_decoupled_prior_is_trained_by_the_kl_term():
    model, x = _build("vae", "decoupled")
    flow = model.prior.trainable_variables
    before = _snapshot(flow)
    tf.function(model.train_step)(x)
    assert all(_changed(before, flow))


def test_unknown_objective_and_hparam_fail_with_names():
    config = _config("vae", "standard_normal")
    with config.unlocked():
        config.objective = "vea"
    with pytest.raises(ValueError, match="Valid objectives: .*beta_tcvae.*vae"):
        build_model(config, SHAPE, 10)
    config = _config("beta_vae_h", "standard_normal")
    with config.unlocked():
        config.hparams.betta = 2.0
    with pytest.raises(TypeError, match="betta"):
        build_model(config, SHAPE, 10)


def test_unknown_network_name_fails_with_valid_names():
    config = _config("vae", "standard_normal")
    with config.unlocked():
        config.model.encoder.name = "mnist_cnn"
    with pytest.raises(ValueError, match="mnist_conv"):
        build_model(config, SHAPE, 10)
