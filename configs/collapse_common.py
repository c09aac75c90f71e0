"""Shared shape of the posterior-collapse configs (NE-VAE paper; He et al. 2019's setting).

Used by ``nevae_se.py``, ``nevae_lp.py``, ``vae_anneal.py``, ``vae_aggressive.py`` and
``beta_vae_collapse.py``. The setting (METHODS.md section 5): 28x28 images with dynamic
binarization, Bernoulli likelihood, He et al.'s ResNet encoder and 13-layer PixelCNN decoder
(64 channels), latent 32, batch 50, Adam 1e-3 with the gradient norm clipped at 5, 100 epochs,
KL annealing from 0.1 to 1 over the first 10 epochs, evaluation (and the aggressive-mode check of
validation MI) once per epoch.

Datasets: ``fashion_mnist`` (the default: Omniglot cannot be downloaded offline), ``mnist`` and
``omniglot`` (set ``--config.data.path`` to Burda et al.'s ``chardata.mat``, the file He et al.
and NE-VAE use; otherwise TFDS ``omniglot``, which needs ``data.download`` and a network).

Arguments every collapse config declares (``configs.common.parse_arg``):
  ``latent=8|16|32|64``  the latent size d (any positive integer works; default 32);
  ``anneal=0``           no KL annealing (the paper's "no anneal" rows; default 1);
  ``prior=decoupled``    the dpVAE prior instead of N(0, I) (default ``standard_normal``);
  ``decoder=small``      a budget setting: a 5-layer, 32-channel PixelCNN (kernels 7, 5, 5, 3,
                         3) and a 32-filter ResNet encoder with 256 hidden units, ~14x fewer
                         FLOPs per step than He et al.'s (``decoder=he``, the default). Still
                         autoregressive, so the VAE can still ignore z; use it to compare methods
                         at budgets where the full model cannot train (docs/reproduction.md).
``smoke`` shrinks the networks (8-channel ResNet, 3-layer 8-channel PixelCNN) besides the steps.
"""

import ml_collections

from configs import common

DATASETS = ("fashion_mnist", "mnist", "omniglot")
# Training examples after the validation hold-out, for epoch-based schedules.
TRAIN_SIZE = {"fashion_mnist": 55_000, "mnist": 55_000, "omniglot": 23_000}
# He et al.'s Omniglot split holds out 1,345 of Burda et al.'s 24,345 training images.
OMNIGLOT_VAL_SIZE = 1345
BATCH_SIZE = 50
EPOCHS = 100
ANNEAL_EPOCHS = 10
ANNEAL_START = 0.1
LATENT = 32
DECLARED = ("latent", "anneal", "prior", "decoder")
PRIORS = ("standard_normal", "decoupled")
# decoder=<size>: (ResNet encoder options, PixelCNN decoder options); "he" is He et al.'s.
SIZES = {
    "he": ({}, {}),
    "small": (
        {"filters": (32, 32, 32), "hidden_units": 256},
        {"channels": 32, "kernel_sizes": (7, 5, 5, 3, 3)},
    ),
}


def _net(name: str, **options) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "options": options})


def _positive_int(args: dict, key: str, default: int) -> int:
    value = args.get(key, str(default))
    try:
        out = int(value)
    except ValueError:
        raise ValueError(f"Config argument {key}={value!r} must be an integer.") from None
    if out < 1:
        raise ValueError(f"Config argument {key}={value!r} must be >= 1.")
    return out


def steps_per_epoch(dataset: str) -> int:
    return TRAIN_SIZE[dataset] // BATCH_SIZE


def collapse_config(
    arg: str | None, *, objective: str, hparams: dict, declared: tuple[str, ...] = ()
) -> tuple[ml_collections.ConfigDict, dict]:
    """An unlocked collapse config and the parsed arguments; finish with ``finalize``.

    Args:
      arg: the config argument string.
      objective: the registry key.
      hparams: the objective's keyword arguments (KL annealing is added here).
      declared: extra ``key=value`` arguments the calling config reads from the result.
    """
    args = common.parse_arg(arg, DECLARED + tuple(declared))
    dataset = args["dataset"]
    if dataset not in DATASETS:
        raise ValueError(
            f"The posterior-collapse configs train a PixelCNN on 28x28 binarized images; "
            f"dataset {dataset!r} is not one of {list(DATASETS)}."
        )
    prior = args.get("prior", "standard_normal")
    if prior not in PRIORS:
        raise ValueError(f"Config argument prior={prior!r}; valid: {list(PRIORS)}.")
    size = args.get("decoder", "he")
    if size not in SIZES:
        raise ValueError(f"Config argument decoder={size!r}; valid: {list(SIZES)}.")
    anneal = args.get("anneal", "1")
    if anneal not in ("0", "1"):
        raise ValueError(f"Config argument anneal={anneal!r} must be 0 or 1.")
    spe = steps_per_epoch(dataset)

    c = common.base_config()
    c.objective = objective
    c.model.latent_dim = _positive_int(args, "latent", LATENT)
    c.model.encoder = _net("resnet", **SIZES[size][0])
    c.model.decoder = _net("pixelcnn", **SIZES[size][1])
    c.model.likelihood = _net("bernoulli")
    c.model.prior = common.decoupled_prior() if prior == "decoupled" else _net("standard_normal")
    c.data.name = dataset
    c.data.binarize = "dynamic"
    if dataset == "omniglot":
        c.data.image_size = 28  # TFDS images are 105x105; chardata.mat is already 28x28
        c.data.val_size = OMNIGLOT_VAL_SIZE
    c.hparams = ml_collections.ConfigDict(hparams)
    c.hparams.kl_warmup_start = ANNEAL_START if anneal == "1" else 1.0
    c.hparams.kl_warmup_steps = ANNEAL_EPOCHS * spe if anneal == "1" else 0
    c.train.update(
        batch_size=BATCH_SIZE,
        num_steps=EPOCHS * spe,
        log_every=100,
        eval_every=spe,
        val_batches=20,
        # Pixel-by-pixel sampling is slow on a CPU (H*W decoder passes): few, rare images.
        image_every=20 * spe,
        num_images=16,
        checkpoint_every=spe,
        collapse_metrics=True,
    )
    # He et al. clip the global gradient norm (torch clip_grad_norm_ over all parameters).
    c.optimizers.main = ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": 1e-3, "clipnorm": None, "global_clipnorm": 5.0}
    )
    if args["smoke"]:
        c.model.encoder.options = {"filters": (8, 8, 8), "hidden_units": 32}
        c.model.decoder.options = {"channels": 8, "kernel_sizes": (3, 3, 3)}
        if anneal == "1":
            c.hparams.kl_warmup_steps = 2
    return c, args


def finalize(c: ml_collections.ConfigDict, args: dict) -> ml_collections.ConfigDict:
    """Applies ``smoke`` and locks (``configs.common.finalize``)."""
    return common.finalize(c, args)
