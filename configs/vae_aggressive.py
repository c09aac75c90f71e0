"""VAE with He et al. 2019's aggressive encoder training, ResNet + PixelCNN setting.

Run:
    python -m tfvae.train --config=configs/vae_aggressive.py --workdir=runs/vae_aggressive
Arguments (comma-separated after ``:``):
    :omniglot or :mnist   the paper's datasets; the default is Fashion-MNIST with dynamic
                          binarization, because Omniglot cannot be downloaded offline (give
                          --config.data.path=<chardata.mat> with :omniglot)
    :latent=16            latent size (8, 16, 32, 64 in the paper; default 32)
    :anneal=0             no KL annealing: the "Aggr. no anneal" row
    :prior=decoupled      the dpVAE prior instead of N(0, I)
    :smoke                4 steps with tiny networks; checks the config runs end to end
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

While the mode is on, every step runs up to 100 encoder-only steps on fresh batches and then one
decoder-only step (``tfvae.aggressive``); it ends for good once the validation MI, checked every
epoch, has failed to improve 5 times. ``train/encoder_steps`` and ``val/aggressive_active`` show
it in TensorBoard.

Expect (NE-VAE paper, Omniglot, d = 32): -ELBO 88.71, KL 1.80, MI 1.64, AU 5 (no anneal: 88.84 /
2.38 / 2.28 / 6). Table 2: AU 7 / 7 / 4 for d = 8 / 16 / 64. On Fashion-MNIST and MNIST the
paper gives no numbers; compare rows with each other (``python -m tools.collapse_table``).
"""

from configs import collapse_common


def get_config(arg: str | None = None):
    c, args = collapse_common.collapse_config(arg, objective="vae", hparams={})
    c.train.aggressive = True
    return collapse_common.finalize(c, args)
