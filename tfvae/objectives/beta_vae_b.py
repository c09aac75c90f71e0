"""beta-VAE-B (Burgess et al. 2018): loss = recon + gamma * |KL - C|, C rising linearly.

Reference: Burgess et al. Understanding disentangling in beta-VAE. arXiv:1804.03599.
C(t) = min(C_max, C_max * t / C_stop) at training step t. As in Burgess et al. and
disentanglement_lib, |KL - C| is taken of the minibatch-mean KL, so that term is batch-level.
dpVAE authors' MNIST setting: gamma 15, C_max 25, C_stop 1e5.
"""

import tensorflow as tf

from tfvae.errors import InvalidValue
from tfvae.models import Autoencoder


class BetaVAEB(Autoencoder):
    """loss = recon + gamma * |mean_B KL - C(t)|.

    Args:
      gamma: weight of the capacity term.
      c_max: final capacity C_max in nats.
      c_stop_steps: steps over which C rises from 0 to C_max.
    """

    terms = ("loss", "recon", "kl", "capacity")

    def __init__(
        self, *, gamma: float = 15.0, c_max: float = 25.0, c_stop_steps: int = 100_000, **kwargs
    ):
        super().__init__(**kwargs)
        if c_stop_steps <= 0:
            raise InvalidValue(f"c_stop_steps must be > 0, got {c_stop_steps}.")
        self.gamma, self.c_max, self.c_stop_steps = gamma, c_max, c_stop_steps

    def capacity(self) -> tf.Tensor:
        frac = tf.cast(self.step, tf.float32) / float(self.c_stop_steps)
        return self.c_max * tf.minimum(1.0, frac)

    def loss_terms(self, batches, training):
        parts = self.elbo_parts(batches[0], training)
        recon, kl = parts["recon"], parts["kl"]  # [B]
        c = self.capacity()
        capacity_loss = self.gamma * tf.abs(tf.reduce_mean(kl) - c)  # batch-level scalar
        return {"loss": recon + capacity_loss, "recon": recon, "kl": kl, "capacity": c}
