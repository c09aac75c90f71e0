"""Loss math as pure functions.

Every function here is free of model state. Per-example terms return a ``[B]`` tensor and are
reduced exactly once, by the model (``tfvae.models.base``); batch-level estimators that have no
per-example form (MMD, the total-correlation estimators' minibatch sums) say so and return a
scalar or a ``[B]`` tensor whose mean is the estimate.

Notation follows METHODS.md: ``z_mean`` and ``z_log_var`` parameterize q(z|x) = N(mu, diag
sigma^2); ``d`` is the latent size, ``B`` the minibatch size and ``N`` the training-set size.

Reduction convention (METHODS.md section 1): reconstruction terms are summed over the data
dimensions of one example, and every objective averages over the minibatch. The dpVAE reference
code sums over the batch too; the reproduction configs fold that factor into their learning
rate and loss weights where it matters and say so in their docstrings.
"""

import math

import tensorflow as tf

from tfvae.errors import InvalidValue

LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(t: tf.Tensor) -> tf.Tensor:
    """Sums all axes but the first: [B, ...] -> [B]."""
    return tf.reduce_sum(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


# ----------------------------------------------------------------------------------------------
# Gaussians
# ----------------------------------------------------------------------------------------------
def log_normal_diag(z: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(z; mean, diag exp(log_var)), summed over the last axis: [..., d] -> [...]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var), axis=-1)


def log_standard_normal(z: tf.Tensor) -> tf.Tensor:
    """log N(z; 0, I), summed over the last axis: [..., d] -> [...]."""
    return -0.5 * tf.reduce_sum(LOG_2PI + tf.square(z), axis=-1)


def gaussian_entropy(z_log_var: tf.Tensor) -> tf.Tensor:
    """H[N(mu, diag sigma^2)] = 0.5 * sum_j log(2 pi e sigma_j^2): [B, d] -> [B]."""
    return 0.5 * tf.reduce_sum(LOG_2PI + 1.0 + z_log_var, axis=-1)


def kl_standard_normal(z_mean: tf.Tensor, z_log_var: tf.Tensor) -> tf.Tensor:
    """Closed-form KL(N(mu, diag sigma^2) || N(0, I)): [B, d] -> [B].

    KL = 0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).
    """
    return 0.5 * tf.reduce_sum(tf.square(z_mean) + tf.exp(z_log_var) - 1.0 - z_log_var, axis=-1)


def reparameterize(z_mean: tf.Tensor, z_log_var: tf.Tensor, seed) -> tf.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) drawn from a Keras seed (generator or int).

    Under a distribution strategy with R replicas, each replica draws the noise of the whole
    global batch [R*B, d] and keeps its own rows, so training on R replicas uses exactly the
    draws of a one-device run with the same global batch.
    """
    import keras  # local: keeps this module importable without building a backend

    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas == 1:
        eps = keras.random.normal(tf.shape(z_mean), seed=seed)
    else:
        shape = tf.shape(z_mean)
        eps = keras.random.normal(tf.concat([[replicas], shape], 0), seed=seed)
        eps = tf.gather(eps, ctx.replica_id_in_sync_group)  # [B, d]
    return z_mean + tf.exp(0.5 * z_log_var) * eps


# ----------------------------------------------------------------------------------------------
# Likelihoods: log p(x|z) per example
# ----------------------------------------------------------------------------------------------
def bernoulli_log_likelihood(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """sum_i [x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i)]: [B, ...] -> [B].

    Valid for x in [0, 1] (the continuous Bernoulli normalizer is not included, as in the papers).
    """
    return -_sum_event(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))


def weighted_squared_error(x: tf.Tensor, mean: tf.Tensor, weight: float) -> tf.Tensor:
    """w * sum_i (x_i - mean_i)^2: [B, ...] -> [B] (the dpVAE code's ``mse_weight`` loss).

    This is -log p(x|z) of a Gaussian with variance 1/(2w) up to the constant
    ``0.5 * D * log(pi / w)``, see ``gaussian_log_likelihood``.
    """
    return weight * _sum_event(tf.square(x - mean))


def gaussian_log_likelihood(x: tf.Tensor, mean: tf.Tensor, weight: float) -> tf.Tensor:
    """Normalized log N(x; mean, 1/(2w) I): [B, ...] -> [B].

    With sigma^2 = 1/(2w): log p = -w * ||x - mean||^2 - 0.5 * D * log(pi / w).
    """
    num_dims = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    return -weighted_squared_error(x, mean, weight) - 0.5 * num_dims * math.log(math.pi / weight)


# ----------------------------------------------------------------------------------------------
# Total correlation (beta-TCVAE)
# ----------------------------------------------------------------------------------------------
def pairwise_log_density(z: tf.Tensor, z_mean: tf.Tensor, z_log_var: tf.Tensor) -> tf.Tensor:
    """log q(z_i,j | x_k) for every pair of batch members: -> [B, B, d].

    Entry [i, k, j] is log N(z_ij; mu_kj, sigma_kj^2).
    """
    z = z[:, None, :]  # [B, 1, d]
    mean, log_var = z_mean[None, :, :], z_log_var[None, :, :]  # [1, B, d]
    return -0.5 * (LOG_2PI + log_var + tf.square(z - mean) * tf.exp(-log_var))  # [B, B, d]


def _stratified_log_weights(batch_size: int, dataset_size: int, dtype) -> tf.Tensor:
    """Chen et al.'s minibatch-stratified importance weights, log W: [B, B].

    Row i holds the weights that estimate q(z_i) from the minibatch: 1/N on the diagonal (the
    point that produced z_i), 1/M off it, except one entry per row at (N - M) / (N M), M = B - 1.
    """
    n, m = float(dataset_size), float(batch_size - 1)
    strat = (n - m) / (n * m)
    w = tf.fill([batch_size, batch_size], tf.constant(1.0 / m, tf.float64))
    w = tf.linalg.set_diag(w, tf.fill([batch_size], tf.constant(1.0 / n, tf.float64)))
    # One off-diagonal entry per row (the one just before the diagonal, cyclically).
    idx = tf.stack([tf.range(batch_size), (tf.range(batch_size) - 1) % batch_size], axis=1)
    w = tf.tensor_scatter_nd_update(w, idx, tf.fill([batch_size], tf.constant(strat, tf.float64)))
    return tf.cast(tf.math.log(w), dtype)


def total_correlation_terms(
    z: tf.Tensor,
    z_mean: tf.Tensor,
    z_log_var: tf.Tensor,
    *,
    dataset_size: int,
    estimator: str = "mws",
) -> dict[str, tf.Tensor]:
    """Minibatch estimates of log q(z) and log prod_j q(z_j) for each z_i: each [B].

    ``mws`` (minibatch-weighted sampling):
        log q(z_i) ~ logsumexp_k log q(z_i | x_k) - log(B * N).
    ``mss`` (minibatch-stratified sampling): the same sum with Chen et al.'s importance weights.

    Returns ``log_qz``, ``log_prod_qzj`` and ``log_qz_given_x`` (log q(z_i | x_i)), so that
    MI = log_qz_given_x - log_qz, TC = log_qz - log_prod_qzj and DWKL = log_prod_qzj - log p(z)
    (Chen et al. 2018, eq. 2).

    Closed forms (tested): when every example has the same posterior and the same code,
    ``mws`` gives TC = (d - 1) * log(N) exactly (disentanglement_lib's constant), and ``mss``,
    whose weights in each row sum to one, gives TC = 0.
    """
    batch_size = tf.shape(z)[0]
    log_q = pairwise_log_density(z, z_mean, z_log_var)  # [B, B, d]
    if estimator == "mws":
        log_norm = tf.math.log(tf.cast(batch_size, z.dtype) * float(dataset_size))
        log_qz = tf.reduce_logsumexp(tf.reduce_sum(log_q, axis=2), axis=1) - log_norm
        log_prod_qzj = tf.reduce_sum(tf.reduce_logsumexp(log_q, axis=1) - log_norm, axis=1)
    elif estimator == "mss":
        log_w = _stratified_log_weights(int(z.shape[0]), dataset_size, z.dtype)  # [B, B]
        log_qz = tf.reduce_logsumexp(log_w + tf.reduce_sum(log_q, axis=2), axis=1)
        log_prod_qzj = tf.reduce_sum(tf.reduce_logsumexp(log_w[:, :, None] + log_q, axis=1), 1)
    else:
        raise InvalidValue(
            f"Unknown total-correlation estimator {estimator!r}: use 'mws' or 'mss'."
        )
    log_qz_given_x = log_normal_diag(z, z_mean, z_log_var)
    return {"log_qz": log_qz, "log_prod_qzj": log_prod_qzj, "log_qz_given_x": log_qz_given_x}


# ----------------------------------------------------------------------------------------------
# Maximum mean discrepancy (InfoVAE, WAE)
# ----------------------------------------------------------------------------------------------
def _squared_distances(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """||a_i - b_k||^2: [n, d], [m, d] -> [n, m]."""
    return tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=-1)


def mmd_infovae(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Biased (V-statistic) MMD^2 with the InfoVAE authors' kernel; a scalar.

    k(a, b) = exp(-mean_j (a_j - b_j)^2 / d), i.e. exp(-||a - b||^2 / d^2).
    MMD^2 = mean k(a, a') + mean k(b, b') - 2 mean k(a, b) (diagonals included).
    """
    d = tf.cast(tf.shape(a)[1], a.dtype)

    def kernel(u, v):
        return tf.exp(-_squared_distances(u, v) / (d * d))

    return (
        tf.reduce_mean(kernel(a, a))
        + tf.reduce_mean(kernel(b, b))
        - 2 * tf.reduce_mean(kernel(a, b))
    )


WAE_IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def mmd_imq(a: tf.Tensor, b: tf.Tensor, scales=WAE_IMQ_SCALES) -> tf.Tensor:
    """Unbiased MMD^2 with the inverse multiquadric kernel of WAE (Tolstikhin et al. 2018).

    k(a, b) = sum_s C_s / (C_s + ||a - b||^2), C_s = 2 * d * s; diagonals are excluded from the
    within-sample means (U-statistic), so the estimate can be slightly negative.
    """
    n = tf.cast(tf.shape(a)[0], a.dtype)
    m = tf.cast(tf.shape(b)[0], a.dtype)
    d = tf.cast(tf.shape(a)[1], a.dtype)
    daa, dbb, dab = _squared_distances(a, a), _squared_distances(b, b), _squared_distances(a, b)
    total = tf.zeros([], a.dtype)
    for s in scales:
        c = 2.0 * d * s
        kaa, kbb, kab = c / (c + daa), c / (c + dbb), c / (c + dab)
        total += (tf.reduce_sum(kaa) - tf.linalg.trace(kaa)) / (n * (n - 1))
        total += (tf.reduce_sum(kbb) - tf.linalg.trace(kbb)) / (m * (m - 1))
        total -= 2.0 * tf.reduce_mean(kab)
    return total


# ----------------------------------------------------------------------------------------------
# FactorVAE
# ----------------------------------------------------------------------------------------------
def permute_dims(z: tf.Tensor, seed) -> tf.Tensor:
    """Shuffles each latent dimension independently across the batch (Kim & Mnih, Alg. 1).

    Samples of the result follow prod_j q(z_j) when ``z`` follows q(z).
    """
    import keras

    keys = keras.random.uniform(tf.shape(z), seed=seed)  # [B, d]
    order = tf.argsort(keys, axis=0)  # [B, d]: an independent permutation per column
    return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))


# ----------------------------------------------------------------------------------------------
# Adversarial autoencoders (AAE, WAE-GAN, MaskAAE)
# ----------------------------------------------------------------------------------------------
def gradient_penalty(critic, real: tf.Tensor, fake: tf.Tensor, seed, eps: float = 1e-12):
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3), per example: [B, d], [B, d] -> [B].

        GP_b = (||grad_u D(u_b)||_2 - 1)^2,   u_b = fake_b + t_b (real_b - fake_b),
        t_b ~ U[0, 1] (one weight per example).

    The norm is computed as sqrt(sum g^2 + eps): at a zero gradient (a constant critic, a dead
    ReLU region) ``sqrt`` alone has an infinite derivative, which turns the critic's update into
    NaN; with eps the penalty is (sqrt(eps) - 1)^2 ~ 1 and its gradient is finite. For unit-norm
    gradients eps changes the penalty by less than float32 resolution.

    Call it inside the training tape: the inner tape's gradient is recorded by the outer one, so
    the penalty's gradient with respect to the critic's weights is a second derivative.

    Args:
      critic: callable [B, d] -> [B] or [B, 1] scores.
      real, fake: the two samples (their order only changes which end t = 0 picks).
      seed: a Keras seed (generator or int) for the interpolation weights t.
      eps: keeps the norm differentiable at zero.
    """
    import keras

    real, fake = tf.stop_gradient(real), tf.stop_gradient(fake)
    t = keras.random.uniform(tf.concat([tf.shape(real)[:1], [1]], 0), seed=seed)  # [B, 1]
    u = fake + t * (real - fake)  # [B, d]
    with tf.GradientTape() as tape:
        tape.watch(u)
        # The sum's gradient is per example because the critic treats examples independently.
        score = tf.reduce_sum(critic(u))
    grads = tape.gradient(score, u)  # [B, d]
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=-1) + eps)  # [B]
    return tf.square(norm - 1.0)


def masked_variance_penalty(z: tf.Tensor, alpha: tf.Tensor, sharpness: float = 10.0):
    """MaskAAE's variance penalty on masked-out codes, per example: [B, d], [d] -> [B].

        V_b = mean_j (mean_b' z_b'j - z_bj)^2 * exp(-sharpness * alpha_j^2)

    (Mondal et al. 2020, supp. eq. 14; the minibatch mean of V_b is the authors'
    ``reduce_mean(square(reduce_mean(z, 0) - z) * exp(-10 alpha^2))``). The weight is 1 for a
    closed mask entry (alpha_j = 0) and exp(-sharpness) for an open one: the encoder is asked
    not to put information into dimensions the decoder will not see. A batch-level estimator
    (it uses the minibatch mean), given in per-example form.
    """
    weight = tf.exp(-sharpness * tf.square(alpha))  # [d]
    centred = tf.reduce_mean(z, axis=0, keepdims=True) - z  # [B, d]
    return tf.reduce_mean(tf.square(centred) * weight, axis=-1)


def mask_polynomial_regularizer(alpha: tf.Tensor) -> tf.Tensor:
    """sum_j |(1 - alpha_j) alpha_j|: [d] -> scalar (MaskAAE, eq. 10, third term).

    Zero exactly at binary masks; for alpha in [0, 1] its derivative 1 - 2 alpha_j makes gradient
    descent push each entry to the nearer of 0 and 1.
    """
    return tf.reduce_sum(tf.abs((1.0 - alpha) * alpha))
