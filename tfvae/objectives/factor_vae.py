"""FactorVAE (Kim & Mnih 2018): recon + KL + gamma * TC, TC from a density-ratio discriminator.

Reference: Kim & Mnih. Disentangling by Factorising. ICML 2018, Algorithm 2.
TC(z) ~ logit_0(D(z)) - logit_1(D(z)), where D classifies codes of q(z) (class 0) against codes
of prod_j q(z_j) (class 1, dimension-wise permuted codes of a second, independent minibatch).
The VAE update moves only encoder, decoder and prior; the discriminator update (its own
optimizer, codes behind ``stop_gradient``, the encoder's batch-norm statistics restored) moves
only the discriminator.
dpVAE authors' MNIST setting: gamma 1000, batch 24, both learning rates 1e-4.
"""

import tensorflow as tf

from tfvae import losses
from tfvae.models import AdversarialAutoencoder, Phase, keeping_state


class FactorVAE(AdversarialAutoencoder):
    """Args:
    gamma: weight of the total-correlation term.
    """

    terms = ("loss", "recon", "kl", "tc", "adversary_loss", "adversary_accuracy")
    batches_per_step = 2

    def __init__(self, *, gamma: float = 1000.0, **kwargs):
        super().__init__(**kwargs)
        self.gamma = gamma

    def loss_terms(self, batches, training):
        parts = self.elbo_parts(batches[0], training)
        logits = self.adversary(parts["z"], training=training)  # [B, 2]
        tc = logits[:, 0] - logits[:, 1]  # [B]
        w = self.kl_weight()
        loss = parts["recon"] + w * parts["kl"] + self.gamma * tc
        return {"loss": loss, "recon": parts["recon"], "kl": parts["kl"], "tc": tc}

    def adversary_terms(self, batches, training):
        # Training-mode codes, as the VAE update sees them, with every encoder variable left as
        # it was: batch norm would otherwise move its statistics in the discriminator's update.
        with keeping_state(self.encoder):
            z = tf.stop_gradient(self.posterior_sample(batches[0], training)["z"])  # [B, d]
            z_other = tf.stop_gradient(self.posterior_sample(batches[1], training)["z"])
        z_perm = losses.permute_dims(z_other, self.seed_generator)  # ~ prod_j q(z_j)
        logits_q = self.adversary(z, training=training)  # [B, 2]
        logits_perm = self.adversary(z_perm, training=training)
        zeros = tf.zeros(tf.shape(z)[:1], tf.int32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits
        loss = 0.5 * (ce(zeros, logits_q) + ce(zeros + 1, logits_perm))  # [B]
        correct = tf.concat([tf.argmax(logits_q, -1) == 0, tf.argmax(logits_perm, -1) == 1], axis=0)
        return {"adversary_loss": loss, "adversary_accuracy": tf.cast(correct, tf.float32)}

    def phases(self):
        return [
            Phase("main", self.loss_terms, lambda: self.autoencoder_variables),
            Phase(
                "adversary",
                self.adversary_terms,
                lambda: self.adversary.trainable_variables,
                loss_key="adversary_loss",
            ),
        ]
