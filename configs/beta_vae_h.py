"""beta-VAE-H on Fashion-MNIST by default; the authors' MNIST settings (dpVAE, ACCV 2020).

Run:
    python -m tfvae.train --config=configs/beta_vae_h.py --workdir=runs/beta_vae_h
Other datasets and a quick check:
    --config=configs/beta_vae_h.py:mnist  (or :svhn, :celeba, :cifar10, :omniglot, :two_moons)
    --config=configs/beta_vae_h.py:smoke  (4 steps; checks the config runs end to end)
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect: dpVAE Table 1, MNIST: the beta-VAE-H row. Latent size 2, 100k Adam steps, as in the
paper; on Fashion-MNIST the paper gives no numbers, so compare rows with each other (``python -m
tools.reproduce``).

dSprites (``:dsprites``, Locatello et al. 2019's networks and settings; evaluate with
``--metrics=disentanglement``): Locatello et al. sweep beta in {1, 2, 4, 6, 8, 16}
(``:dsprites,beta=16``); Higgins et al. 2017 report a BetaVAE score of 99.2% with beta = 4 on their
2D shapes; Kim and Mnih 2018 find beta-VAE's FactorVAE score lower than FactorVAE's on dSprites,
with reconstruction degrading as beta grows. The sweep values are disentanglement_lib's
``config/unsupervised_study_v1/sweep.py``.
"""

from configs import common


def get_config(arg: str | None = None):
    return common.config_for(
        "beta_vae_h",
        "standard_normal",
        arg,
        hparams={"beta": 5.0},
        dsprites={"beta": 4.0},
        mnist={"batch_size": 100, "learning_rate": 0.0001},
    )
