"""Shared pieces of every tfvae config.

A config file defines ``get_config(arg: str | None) -> ConfigDict``. The argument is a
comma-separated list of tokens:

- a dataset preset: ``fashion_mnist`` (the default), ``mnist``, ``svhn``, ``celeba``,
  ``cifar10``, ``omniglot``, ``two_moons``, ``manifold``;
- ``smoke``: a few steps on small batches, to check that a config runs end to end;
- ``key=value`` for the arguments a config declares (e.g. ``latent=16``).

Configs are returned locked: a misspelled override (``--config.train.bach_size=8``) fails and
names the field. Every hyperparameter lives in the config; the trainer reads no hidden default.

Reduction convention: the dpVAE reference code sums its losses over the batch; tfvae averages.
With Adam (every dpVAE setting) the update is invariant to a constant scale of the loss, up to
Adam's epsilon, so the authors' learning rates and loss weights carry over unchanged; their
epsilon carries over divided by the batch size, in PyTorch's placement (``epsilon_hat=False``,
``tfvae.optimizers.Adam``).
"""

import ml_collections
from ml_collections import config_dict

# torch.optim.Adam's default epsilon, the dpVAE authors' (they never set it).
TORCH_ADAM_EPSILON = 1e-8

DATASETS = (
    "fashion_mnist",
    "mnist",
    "svhn",
    "celeba",
    "cifar10",
    "omniglot",
    "two_moons",
    "manifold",
    "dsprites",
)
MODES = ("smoke",)


def _net(name: str, **options) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"name": name, "options": options})


def decoupled_prior() -> ml_collections.ConfigDict:
    """The dpVAE authors' flow: 6 coupling blocks of 64-64, tanh on s and t, PyTorch init."""
    return _net(
        "decoupled",
        num_blocks=6,
        hidden_units=(64, 64),
        shift_activation="tanh",
        initializer="torch",
    )


def base_config() -> ml_collections.ConfigDict:
    """Every field a run reads, with the Fashion-MNIST preset."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.objective = "vae"
    c.hparams = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(
        {
            "latent_dim": 2,
            # Encoder/decoder initialization (tfvae.networks.INITIALIZERS): "glorot", Keras'
            # default, or "torch", PyTorch's default, which the dpVAE authors' networks get.
            "initializer": "glorot",
            "encoder": _net("mnist_conv"),
            "decoder": _net("mnist_conv"),
            "prior": _net("standard_normal"),
            "likelihood": _net("gaussian", weight=1.0),
            "adversary": _net("factor_vae"),
        }
    )
    c.data = ml_collections.ConfigDict(
        {
            "name": "fashion_mnist",
            "data_dir": None,
            "download": False,
            "path": None,
            "val_size": 5000,
            # 0: the whole test split; n > 0: its first n examples (smoke uses 512).
            "test_size": 0,
            "binarize": "none",
            "dequantize": False,
            # Training-time augmentation (tfvae.augment.AUGMENTATIONS): "none" or "dpvae", the
            # dpVAE authors' MNIST augmentation, which their MNIST configs switch on.
            "augment": "none",
            "image_size": None,
            "num_examples": 0,
            "noise": 0.0,
            "manifold_latent_dim": 0,
            "manifold_dim": 128,
            "manifold_seed": 0,
        }
    )
    c.train = ml_collections.ConfigDict(
        {
            "batch_size": 100,
            "num_steps": 100_000,
            "log_every": 100,
            "eval_every": 2000,
            "val_batches": 20,
            "image_every": 5000,
            "num_images": 64,
            "checkpoint_every": 2000,
            "keep_checkpoints": 3,
            # XLA: True, False or "auto" (on GPU/TPU, off on CPU, where tools.benchmark
            # measured it slower for the papers' conv models; the MLP-only WAE/AAE/MaskAAE
            # configs set True; docs/benchmarks.md).
            "jit_compile": config_dict.FieldReference("auto", field_type=object),
            "deterministic": False,
            "mixed_precision": "float32",  # or "mixed_bfloat16" / "mixed_float16" on accelerators
            # He et al. 2019 aggressive encoder training (tfvae.aggressive).
            "aggressive": False,
            # Validation MI, active units and re-encoding error (tfvae.collapse) at each eval.
            "collapse_metrics": False,
        }
    )
    # Strategy (tfvae.distribute.STRATEGIES): default, mirrored, multi_worker, tpu.
    c.distribution = ml_collections.ConfigDict({"name": "default", "devices": None, "tpu": None})
    c.optimizers = ml_collections.ConfigDict(
        {"main": {"name": "adam", "learning_rate": 1e-4, "clipnorm": None}}
    )
    return c


def parse_arg(arg: str | None, declared: tuple[str, ...] = ()) -> dict:
    """Splits ``"mnist,smoke,latent=16"`` into {"dataset", "smoke", key: value}."""
    out = {"dataset": "fashion_mnist", "smoke": False}
    for token in filter(None, (arg or "").split(",")):
        if "=" in token:
            key, value = token.split("=", 1)
            if key not in declared:
                raise ValueError(
                    f"Unknown config argument {key!r}; this config takes "
                    f"{list(declared) or 'none'}."
                )
            out[key] = value
        elif token in DATASETS:
            out["dataset"] = token
        elif token in MODES:
            out[token] = True
        else:
            raise ValueError(
                f"Unknown config argument {token!r}. Valid: datasets {list(DATASETS)}, modes "
                f"{list(MODES)}, or key=value for {list(declared)}."
            )
    return out


def apply_dataset(c: ml_collections.ConfigDict, dataset: str) -> None:
    """Sets data, networks and batch size for a dataset (dpVAE appendix C where it applies)."""
    c.data.name = dataset
    m = c.model
    if dataset in ("fashion_mnist", "mnist"):
        m.encoder, m.decoder = _net("mnist_conv"), _net("mnist_conv")
    elif dataset == "omniglot":
        m.encoder, m.decoder = _net("mnist_conv"), _net("mnist_conv")
        m.likelihood = _net("bernoulli")
        c.data.binarize = "dynamic"
    elif dataset in ("svhn", "cifar10"):
        m.encoder, m.decoder = _net("svhn_conv"), _net("svhn_conv")
        c.train.batch_size = 50
    elif dataset == "celeba":
        m.encoder, m.decoder = _net("celeba_conv"), _net("celeba_conv")
        c.data.image_size = 64
        c.train.batch_size = 50
    elif dataset == "two_moons":
        m.encoder, m.decoder = _net("two_moons"), _net("two_moons")
        m.latent_dim = 2
        c.data.num_examples = 10_000
        c.data.noise = 0.05
        c.data.val_size = 1000
        # Neither the dpVAE paper nor METHODS.md gives a two-moons weight. With w = 1 the
        # Gaussian's standard deviation sqrt(1 / 2w) = 0.71 dwarfs data that span about 3 units
        # with noise 0.05: reconstruction is worth less than the KL term and every model
        # collapses to the data mean. w = 1 / (2 * 0.05^2) = 200 makes the likelihood's standard
        # deviation the data's own noise.
        m.likelihood = _net("gaussian", weight=1.0 / (2.0 * c.data.noise**2))
    elif dataset == "manifold":
        m.encoder = _net("mlp", hidden_sizes=(512, 512))
        m.decoder = _net("mlp", hidden_sizes=(512, 512))
        c.data.num_examples = 60_000
        c.data.manifold_latent_dim = 8
        c.data.manifold_dim = 128
    elif dataset == "dsprites":
        # Locatello et al. 2019's study: their 64x64 conv networks, Bernoulli likelihood,
        # latent 10, Adam 1e-4, batch 64 (config_for applies their regularization strengths).
        m.encoder, m.decoder = _net("locatello_conv"), _net("locatello_conv")
        m.likelihood = _net("bernoulli")
        m.latent_dim = 10
        c.train.batch_size = 64
        c.optimizers.main.learning_rate = 1e-4
        c.data.val_size = 10_000
    else:
        raise ValueError(f"Unknown dataset preset {dataset!r}; valid: {list(DATASETS)}.")


def apply_smoke(c: ml_collections.ConfigDict) -> None:
    """A few steps with small batches: checks that a config runs, says nothing of quality."""
    c.train.update(
        batch_size=min(c.train.batch_size, 8),
        num_steps=4,
        log_every=2,
        eval_every=2,
        val_batches=1,
        image_every=4,
        num_images=4,
        checkpoint_every=2,
    )
    if c.data.num_examples or c.data.name == "dsprites":
        c.data.num_examples = 512 if c.data.num_examples else 0
        c.data.val_size = 64
    if c.data.name == "dsprites":  # its test split is rendered, 10,000 images
        c.data.test_size = 512


# The type a field takes when its default is None. ml_collections infers a field's type from its
# value, and a None default would otherwise refuse every command-line override ("Type NoneType
# ... is not supported for overriding"), including the README's --config.data.path=DIR.
NONE_FIELD_TYPES = {
    "data_dir": str,
    "path": str,
    "image_size": int,
    "tpu": str,
    "clipnorm": float,
    "global_clipnorm": float,
    "c": float,
}


def _typed_nones(c: ml_collections.ConfigDict) -> None:
    """Gives every None-valued field a type, so ``--config.<field>=value`` can override it.

    The type comes from ``NONE_FIELD_TYPES`` by field name; any other None field (a tuple of
    devices, say) takes any Python literal (``--config.distribution.devices='("/cpu:0",)'``).
    """
    for key, value in list(c.items()):
        if isinstance(value, ml_collections.ConfigDict):
            _typed_nones(value)
        elif value is None:
            field_type = NONE_FIELD_TYPES.get(key, object)
            c[key] = config_dict.FieldReference(None, field_type=field_type)


def finalize(c: ml_collections.ConfigDict, args: dict) -> ml_collections.ConfigDict:
    if args["smoke"]:
        apply_smoke(c)
    _typed_nones(c)
    c.lock()
    return c


def config_for(
    objective: str,
    prior: str,
    arg: str | None,
    *,
    hparams: dict,
    mnist: dict,
    dsprites: dict | None = None,
):
    """The common shape of the dpVAE Table-1 configs.

    Args:
      objective, prior: registry keys.
      arg: the config argument string.
      hparams: the objective's keyword arguments (the authors' values).
      mnist: overrides the authors used on MNIST, kept for every 28x28 grayscale preset:
        ``batch_size``, ``learning_rate``, ``mse_weight``, and for FactorVAE
        ``adversary_learning_rate``. The ``mnist`` preset (not Fashion-MNIST) also turns on
        their augmentation, ``data.augment = "dpvae"``.
      dsprites: the hyperparameters the ``dsprites`` preset replaces in ``hparams`` (Locatello
        et al.'s regularization strengths); each is also a config argument, e.g.
        ``:dsprites,beta=8``, which sets it for any preset.
    """
    dsprites = dsprites or {}
    args = parse_arg(arg, tuple(dsprites))
    c = base_config()
    c.objective = objective
    c.model.prior = decoupled_prior() if prior == "decoupled" else _net("standard_normal")
    # Every preset reproduces the dpVAE authors' PyTorch code but dSprites, which follows
    # Locatello et al.'s study (disentanglement_lib, TensorFlow) and keeps Keras' defaults.
    pytorch_code = args["dataset"] != "dsprites"
    # The authors' networks are PyTorch modules with PyTorch's default initialization; with
    # Keras' Glorot init tfvae's standard-prior VAE trained better than theirs (issue 17).
    c.model.initializer = "torch" if pytorch_code else "glorot"
    hparams = dict(hparams)
    if not pytorch_code:
        hparams.update(dsprites)
    for key in dsprites:
        if key in args:
            hparams[key] = type(dsprites[key])(float(args[key]))
    c.hparams = ml_collections.ConfigDict(hparams)
    apply_dataset(c, args["dataset"])
    if args["dataset"] in ("fashion_mnist", "mnist"):
        c.train.batch_size = mnist.get("batch_size", 100)
        c.optimizers.main.learning_rate = mnist.get("learning_rate", 1e-4)
        c.model.likelihood = _net("gaussian", weight=float(mnist.get("mse_weight", 1.0)))
    if pytorch_code:
        # The authors' torch.optim.Adam (epsilon 1e-8 beside the bias-corrected sqrt(v_hat))
        # on a loss summed over the batch is this Adam on tfvae's batch mean (issue 17).
        c.optimizers.main.epsilon = TORCH_ADAM_EPSILON / c.train.batch_size
        c.optimizers.main.epsilon_hat = False
    if args["dataset"] == "mnist":
        # Every MNIST config of the dpVAE authors (config/*/mnist.json, dp_mnist.json) sets
        # "augment": true; they give no Fashion-MNIST config, so that preset stays unaugmented.
        c.data.augment = "dpvae"
    if objective == "factor_vae":
        c.optimizers.adversary = ml_collections.ConfigDict(
            {
                "name": "adam",
                "learning_rate": mnist.get("adversary_learning_rate", 1e-4),
                "clipnorm": None,
            }
        )
        if pytorch_code:
            # Their discriminator's cross-entropy is a batch mean, as tfvae's.
            c.optimizers.adversary.epsilon = TORCH_ADAM_EPSILON
            c.optimizers.adversary.epsilon_hat = False
    return finalize(c, args)
