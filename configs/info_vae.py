"""InfoVAE (MMD) on Fashion-MNIST by default; the authors' MNIST settings (dpVAE, ACCV 2020).

Run:
    python -m tfvae.train --config=configs/info_vae.py --workdir=runs/info_vae
Other datasets and a quick check:
    --config=configs/info_vae.py:mnist  (or :svhn, :celeba, :cifar10, :omniglot, :two_moons)
    --config=configs/info_vae.py:smoke  (4 steps; checks the config runs end to end)
Override any field, e.g. --config.train.num_steps=20000 (a misspelled field fails).

Expect: dpVAE Table 1, MNIST: InfoVAE FID 128.7, FID (LP) 133.2, sKL 2.89. Latent size 2, 100k
Adam steps, as in the paper; on Fashion-MNIST the paper gives no numbers, so compare rows with
each other (``python -m tools.reproduce``).

dSprites (``:dsprites``, Locatello et al. 2019's networks and settings; evaluate with
``--metrics=disentanglement``): InfoVAE is not in Locatello et al.'s study and reports no
disentanglement scores; the preset keeps the dpVAE authors' alpha and lambda.
"""

from configs import common


def get_config(arg: str | None = None):
    return common.config_for(
        "info_vae",
        "standard_normal",
        arg,
        hparams={"alpha": 0.0, "lambda_": 1000.0},
        mnist={"batch_size": 24, "learning_rate": 0.0001, "mse_weight": 10.0},
    )
