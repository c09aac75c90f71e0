"""beta-VAE-H (Higgins et al. 2017): loss = recon + beta * KL.

Reference: Higgins et al. beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework. ICLR 2017. dpVAE authors' MNIST setting: beta = 5.
"""

from tfvae.models import Autoencoder


class BetaVAEH(Autoencoder):
    """loss = recon + beta * KL.

    Args:
      beta: the KL weight (> 1 for disentanglement; < 1 weakens the prior's pull, the NE-VAE
        paper's beta-VAE(0.9) baseline against posterior collapse).
    """

    terms = ("loss", "recon", "kl")

    def __init__(self, *, beta: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta

    def loss_terms(self, batches, training):
        parts = self.elbo_parts(batches[0], training)
        recon, kl = parts["recon"], parts["kl"]  # [B]
        return {"loss": recon + self.beta * self.kl_weight() * kl, "recon": recon, "kl": kl}
