"""beta-TCVAE (Chen et al. 2018): recon + alpha * MI + beta * TC + gamma * DWKL.

Reference: Chen, Li, Grosse, Duvenaud. Isolating Sources of Disentanglement in VAEs. NeurIPS
2018, eq. 2 and eq. 4. With the decoupled prior (dpVAE appendix B), log p(z) in the
dimension-wise KL is the flow density including its log-determinant.

MI = E[log q(z|x) - log q(z)], TC = E[log q(z) - log prod_j q(z_j)],
DWKL = E[log prod_j q(z_j) - log p(z)], with log q(z) and log q(z_j) estimated on the minibatch
(``tfvae.losses.total_correlation_terms``).
dpVAE authors' MNIST setting: alpha 1, beta 4, gamma 15 (dp run: 150).
"""

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.models import Autoencoder


class BetaTCVAE(Autoencoder):
    """Args:
    alpha, beta, gamma: weights of MI, TC and dimension-wise KL.
    estimator: "mws" (minibatch-weighted) or "mss" (minibatch-stratified sampling).
    dwkl_log_det: keep the flow's log-determinant in DWKL (True, the paper's intent); False
      reproduces the dpVAE reference code, which drops it.
    """

    terms = ("loss", "recon", "kl", "mi", "tc", "dwkl")

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        beta: float = 4.0,
        gamma: float = 15.0,
        estimator: str = "mws",
        dwkl_log_det: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if estimator not in ("mws", "mss"):
            raise InvalidValue(f"Unknown estimator {estimator!r}: use 'mws' or 'mss'.")
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.estimator, self.dwkl_log_det = estimator, dwkl_log_det

    def loss_terms(self, batches, training):
        parts = self.elbo_parts(batches[0], training)
        z = parts["z"]  # [B, d]
        tc_parts = losses.total_correlation_terms(
            z,
            parts["z_mean"],
            parts["z_log_var"],
            dataset_size=self.dataset_size,
            estimator=self.estimator,
        )
        log_pz = self.prior.log_prob(z, include_log_det=self.dwkl_log_det)  # [B]
        mi = tc_parts["log_qz_given_x"] - tc_parts["log_qz"]  # [B]
        tc = tc_parts["log_qz"] - tc_parts["log_prod_qzj"]  # [B]
        dwkl = tc_parts["log_prod_qzj"] - log_pz  # [B]
        w = self.kl_weight()
        loss = parts["recon"] + w * (self.alpha * mi + self.beta * tc + self.gamma * dwkl)
        return {
            "loss": loss,
            "recon": parts["recon"],
            "kl": parts["kl"],
            "mi": mi,
            "tc": tc,
            "dwkl": dwkl,
        }
