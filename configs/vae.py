"""VAE on Fashion-MNIST by default; the authors' MNIST settings (dpVAE, ACCV 2020).

Run:
    python -m tfvae.train --config=configs/vae.py --workdir=runs/vae
Other datasets and a quick check:
    --config=configs/vae.py:mnist  (or :svhn, :celeba, :cifar10, :omniglot, :two_moons)
    --config=configs/vae.py:smoke  (4 steps; checks the config runs end to end)
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect: dpVAE Table 1, MNIST: the plain VAE row. Latent size 2, 100k Adam steps, as in the
paper; on Fashion-MNIST the paper gives no numbers, so compare rows with each other (``python -m
tools.reproduce``).

dSprites (``:dsprites``, Locatello et al. 2019's networks and settings; evaluate with
``--metrics=disentanglement``): the plain VAE is Locatello et al.'s beta = 1 point: on dSprites its
scores sit at the low end of every metric (their Fig. 7).
"""

from configs import common


def get_config(arg: str | None = None):
    return common.config_for(
        "vae",
        "standard_normal",
        arg,
        hparams={},
        mnist={"batch_size": 100, "learning_rate": 0.0001},
    )
