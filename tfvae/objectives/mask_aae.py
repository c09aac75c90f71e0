"""MaskAAE (Mondal et al. 2020): an AAE with a learned relaxed-binary mask on the latent space.

Reference: Mondal et al. MaskAAE: Latent space optimization
for Adversarial Auto-Encoders. UAI 2020, sec. 4 and supp. sec. 8 (eqs. 10, 14-17, Algorithm 1);
settings read from the authors' TF1 code (MNIST), github.com/arnabkmondal/MaskAAE.

The mask is alpha = 1 - exp(-m), m >= 0 trainable, m_j ~ U(0, 5) at the start; dimension j is
active when alpha_j >= 0.1. The decoder and the WGAN-GP critic D see masked codes alpha * z;
the critic's other input is masked prior samples alpha * eps; generation decodes alpha * eps.
Four losses per step, in turn, each with its own RMSProp optimizer and minibatch:

1. autoencoder (``main``; encoder, decoder), supp. eq. 14:
   L_AE = BCE(x, G(alpha z)) + 100 * mean_{b,j} (mean_b' z_b'j - z_bj)^2 exp(-10 alpha_j^2);
2. critic (``adversary``), 5 updates, supp. eq. 16:
   L_D = mean D(alpha z) - mean D(alpha eps) + 10 * GP;
3. generator (``generator``; encoder only), supp. eq. 15: L_G = -mean D(alpha z);
4. mask (``mask``; m only), eq. 10 / supp. eq. 17:
   L_M = 1000 * BCE(x, G(alpha z)) + (1 - (mean D(alpha z) - mean D(alpha eps)))^2
         + c * sum_j |(1 - alpha_j) alpha_j|.

Schedules (authors' code), with R = 75 if d <= 20 else min(10000, floor(1125 d / 10)):
c = min(2048, (2 / d) * 2^floor(t / 4R)) at (0-based) step t, computed from ``model.step``; the
autoencoder's and the mask's learning rates drop 5x after step 5R (configs express this as a
``piecewise_constant`` schedule driven by the optimizer's own, checkpointed, iteration count).
The authors write the drop as a factor on the loss, which RMSProp's gradient normalization all
but cancels; tfvae drops the learning rate itself, as the paper intends.

BCE is the per-pixel mean (the authors' Keras ``BinaryCrossentropy``), so
``recon_reduction = "mean"``: the weights 100 and 1000 assume it.
"""

import keras
import tensorflow as tf

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.models import Phase, keeping_state
from tfvae.objectives.aae import AAE
from tfvae.objectives.wae_mmd import (
    batch_size,
    deterministic_reconstruction,
    reduce_reconstruction,
)


def poly_weight_at(step, *, start: float, interval: int, maximum: float) -> float:
    """c(t) = min(maximum, start * 2^floor(t / (4 R))): the closed form, for checks and plots."""
    return min(maximum, start * 2.0 ** (int(step) // (4 * interval)))


class LatentMask(keras.layers.Layer):
    """Relaxed-binary latent mask alpha = 1 - exp(-m), m >= 0: z [B, d] -> alpha * z [B, d].

    alpha lies in [0, 1) (in float32 it rounds to 1.0 once m > ~16.6) and is increasing in m; the
    non-negativity constraint on m is applied by the optimizer after each update (Keras 3), as
    the authors' ``NonNeg`` constraint.

    Args:
      latent_dim: d.
      init_max: m_j ~ U(0, init_max) at the start (the authors' 5).
      threshold: dimension j is active when alpha_j >= threshold (0.1).
      seed: seeds the initializer.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        init_max: float = 5.0,
        threshold: float = 0.1,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_dim, self.init_max, self.threshold = latent_dim, init_max, threshold
        self.m = self.add_weight(
            shape=(latent_dim,),
            initializer=keras.initializers.RandomUniform(0.0, init_max, seed=seed),
            constraint=keras.constraints.NonNeg(),
            trainable=True,
            name="m",
        )
        self.built = True

    def alpha(self) -> tf.Tensor:
        """alpha = 1 - exp(-m): [d] (``-expm1(-m)``, exact for small m)."""
        return -tf.math.expm1(-tf.convert_to_tensor(self.m))

    def active(self) -> tf.Tensor:
        """Bool [d]: alpha_j >= threshold."""
        return self.alpha() >= self.threshold

    def num_active(self) -> tf.Tensor:
        """Number of active dimensions, float32 scalar."""
        return tf.reduce_sum(tf.cast(self.active(), tf.float32))

    def call(self, z):
        return z * self.alpha()

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "init_max": self.init_max,
            "threshold": self.threshold,
        }


class MaskAAE(AAE):
    """Args (the authors' values are the defaults):
    schedule_interval: R, the steps per quarter of c's doubling period (the authors' rule of d
      is ``configs.mask_aae.authors_interval``).
    poly_weight_start: c at step 0; ``None`` takes 2 / d.
    poly_weight_max: c's cap (2048).
    variance_weight: weight of the variance penalty in L_AE (100).
    variance_sharpness: the 10 in exp(-10 alpha^2).
    mask_recon_weight: weight of the reconstruction term in L_M (1000).
    mask_init_max, active_threshold, seed: see ``LatentMask`` (``seed`` also seeds sampling).
    adversarial_loss, adversary_steps, gradient_penalty_weight, recon_reduction: see ``AAE``.

    ``encode`` returns the unmasked codes z; ``decode``, ``decoder_params`` and the critic apply
    the mask, so ``generate`` decodes masked prior samples and every decoder call sees alpha * z.
    One step consumes ``adversary_steps + 3`` minibatches.
    """

    terms = AAE.terms + ("variance", "mask_loss", "poly_reg", "poly_weight", "active_dims")
    optimizer_names = ("main", "adversary", "generator", "mask")

    def __init__(
        self,
        *,
        schedule_interval: int,
        poly_weight_start: float | None = None,
        poly_weight_max: float = 2048.0,
        variance_weight: float = 100.0,
        variance_sharpness: float = 10.0,
        mask_recon_weight: float = 1000.0,
        mask_init_max: float = 5.0,
        active_threshold: float = 0.1,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        if self.autoregressive:
            raise InvalidValue(
                "MaskAAE decodes the likelihood mean of masked codes; an autoregressive decoder "
                f"({self.decoder.name!r}) is not supported."
            )
        d = self.latent_dim
        self.schedule_interval = schedule_interval
        self.poly_weight_start = 2.0 / d if poly_weight_start is None else poly_weight_start
        self.poly_weight_max = poly_weight_max
        self.variance_weight = variance_weight
        self.variance_sharpness = variance_sharpness
        self.mask_recon_weight = mask_recon_weight
        self.latent_mask = LatentMask(
            d, init_max=mask_init_max, threshold=active_threshold, seed=seed, name="latent_mask"
        )
        self.batches_per_step += 1  # the mask's own minibatch

    # ------------------------------------------------------------------------------------------
    # The mask in front of the decoder and the critic
    # ------------------------------------------------------------------------------------------
    def alpha(self) -> tf.Tensor:
        """The mask alpha [d]."""
        return self.latent_mask.alpha()

    def active_mask(self) -> tf.Tensor:
        """Bool [d]: the active dimensions (alpha_j >= threshold)."""
        return self.latent_mask.active()

    def adversary_input(self, z):
        return self.latent_mask(z)

    def decoder_params(self, z, x=None, training=False):
        return super().decoder_params(self.latent_mask(z), x, training=training)

    def decode(self, z, seed=None):
        # Not ``super().decode``: it may itself go through ``decoder_params`` and mask twice.
        del seed  # the decoder is not autoregressive (checked in __init__)
        return self.likelihood.mean(self.decoder_params(z))

    def poly_weight(self) -> tf.Tensor:
        """c at the current step: min(max, start * 2^floor(step / 4R)), float32 scalar."""
        doublings = tf.cast(self.step // (4 * self.schedule_interval), tf.float32)
        return tf.minimum(self.poly_weight_max, self.poly_weight_start * tf.pow(2.0, doublings))

    def vector_summaries(self) -> dict:
        """Per-dimension values the trainer logs with the scalars: the mask alpha [d]."""
        return {"alpha": self.alpha()}

    # ------------------------------------------------------------------------------------------
    # Loss terms
    # ------------------------------------------------------------------------------------------
    def autoencoder_terms(self, x, training):
        parts = deterministic_reconstruction(self, x, training, self.recon_reduction)
        alpha = tf.stop_gradient(self.alpha())  # the mask has its own phase
        variance = losses.masked_variance_penalty(parts["z"], alpha, self.variance_sharpness)
        loss = parts["recon"] + self.variance_weight * variance  # [B]
        return {"loss": loss, "recon": parts["recon"], "variance": variance}

    def mask_terms(self, x, training):
        with keeping_state(self.encoder, self.decoder, self.adversary):  # m only
            z = tf.stop_gradient(self.encode(x, training=training)[0])  # [B, d]
            params = self.decoder_params(z, x, training=training)  # decoder sees alpha * z
            eps = self.prior.sample(batch_size(z), self.seed_generator)  # [B, d]
            d_codes = self.score(z, training)  # [B]
            d_prior = self.score(eps, training)  # [B]
        recon = reduce_reconstruction(
            self.likelihood.reconstruction_loss(x, params), x, self.recon_reduction
        )  # [B]
        gap = tf.reduce_mean(d_codes) - tf.reduce_mean(d_prior)
        alpha = self.alpha()
        poly = losses.mask_polynomial_regularizer(alpha)
        c = self.poly_weight()
        loss = self.mask_recon_weight * recon + tf.square(1.0 - gap) + c * poly  # [B]
        return {
            "mask_loss": loss,
            "poly_reg": poly,
            "poly_weight": c,
            "active_dims": self.latent_mask.num_active(),
        }

    def phases(self) -> list[Phase]:
        return [
            *super().phases(),
            Phase(
                "mask",
                self._on_batch(self.mask_terms, self.adversary_steps + 2),
                lambda: [self.latent_mask.m],
                loss_key="mask_loss",
            ),
        ]
