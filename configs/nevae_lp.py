"""NE-VAE with the capped log-probability re-encoding loss ``lp(c)``, ResNet + PixelCNN setting.

Run:
    python -m tfvae.train --config=configs/nevae_lp.py --workdir=runs/nevae_lp
Arguments (comma-separated after ``:``):
    :omniglot or :mnist   the paper's datasets; the default is Fashion-MNIST with dynamic
                          binarization, because Omniglot cannot be downloaded offline (give
                          --config.data.path=<chardata.mat> with :omniglot)
    :c=0.1                the per-dimension cap c (default 0.1); c=none or c=-inf: uncapped
    :latent=16            latent size (8, 16, 32, 64 in the paper; default 32)
    :lambda=1.0           weight of the re-encoding loss (the paper does not state it)
    :anneal=0             no KL annealing (default: 0.1 -> 1 over 10 epochs)
    :prior=decoupled      the dpVAE prior instead of N(0, I)
    :smoke                4 steps with tiny networks; checks the config runs end to end
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect (NE-VAE paper Table 1, Omniglot, d = 32; -ELBO / KL / MI / AU): c=5: 88.93 / 2.01 / 1.33
/ 6; c=3: 88.89 / 1.75 / 1.19 / 6; c=1: 88.96 / 1.69 / 0.47 / 6; c=0.1: 89.61 / 3.40 / 0.81 /
28; c=0: 89.64 / 4.02 / 0.87 / 22; c=-0.1: 89.89 / 5.23 / 1.21 / 28; c=-1: 94.33 / 19.28 / 3.71
/ 32; c=-3: 122.03 / 60.03 / 3.87 / 32; c=-5: 148.33 / 87.50 / 3.87 / 32. A large c drops the
loss (VAE-like), a very negative c shrinks sigma(x) and inflates KL. On Fashion-MNIST and MNIST
the paper gives no numbers; compare rows with each other (``python -m tools.collapse_table``).
"""

import math

from configs import collapse_common


def _cap(value: str) -> float | None:
    if value.lower() in ("none", "-inf"):
        return None  # uncapped
    try:
        c = float(value)
    except ValueError:
        raise ValueError(f"Config argument c={value!r} must be a number, none or -inf.") from None
    if not math.isfinite(c):
        raise ValueError(f"Config argument c={value!r}: use none or -inf for the uncapped loss.")
    return c


def get_config(arg: str | None = None):
    c, args = collapse_common.collapse_config(
        arg, objective="ne_vae", hparams={"reencoding": "lp"}, declared=("c", "lambda")
    )
    c.hparams.c = _cap(args.get("c", "0.1"))
    c.hparams.lambda_ = float(args.get("lambda", "1.0"))
    return collapse_common.finalize(c, args)
