"""Tests for tfvae.metrics: every metric against a closed form or an invariant."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats
import tensorflow as tf

from tfvae import metrics

LOG_2PI = math.log(2.0 * math.pi)


def _diag_gaussian_fid(m1, s1, m2, s2):
    """Closed-form Frechet distance of N(m1, diag s1) and N(m2, diag s2) (s = variances)."""
    return float(np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2)))


def _gauss_kl(m1, s1, m2, s2):
    """KL(N(m1, diag s1) || N(m2, diag s2)), s = variances."""
    return float(0.5 * np.sum(s1 / s2 + (m2 - m1) ** 2 / s2 - 1.0 + np.log(s2 / s1)))


# ----------------------------------------------------------------------------------------------
# FID
# ----------------------------------------------------------------------------------------------
def test_gaussian_stats_match_numpy_and_ignore_chunking():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1001, 7)).astype(np.float32)
    mean, cov = metrics.gaussian_stats(x, chunk_size=100)
    assert mean.dtype == np.float64 and cov.dtype == np.float64
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10)
    mean2, cov2 = metrics.gaussian_stats(x, chunk_size=7)
    np.testing.assert_allclose(cov2, cov, rtol=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).normal(size=(2000, 32))
    assert abs(metrics.fid(x, x)) < 1e-8
    assert abs(metrics.fid(x, x, method="sqrtm")) < 1e-6


def test_fid_grows_monotonically_with_mean_shift():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3000, 16))
    b = rng.normal(size=(3000, 16))
    values = [metrics.fid(a, b + shift) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert np.all(np.diff(values) > 0)
    # A pure mean shift adds exactly ||delta||^2 to the distance of the same two fits.
    np.testing.assert_allclose(
        values[-1] - values[0], 16 * 4.0 + 2 * 2.0 * np.sum(b.mean(0) - a.mean(0)), rtol=1e-9
    )


def test_frechet_distance_on_exact_stats_equals_closed_form():
    rng = np.random.default_rng(3)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.2, 3.0, size=5), rng.uniform(0.2, 3.0, size=5)
    expected = _diag_gaussian_fid(m1, s1, m2, s2)
    for method in ("eigh", "sqrtm"):
        got = metrics.frechet_distance(m1, np.diag(s1), m2, np.diag(s2), method=method)
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_frechet_distance_is_invariant_to_a_shared_rotation():
    # Rotating both Gaussians by the same orthogonal Q keeps the distance: full (non-diagonal)
    # covariances then have a known answer, the diagonal closed form.
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 2.0, size=6), rng.uniform(0.1, 2.0, size=6)
    c1, c2 = q @ np.diag(s1) @ q.T, q @ np.diag(s2) @ q.T
    expected = _diag_gaussian_fid(m1, s1, m2, s2)
    for method in ("eigh", "sqrtm"):
        got = metrics.frechet_distance(q @ m1, c1, q @ m2, c2, method=method)
        assert got == pytest.approx(expected, rel=1e-9)


def test_fid_methods_agree_on_rank_deficient_covariances():
    # 20 samples in 50 dimensions: both covariances are singular, the eps-offset path of
    # "sqrtm" and the eigenvalue clipping of "eigh" must still agree.
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(20, 50)), rng.normal(size=(20, 50)) + 0.3
    fid_eigh = metrics.fid(a, b, method="eigh")
    fid_sqrtm = metrics.fid(a, b, method="sqrtm")
    assert np.isfinite(fid_eigh)
    assert fid_eigh == pytest.approx(fid_sqrtm, rel=1e-3)


def test_fid_from_large_samples_matches_closed_form():
    rng = np.random.default_rng(6)
    d = 8
    m1, m2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = np.linspace(0.5, 2.0, d), np.linspace(2.0, 0.5, d)
    a = m1 + np.sqrt(s1) * rng.normal(size=(50_000, d))
    b = m2 + np.sqrt(s2) * rng.normal(size=(50_000, d))
    expected = _diag_gaussian_fid(m1, s1, m2, s2)  # ~3.05
    assert metrics.fid(a, b) == pytest.approx(expected, abs=0.05)


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="Valid methods"):
        metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="x")
    with pytest.raises(ValueError, match="Shape mismatch"):
        metrics.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


@pytest.mark.slow
def test_inception_pool3_features_from_a_weights_file(tmp_path):
    """tfvae.evaluation's Inception-v3 FID features: loaded from a weights file, 2048-d pool3."""
    import keras

    from tfvae import evaluation

    # Random weights stand in for the real file (no download); 75 x 75, Inception's smallest.
    keras.utils.set_random_seed(0)
    net = keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(75, 75, 3), pooling="avg"
    )
    path = str(tmp_path / "inception.weights.h5")
    net.save_weights(path)
    features = evaluation.inception_features(path, size=75)
    assert features.identity["name"] == "inception_v3_pool3"
    assert features.identity["sha256"] == evaluation.features._sha256(path)
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    got = features.features(x, batch_size=2)
    assert got.shape == (3, 2048)
    rgb = tf.image.resize(tf.repeat(tf.constant(x), 3, axis=-1), [75, 75], method="bilinear")
    expected = net(2.0 * rgb - 1.0, training=False).numpy()
    # Untrained, the features are small (~1e-4): compare them relative to their size.
    scale = np.abs(expected).max()
    assert scale > 0 and np.abs(expected[0] - expected[1]).max() > 0.05 * scale
    np.testing.assert_allclose(got / scale, expected / scale, atol=1e-3)


# ----------------------------------------------------------------------------------------------
# 1-NN KL
# ----------------------------------------------------------------------------------------------
M_Q, S_Q = np.array([1.0, 0.0]), np.array([2.0, 0.5])  # Q = N(M_Q, diag S_Q); P = N(0, I)


def _pq_samples(seed, n=5000):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 2))
    q = M_Q + np.sqrt(S_Q) * rng.normal(size=(n, 2))
    return p, q


def test_knn_kl_matches_closed_form_gaussian_kl():
    kl_pq = _gauss_kl(np.zeros(2), np.ones(2), M_Q, S_Q)  # 0.5
    kl_qp = _gauss_kl(M_Q, S_Q, np.zeros(2), np.ones(2))  # 0.75
    # Average over independent draws: the single-draw std is ~0.04 nats at n = m = 5000.
    est_pq, est_qp, est_sym = [], [], []
    for seed in range(4):
        p, q = _pq_samples(seed)
        est_pq.append(metrics.knn_kl_divergence(p, q))
        est_qp.append(metrics.knn_kl_divergence(q, p))
        est_sym.append(metrics.symmetric_kl(p, q))
    assert np.mean(est_pq) == pytest.approx(kl_pq, abs=0.08)
    assert np.mean(est_qp) == pytest.approx(kl_qp, abs=0.08)
    np.testing.assert_allclose(est_sym, np.add(est_pq, est_qp), rtol=1e-12)


def test_symmetric_kl_of_same_distribution_is_near_zero():
    rng = np.random.default_rng(10)
    values = [
        metrics.symmetric_kl(rng.normal(size=(5000, 2)), rng.normal(size=(5000, 2)))
        for _ in range(3)
    ]
    assert abs(np.mean(values)) < 0.08


def test_knn_kl_brute_force_path_matches_kdtree(monkeypatch):
    rng = np.random.default_rng(11)
    p, q = rng.normal(size=(700, 4)), 1.3 * rng.normal(size=(500, 4))
    kdtree = metrics.knn_kl_divergence(p, q)
    monkeypatch.setattr(metrics, "_KDTREE_MAX_DIM", 0)
    brute = metrics.knn_kl_divergence(p, q)
    assert brute == pytest.approx(kdtree, rel=1e-12)


def test_knn_kl_known_value_on_hand_built_points():
    # d=1, P = {0, 1, 3}, Q = {0.5, 10, 20}: r = (1, 1, 2), s = (0.5, 0.5, 2.5), m/(n-1) = 3/2.
    p = np.array([[0.0], [1.0], [3.0]])
    q = np.array([[0.5], [10.0], [20.0]])
    expected = (1 / 3) * (math.log(0.5) + math.log(0.5) + math.log(2.5 / 2)) + math.log(3 / 2)
    assert metrics.knn_kl_divergence(p, q) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="duplicated"):
        metrics.knn_kl_divergence(np.array([[0.0], [0.0], [1.0]]), q)


# ----------------------------------------------------------------------------------------------
# Aggregate posterior, selection, leakage
# ----------------------------------------------------------------------------------------------
def _direct_log_aggregate_posterior(z, mu, log_var):
    # [M, N, d] broadcast: the textbook formula, no expansion, no chunking.
    diff = z[:, None, :] - mu[None, :, :]
    log_dens = -0.5 * np.sum(LOG_2PI + log_var + diff**2 / np.exp(log_var), axis=-1)
    return scipy.special.logsumexp(log_dens, axis=1) - math.log(mu.shape[0])


def test_log_aggregate_posterior_matches_direct_computation_for_any_chunk_size():
    rng = np.random.default_rng(20)
    z = rng.normal(size=(301, 3)) * 2.0
    mu = rng.normal(size=(257, 3))
    log_var = rng.uniform(-4.0, 1.0, size=(257, 3))
    expected = _direct_log_aggregate_posterior(z, mu, log_var)
    for chunk in (5, 64, 1000):  # 5 does not divide 301 or 257
        got = metrics.log_aggregate_posterior(z, mu, log_var, chunk_size=chunk)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_log_aggregate_posterior_of_one_component_is_its_density():
    z = np.array([[0.0, 0.0], [1.0, -2.0]])
    got = metrics.log_aggregate_posterior(z, np.array([[0.5, -1.0]]), np.log([[0.25, 4.0]]))
    expected = scipy.stats.multivariate_normal([0.5, -1.0], np.diag([0.25, 4.0])).logpdf(z)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_low_posterior_selection_finds_prior_samples_in_an_empty_region():
    rng = np.random.default_rng(21)
    # Aggregate posterior: two tight clusters at (-3, 0) and (3, 0); the origin is empty.
    centres = np.where(rng.random((500, 1)) < 0.5, -3.0, 3.0) * np.array([[1.0, 0.0]])
    mu = centres + 0.3 * rng.normal(size=(500, 2))
    log_var = np.full((500, 2), math.log(0.2**2))
    # "Prior samples": 190 on the clusters, 10 planted in the empty region around the origin.
    on_clusters = mu[rng.integers(0, 500, size=190)] + 0.1 * rng.normal(size=(190, 2))
    planted = 0.3 * rng.normal(size=(10, 2))
    z = np.concatenate([on_clusters[:95], planted, on_clusters[95:]])
    planted_idx = np.arange(95, 105)
    log_q = metrics.log_aggregate_posterior(z, mu, log_var, chunk_size=64)
    picked = metrics.low_posterior_indices(log_q, 0.05)
    assert sorted(picked) == list(planted_idx)
    assert np.all(np.diff(log_q[picked]) >= 0)  # lowest first


def test_high_posterior_selection_finds_leaked_posterior_samples():
    rng = np.random.default_rng(22)
    inside = rng.normal(size=(95, 2))
    inside *= np.minimum(1.0, 2.0 / np.linalg.norm(inside, axis=1, keepdims=True))  # radius <= 2
    angles = rng.uniform(0, 2 * np.pi, size=5)
    leaked = 6.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # radius 6
    z = np.concatenate([leaked[:2], inside, leaked[2:]])
    log_prior = metrics.log_standard_normal(z)
    picked = metrics.high_posterior_indices(log_prior, 0.05)
    assert sorted(picked) == [0, 1, 97, 98, 99]


def test_select_lowest_count_and_errors():
    values = np.array([5.0, 1.0, 3.0, 1.0, 0.0, 9.0, 2.0, 8.0, 7.0, 6.0])
    np.testing.assert_array_equal(metrics.select_lowest(values, 0.3), [4, 1, 3])
    assert len(metrics.select_lowest(values, 0.01)) == 1
    assert len(metrics.select_lowest(values, 1.0)) == 10
    with pytest.raises(ValueError, match="fraction"):
        metrics.select_lowest(values, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        metrics.select_lowest(np.array([1.0, np.nan]), 0.5)


def test_leakage_curve_matches_hand_count():
    log_base = np.array([2.0, -5.0, 0.0, -3.0, -1.0])
    log_q = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    curve = metrics.leakage_curve(log_base, log_q, [-10.0, -4.0, -1.0, 0.5, 10.0])
    # tau = -1 is strict: l = -1 is not below it.
    np.testing.assert_allclose(curve["fraction"], [0.0, 0.2, 0.4, 0.8, 1.0])
    np.testing.assert_allclose(curve["mean_log_q"], [np.nan, 1.0, 1.5, 2.5, 3.0])
    np.testing.assert_allclose(curve["threshold"], [-10.0, -4.0, -1.0, 0.5, 10.0])


def test_leakage_curve_is_monotone_and_bounded():
    rng = np.random.default_rng(23)
    z = 1.5 * rng.normal(size=(2000, 2))
    log_base = metrics.log_standard_normal(z)
    log_q = rng.normal(size=2000)
    taus = np.linspace(-15.0, 0.0, 40)
    curve = metrics.leakage_curve(log_base, log_q, taus)
    frac = curve["fraction"]
    assert np.all((frac >= 0) & (frac <= 1))
    assert np.all(np.diff(frac) >= 0)
    for tau, f, mq in zip(taus, frac, curve["mean_log_q"], strict=True):
        mask = log_base < tau
        assert f == pytest.approx(mask.mean())
        if mask.any():
            assert mq == pytest.approx(log_q[mask].mean())
        else:
            assert np.isnan(mq)


def test_log_standard_normal_matches_scipy():
    z = np.random.default_rng(24).normal(size=(4, 3))
    expected = scipy.stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    np.testing.assert_allclose(metrics.log_standard_normal(z), expected, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Importance-sampled likelihood on a linear-Gaussian model with a closed-form log p(x)
# ----------------------------------------------------------------------------------------------
class _LinearGaussian:
    """p(z) = N(0, I_2), p(x|z) = N(W z + b, s^2 I_3), so p(x) = N(b, W W^T + s^2 I).

    W has orthogonal columns, so the exact posterior N(Sigma W^T (x - b) / s^2, Sigma) with
    Sigma = (I + W^T W / s^2)^-1 is diagonal and lies in the encoder family.
    """

    def __init__(self):
        q, _ = np.linalg.qr(np.random.default_rng(30).normal(size=(3, 2)))
        self.w = q * np.array([2.0, 0.7])  # [3, 2], orthogonal columns
        self.b = np.array([0.5, -1.0, 0.2])
        self.s2 = 0.3**2
        self.post_var = 1.0 / (1.0 + np.sum(self.w**2, axis=0) / self.s2)  # [2]
        self.w_tf = tf.constant(self.w, tf.float64)
        self.b_tf = tf.constant(self.b, tf.float64)

    def log_px(self, x):
        cov = self.w @ self.w.T + self.s2 * np.eye(3)
        return scipy.stats.multivariate_normal(self.b, cov).logpdf(x)

    def exact_encoder(self, x):
        mean = (x - self.b_tf) @ self.w_tf * (self.post_var / self.s2)  # [B, 2]
        return mean, tf.math.log(tf.ones_like(mean) * self.post_var)

    def imperfect_encoder(self, x):
        mean, log_var = self.exact_encoder(x)
        return 0.7 * mean + 0.2, log_var + 0.8

    def log_likelihood(self, x, z):
        x_hat = tf.matmul(z, self.w_tf, transpose_b=True) + self.b_tf  # [R, 3]
        return -0.5 * tf.reduce_sum(LOG_2PI + math.log(self.s2) + (x - x_hat) ** 2 / self.s2, -1)

    @staticmethod
    def prior_log_prob(z):
        return -0.5 * tf.reduce_sum(LOG_2PI + z**2, axis=-1)


@pytest.fixture(scope="module")
def linear_gaussian():
    model = _LinearGaussian()
    z = np.random.default_rng(31).normal(size=(64, 2))
    x = z @ model.w.T + model.b + 0.3 * np.random.default_rng(32).normal(size=(64, 3))
    return model, x


def _bounds(model, x, encoder, k, chunk, seed):
    return metrics.importance_sampled_bounds(
        tf.constant(x, tf.float64),
        encode_fn=encoder,
        log_likelihood_fn=model.log_likelihood,
        prior_log_prob_fn=model.prior_log_prob,
        num_samples=k,
        chunk_size=chunk,
        seed=seed,
    )


def test_iw_with_exact_posterior_is_exact_for_any_k(linear_gaussian):
    # With q = p(z|x) every weight equals p(x): checks signs and constants of all three terms.
    model, x = linear_gaussian
    truth = model.log_px(x)
    for k in (1, 5):
        out = _bounds(model, x, model.exact_encoder, k, chunk=2, seed=0)
        np.testing.assert_allclose(out["log_px"], truth, rtol=1e-10)
        np.testing.assert_allclose(out["elbo"], truth, rtol=1e-10)


def test_iw_approaches_truth_as_k_grows_with_imperfect_encoder(linear_gaussian):
    # The encoder is shrunk, shifted and over-dispersed: its ELBO gap is ~3 nats.
    model, x = linear_gaussian
    truth = model.log_px(x)
    errors = []
    for k, chunk in ((1, 1), (100, 32), (1000, 128)):
        out = _bounds(model, x, model.imperfect_encoder, k, chunk, seed=1)
        # Jensen: the log of the mean weight is >= the mean log weight, sample by sample.
        assert np.all(out["log_px"] >= out["elbo"] - 1e-9)
        assert np.mean(out["log_px"]) >= np.mean(out["elbo"])
        errors.append(np.mean(np.abs(out["log_px"] - truth)))
        # A lower bound in expectation: on average never above the truth beyond noise
        # (the standard error of this 64-example mean is ~0.012 nats at K = 1000).
        assert np.mean(out["log_px"] - truth) < 0.05
    assert errors[0] > 1.0  # the ELBO-like K = 1 estimate is far off...
    assert errors[1] < errors[0] and errors[2] < errors[1]  # ...and the error shrinks with K
    assert errors[2] < 0.1 * errors[0]
    assert errors[2] < 0.15  # measured 0.07 (seed 1) / 0.08 (seed 2); MC error ~ 1/sqrt(K)


def test_iw_log_likelihood_wrapper_and_determinism(linear_gaussian):
    model, x = linear_gaussian
    kwargs = dict(
        encode_fn=model.imperfect_encoder,
        log_likelihood_fn=model.log_likelihood,
        prior_log_prob_fn=model.prior_log_prob,
        num_samples=50,
        chunk_size=16,
        seed=7,
    )
    a = metrics.importance_sampled_log_likelihood(x, **kwargs)
    b = metrics.importance_sampled_log_likelihood(x, **kwargs)
    assert a.shape == (64,) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        a, _bounds(model, x, model.imperfect_encoder, 50, 16, 7)["log_px"]
    )


def test_bits_per_dim():
    assert metrics.bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.bits_per_dim([0.0, 2 * math.log(2.0)], 2), [0.0, 1.0])


# ----------------------------------------------------------------------------------------------
# Posterior collapse
# ----------------------------------------------------------------------------------------------
def test_mutual_information_is_zero_for_an_encoder_that_ignores_x():
    z_mean = np.tile([[0.3, -0.2, 1.0, 0.0]], (2000, 1))
    z_log_var = np.full((2000, 4), 0.1)
    # Sampling noise only: std 0.5 * sqrt(2 d / B) ~ 0.02.
    assert abs(metrics.mutual_information(z_mean, z_log_var, seed=0)) < 0.08


def test_mutual_information_reaches_log_batch_for_separated_deterministic_codes():
    batch = 500
    z_mean = np.random.default_rng(40).uniform(-100, 100, size=(batch, 2))
    z_log_var = np.full((batch, 2), math.log(1e-3**2))
    mi = metrics.mutual_information(z_mean, z_log_var, seed=1)
    assert mi == pytest.approx(math.log(batch), abs=0.1)


def test_mutual_information_matches_he_et_al_formula():
    rng = np.random.default_rng(41)
    mu, log_var = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) * 0.3
    z = mu + np.exp(0.5 * log_var) * np.random.default_rng(5).standard_normal(mu.shape)
    neg_entropy = np.mean(-0.5 * 3 * LOG_2PI - 0.5 * np.sum(1 + log_var, axis=1))
    log_qz = _direct_log_aggregate_posterior(z, mu, log_var)
    expected = neg_entropy - log_qz.mean()
    assert metrics.mutual_information(mu, log_var, seed=5) == pytest.approx(expected, rel=1e-10)


def test_activity_and_active_units_count_dimensions_with_variance():
    rng = np.random.default_rng(42)
    n = 5000
    scales = np.array([1.0, 0.0, 0.5, 0.01, 0.3, 0.0])  # variances 1, 0, .25, 1e-4, .09, 0
    z_means = 2.0 + scales * rng.normal(size=(n, 6))
    act = metrics.activity(z_means)
    np.testing.assert_allclose(act, np.var(z_means, axis=0, ddof=1), rtol=1e-12)
    assert metrics.active_units(z_means) == 3
    assert metrics.active_units(z_means, threshold=0.5) == 1
    assert metrics.active_units(z_means, threshold=1e-6) == 4


# ----------------------------------------------------------------------------------------------
# NAC
# ----------------------------------------------------------------------------------------------
def test_nac_is_near_zero_for_independent_codes():
    codes = np.random.default_rng(50).normal(size=(20_000, 5)) * [1.0, 2.0, 0.5, 3.0, 1.0]
    # Expected |r| ~ sqrt(2 / (pi N)) ~ 0.006.
    assert metrics.nac(codes, np.ones(5, bool)) < 0.02


def test_nac_is_one_for_duplicated_dimensions():
    a = np.random.default_rng(51).normal(size=(1000, 1))
    codes = np.concatenate([a, -a, 3.0 * a + 2.0], axis=1)
    assert metrics.nac(codes, np.ones(3, bool)) == pytest.approx(1.0, rel=1e-12)


def test_nac_ignores_inactive_dimensions():
    rng = np.random.default_rng(52)
    active = rng.normal(size=(3000, 3))
    # Inactive dimensions copy an active one: counted, they would raise NAC a lot.
    inactive = np.concatenate([active[:, :1], 1e-3 * active[:, :1]], axis=1)
    codes = np.concatenate([inactive[:, :1], active, inactive[:, 1:]], axis=1)
    mask = np.array([False, True, True, True, False])
    assert metrics.nac(codes, mask) == pytest.approx(metrics.nac(active, np.ones(3, bool)))
    assert metrics.nac(codes, np.ones(5, bool)) > 0.2
    assert np.isnan(metrics.nac(codes, np.array([False, True, False, False, False])))


def test_nac_known_value():
    # Two dimensions with correlation rho: NAC = |rho|.
    rng = np.random.default_rng(53)
    a, b = rng.normal(size=(2, 10_000))
    codes = np.stack([a, -0.6 * a + 0.8 * b], axis=1)
    corr = abs(np.corrcoef(codes, rowvar=False)[0, 1])
    assert metrics.nac(codes, [True, True]) == pytest.approx(corr, rel=1e-12)
    assert corr == pytest.approx(0.6, abs=0.02)


def test_sqrtm_path_uses_scipy_sqrtm():
    # Guard that the reference path really is the principal square root of C1 C2.
    rng = np.random.default_rng(60)
    a = rng.normal(size=(4, 4))
    c1, c2 = a @ a.T + np.eye(4), np.diag([1.0, 2.0, 3.0, 4.0])
    expected = float(np.trace(scipy.linalg.sqrtm(c1 @ c2)).real)
    assert metrics._trace_sqrt_product_sqrtm(c1, c2, 1e-6) == pytest.approx(expected, rel=1e-12)
    assert metrics._trace_sqrt_product_eigh(c1, c2) == pytest.approx(expected, rel=1e-10)


def test_symmetric_kl_standard_error_matches_the_spread_over_independent_draws():
    # 30 independent draws of the same pair of Gaussians: the batch-means standard error
    # computed from one draw should estimate the draw-to-draw standard deviation of the sKL.
    # Without the 1/sqrt(folds) it would be 2.2x too large; a fold-free spread 2.2x too small.
    values, errors = [], []
    for seed in range(30):
        p, q = _pq_samples(100 + seed)
        p, q = p[:1000], q[:1000]
        values.append(metrics.symmetric_kl(p, q))
        errors.append(metrics.symmetric_kl_standard_error(p, q))
    ratio = np.mean(errors) / np.std(values, ddof=1)
    assert 0.6 < ratio < 1.6, ratio
    with pytest.raises(ValueError, match="folds"):
        metrics.symmetric_kl_standard_error(p[:5], q[:5])
