"""AAE with a WGAN-GP critic on the latent space (MaskAAE's mask-free baseline) on Fashion-MNIST
by default; the MaskAAE authors' MNIST settings without the mask.

Run:
    python -m tfvae.train --config=configs/aae.py --workdir=runs/aae
Other data and sizes:
    --config=configs/aae.py:mnist                  (MNIST: TFDS, or data.path to IDX files)
    --config=configs/aae.py:m=16                   (latent size m; images: 48)
    --config=configs/aae.py:manifold,n=8,m=16      (synthetic data, true latent size n)
    --config=configs/aae.py:smoke                  (4 steps, small networks)
Makhzani et al.'s GAN adversary instead of the critic: --config.hparams.adversarial_loss=gan
(and --config.hparams.gradient_penalty_weight=0 for the plain GAN loss).

Setting: the MaskAAE code with ``mask_on=0``: d = 48, encoder, decoder and critic 4 x 1024 ReLU
MLPs, batch 64, per-pixel BCE; RMSProp: autoencoder 5e-4, critic 1e-4 (5 updates per step,
gradient penalty 10), generator 1e-4; 500k steps (manifold: as many as ``mask_aae.py``).

Expect: the MaskAAE paper's "WAE" curves (its Fig. 4 baseline is this network without the
mask): reconstructions sharpen with m while the FID of samples is U-shaped in m, best near the
data's true latent size; ``train/wasserstein`` (the critic's W1 estimate) stays well above the
MaskAAE run's for m much larger than that size.
"""

from configs.mask_aae import deterministic_ae_config, rmsprop


def get_config(arg: str | None = None):
    def hparams(d, args):
        del d, args
        return {
            "adversarial_loss": "wgan_gp",
            "adversary_steps": 5,
            "gradient_penalty_weight": 10.0,
            "recon_reduction": "mean",
        }

    def optimizers(d, args):
        del d, args
        return {"main": rmsprop(5e-4), "adversary": rmsprop(1e-4), "generator": rmsprop(1e-4)}

    return deterministic_ae_config(
        "aae", arg, hparams=hparams, optimizers=optimizers, image_steps=500_000
    )
