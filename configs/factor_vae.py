"""FactorVAE on Fashion-MNIST by default; the authors' MNIST settings (dpVAE, ACCV 2020).

Run:
    python -m tfvae.train --config=configs/factor_vae.py --workdir=runs/factor_vae
Other datasets and a quick check:
    --config=configs/factor_vae.py:mnist  (or :svhn, :celeba, :cifar10, :omniglot, :two_moons)
    --config=configs/factor_vae.py:smoke  (4 steps; checks the config runs end to end)
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect: dpVAE Table 1, MNIST: the FactorVAE row. Latent size 2, 100k Adam steps, as in the
paper; on Fashion-MNIST the paper gives no numbers, so compare rows with each other (``python -m
tools.reproduce``).

dSprites (``:dsprites``, Locatello et al. 2019's networks and settings; evaluate with
``--metrics=disentanglement``): Locatello et al. sweep gamma in {10, 20, 30, 40, 50, 100}
(``:dsprites,gamma=40``); Kim and Mnih 2018 report FactorVAE scores above beta-VAE's on dSprites
at better reconstruction.
"""

from configs import common


def get_config(arg: str | None = None):
    return common.config_for(
        "factor_vae",
        "standard_normal",
        arg,
        hparams={"gamma": 1000.0},
        dsprites={"gamma": 30.0},
        mnist={"batch_size": 24, "learning_rate": 0.0001, "adversary_learning_rate": 0.0001},
    )
