"""Builds models and optimizers from a config. Every name goes through a registry."""

import contextlib

import keras
import tensorflow as tf

from tfvae import networks
from tfvae.errors import InvalidValue
from tfvae.likelihoods import build_likelihood
from tfvae.models import AdversarialAutoencoder, Autoencoder
from tfvae.objectives import OBJECTIVES
from tfvae.optimizers import OPTIMIZERS, build_schedule
from tfvae.priors import build_prior
from tfvae.registry import lookup

# train.mixed_precision: a Keras dtype policy ("float32" is full precision), or "auto":
# mixed_bfloat16 where bfloat16 is fast (fast_bfloat16), float32 elsewhere.
MIXED_PRECISION = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
# CPU flags (Linux /proc/cpuinfo) of bfloat16 matrix units oneDNN uses: AMX tiles, AVX512-BF16.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty where the file does not exist, e.g. macOS)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def fast_bfloat16(flags: set[str] | None = None) -> str | None:
    """Why bfloat16 matmuls are faster than float32 on this machine, or None when they are not.

    True of TPUs, of GPUs of compute capability 8.0 or more, and of CPUs with AMX-BF16 or
    AVX512-BF16 (measured on an AMX Xeon: a 2048^3 matmul at 2,090 against 442 GFLOP/s). On a
    CPU without them TensorFlow emulates bfloat16, 16x slower than float32 on an AVX2 EPYC
    (docs/benchmarks.md). ``flags``: the CPU's flags (default: ``cpu_flags()``).
    """
    if tf.config.list_logical_devices("TPU"):
        return "a TPU"
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return f"a GPU of compute capability {capability[0]}.{capability[1]}"
    found = sorted((cpu_flags() if flags is None else flags) & set(BF16_CPU_FLAGS))
    return f"a CPU with {', '.join(found)}" if found else None


def resolve_mixed_precision(name: str, flags: set[str] | None = None) -> str:
    """``config.train.mixed_precision`` as a Keras dtype policy; "auto" picks mixed_bfloat16
    where ``fast_bfloat16`` and float32 elsewhere. An unknown name fails, listing the valid."""
    if name not in MIXED_PRECISION:
        raise InvalidValue(
            f"Unknown train.mixed_precision {name!r}; valid: {list(MIXED_PRECISION)}, e.g. "
            "--config.train.mixed_precision=auto."
        )
    if name != "auto":
        return name
    return "mixed_bfloat16" if fast_bfloat16(flags) else "float32"


@contextlib.contextmanager
def _dtype_policy(name: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(resolve_mixed_precision(name))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def resolve_jit_compile(value) -> bool:
    """``config.train.jit_compile`` as a bool for ``tf.function``.

    True or False as given (also the strings "true"/"false" of a command-line override);
    "auto" (the default): XLA when TensorFlow sees a GPU or TPU, where fusing the many small
    element-wise ops of these models pays, and not on CPU-only machines, where
    ``tools.benchmark --matrix`` measured XLA slower than TF's oneDNN kernels for every conv
    config of the papers (docs/benchmarks.md). Keras' own ``jit_compile="auto"`` decides alike.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if text == "auto":
        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    raise InvalidValue(
        f"train.jit_compile must be True, False or 'auto'; got {value!r}. E.g. "
        "--config.train.jit_compile=auto (XLA on GPU/TPU only)."
    )


def _options(cfg) -> dict:
    return dict(cfg.options) if cfg.options is not None else {}


def build_model(config, input_shape: tuple, dataset_size: int) -> Autoencoder:
    """The model of ``config.objective`` with the networks, prior and likelihood of
    ``config.model``; ``config.hparams`` are the objective's keyword arguments."""
    cls = lookup(OBJECTIVES, config.objective, "objective")
    m = config.model
    d = m.latent_dim
    with _dtype_policy(config.train.mixed_precision):
        # Only the large networks compute in low precision; the model casts their outputs to
        # float32, and priors, adversaries and every loss stay float32.
        encoder = networks.build_encoder(
            m.encoder.name,
            input_shape=tuple(input_shape),
            out_dim=2 * d if cls.stochastic else d,
            **_options(m.encoder),
        )
        decoder = networks.build_decoder(
            m.decoder.name, latent_dim=d, output_shape=tuple(input_shape), **_options(m.decoder)
        )
    initialize = lookup(networks.INITIALIZERS, m.initializer, "network initializer")
    if initialize is not None:
        # Two streams per seed, (seed, 0) and (seed, 1): with seed and seed + 1 the decoder of
        # seed s would redraw the encoder of seed s + 1, so neighbouring seeds were not
        # independent samples.
        initialize(encoder, seed=(config.seed, 0))
        initialize(decoder, seed=(config.seed, 1))
    try:
        prior = build_prior(m.prior.name, d, **_options(m.prior))
    except InvalidValue:
        raise
    except ValueError as error:  # tfvae.priors checks its options with plain ValueErrors
        raise InvalidValue(f"config.model.prior: {error}") from error
    kwargs = dict(
        encoder=encoder,
        decoder=decoder,
        prior=prior,
        likelihood=build_likelihood(m.likelihood.name, **_options(m.likelihood)),
        latent_dim=d,
        dataset_size=dataset_size,
        seed=config.seed,
    )
    if issubclass(cls, AdversarialAutoencoder):
        kwargs["adversary"] = networks.build_adversary(
            m.adversary.name, input_dim=d, **_options(m.adversary)
        )
    hparams = dict(config.hparams)
    try:
        return cls(**kwargs, **hparams)
    except TypeError as e:
        raise TypeError(
            f"Bad hparams {sorted(hparams)} for objective {config.objective!r}: {e}"
        ) from None


def build_optimizer(spec: dict, mixed_precision: str = "float32"):
    """One optimizer from its config (``config.optimizers.<name>`` as a dict): the registry's
    class, an optional learning-rate ``schedule`` over its own iterations, and dynamic loss
    scaling under ``mixed_float16``."""
    opt = dict(spec)
    cls = lookup(OPTIMIZERS, opt.pop("name"), "optimizer")
    # Optional field: a schedule of the learning rate over the optimizer's own iterations.
    schedule = opt.pop("schedule", None)
    if schedule is not None:
        opt["learning_rate"] = build_schedule(opt["learning_rate"], **dict(schedule))
    optimizer = cls(**{k: v for k, v in opt.items() if v is not None})
    if resolve_mixed_precision(mixed_precision) == "mixed_float16":
        # float16 gradients underflow without dynamic loss scaling (bfloat16 needs none).
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_optimizers(config, model: Autoencoder) -> dict:
    """One optimizer per name the model needs, from ``config.optimizers.<name>``."""
    out = {}
    for name in model.optimizer_names:
        if name not in config.optimizers:
            raise InvalidValue(
                f"Objective {config.objective!r} needs optimizers {list(model.optimizer_names)};"
                f" config.optimizers has {sorted(config.optimizers)}. Add config.optimizers."
                f"{name}."
            )
        out[name] = build_optimizer(dict(config.optimizers[name]), config.train.mixed_precision)
    return out
