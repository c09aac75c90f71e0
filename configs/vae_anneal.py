"""VAE with KL annealing (the NE-VAE paper's "VAE" baseline), ResNet + PixelCNN setting.

Run:
    python -m tfvae.train --config=configs/vae_anneal.py --workdir=runs/vae_anneal
Arguments (comma-separated after ``:``):
    :omniglot or :mnist   the paper's datasets; the default is Fashion-MNIST with dynamic
                          binarization, because Omniglot cannot be downloaded offline (give
                          --config.data.path=<chardata.mat> with :omniglot)
    :latent=16            latent size (8, 16, 32, 64 in the paper; default 32)
    :anneal=0             no KL annealing: the "VAE no anneal" row
    :prior=decoupled      the dpVAE prior instead of N(0, I)
    :smoke                4 steps with tiny networks; checks the config runs end to end
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect (NE-VAE paper, Omniglot, d = 32, KL weight 0.1 -> 1 over 10 epochs, 100 epochs): -ELBO
88.91, KL 2.12, MI 1.83, AU 6 (no anneal: 88.79 / 1.10 / 1.08 / 2). Table 2: AU 5 / 7 / 4 for
d = 8 / 16 / 64: most dimensions collapse whatever d is. On Fashion-MNIST and MNIST the paper
gives no numbers; compare rows with each other (``python -m tools.collapse_table``).
"""

from configs import collapse_common


def get_config(arg: str | None = None):
    c, args = collapse_common.collapse_config(arg, objective="vae", hparams={})
    return collapse_common.finalize(c, args)
