"""Evaluation metrics as pure functions of arrays (METHODS.md sections 4, 5 and 6).

Nothing here holds model state. Where a metric needs a model (importance-sampled likelihood) it
takes callables, so the same code serves every encoder, decoder and prior. Inputs may be NumPy
arrays or eager TensorFlow tensors; results are NumPy float64 arrays or Python floats.

Memory stays bounded: covariance accumulation, the aggregate-posterior density and importance
sampling all run in chunks and combine partial results (sums, streaming logsumexp).

Contents:
  * FID: ``gaussian_stats``, ``frechet_distance``, ``fid``.
  * sKL: ``knn_kl_divergence`` (Perez-Cruz 2008 1-NN estimator), ``symmetric_kl`` and its
    ``symmetric_kl_standard_error``.
  * Aggregate posterior and sample selection: ``log_aggregate_posterior``, ``select_lowest``,
    ``low_posterior_indices``, ``high_posterior_indices``, ``leakage_curve``,
    ``log_standard_normal``.
  * Likelihood: ``importance_sampled_bounds``, ``importance_sampled_log_likelihood``,
    ``bits_per_dim``.
  * Posterior collapse (He et al. 2019): ``mutual_information``, ``activity``, ``active_units``.
  * MaskAAE: ``nac``.

References:
  [1] Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
      Equilibrium", NeurIPS 2017 (FID). https://arxiv.org/abs/1706.08500
  [2] Perez-Cruz, "Kullback-Leibler divergence estimation of continuous distributions",
      ISIT 2008.
  [3] Bhalodia, Lee, Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs",
      ACCV 2020. https://arxiv.org/abs/1911.10506
  [4] Burda, Grosse, Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
  [5] He et al., "Lagging Inference Networks and Posterior Collapse in Variational
      Autoencoders", ICLR 2019. https://arxiv.org/abs/1901.05534 (code: jxhe/vae-lagging-encoder)
  [6] Mondal et al., "MaskAAE: Latent space optimization for Adversarial Auto-Encoders",
      UAI 2020. https://arxiv.org/abs/1912.04564
"""

import math
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.spatial
import scipy.special
import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def _as_float64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# FID
# ----------------------------------------------------------------------------------------------
def gaussian_stats(features, *, chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set, accumulated in float64 chunks.

    Two passes (mean first, then the centred scatter matrix) so the covariance does not suffer
    the cancellation of the one-pass ``E[xx^T] - mu mu^T`` form; only one ``[chunk, D]`` float64
    block exists at a time.

    Args:
      features: ``[N, D]`` array, N >= 2.
      chunk_size: rows per chunk.

    Returns:
      ``(mean [D], cov [D, D])`` in float64; ``cov`` uses the unbiased 1/(N-1) normalization
      (``np.cov``'s default, as in the reference FID implementations).
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be [N, D] with N >= 2, got shape {features.shape}.")
    n, dim = features.shape
    total = np.zeros(dim, np.float64)
    for start in range(0, n, chunk_size):
        total += features[start : start + chunk_size].sum(axis=0, dtype=np.float64)
    mean = total / n  # [D]
    scatter = np.zeros((dim, dim), np.float64)
    for start in range(0, n, chunk_size):
        centred = features[start : start + chunk_size].astype(np.float64) - mean  # [c, D]
        scatter += centred.T @ centred
    cov = scatter / (n - 1)  # [D, D]
    return mean, cov


def _trace_sqrt_product_eigh(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """Tr((C1 C2)^(1/2)) for symmetric PSD C1, C2 via two symmetric eigendecompositions.

    C1 C2 is similar to the symmetric PSD matrix C1^(1/2) C2 C1^(1/2), so the eigenvalues of
    (C1 C2)^(1/2) are the square roots of that matrix's (real, non-negative) eigenvalues.
    Round-off can make tiny eigenvalues slightly negative; they are clipped to 0.
    """
    w1, v1 = np.linalg.eigh(cov1)
    sqrt1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T  # [D, D]
    inner = sqrt1 @ cov2 @ sqrt1
    inner = 0.5 * (inner + inner.T)  # exact symmetry for eigvalsh
    eig = np.linalg.eigvalsh(inner)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def _trace_sqrt_product_sqrtm(cov1: np.ndarray, cov2: np.ndarray, eps: float) -> float:
    """Tr((C1 C2)^(1/2)) with scipy.linalg.sqrtm, as in the reference FID code.

    When the product is singular (non-finite root or large residual), both covariances are
    offset by eps * I. Tiny imaginary parts from round-off are dropped; a large one means the
    inputs are not valid covariances and raises.
    """

    def root(a: np.ndarray) -> np.ndarray:
        s = scipy.linalg.sqrtm(a)
        if not np.all(np.isfinite(s)):
            return None
        resid = np.linalg.norm(s @ s - a) / max(np.linalg.norm(a), np.finfo(np.float64).tiny)
        return s if resid < 1e-6 else None

    covmean = root(cov1 @ cov2)
    if covmean is None:
        offset = eps * np.eye(cov1.shape[0])
        covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = np.max(np.abs(np.diagonal(covmean).imag))
        if max_imag > 1e-3:
            raise ValueError(
                f"sqrtm(cov1 @ cov2) has an imaginary component {max_imag:.3g} on its diagonal; "
                "the covariances are not symmetric positive semi-definite."
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(mu1, cov1, mu2, cov2, *, method: str = "eigh", eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, C1) and N(mu2, C2) (the FID formula of [1]).

        d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).

    Args:
      mu1, mu2: ``[D]`` means.
      cov1, cov2: ``[D, D]`` symmetric PSD covariances.
      method: how Tr((C1 C2)^(1/2)) is computed. ``"eigh"`` (default): eigenvalues of the
        symmetric matrix C1^(1/2) C2 C1^(1/2), which share the spectrum of C1 C2; about 3 s
        for D = 2048 on 2 CPUs and robust to singular covariances (negative round-off
        eigenvalues clipped). ``"sqrtm"``: ``scipy.linalg.sqrtm`` of C1 C2 with an eps * I
        offset when the product is singular, as in the pytorch-fid / TTUR code; about 6x
        slower for D = 2048. Both agree to round-off on valid covariances.
      eps: offset for the ``"sqrtm"`` fallback.

    Returns:
      The squared Frechet distance as a float (FID reports this value, not its root).
    """
    mu1, mu2 = _as_float64(mu1), _as_float64(mu2)
    cov1, cov2 = _as_float64(cov1), _as_float64(cov2)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(
            f"Shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, cov1 {cov1.shape}, "
            f"cov2 {cov2.shape}; expected [D] means and [D, D] covariances."
        )
    if method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(cov1, cov2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrt_product_sqrtm(cov1, cov2, eps)
    else:
        raise ValueError(f"Unknown method {method!r}. Valid methods: eigh, sqrtm.")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_covmean)


def fid(features_a, features_b, *, method: str = "eigh", chunk_size: int = 4096) -> float:
    """FID between two feature sets: ``frechet_distance`` of their Gaussian fits.

    Args:
      features_a, features_b: ``[N_a, D]`` and ``[N_b, D]`` features (METHODS.md asks for at
        least 10,000 images each; the feature network must be named with the result).
      method: see ``frechet_distance``.
      chunk_size: rows per chunk for ``gaussian_stats``.
    """
    mu_a, cov_a = gaussian_stats(features_a, chunk_size=chunk_size)
    mu_b, cov_b = gaussian_stats(features_b, chunk_size=chunk_size)
    return frechet_distance(mu_a, cov_a, mu_b, cov_b, method=method)


# ----------------------------------------------------------------------------------------------
# sKL: 1-nearest-neighbour KL estimator
# ----------------------------------------------------------------------------------------------
# Above this dimension k-d trees degrade towards brute force, and chunked matrix products win.
_KDTREE_MAX_DIM = 8


def _nearest_neighbour_distance(
    queries: np.ndarray, points: np.ndarray, *, exclude_self: bool, chunk_size: int = 1024
) -> np.ndarray:
    """Euclidean distance from each query to its nearest point: ``[n, d], [m, d] -> [n]``.

    ``exclude_self`` (queries is points) skips each query's own index. Low dimensions use a
    k-d tree on both CPUs; higher ones find the neighbour index from chunked squared-distance
    matrices ``|a|^2 + |b|^2 - 2 a.b`` (``[chunk, m]`` at a time) and then recompute the
    distance to it directly, so the expansion's round-off never reaches the result.
    """
    if queries.shape[1] <= _KDTREE_MAX_DIM:
        tree = scipy.spatial.cKDTree(points)
        if exclude_self:
            # k=2: the nearest point to x_i is x_i itself (or an exact duplicate, kept as 0).
            return tree.query(queries, k=2, workers=-1)[0][:, 1]
        return tree.query(queries, k=1, workers=-1)[0]
    sq_points = np.sum(np.square(points), axis=1)  # [m]
    nearest = np.empty(queries.shape[0], np.int64)
    for start in range(0, queries.shape[0], chunk_size):
        qc = queries[start : start + chunk_size]  # [c, d]
        sq_dist = sq_points - 2.0 * qc @ points.T  # [c, m], |q|^2 omitted: same for a row
        if exclude_self:
            rows = np.arange(qc.shape[0])
            sq_dist[rows, start + rows] = np.inf
        nearest[start : start + chunk_size] = np.argmin(sq_dist, axis=1)
    return np.linalg.norm(queries - points[nearest], axis=1)


def knn_kl_divergence(p_samples, q_samples) -> float:
    """1-NN estimate of KL(P || Q) from samples (Perez-Cruz 2008 [2]).

        KL(P || Q) ~ (d / n) * sum_i log(s_i / r_i) + log(m / (n - 1)),

    r_i the Euclidean distance from x_i ~ P to its nearest other P sample, s_i the distance
    to its nearest Q sample. Nearest neighbours come from ``scipy.spatial.cKDTree`` for d <= 8
    and from chunked distance matrices above (about 0.1 s for n = m = 5,000 at d = 32).

    Args:
      p_samples: ``[n, d]`` samples of P, n >= 2.
      q_samples: ``[m, d]`` samples of Q.

    Returns:
      The estimate as a float. It is consistent but not exact: expect a bias of a few
      hundredths of a nat for d = 2 and n = m = 5,000, and larger in higher dimensions.

    Raises:
      ValueError: if a distance is zero (duplicated samples), where the estimator diverges.
    """
    p = _as_float64(p_samples)
    q = _as_float64(q_samples)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1] or p.shape[0] < 2:
        raise ValueError(
            f"p_samples [n, d] (n >= 2) and q_samples [m, d] must share d; got {p.shape} and "
            f"{q.shape}."
        )
    n, d = p.shape
    m = q.shape[0]
    r = _nearest_neighbour_distance(p, p, exclude_self=True)  # [n]
    s = _nearest_neighbour_distance(p, q, exclude_self=False)  # [n]
    if np.any(r <= 0) or np.any(s <= 0):
        raise ValueError(
            "knn_kl_divergence: a nearest-neighbour distance is zero (duplicated samples); "
            "the 1-NN estimator is undefined."
        )
    return float(d * np.mean(np.log(s / r)) + math.log(m / (n - 1)))


def symmetric_kl(p_samples, q_samples) -> float:
    """sKL = KL(P || Q) + KL(Q || P), both by ``knn_kl_divergence`` (the dpVAE sKL [3])."""
    return knn_kl_divergence(p_samples, q_samples) + knn_kl_divergence(q_samples, p_samples)


def symmetric_kl_standard_error(p_samples, q_samples, *, folds: int = 5) -> float:
    """The sampling error of ``symmetric_kl`` on these samples, by batch means: the sKL of
    ``folds`` disjoint slices (the i-th of every ``folds`` rows of P and of Q), their standard
    deviation over sqrt(folds).

    Each slice holds 1/folds of the samples, and the 1-NN estimator's variance grows about as
    1/n, so this approximates the standard deviation of the estimate on all samples. It is
    large: for two-dimensional codes and n = 2,000 about 0.05-0.1 nats (issue 17), the size of
    the differences between models that the sKL is used to rank.
    """
    p, q = _as_float64(p_samples), _as_float64(q_samples)
    if folds < 2 or min(len(p), len(q)) < 2 * folds:
        raise ValueError(
            f"need folds >= 2 and at least 2 samples per fold; got {folds} folds "
            f"for {len(p)} and {len(q)} samples."
        )
    values = [symmetric_kl(p[i::folds], q[i::folds]) for i in range(folds)]
    return float(np.std(values, ddof=1) / math.sqrt(folds))


# ----------------------------------------------------------------------------------------------
# Aggregate posterior, sample selection, leakage
# ----------------------------------------------------------------------------------------------
def log_standard_normal(z) -> np.ndarray:
    """log N(z; 0, I) summed over the last axis: ``[..., d] -> [...]`` (float64).

    This is l(z) of the leakage metric with f = identity; for dp models pass g(z).
    """
    z = _as_float64(z)
    return -0.5 * np.sum(LOG_2PI + np.square(z), axis=-1)


def log_aggregate_posterior(z, z_mean, z_log_var, *, chunk_size: int = 1024) -> np.ndarray:
    """Log density of the aggregate posterior q(z) = (1/N) sum_n N(z; mu_n, diag sigma_n^2).

        log q(z) = logsumexp_n log N(z; mu_n, sigma_n^2) - log N.

    Chunked over both the query points and the N encoded points: each block is a
    ``[chunk, chunk]`` float64 matrix and blocks along N are merged by a streaming logsumexp.
    The quadratic form is expanded into matrix products,
    sum_j (z_j - mu_nj)^2 / s_nj^2 = z^2 . (1/s_n^2) - 2 z . (mu_n/s_n^2) + mu_n^2 . (1/s_n^2),
    which is exact to float64 round-off for realistic scales and much faster than
    broadcasting a ``[M, N, d]`` difference.

    Args:
      z: ``[M, d]`` query points.
      z_mean: ``[N, d]`` encoder means mu_n.
      z_log_var: ``[N, d]`` encoder log-variances log sigma_n^2.
      chunk_size: block size along M and along N.

    Returns:
      ``[M]`` float64 log q(z).
    """
    z = _as_float64(z)
    mu = _as_float64(z_mean)
    log_var = _as_float64(z_log_var)
    if z.ndim != 2 or mu.shape != log_var.shape or mu.ndim != 2 or mu.shape[1] != z.shape[1]:
        raise ValueError(
            f"Expected z [M, d], z_mean [N, d], z_log_var [N, d]; got {z.shape}, {mu.shape}, "
            f"{log_var.shape}."
        )
    num_enc, d = mu.shape
    prec = np.exp(-log_var)  # [N, d]
    mu_prec = mu * prec  # [N, d]
    # Per-component constant: log N(z; mu_n, s_n) = -0.5 * (quad + const_n).
    const = np.sum(mu * mu_prec, axis=1) + np.sum(log_var, axis=1) + d * LOG_2PI  # [N]
    out = np.empty(z.shape[0], np.float64)
    for m0 in range(0, z.shape[0], chunk_size):
        zc = z[m0 : m0 + chunk_size]  # [cm, d]
        acc = np.full(zc.shape[0], -np.inf)  # running logsumexp over n, [cm]
        for n0 in range(0, num_enc, chunk_size):
            sl = slice(n0, n0 + chunk_size)
            quad = np.square(zc) @ prec[sl].T - 2.0 * zc @ mu_prec[sl].T  # [cm, cn]
            log_dens = -0.5 * (quad + const[sl])  # [cm, cn]
            acc = np.logaddexp(acc, scipy.special.logsumexp(log_dens, axis=1))
        out[m0 : m0 + chunk_size] = acc
    return out - math.log(num_enc)


def select_lowest(values, fraction: float) -> np.ndarray:
    """Indices of the lowest ``fraction`` of ``values``, lowest first.

    Keeps k = max(1, round(fraction * M)) indices; ties keep input order (stable sort).

    Args:
      values: ``[M]`` scores (log-densities).
      fraction: in (0, 1].

    Returns:
      ``[k]`` int64 indices into ``values``, ordered by increasing value.
    """
    values = _as_float64(values)
    if values.ndim != 1:
        raise ValueError(f"values must be [M], got shape {values.shape}.")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    if np.any(np.isnan(values)):
        raise ValueError("values contain NaN; the ranking would be undefined.")
    k = max(1, int(round(fraction * values.shape[0])))
    return np.argsort(values, kind="stable")[:k]


def low_posterior_indices(log_q, fraction: float) -> np.ndarray:
    """Low-posterior (LP) samples [3]: prior samples ranked by log q(z), lowest ``fraction``.

    Args:
      log_q: ``[M]`` aggregate-posterior log-density of M prior samples
        (``log_aggregate_posterior``; for dp models the prior samples are g^-1(eps)).
      fraction: in (0, 1].

    Returns:
      Indices of the prior samples that fall in latent pockets, lowest log q first.
    """
    return select_lowest(log_q, fraction)


def high_posterior_indices(log_prior, fraction: float) -> np.ndarray:
    """High-posterior (HP) samples [3]: posterior samples ranked by prior log-density.

    Args:
      log_prior: ``[M]`` prior log-density of M aggregate-posterior samples.
      fraction: in (0, 1].

    Returns:
      Indices of the posterior samples that leak outside the prior mass, lowest first.
    """
    return select_lowest(log_prior, fraction)


def leakage_curve(log_base_density, log_q, thresholds) -> dict[str, np.ndarray]:
    """Leakage of the aggregate posterior as curves over a threshold tau ([3], Eq. 6).

    With l(z) = log N(f(z); 0, I) (f = identity for a standard-normal prior, f = g for dp),
    the aggregate-posterior samples with l(z) < tau lie in the leakage region. For each tau
    this returns the fraction of samples in the region and their mean log q(z) (lower is
    better for both). The fraction is non-decreasing in tau.

    Args:
      log_base_density: ``[M]`` l(z) of M aggregate-posterior samples.
      log_q: ``[M]`` log q(z) of the same samples.
      thresholds: ``[T]`` values of tau.

    Returns:
      ``{"threshold": [T], "fraction": [T], "mean_log_q": [T]}``; ``mean_log_q`` is NaN where
      no sample lies below tau.
    """
    base = _as_float64(log_base_density)
    log_q = _as_float64(log_q)
    taus = _as_float64(thresholds)
    if base.ndim != 1 or base.shape != log_q.shape or taus.ndim != 1:
        raise ValueError(
            f"Expected log_base_density [M], log_q [M], thresholds [T]; got {base.shape}, "
            f"{log_q.shape}, {taus.shape}."
        )
    order = np.argsort(base, kind="stable")
    sorted_base = base[order]
    # cum_log_q[k] = sum of log q over the k samples with the smallest l(z).
    cum_log_q = np.concatenate([[0.0], np.cumsum(log_q[order])])  # [M + 1]
    counts = np.searchsorted(sorted_base, taus, side="left")  # #{l(z) < tau}, [T]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_log_q = np.where(counts > 0, cum_log_q[counts] / counts, np.nan)
    return {
        "threshold": taus,
        "fraction": counts / base.shape[0],
        "mean_log_q": mean_log_q,
    }


# ----------------------------------------------------------------------------------------------
# Importance-sampled likelihood
# ----------------------------------------------------------------------------------------------
def _log_normal_diag(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(z; mean, diag exp(log_var)) summed over the last axis: [..., d] -> [...]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var), axis=-1)


def importance_sampled_bounds(
    x,
    *,
    encode_fn: Callable,
    log_likelihood_fn: Callable,
    prior_log_prob_fn: Callable,
    num_samples: int,
    chunk_size: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Importance-sampled log p(x) and the ELBO from the same K samples [4].

        log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x),   z_k ~ q(z | x),
        log p(x) ~ logsumexp_k log w_k - log K,   ELBO ~ (1/K) sum_k log w_k.

    By Jensen's inequality the first is >= the second for every example, and its expectation
    increases to log p(x) as K grows. Samples are drawn ``chunk_size`` at a time; each chunk
    calls the decoder and prior once on ``chunk_size * B`` rows and is folded into a float64
    streaming logsumexp, so memory does not grow with K.

    Args:
      x: ``[B, ...]`` a batch of data.
      encode_fn: ``x -> (z_mean [B, d], z_log_var [B, d])`` parameterizing
        q(z|x) = N(mu, diag exp(log_var)).
      log_likelihood_fn: ``(x [R, ...], z [R, d]) -> [R]`` log p(x | z) summed over the data
        dimensions.
      prior_log_prob_fn: ``z [..., d] -> [...]`` log p(z) (for dp models the full decoupled
        density, log-determinant included).
      num_samples: K.
      chunk_size: importance samples per decoder call (the call sees ``chunk_size * B`` rows).
      seed: integer seed; chunk c uses the stateless seed (seed, c).

    Returns:
      ``{"log_px": [B], "elbo": [B]}`` as float64 NumPy arrays, in nats.
    """
    if num_samples < 1 or chunk_size < 1:
        raise ValueError(f"num_samples ({num_samples}) and chunk_size ({chunk_size}) must be >= 1.")
    x = tf.convert_to_tensor(x)
    z_mean, z_log_var = encode_fn(x)
    z_mean = tf.convert_to_tensor(z_mean)  # [B, d]
    z_log_var = tf.convert_to_tensor(z_log_var, dtype=z_mean.dtype)  # [B, d]
    batch = tf.shape(z_mean)[0]
    x_rank = len(x.shape)
    z_std = tf.exp(0.5 * z_log_var)

    running_lse = None  # [B] float64 logsumexp of the log weights seen so far
    running_sum = None  # [B] float64 sum of the log weights seen so far
    for chunk, start in enumerate(range(0, num_samples, chunk_size)):
        k = min(chunk_size, num_samples - start)
        eps = tf.random.stateless_normal(
            tf.stack([k, batch, tf.shape(z_mean)[1]]), seed=[seed, chunk], dtype=z_mean.dtype
        )
        z = z_mean + z_std * eps  # [k, B, d]
        log_q = _log_normal_diag(z, z_mean, z_log_var)  # [k, B]
        z_flat = tf.reshape(z, [-1, tf.shape(z)[-1]])  # [k*B, d], sample-major
        x_tiled = tf.tile(x, [k] + [1] * (x_rank - 1))  # [k*B, ...], same order as z_flat
        log_lik = tf.reshape(log_likelihood_fn(x_tiled, z_flat), [k, batch])  # [k, B]
        log_prior = tf.reshape(prior_log_prob_fn(z_flat), [k, batch])  # [k, B]
        log_w = tf.cast(log_lik, tf.float64) + tf.cast(log_prior, tf.float64)
        log_w = log_w - tf.cast(log_q, tf.float64)  # [k, B]
        chunk_lse = tf.reduce_logsumexp(log_w, axis=0)  # [B]
        chunk_sum = tf.reduce_sum(log_w, axis=0)  # [B]
        if running_lse is None:
            running_lse, running_sum = chunk_lse, chunk_sum
        else:
            running_lse = tf.reduce_logsumexp(tf.stack([running_lse, chunk_lse]), axis=0)
            running_sum = running_sum + chunk_sum
    log_px = running_lse.numpy() - math.log(num_samples)
    elbo = running_sum.numpy() / num_samples
    return {"log_px": log_px, "elbo": elbo}


def importance_sampled_log_likelihood(
    x,
    *,
    encode_fn: Callable,
    log_likelihood_fn: Callable,
    prior_log_prob_fn: Callable,
    num_samples: int,
    chunk_size: int,
    seed: int,
) -> np.ndarray:
    """Importance-sampled log p(x), ``[B]`` float64 nats; see ``importance_sampled_bounds``.

    The NLL is ``-log_px``. Use ``importance_sampled_bounds`` to also get the ELBO from the
    same samples.
    """
    return importance_sampled_bounds(
        x,
        encode_fn=encode_fn,
        log_likelihood_fn=log_likelihood_fn,
        prior_log_prob_fn=prior_log_prob_fn,
        num_samples=num_samples,
        chunk_size=chunk_size,
        seed=seed,
    )["log_px"]


def bits_per_dim(nll_nats, num_dims: int):
    """Converts an NLL in nats per example to bits per data dimension: nll / (D * ln 2)."""
    return np.asarray(nll_nats, dtype=np.float64) / (num_dims * math.log(2.0))


# ----------------------------------------------------------------------------------------------
# Posterior collapse (He et al. 2019)
# ----------------------------------------------------------------------------------------------
def mutual_information(z_mean, z_log_var, seed: int) -> float:
    """He et al.'s [5] minibatch estimate of I(x; z) under q(z|x) p_data(x).

        MI = E_x[E_q(z|x) log q(z|x)] - E_q(z)[log q(z)],

    the first term in closed form (negative entropy, -0.5 d log 2pi - 0.5 sum_j (1 + log
    sigma_j^2)), the second with one z_i ~ q(z|x_i) per example and
    log q(z_i) = logsumexp_j log q(z_i | x_j) - log B over the same batch (``calc_mi`` in
    jxhe/vae-lagging-encoder). The estimate is at most about log B. He et al. report the
    example-weighted mean of this estimate over the batches of the evaluation set.

    Args:
      z_mean: ``[B, d]`` encoder means for one batch.
      z_log_var: ``[B, d]`` encoder log-variances.
      seed: seed for the one z per example.

    Returns:
      The estimate in nats.
    """
    mu = _as_float64(z_mean)
    log_var = _as_float64(z_log_var)
    if mu.ndim != 2 or mu.shape != log_var.shape:
        raise ValueError(f"Expected z_mean, z_log_var [B, d]; got {mu.shape}, {log_var.shape}.")
    d = mu.shape[1]
    neg_entropy = np.mean(-0.5 * d * LOG_2PI - 0.5 * np.sum(1.0 + log_var, axis=1))
    rng = np.random.default_rng(seed)
    z = mu + np.exp(0.5 * log_var) * rng.standard_normal(mu.shape)  # [B, d]
    log_qz = log_aggregate_posterior(z, mu, log_var)  # [B]
    return float(neg_entropy - np.mean(log_qz))


def activity(z_means) -> np.ndarray:
    """Per-dimension activity A_j = Var_x(E_q[z_j | x]) [5]: ``[N, d] -> [d]``.

    Uses the unbiased 1/(N-1) variance, as He et al.'s ``calc_au``.
    """
    z_means = _as_float64(z_means)
    if z_means.ndim != 2 or z_means.shape[0] < 2:
        raise ValueError(f"z_means must be [N, d] with N >= 2, got shape {z_means.shape}.")
    return np.var(z_means, axis=0, ddof=1)


def active_units(z_means, threshold: float = 0.01) -> int:
    """AU = #{j : A_j > threshold} [5] (He et al.'s default threshold 0.01)."""
    return int(np.sum(activity(z_means) > threshold))


# ----------------------------------------------------------------------------------------------
# MaskAAE
# ----------------------------------------------------------------------------------------------
def nac(codes, active_mask) -> float:
    """Normalized absolute covariance (NAC) of the active latent dimensions [6].

        NAC = mean_{i != j} |Cov(z_i, z_j)| / sqrt(Var z_i Var z_j),   i, j active,

    i.e. the mean absolute off-diagonal correlation. 0 for independent codes, 1 when every
    active dimension is an affine function of one other. Inactive (masked) dimensions are
    left out so they cannot dilute the mean.

    Args:
      codes: ``[N, d]`` encoded latent vectors.
      active_mask: ``[d]`` bool, True for active dimensions (MaskAAE: alpha_j >= 0.1).

    Returns:
      NAC as a float; NaN when fewer than two dimensions are active (no pairs).

    Raises:
      ValueError: if an active dimension has zero variance (correlation undefined).
    """
    codes = _as_float64(codes)
    mask = np.asarray(active_mask, dtype=bool)
    if codes.ndim != 2 or mask.shape != (codes.shape[1],):
        raise ValueError(
            f"Expected codes [N, d] and active_mask [d]; got {codes.shape}, {mask.shape}."
        )
    active = codes[:, mask]  # [N, a]
    num_active = active.shape[1]
    if num_active < 2:
        return float("nan")
    cov = np.cov(active, rowvar=False)  # [a, a]
    std = np.sqrt(np.diag(cov))
    if np.any(std <= 0):
        raise ValueError("nac: an active dimension has zero variance; correlation undefined.")
    corr = np.abs(cov / np.outer(std, std))
    off_diag_sum = corr.sum() - np.trace(corr)
    return float(off_diag_sum / (num_active * (num_active - 1)))
