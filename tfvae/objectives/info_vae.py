"""InfoVAE with MMD (Zhao, Song, Ermon 2019): recon + (1 - alpha) KL + (alpha + lambda - 1) MMD.

Reference: Zhao et al. InfoVAE: Balancing Learning and Inference in Variational Autoencoders.
AAAI 2019, eq. 6. MMD(q(z), p(z)) between the minibatch codes and as many prior samples (for the
decoupled prior, z = g^-1(eps)), with the authors' kernel (``tfvae.losses.mmd_infovae``).
dpVAE authors' MNIST setting: alpha 0, lambda 1000.
"""

from tfvae import losses
from tfvae.models import Autoencoder


class InfoVAE(Autoencoder):
    """Args:
    alpha: InfoVAE's alpha (0 keeps the full KL).
    lambda_: InfoVAE's lambda (``lambda_`` in configs, since ``lambda`` is a keyword).
    """

    terms = ("loss", "recon", "kl", "mmd")

    def __init__(self, *, alpha: float = 0.0, lambda_: float = 1000.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.lambda_ = alpha, lambda_

    def loss_terms(self, batches, training):
        parts = self.elbo_parts(batches[0], training)
        z = parts["z"]  # [B, d]
        prior_z = self.prior.sample(z.shape[0], self.seed_generator)  # [B, d]
        mmd = losses.mmd_infovae(z, prior_z)  # batch-level scalar
        w = self.kl_weight()
        loss = parts["recon"] + (1.0 - self.alpha) * w * parts["kl"]
        loss += (self.alpha + self.lambda_ - 1.0) * mmd
        return {"loss": loss, "recon": parts["recon"], "kl": parts["kl"], "mmd": mmd}
