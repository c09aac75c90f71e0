"""NE-VAE with the squared-error re-encoding loss (``se``), He et al.'s ResNet + PixelCNN setting.

Run:
    python -m tfvae.train --config=configs/nevae_se.py --workdir=runs/nevae_se
Arguments (comma-separated after ``:``):
    :omniglot or :mnist   the paper's datasets; the default is Fashion-MNIST with dynamic
                          binarization, because Omniglot cannot be downloaded offline (give
                          --config.data.path=<chardata.mat> with :omniglot)
    :latent=16            latent size (8, 16, 32, 64 in the paper; default 32)
    :lambda=1.0           weight of the re-encoding loss (the paper does not state it)
    :anneal=0             no KL annealing (default: 0.1 -> 1 over 10 epochs)
    :prior=decoupled      the dpVAE prior instead of N(0, I)
    :smoke                4 steps with tiny networks; checks the config runs end to end
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect (NE-VAE paper, Omniglot, d = 32, 100 epochs): -ELBO 89.57, KL 2.55, MI 2.39, AU 26 of 32,
against 88.91 / 2.12 / 1.83 / 6 for the annealed VAE (``vae_anneal.py``). Table 2: AU 8 / 12 / 55
for d = 8 / 16 / 64. On Fashion-MNIST and MNIST the paper gives no numbers; compare the rows with
each other (``python -m tools.collapse_table``). Validation MI, active units and re-encoding
error are logged as ``val/mutual_information``, ``val/active_units``, ``val/reencode_error``.
"""

from configs import collapse_common


def get_config(arg: str | None = None):
    c, args = collapse_common.collapse_config(
        arg, objective="ne_vae", hparams={"reencoding": "se", "c": None}, declared=("lambda",)
    )
    c.hparams.lambda_ = float(args.get("lambda", "1.0"))
    return collapse_common.finalize(c, args)
