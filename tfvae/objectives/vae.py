"""VAE (Kingma & Welling 2014): loss = recon + KL.

With the decoupled prior this is the dpVAE of Bhalodia et al. (2020), eq. 5: the KL term uses the
flow density (``tfvae.priors.DecoupledPrior.kl``).
"""

from tfvae.models import Autoencoder


class VAE(Autoencoder):
    """loss = -E_q[log p(x|z)] + w_t * KL(q(z|x) || p(z)), w_t the KL-annealing weight (1 by
    default)."""

    terms = ("loss", "recon", "kl")

    def loss_terms(self, batches, training):
        parts = self.elbo_parts(batches[0], training)
        recon, kl = parts["recon"], parts["kl"]  # [B] each
        return {"loss": recon + self.kl_weight() * kl, "recon": recon, "kl": kl}
