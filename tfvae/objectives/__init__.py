"""The objective registry: registry key -> model class. File names match the keys."""

from tfvae.objectives.aae import AAE
from tfvae.objectives.beta_tcvae import BetaTCVAE
from tfvae.objectives.beta_vae_b import BetaVAEB
from tfvae.objectives.beta_vae_h import BetaVAEH
from tfvae.objectives.factor_vae import FactorVAE
from tfvae.objectives.info_vae import InfoVAE
from tfvae.objectives.mask_aae import MaskAAE
from tfvae.objectives.ne_vae import NEVAE
from tfvae.objectives.vae import VAE
from tfvae.objectives.wae_mmd import WAEMMD

OBJECTIVES = {
    "vae": VAE,
    "beta_vae_h": BetaVAEH,
    "beta_vae_b": BetaVAEB,
    "beta_tcvae": BetaTCVAE,
    "factor_vae": FactorVAE,
    "info_vae": InfoVAE,
    "wae_mmd": WAEMMD,
    "aae": AAE,
    "mask_aae": MaskAAE,
    "ne_vae": NEVAE,
}
