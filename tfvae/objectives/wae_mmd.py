"""WAE-MMD (Tolstikhin et al. 2018): recon + lambda * MMD(q(z), p(z)), deterministic encoder.

Reference: Tolstikhin, Bousquet, Gelly, Schoelkopf. Wasserstein Auto-Encoders. ICLR 2018,
Algorithm 2. https://arxiv.org/abs/1711.01558

    L = E_x c(x, G(E(x))) + lambda * MMD_k(q(z), p(z)),

with q(z) the distribution of the codes z = E(x) of a minibatch and MMD_k the unbiased estimate
against as many prior samples with the inverse multiquadric kernel k(a, b) = sum_s C_s / (C_s +
||a - b||^2), C_s = 2 d s, s in {.1, .2, .5, 1, 2, 5, 10} (``tfvae.losses.mmd_imq``). Generation
decodes prior samples, as for every tfvae model.
"""

import math

import tensorflow as tf

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.models import Autoencoder

RECON_REDUCTIONS = ("sum", "mean")


def deterministic_reconstruction(model, x: tf.Tensor, training: bool, reduction: str) -> dict:
    """Codes and reconstruction loss of a deterministic autoencoder.

    Args:
      model: an ``Autoencoder`` with ``stochastic = False``.
      x: [B, ...] data.
      training: passed to the networks.
      reduction: ``"sum"`` over the data dimensions (tfvae's convention, -log p(x|z)), or
        ``"mean"``, the sum divided by the number of data dimensions D (the MaskAAE authors'
        per-pixel ``BinaryCrossentropy``; their loss weights assume it).

    Returns:
      ``z`` [B, d], ``params`` (decoder output) and ``recon`` [B].
    """
    z, _ = model.encode(x, training=training)  # [B, d]
    params = model.decoder_params(z, x, training=training)
    recon = reduce_reconstruction(model.likelihood.reconstruction_loss(x, params), x, reduction)
    return {"z": z, "params": params, "recon": recon}


def reduce_reconstruction(recon: tf.Tensor, x: tf.Tensor, reduction: str) -> tf.Tensor:
    """[B] summed reconstruction loss -> [B] with ``reduction`` ("sum": as is; "mean": / D)."""
    if reduction not in RECON_REDUCTIONS:
        raise InvalidValue(f"recon_reduction must be one of {RECON_REDUCTIONS}, got {reduction!r}.")
    if reduction == "mean":
        return recon / float(math.prod(x.shape[1:]))
    return recon


def batch_size(t: tf.Tensor):
    """The static batch size when known (keeps shapes static for Keras), else the dynamic one."""
    return t.shape[0] if t.shape[0] is not None else tf.shape(t)[0]


class WAEMMD(Autoencoder):
    """Args:
    lambda_: weight of the MMD term (``lambda_`` since ``lambda`` is a keyword).
    recon_reduction: ``"sum"`` or ``"mean"`` over data dimensions, see
      ``deterministic_reconstruction``.
    kernel_scales: the IMQ kernel's scales s.
    """

    terms = ("loss", "recon", "mmd")
    stochastic = False

    def __init__(
        self,
        *,
        lambda_: float = 10.0,
        recon_reduction: str = "sum",
        kernel_scales: tuple = losses.WAE_IMQ_SCALES,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if recon_reduction not in RECON_REDUCTIONS:
            raise InvalidValue(
                f"recon_reduction must be one of {RECON_REDUCTIONS}, got {recon_reduction!r}."
            )
        self.lambda_ = lambda_
        self.recon_reduction = recon_reduction
        self.kernel_scales = tuple(kernel_scales)

    def loss_terms(self, batches, training):
        parts = deterministic_reconstruction(self, batches[0], training, self.recon_reduction)
        z = parts["z"]  # [B, d]
        prior_z = self.prior.sample(batch_size(z), self.seed_generator)  # [B, d]
        mmd = losses.mmd_imq(z, prior_z, self.kernel_scales)  # batch-level scalar
        loss = parts["recon"] + self.lambda_ * mmd
        return {"loss": loss, "recon": parts["recon"], "mmd": mmd}
