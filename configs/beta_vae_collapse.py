"""beta-VAE with beta < 1 (0.9) against posterior collapse, ResNet + PixelCNN setting.

Run:
    python -m tfvae.train --config=configs/beta_vae_collapse.py --workdir=runs/beta_vae_collapse
Arguments (comma-separated after ``:``):
    :omniglot or :mnist   the paper's datasets; the default is Fashion-MNIST with dynamic
                          binarization, because Omniglot cannot be downloaded offline (give
                          --config.data.path=<chardata.mat> with :omniglot)
    :beta=0.8             the KL weight beta (default 0.9; the paper also runs 0.5 to 0.8)
    :latent=16            latent size (8, 16, 32, 64 in the paper; default 32)
    :anneal=0             no KL annealing
    :prior=decoupled      the dpVAE prior instead of N(0, I)
    :smoke                4 steps with tiny networks; checks the config runs end to end
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Annealing as in the paper: the KL weight follows the other models' line 0.1 + 0.9 t / (10 epochs)
and stops once it reaches beta (``kl_warmup_start`` = 0.1 / beta, ``kl_warmup_steps`` scaled by
(beta - 0.1) / 0.9).

Expect (NE-VAE paper Table 1, Omniglot, d = 32; -ELBO / KL / MI / AU): beta 0.9: 89.42 / 5.48 /
3.32 / 27; 0.8: 90.92 / 16.25 / 3.86 / 32; 0.7: 93.65 / 27.56 / 3.87 / 32; 0.6: 96.77 / 37.12 /
3.87 / 32; 0.5: 100.62 / 46.37 / 3.87 / 32. Many active units, paid for with a large KL (a wide
gap between KL and MI). On Fashion-MNIST and MNIST the paper gives no numbers; compare rows with
each other (``python -m tools.collapse_table``).
"""

from configs import collapse_common


def get_config(arg: str | None = None):
    c, args = collapse_common.collapse_config(
        arg, objective="beta_vae_h", hparams={}, declared=("beta",)
    )
    beta = float(args.get("beta", "0.9"))
    if not 0.0 < beta:
        raise ValueError(f"Config argument beta={beta} must be > 0.")
    c.hparams.beta = beta
    if c.hparams.kl_warmup_steps and beta > collapse_common.ANNEAL_START:
        # beta * w_t = min(beta, 0.1 + 0.9 t / T): the other models' line, stopped at beta.
        start = collapse_common.ANNEAL_START
        c.hparams.kl_warmup_start = start / beta
        c.hparams.kl_warmup_steps = max(
            1, round(c.hparams.kl_warmup_steps * (beta - start) / (1 - start))
        )
    elif c.hparams.kl_warmup_steps:
        c.hparams.kl_warmup_start, c.hparams.kl_warmup_steps = 1.0, 0  # beta <= 0.1: no ramp
    return collapse_common.finalize(c, args)
