"""Priors: bijection invariants and the KL term against Monte Carlo with TFP distributions."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import losses
from tfvae.config_loader import load_config
from tfvae.priors import PRIORS, DecoupledPrior, build_prior
from tools.reproduce import TABLE1_CONFIGS

tfd = tfp.distributions
tfb = tfp.bijectors
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trained_looking_flow(d=4, seed=0):
    """A flow with random (non-identity) coupling weights."""
    prior = DecoupledPrior(d, num_blocks=3, hidden_units=(16, 16))
    prior.build(None)
    rng = np.random.default_rng(seed)
    for v in prior.trainable_variables:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype(np.float32))
    return prior


def test_flow_round_trip_and_log_det_match_autodiff():
    prior = _trained_looking_flow()
    z0 = tf.random.stateless_normal([5, 4], seed=[1, 2])
    # A fresh tensor: TFP caches inverse(forward(z0)) by object, which would hide the
    # dependence on z from the tape.
    z = tf.constant(prior.from_z0(z0).numpy())
    assert float(tf.reduce_max(tf.abs(z - z0))) > 0.1  # not the identity
    np.testing.assert_allclose(prior.to_z0(z), z0, atol=1e-5)

    with tf.GradientTape() as tape:
        tape.watch(z)
        g = prior.to_z0(z)
    jac = tape.batch_jacobian(g, z)  # [5, 4, 4]
    _, logdet = np.linalg.slogdet(jac.numpy().astype(np.float64))
    ildj = prior.bijector.inverse_log_det_jacobian(z, event_ndims=1)
    fldj = prior.bijector.forward_log_det_jacobian(z0, event_ndims=1)
    np.testing.assert_allclose(ildj, logdet, atol=1e-4)
    np.testing.assert_allclose(ildj, -fldj, atol=1e-5)


def test_log_prob_matches_transformed_distribution_and_integrates():
    prior = _trained_looking_flow(d=2, seed=3)
    z = tf.random.stateless_normal([7, 2], seed=[3, 4])
    np.testing.assert_allclose(prior.log_prob(z), prior.distribution().log_prob(z), atol=1e-5)
    # The density integrates to one: grid quadrature over a wide box.
    grid = np.linspace(-12, 12, 401, dtype=np.float32)
    zz = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)
    mass = np.exp(prior.log_prob(zz).numpy()).sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass - 1.0) < 0.02


def test_decoupled_kl_term_matches_monte_carlo_of_tfp_densities():
    prior = _trained_looking_flow(d=4, seed=5)
    mean = tf.constant([[0.3, -0.2, 1.0, 0.1]])
    log_var = tf.constant([[-1.0, -0.5, 0.2, -2.0]])
    n = 100_000
    z = losses.reparameterize(
        tf.repeat(mean, n, 0), tf.repeat(log_var, n, 0), seed=7
    )  # [n, 4] ~ q(z|x)
    q = tfd.MultivariateNormalDiag(mean[0], tf.exp(0.5 * log_var[0]))
    mc = tf.reduce_mean(q.log_prob(z) - prior.distribution().log_prob(z))
    ours = tf.reduce_mean(prior.kl(z, tf.repeat(mean, n, 0), tf.repeat(log_var, n, 0)))
    assert abs(float(ours) - float(mc)) < 0.02


def test_standard_normal_kl_is_closed_form_and_maps_are_identity():
    prior = build_prior("standard_normal", 3)
    z = tf.random.stateless_normal([4, 3], seed=[0, 1])
    np.testing.assert_array_equal(prior.to_z0(z), z)
    np.testing.assert_array_equal(prior.from_z0(z), z)
    np.testing.assert_allclose(prior.log_prob(z), prior.distribution().log_prob(z), rtol=1e-5)
    m, lv = tf.ones([4, 3]), tf.zeros([4, 3])
    np.testing.assert_allclose(prior.kl(z, m, lv), 1.5 * np.ones(4), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_every_prior_samples_with_its_log_prob(name):
    # Sample/log_prob consistency: E_p[-log p(z)] equals the entropy of the base N(0, I) plus
    # E[log|det dB/dz0|] — checked via the identity log p(z) = log N(z0) - fldj(z0).
    prior = build_prior(name, 2)
    prior.build(None)
    z0 = tf.random.stateless_normal([1000, 2], seed=[5, 6])
    z = prior.from_z0(z0)
    expected = losses.log_standard_normal(z0)
    if name == "decoupled":
        expected -= prior.bijector.forward_log_det_jacobian(z0, event_ndims=1)
    np.testing.assert_allclose(prior.log_prob(z), expected, atol=1e-4)
    s = prior.sample(8, seed=1)
    assert s.shape == (8, 2)


def test_prior_errors_are_clear():
    with pytest.raises(ValueError, match="Valid priors: decoupled, standard_normal"):
        build_prior("flow", 2)
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        build_prior("decoupled", 1)
    with pytest.raises(TypeError, match="num_layers"):
        build_prior("decoupled", 2, num_layers=3)


DP_CONFIGS = (
    "dpvae",
    "beta_dpvae_h",
    "beta_dpvae_b",
    "beta_tc_dpvae",
    "factor_dpvae",
    "info_dpvae",
)


@pytest.mark.parametrize("name", TABLE1_CONFIGS)
def test_table1_configs_initialize_as_the_authors_pytorch_code(name):
    # Every network of the dpVAE reference code keeps PyTorch's default initialization.
    config = load_config(os.path.join(REPO, "configs", f"{name}.py"))
    assert config.model.initializer == "torch"
    if config.model.prior.name == "decoupled":
        assert config.model.prior.options.initializer == "torch"


@pytest.mark.parametrize("name", DP_CONFIGS)
def test_dp_configs_build_the_authors_flow(name):
    # dpVAE authors (models/implicit_model.py): 6 coupling blocks; s and t are separate
    # Dense(64)-Dense(64)-Dense(n) networks, each ending in tanh.
    config = load_config(os.path.join(REPO, "configs", f"{name}.py"))
    m = config.model
    assert m.prior.options.shift_activation == "tanh"
    assert m.prior.options.initializer == "torch"
    prior = build_prior(m.prior.name, m.latent_dim, **dict(m.prior.options))
    prior.build(None)
    assert isinstance(prior, DecoupledPrior)
    real_nvps = [b for b in prior.bijector.bijectors if isinstance(b, tfb.RealNVP)]
    assert len(real_nvps) == len(prior.coupling_nets) == 6
    n = m.latent_dim - m.latent_dim // 2
    x = tf.constant([[1e4] * (m.latent_dim // 2), [-1e4] * (m.latent_dim // 2)])  # [2, d/2]
    for net in prior.coupling_nets:
        for mlp in (net.log_scale_net, net.shift_net):
            units = [layer.units for layer in mlp.layers if isinstance(layer, keras.layers.Dense)]
            assert units == [64, 64, n], (name, mlp.name, units)
        # Large weights and inputs: both s and t saturate at +-1 (tanh).
        for v in net.trainable_variables:
            v.assign(tf.fill(v.shape, 0.5))
        shift, log_scale = net(x)
        np.testing.assert_allclose(tf.abs(log_scale), 1.0)
        np.testing.assert_allclose(tf.abs(shift), 1.0)


def _authors_flow(params, z, inverse):
    """The dpVAE authors' ``Implicit.g`` / ``g_inv`` (models/implicit_model.py) in numpy, d = 2:
    masks [1, 0], [0, 1], ... ("half"); s and t read the whole masked code and end in tanh;
    the masked-out outputs are zeroed. Returns (output, log|det|) of g (z -> z0) or g^-1."""

    def net(name, k, x):
        h = x @ params[f"{name}.{k}.0.weight"].T + params[f"{name}.{k}.0.bias"]
        h = np.where(h > 0, h, 0.01 * h)
        h = h @ params[f"{name}.{k}.2.weight"].T + params[f"{name}.{k}.2.bias"]
        h = np.where(h > 0, h, 0.01 * h)
        return np.tanh(h @ params[f"{name}.{k}.4.weight"].T + params[f"{name}.{k}.4.bias"])

    masks = np.array([[1.0, 0.0], [0.0, 1.0]] * 3)
    log_det = np.zeros(len(z))
    blocks = reversed(range(6)) if inverse else range(6)
    for k in blocks:
        m = masks[k]
        kept = z * m
        s, t = net("s", k, kept) * (1 - m), net("t", k, kept) * (1 - m)
        if inverse:  # g: z -> z0
            z = (1 - m) * (z - t) * np.exp(-s) + kept
            log_det -= s.sum(1)
        else:  # g^-1: z0 -> z
            z = kept + (1 - m) * (z * np.exp(s) + t)
            log_det += s.sum(1)
    return z, log_det


def test_decoupled_prior_is_the_authors_flow():
    # The cause of issue 17: tfvae's coupling shift was linear where the authors' ends in tanh,
    # so tfvae's flow could shear z without bound. With the authors' weights (their layout:
    # full-width inputs, alternating masks), tfvae's flow must be their function exactly.
    from tools.authors_code import port_flow_to_keras, z_order

    rng = np.random.default_rng(0)
    params = {}
    for name in ("s", "t"):
        for k in range(6):
            for i, shape in ((0, (64, 2)), (2, (64, 64)), (4, (2, 64))):
                params[f"{name}.{k}.{i}.weight"] = rng.normal(0, 1.5, shape).astype(np.float32)
                params[f"{name}.{k}.{i}.bias"] = rng.normal(0, 1.0, shape[0]).astype(np.float32)
    prior = DecoupledPrior(2)
    prior.build(None)
    port_flow_to_keras(params, prior)
    order = z_order(6, 2)  # tfvae's z is the authors' z with its coordinates in this order
    z = rng.normal(0, 3.0, (64, 2)).astype(np.float32)
    z0_ref, log_det_ref = _authors_flow(params, z, inverse=True)
    z0, log_det = prior._inverse_and_log_det(tf.constant(z[:, order]))
    np.testing.assert_allclose(z0, z0_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_det, log_det_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        prior.log_prob(tf.constant(z[:, order])),
        losses.log_standard_normal(z0_ref).numpy() + log_det_ref,
        rtol=1e-4,
        atol=1e-4,
    )
    z_ref, _ = _authors_flow(params, z, inverse=False)
    np.testing.assert_allclose(prior.from_z0(tf.constant(z)), z_ref[:, order], rtol=1e-4, atol=1e-4)


def test_bounded_couplings_bound_how_far_the_flow_moves_a_code():
    # Each coordinate of a 2-d code passes through K/2 = 3 blocks, each scaling by at most e
    # and shifting by at most 1: |g^-1(z0)_i| <= e^3 |z0_i| + e^2 + e + 1, whatever the weights.
    prior = DecoupledPrior(2)
    prior.build(None)
    rng = np.random.default_rng(1)
    for v in prior.trainable_variables:
        v.assign(rng.normal(0, 30.0, v.shape).astype(np.float32))
    z0 = rng.normal(0, 2.0, (4096, 2)).astype(np.float32)
    z = prior.from_z0(tf.constant(z0)).numpy()
    bound = np.e**3 * np.abs(z0[:, ::-1]) + np.e**2 + np.e + 1
    assert np.all(np.abs(z) <= bound + 1e-3)
    # The linear shift (the old tfvae behaviour) has no such bound.
    free = DecoupledPrior(2, shift_activation="linear")
    free.build(None)
    for v, w in zip(free.trainable_variables, prior.trainable_variables, strict=True):
        v.assign(w)
    assert np.any(np.abs(free.from_z0(tf.constant(z0)).numpy()) > bound + 1.0)


def test_torch_initializer_draws_pytorchs_linear_default():
    # PyTorch's nn.Linear: weights and biases ~ U(+-1/sqrt(fan_in)); the authors' first layer
    # reads all d coordinates, so its fan-in is d although tfvae feeds it d/2 of them.
    d = 8
    prior = DecoupledPrior(d, num_blocks=6)
    prior.build(None)
    layers = [
        [layer for layer in mlp.layers if isinstance(layer, keras.layers.Dense)]
        for net in prior.coupling_nets
        for mlp in (net.log_scale_net, net.shift_net)
    ]
    for fan_in, index in ((d, 0), (64, 1), (64, 2)):
        values = np.concatenate([np.ravel(w) for mlp in layers for w in mlp[index].get_weights()])
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(values).max() <= bound
        # A uniform on [-b, b] has standard deviation b / sqrt(3).
        np.testing.assert_allclose(values.std(), bound / np.sqrt(3), rtol=0.05)
    glorot = DecoupledPrior(d, initializer="glorot")
    glorot.build(None)
    biases = [w for w in glorot.trainable_variables if len(w.shape) == 1]
    assert all(float(tf.reduce_max(tf.abs(b))) == 0.0 for b in biases)


@pytest.mark.parametrize(
    "options", [{"shift_activation": "relu"}, {"initializer": "he"}], ids=["shift", "init"]
)
def test_unknown_flow_options_name_the_valid_ones(options):
    with pytest.raises(ValueError, match="valid"):
        DecoupledPrior(2, **options)
