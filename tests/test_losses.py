"""Loss math against closed forms and invariants."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfvae import losses

tfd = tfp.distributions


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_kl_standard_normal_matches_monte_carlo():
    rng = _rng()
    mean = rng.normal(size=(3, 4)).astype(np.float32)
    log_var = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
    q = tfd.MultivariateNormalDiag(mean, tf.exp(0.5 * log_var))
    p = tfd.MultivariateNormalDiag(tf.zeros(4))
    z = q.sample(200_000, seed=1)  # [S, 3, 4]
    mc = tf.reduce_mean(q.log_prob(z) - p.log_prob(z), axis=0)
    closed = losses.kl_standard_normal(mean, log_var)
    np.testing.assert_allclose(closed, tfd.kl_divergence(q, p), rtol=1e-5)
    np.testing.assert_allclose(closed, mc, atol=0.03)


def test_log_densities_and_entropy_match_tfp():
    rng = _rng(1)
    z, mean = rng.normal(size=(2, 5, 3)).astype(np.float32)
    log_var = rng.normal(size=(5, 3)).astype(np.float32)
    q = tfd.MultivariateNormalDiag(mean, tf.exp(0.5 * log_var))
    np.testing.assert_allclose(losses.log_normal_diag(z, mean, log_var), q.log_prob(z), rtol=1e-5)
    np.testing.assert_allclose(losses.gaussian_entropy(log_var), q.entropy(), rtol=1e-5)
    np.testing.assert_allclose(
        losses.log_standard_normal(z), tfd.Normal(0.0, 1.0).log_prob(z).numpy().sum(-1), rtol=1e-5
    )


def test_likelihoods_match_closed_forms():
    rng = _rng(2)
    x = rng.uniform(size=(4, 3, 3, 1)).astype(np.float32)
    logits = rng.normal(size=x.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-logits))
    expected = (x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(4, -1).sum(1)
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(x, logits), expected, rtol=1e-5)

    w = 10.0
    mean = rng.uniform(size=x.shape).astype(np.float32)
    scale = math.sqrt(1 / (2 * w))
    expected = stats.norm(mean, scale).logpdf(x).reshape(4, -1).sum(1)
    np.testing.assert_allclose(losses.gaussian_log_likelihood(x, mean, w), expected, rtol=1e-5)
    np.testing.assert_allclose(
        losses.weighted_squared_error(x, mean, w), w * ((x - mean) ** 2).reshape(4, -1).sum(1), 1e-6
    )


@pytest.mark.parametrize("batch,dim,n", [(10, 10, 10_000), (16, 3, 60_000)])
def test_total_correlation_of_identical_codes_has_known_constant(batch, dim, n):
    # Every example has the same posterior and code: MWS gives (d - 1) log N exactly
    # (disentanglement_lib's -82.893 = -(10 - 1) ln 10000 up to its sign convention); the
    # stratified weights sum to one per row, so MSS gives 0.
    z = tf.zeros([batch, dim])
    mws = losses.total_correlation_terms(z, z, z, dataset_size=n, estimator="mws")
    np.testing.assert_allclose(mws["log_qz"] - mws["log_prod_qzj"], (dim - 1) * math.log(n), 1e-5)
    mss = losses.total_correlation_terms(z, z, z, dataset_size=n, estimator="mss")
    np.testing.assert_allclose(mss["log_qz"] - mss["log_prod_qzj"], 0.0, atol=1e-4)
    if batch == 10 and dim == 10:
        assert abs(float(tf.reduce_mean(mws["log_prod_qzj"] - mws["log_qz"])) + 82.893) < 1e-3


def test_stratified_weights_sum_to_one_per_row():
    w = tf.exp(losses._stratified_log_weights(7, 1000, tf.float64))
    np.testing.assert_allclose(tf.reduce_sum(w, axis=1), np.ones(7), rtol=1e-12)


def test_total_correlation_is_large_for_dependent_codes():
    # Codes on a line (z_1 = z_2) are maximally dependent: TC clearly positive and larger than
    # for independent codes of the same marginals.
    rng = _rng(3)
    a = rng.normal(size=(256, 1)).astype(np.float32)
    b = rng.normal(size=(256, 1)).astype(np.float32)
    log_var = np.full((256, 2), -6.0, np.float32)
    dep = np.concatenate([a, a], 1)
    ind = np.concatenate([a, b], 1)

    def tc(z):
        t = losses.total_correlation_terms(z, z, log_var, dataset_size=256, estimator="mss")
        return float(tf.reduce_mean(t["log_qz"] - t["log_prod_qzj"]))

    assert tc(dep) > tc(ind) + 1.0


def test_mmd_zero_on_itself_and_grows_with_shift():
    rng = _rng(4)
    a = rng.normal(size=(200, 4)).astype(np.float32)
    assert abs(float(losses.mmd_infovae(a, a))) < 1e-6
    shifts = [float(losses.mmd_infovae(a, a + s)) for s in (0.5, 1.0, 2.0)]
    assert shifts[0] > 0 and shifts == sorted(shifts)
    b = rng.normal(size=(200, 4)).astype(np.float32)
    same = float(losses.mmd_imq(a, b))
    assert abs(same) < 0.05  # unbiased: near zero for two samples of one distribution
    imq = [float(losses.mmd_imq(a, b + s)) for s in (0.5, 1.0, 2.0)]
    assert imq == sorted(imq) and imq[0] > same


def test_permute_dims_permutes_each_column_independently():
    z = tf.reshape(tf.range(64 * 3, dtype=tf.float32), [64, 3])
    p = losses.permute_dims(z, seed=3).numpy()
    for j in range(3):
        assert sorted(p[:, j]) == sorted(z.numpy()[:, j])
    rows = (p - p[:, :1]) // 64  # equal rows would give the same original row everywhere
    assert not np.all(rows == np.arange(3))
    # Columns are permuted differently.
    assert not np.array_equal(np.argsort(p[:, 0]), np.argsort(p[:, 1]))
