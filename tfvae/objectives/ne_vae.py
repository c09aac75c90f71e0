"""NE-VAE (neighbor embedding VAE): loss = -ELBO + lambda * L_re, a re-encoding loss.

Reference: Neighbor Embedding Variational Autoencoder (NE-VAE), eqs. 6-9; METHODS.md section 5.
The decoder's reconstruction of x serves as an artificial neighbour of x; re-encoding it should
land close to x's own code:

    z ~ q(z|x),   x_hat = E[x | z] (decoder mean),   z' ~ q(z | x_hat),
    se:     L_re = (1/d) * sum_j (z_j - z'_j)^2                                   (eq. 7)
    lp(c):  L_re = sum_j max(-log N(z_j; mu_j(x_hat), sigma_j^2(x_hat)), c)       (eqs. 8-9)

c caps each dimension's negative log-likelihood from below: once z_j is already that likely under
the re-encoded posterior, dimension j contributes no gradient. c = -inf (or None) is the
uncapped version, which the paper notes drives sigma(x_hat) towards 0.

For an autoregressive (PixelCNN) decoder x_hat is the per-pixel mean from the same teacher-forced
pass that gives the reconstruction term, so the re-encoding costs one extra encoder pass only.
Gradients flow through z, x_hat (into the decoder) and z': the paper states no stop-gradient.
The KL annealing weight of ``Autoencoder.kl_weight`` multiplies the KL term only.

The paper gives no value for lambda; ``configs/nevae_se.py`` and ``configs/nevae_lp.py`` take it
as the ``lambda=`` argument (default 1).
"""

import math

import tensorflow as tf

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.models import Autoencoder

REENCODINGS = ("se", "lp")


def squared_error_reencoding(z: tf.Tensor, z_re: tf.Tensor) -> tf.Tensor:
    """se: (1/d) * sum_j (z_j - z'_j)^2: [B, d], [B, d] -> [B] (NE-VAE eq. 7)."""
    return tf.reduce_mean(tf.square(z - z_re), axis=-1)


def log_prob_reencoding(
    z: tf.Tensor, z_mean_re: tf.Tensor, z_log_var_re: tf.Tensor, c: float | None
) -> tf.Tensor:
    """lp(c): sum_j max(-log N(z_j; mu'_j, sigma'^2_j), c): [B, d] each -> [B] (eqs. 8-9).

    Args:
      z: codes of x, z ~ q(z|x).
      z_mean_re, z_log_var_re: q(z | x_hat), the posterior of the reconstruction.
      c: the per-dimension cap; None or -inf for the uncapped sum.
    """
    nll = 0.5 * (
        losses.LOG_2PI + z_log_var_re + tf.square(z - z_mean_re) * tf.exp(-z_log_var_re)
    )  # [B, d]
    if c is not None and not math.isinf(c):
        # Where nll_j < c the maximum picks the constant, so dimension j has zero gradient.
        nll = tf.maximum(nll, tf.cast(c, nll.dtype))
    return tf.reduce_sum(nll, axis=-1)


def reencode(model: Autoencoder, parts: dict, training: bool, seed=None) -> dict:
    """Re-encodes the decoder mean of ``parts`` (from ``model.elbo_parts`` or alike).

    Args:
      model: a stochastic tfvae model.
      parts: holds ``params``, the decoder's likelihood parameters for z ~ q(z|x).
      training: passed to the encoder.
      seed: seed of z' = mu' + sigma' * eps'; the model's seed generator when None.

    Returns:
      ``x_hat`` [B, ...], ``z_mean``, ``z_log_var`` and ``z`` of q(z | x_hat), each [B, d].
    """
    x_hat = model.likelihood.mean(parts["params"])  # [B, ...]: the decoder mean
    z_mean, z_log_var = model.encode(x_hat, training=training)  # [B, d] each
    z = losses.reparameterize(z_mean, z_log_var, model.seed_generator if seed is None else seed)
    return {"x_hat": x_hat, "z_mean": z_mean, "z_log_var": z_log_var, "z": z}


class NEVAE(Autoencoder):
    """loss = recon + w_t * KL + lambda * L_re, L_re the ``se`` or ``lp(c)`` re-encoding loss.

    Works with either prior: the KL term is the prior's (``tfvae.priors``) and the re-encoding
    compares codes in the representation space z.

    Args:
      reencoding: "se" (squared error, eq. 7) or "lp" (capped negative log-likelihood, eq. 8).
      lambda_: the weight lambda of L_re (``lambda_`` since ``lambda`` is a keyword).
      c: the lp cap per dimension; None or -inf: uncapped. Ignored by "se".
    """

    terms = ("loss", "recon", "kl", "reencode")

    def __init__(
        self, *, reencoding: str = "se", lambda_: float = 1.0, c: float | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        if reencoding not in REENCODINGS:
            raise InvalidValue(f"Unknown reencoding {reencoding!r}; valid: {list(REENCODINGS)}.")
        if lambda_ < 0:
            raise InvalidValue(f"lambda_ must be >= 0, got {lambda_}.")
        if c is not None and math.isnan(c):
            raise InvalidValue("c is NaN; use None or -inf for the uncapped lp loss.")
        if c is not None and c == math.inf:
            raise InvalidValue("c = +inf drops the lp loss entirely; use lambda_ = 0 instead.")
        self.reencoding, self.lambda_, self.c = reencoding, lambda_, c

    def reencoding_loss(self, z: tf.Tensor, re: dict) -> tf.Tensor:
        """L_re per example [B] for codes z [B, d] and the re-encoding ``re`` of ``reencode``."""
        if self.reencoding == "se":
            return squared_error_reencoding(z, re["z"])
        return log_prob_reencoding(z, re["z_mean"], re["z_log_var"], self.c)

    def loss_terms(self, batches, training):
        x = batches[0]
        parts = self.elbo_parts(x, training)
        re = reencode(self, parts, training)
        l_re = self.reencoding_loss(parts["z"], re)  # [B]
        recon, kl = parts["recon"], parts["kl"]  # [B] each
        loss = recon + self.kl_weight() * kl + self.lambda_ * l_re
        return {"loss": loss, "recon": recon, "kl": kl, "reencode": l_re}
