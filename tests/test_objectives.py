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
import tensorflow_probability as tfp

from tfvae import losses
from tfvae.build import build_model, build_optimizers
from tfvae.config_loader import load_config
from tfvae.objectives import OBJECTIVES
from tfvae.priors import PRIORS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FOR = {"ne_vae": "nevae_se"}
SHAPE = (8, 8, 1)
tfd = tfp.distributions


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


@pytest.mark.slow
@pytest.mark.parametrize("objective,prior", CASES)
def test_one_step_gives_finite_terms_and_trains_the_networks(objective, prior):
    model, x = _build(objective, prior)
    nets = model.encoder.trainable_variables + model.decoder.trainable_variables
    before = _snapshot(nets)
    logs = tf.function(model.train_step, autograph=False)(x)
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
    batches = model.split_batches(x)
    for phase in model.phases():
        own = {id(v) for v in phase.variables()}
        for net in filter(None, nets):
            if own & {id(v) for v in net.trainable_variables}:
                own |= {id(v) for v in net.variables}
        before = _snapshot(everything)
        tf.function(lambda b, phase=phase: model.apply_phase(phase, b), autograph=False)(batches)
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
    tf.function(model.train_step, autograph=False)(x)
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


# ----------------------------------------------------------------------------------------------
# Each objective's loss is its paper's formula (METHODS.md section 3) of its reported terms, and
# the terms are what they say: recomputed from the same posterior draw with the TFP densities.
# ----------------------------------------------------------------------------------------------
def _terms_and_parts(model, x, **hparams):
    """The objective's terms for one training-mode draw, and the ELBO parts of the same draw
    followed by ``prior_z``, the model's next draw from its prior (InfoVAE's MMD sample)."""
    for key, value in hparams.items():
        setattr(model, key, value)
    batches = model.split_batches(x)
    state = tf.identity(model.seed_generator.state)
    terms = model.loss_terms(batches, True)
    model.seed_generator.state.assign(state)  # replay the same draws
    parts = model.elbo_parts(batches[0], True)
    parts["prior_z"] = model.prior.sample(parts["z"].shape[0], model.seed_generator)
    q = tfd.MultivariateNormalDiag(parts["z_mean"], tf.exp(0.5 * parts["z_log_var"]))
    parts["log_qz_given_x"] = q.log_prob(parts["z"])  # [B]
    parts["log_pz"] = model.prior.distribution().log_prob(parts["z"])  # [B], log-det included
    np.testing.assert_allclose(terms["recon"], parts["recon"], rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], parts["kl"], rtol=1e-5, atol=1e-4)
    return {k: np.asarray(v, np.float64) for k, v in terms.items()}, parts


def _close(actual, expected):
    np.testing.assert_allclose(actual, np.asarray(expected, np.float64), rtol=1e-5, atol=1e-3)


PRIOR_NAMES = sorted(PRIORS)


@pytest.mark.parametrize("prior", PRIOR_NAMES)
def test_vae_loss_is_recon_plus_kl(prior):
    model, x = _build("vae", prior)
    t, _ = _terms_and_parts(model, x)
    _close(t["loss"], t["recon"] + t["kl"])


@pytest.mark.parametrize("prior", PRIOR_NAMES)
def test_beta_vae_h_loss_is_recon_plus_beta_kl(prior):
    model, x = _build("beta_vae_h", prior)
    t, _ = _terms_and_parts(model, x, beta=3.0)
    _close(t["loss"], t["recon"] + 3.0 * t["kl"])


@pytest.mark.parametrize("prior", PRIOR_NAMES)
def test_beta_vae_b_loss_follows_the_capacity_schedule(prior):
    model, x = _build("beta_vae_b", prior)
    hp = _config("beta_vae_b", prior).hparams  # the authors' gamma 15, C_max 25, C_stop 1e5
    for step, capacity in [(0, 0.0), (hp.c_stop_steps // 4, hp.c_max / 4), (10**7, hp.c_max)]:
        model.step.assign(step)
        t, _ = _terms_and_parts(model, x)
        _close(t["capacity"], capacity)
        # |KL - C| of the minibatch-mean KL, a batch-level term added to every example.
        _close(t["loss"], t["recon"] + hp.gamma * abs(t["kl"].mean() - capacity))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
@pytest.mark.parametrize("prior", PRIOR_NAMES)
def test_beta_tcvae_loss_weights_mi_tc_and_dwkl(prior, estimator):
    model, x = _build("beta_tcvae", prior)
    alpha, beta, gamma = 2.0, 3.0, 5.0  # distinct: a swapped weight shows
    t, p = _terms_and_parts(model, x, alpha=alpha, beta=beta, gamma=gamma, estimator=estimator)
    _close(t["loss"], t["recon"] + alpha * t["mi"] + beta * t["tc"] + gamma * t["dwkl"])
    # Chen et al.'s decomposition with the estimator asked for, and log p(z) the full prior
    # density (the flow's log-determinant included).
    est = losses.total_correlation_terms(
        p["z"], p["z_mean"], p["z_log_var"], dataset_size=1000, estimator=estimator
    )
    _close(t["mi"], p["log_qz_given_x"] - est["log_qz"])
    _close(t["tc"], est["log_qz"] - est["log_prod_qzj"])
    _close(t["dwkl"], est["log_prod_qzj"] - p["log_pz"])
    assert np.abs(t["tc"] - t["dwkl"]).max() > 1e-2  # the weights are distinguishable


@pytest.mark.parametrize("prior", PRIOR_NAMES)
def test_factor_vae_loss_adds_gamma_times_the_discriminator_tc(prior):
    model, x = _build("factor_vae", prior)
    for v in model.adversary.trainable_variables:  # a discriminator that is not at chance
        v.assign(tf.random.stateless_normal(v.shape, seed=[v.shape.rank, 7], stddev=0.5))
    t, p = _terms_and_parts(model, x, gamma=7.0)
    logits = model.adversary(p["z"]).numpy()  # [B, 2]: 0 = q(z), 1 = prod_j q(z_j)
    _close(t["tc"], logits[:, 0] - logits[:, 1])
    assert np.abs(t["tc"]).max() > 1e-2
    _close(t["loss"], t["recon"] + t["kl"] + 7.0 * t["tc"])


@pytest.mark.parametrize("prior", PRIOR_NAMES)
def test_info_vae_loss_weights_kl_and_mmd(prior):
    model, x = _build("info_vae", prior)
    alpha, lambda_ = 0.25, 10.0
    t, p = _terms_and_parts(model, x, alpha=alpha, lambda_=lambda_)
    # MMD between the codes and as many samples of the prior (g^-1(eps) for the flow).
    _close(t["mmd"], losses.mmd_infovae(p["z"], p["prior_z"]))
    assert t["mmd"] > 1e-4
    _close(t["loss"], t["recon"] + (1 - alpha) * t["kl"] + (alpha + lambda_ - 1) * t["mmd"])


def test_no_objective_writes_its_own_training_step():
    # One base owns the step (STYLE.md 2); objectives supply loss terms and phases.
    for name, cls in OBJECTIVES.items():
        for method in ("train_step", "test_step"):
            assert method not in cls.__dict__, f"{name} ({cls.__name__}) defines {method}"
