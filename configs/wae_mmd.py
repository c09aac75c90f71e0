"""WAE-MMD (Tolstikhin et al. 2018) on Fashion-MNIST by default, with MaskAAE's networks: the
baseline of the MaskAAE paper's latent-size experiments.

Run:
    python -m tfvae.train --config=configs/wae_mmd.py --workdir=runs/wae_mmd
Other data and sizes:
    --config=configs/wae_mmd.py:mnist                  (MNIST: TFDS, or data.path to IDX files)
    --config=configs/wae_mmd.py:m=16                   (latent size m; images: 48)
    --config=configs/wae_mmd.py:manifold,n=8,m=16      (synthetic data, true latent size n)
    --config=configs/wae_mmd.py:smoke                  (4 steps, small networks)

Setting: d = 48, encoder and decoder 4 x 1024 ReLU MLPs (as MaskAAE), batch 64, per-pixel BCE
(manifold: per-dimension squared error) + lambda * MMD with the inverse multiquadric kernel over
scales {.1, .2, .5, 1, 2, 5, 10}, unbiased; Adam 1e-3, beta_1 0.5 (Tolstikhin et al.'s MNIST
optimizer); 100k steps on images (about 100 epochs), as many as ``mask_aae.py`` on the manifold.
lambda = 2 keeps the WAE paper's balance: there lambda = 10 against 0.05 x the summed squared
error (~0.6 on MNIST), a ratio of ~16; a per-pixel BCE is ~0.1 on MNIST.

Expect: FID against m follows a U-curve with its minimum near the data's true latent size
(MaskAAE paper, Fig. 1 and 4); ``python -m tools.mask_sweep`` draws it next to MaskAAE's.
"""

from configs.mask_aae import deterministic_ae_config


def get_config(arg: str | None = None):
    def hparams(d, args):
        del d, args
        return {"lambda_": 2.0, "recon_reduction": "mean"}

    def optimizers(d, args):
        del d, args
        return {"main": {"name": "adam", "learning_rate": 1e-3, "beta_1": 0.5, "clipnorm": None}}

    return deterministic_ae_config(
        "wae_mmd", arg, hparams=hparams, optimizers=optimizers, image_steps=100_000
    )
