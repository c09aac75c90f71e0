"""AAE / WAE-GAN: a deterministic autoencoder whose codes an adversary on the latent space tells
apart from prior samples.

References:
  [1] Makhzani, Shlens, Jaitly, Goodfellow, Frey. Adversarial Autoencoders. ICLR 2016 workshop,
      sec. 2. https://arxiv.org/abs/1511.05644
  [2] Tolstikhin et al. Wasserstein Auto-Encoders. ICLR 2018, Algorithm 1 (WAE-GAN).
  [3] Gulrajani et al. Improved Training of Wasserstein GANs. NeurIPS 2017, Algorithm 1.
  [4] Mondal et al. MaskAAE: Latent space optimization for Adversarial Auto-Encoders. UAI 2020;
      its code's mask-free model ("AAE", the baseline of its Figure 4) is this class with the
      WGAN-GP critic.

Each training step runs three phases in turn, each with its own optimizer and variables:

1. autoencoder (optimizer ``main``; encoder, decoder, prior): ``loss = recon``;
2. adversary (``adversary``), ``adversary_steps`` updates, each on its own minibatch, as in
   WGAN-GP's Algorithm 1. With eps ~ p(z) and z = E(x):
   ``wgan_gp``: mean D(z) - mean D(eps) + gp_weight * GP   (D: a critic of W1(p(z), q(z)));
   ``gan``:     (BCE(D(eps), 1) + BCE(D(z), 0)) / 2         (D: logits of "prior sample";
                the BCE over the prior samples and codes together, labelled 1 and 0);
3. generator (``generator``; encoder only): ``wgan_gp``: -mean D(z); ``gan``: BCE(D(z), 1)
   (the non-saturating generator loss).

Terms: ``wasserstein`` = mean D(eps) - mean D(z) is the critic's estimate of W1(p(z), q(z))
under ``wgan_gp`` (under ``gan`` it is the mean logit gap, a separability score);
``gradient_penalty`` is (||grad D|| - 1)^2 at interpolates, logged for both losses and added to
the adversary's loss with weight ``gradient_penalty_weight``.
"""

import tensorflow as tf

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.models import AdversarialAutoencoder, Phase, keeping_state
from tfvae.objectives.wae_mmd import RECON_REDUCTIONS, batch_size, deterministic_reconstruction

ADVERSARIAL_LOSSES = ("wgan_gp", "gan")


class AAE(AdversarialAutoencoder):
    """Args:
    adversarial_loss: ``"wgan_gp"`` (MaskAAE's baseline) or ``"gan"`` (Makhzani et al.).
    adversary_steps: adversary updates per step, each on a fresh minibatch (WGAN-GP: 5).
    gradient_penalty_weight: lambda of WGAN-GP (10); 0 leaves the penalty out of the loss.
    recon_reduction: ``"sum"`` or ``"mean"`` over data dimensions (see
      ``tfvae.objectives.wae_mmd.deterministic_reconstruction``).

    The adversary must output one score per example (``model.adversary.name = "mlp_critic"``).
    One step consumes ``adversary_steps + 2`` minibatches (``batches_per_step``).
    """

    terms = (
        "loss",
        "recon",
        "adversary_loss",
        "generator_loss",
        "wasserstein",
        "gradient_penalty",
    )
    optimizer_names = ("main", "adversary", "generator")
    stochastic = False

    def __init__(
        self,
        *,
        adversarial_loss: str = "wgan_gp",
        adversary_steps: int = 5,
        gradient_penalty_weight: float = 10.0,
        recon_reduction: str = "mean",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if adversarial_loss not in ADVERSARIAL_LOSSES:
            raise InvalidValue(
                f"adversarial_loss must be one of {ADVERSARIAL_LOSSES}, got {adversarial_loss!r}."
            )
        if recon_reduction not in RECON_REDUCTIONS:
            raise InvalidValue(
                f"recon_reduction must be one of {RECON_REDUCTIONS}, got {recon_reduction!r}."
            )
        if adversary_steps < 1:
            raise InvalidValue(f"adversary_steps must be >= 1, got {adversary_steps}.")
        out = self.adversary(tf.zeros([1, self.latent_dim]))
        if out.shape[-1] != 1:
            raise InvalidValue(
                f"{type(self).__name__} needs an adversary with one output score; "
                f"{self.adversary.name!r} gives {out.shape[-1]}. Set model.adversary.name to "
                "'mlp_critic'."
            )
        self.adversarial_loss = adversarial_loss
        self.adversary_steps = adversary_steps
        self.gradient_penalty_weight = gradient_penalty_weight
        self.recon_reduction = recon_reduction
        # One minibatch for the autoencoder, one per adversary update, one for the generator.
        self.batches_per_step = adversary_steps + 2

    # ------------------------------------------------------------------------------------------
    # What the adversary sees (MaskAAE masks it)
    # ------------------------------------------------------------------------------------------
    def adversary_input(self, z: tf.Tensor) -> tf.Tensor:
        """The latent vectors the adversary compares: codes and prior samples as they are."""
        return z

    def score(self, z: tf.Tensor, training: bool) -> tf.Tensor:
        """D(adversary_input(z)): [B, d] -> [B]."""
        return self.adversary(self.adversary_input(z), training=training)[:, 0]

    # ------------------------------------------------------------------------------------------
    # Loss terms of the three phases
    # ------------------------------------------------------------------------------------------
    def autoencoder_terms(self, x: tf.Tensor, training: bool) -> dict:
        parts = deterministic_reconstruction(self, x, training, self.recon_reduction)
        return {"loss": parts["recon"], "recon": parts["recon"]}

    def adversary_terms(self, x: tf.Tensor, training: bool) -> dict:
        with keeping_state(self.encoder):
            z = tf.stop_gradient(self.encode(x, training=training)[0])  # [B, d]
        eps = self.prior.sample(batch_size(z), self.seed_generator)  # [B, d]
        prior_in = self.adversary_input(eps)
        codes_in = self.adversary_input(z)
        d_prior = self.adversary(prior_in, training=training)[:, 0]  # [B]
        d_codes = self.adversary(codes_in, training=training)[:, 0]  # [B]
        gp = losses.gradient_penalty(
            lambda u: self.adversary(u, training=training), prior_in, codes_in, self.seed_generator
        )  # [B]
        if self.adversarial_loss == "wgan_gp":
            loss = d_codes - d_prior  # its mean: mean D(z) - mean D(eps)
        else:
            # (BCE(D(eps), 1) + BCE(D(z), 0)) / 2, D on logits: softplus(-l) = -log sigmoid(l).
            loss = 0.5 * (tf.nn.softplus(-d_prior) + tf.nn.softplus(d_codes))
        loss += self.gradient_penalty_weight * gp
        return {"adversary_loss": loss, "wasserstein": d_prior - d_codes, "gradient_penalty": gp}

    def generator_terms(self, x: tf.Tensor, training: bool) -> dict:
        z, _ = self.encode(x, training=training)  # [B, d]
        with keeping_state(self.adversary):
            s = self.score(z, training)  # [B]
        loss = -s if self.adversarial_loss == "wgan_gp" else tf.nn.softplus(-s)
        return {"generator_loss": loss}

    def loss_terms(self, batches, training):
        """Every phase's terms on its own minibatch, in one dict (training goes through
        ``phases``; this is for inspection)."""
        out = {}
        for phase in self.phases():
            out.update(phase.loss_fn(batches, training))
        return out

    @staticmethod
    def _on_batch(terms_fn, index: int):
        """``(batches, training) -> terms_fn(batches[index], training)``."""

        def loss_fn(batches, training):
            return terms_fn(batches[index], training)

        return loss_fn

    def phases(self) -> list[Phase]:
        k = self.adversary_steps
        adversary = [
            Phase(
                "adversary",
                self._on_batch(self.adversary_terms, 1 + i),
                lambda: self.adversary.trainable_variables,
                loss_key="adversary_loss",
            )
            for i in range(k)
        ]
        return [
            Phase(
                "main",
                self._on_batch(self.autoencoder_terms, 0),
                lambda: self.autoencoder_variables,
            ),
            *adversary,
            Phase(
                "generator",
                self._on_batch(self.generator_terms, k + 1),
                lambda: self.encoder.trainable_variables,
                loss_key="generator_loss",
            ),
        ]
