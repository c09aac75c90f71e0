"""The evaluation context: a restored model plus the intermediate results several metrics share
(codes, samples, the LP pool, FID features), each computed once and timed."""

import math
import os
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import metrics
from tfvae.errors import InvalidValue
from tfvae.evaluation.features import FeatureNetwork, feature_network
from tfvae.evaluation.options import EvalOptions, MetricUndefined
from tfvae.models import Autoencoder

FIGURES_DIR = "figures"

# Independent random streams of one evaluation (numpy Generator seeds [seed, stream]).
_AGGREGATE_STREAM, _POSTERIOR_STREAM, _PRIOR_STREAM, _LP_STREAM = 1, 2, 3, 4
_GENERATE_STREAM, _NLL_STREAM, _GRID_STREAM = 5, 6, 7
# Block size of log q(z): [4096, 4096] float64 blocks (about 0.5 GB of temporaries) run twice
# as fast as 1024-blocks; the LP pool (100,000 x 10,000 densities) dominates FID (LP).
_AGGREGATE_CHUNK = 4096


def default_leakage_thresholds(latent_dim: int, num: int) -> np.ndarray:
    """Thresholds tau on l(z) = log N(f(z); 0, I), from its maximum downwards.

    l_max = -(d/2) log 2 pi at f(z) = 0; tau = l_max - delta with delta from 0 to
    d/2 + 6 sqrt(d/2) + 10, which reaches well past the typical set of N(0, I) (|f(z)|^2 / 2
    has mean d/2 and standard deviation sqrt(d/2)) into the tail where leaks lie. Fixed by d
    alone, so curves of models with the same latent size share one axis.
    """
    top = -0.5 * latent_dim * metrics.LOG_2PI
    span = latent_dim / 2 + 6.0 * math.sqrt(latent_dim / 2) + 10.0
    return top - np.linspace(span, 0.0, num)  # increasing


class EvalContext:
    """A restored experiment and the intermediate results several metrics share.

    Each shared quantity is computed on first use and its time recorded under
    ``seconds["shared/<name>"]`` (wall) and ``cpu_seconds["shared/<name>"]`` (process CPU
    time, all threads: on a shared machine the wall time depends on the load, this does not).

    Attributes:
      exp: the ``tfvae.experiment.Experiment`` (``exp.model``, ``exp.config``, ``exp.data``).
      model, config, data, workdir, options: shortcuts.
      seconds, cpu_seconds: wall and CPU time of each shared computation.
    """

    def __init__(self, exp, options: EvalOptions):
        self.exp = exp
        self.model = exp.model
        self.config = exp.config
        self.data = exp.data
        self.workdir = exp.workdir
        self.options = options
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._cache: dict = {}
        self.feature_identity: dict | None = None
        # Compiled once: eager TFP flows cost ~0.4 s per call, compiled ones milliseconds.
        prior = self.model.prior
        self.prior_log_prob = tf.function(prior.log_prob, reduce_retracing=True, autograph=False)
        self._to_z0 = tf.function(prior.to_z0, reduce_retracing=True, autograph=False)
        self._from_z0 = tf.function(prior.from_z0, reduce_retracing=True, autograph=False)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    @property
    def is_decoupled(self) -> bool:
        """Whether generation space z0 and representation space z differ (any prior but the
        standard normal, whose z0 = z)."""
        return self.model.decoupled

    @property
    def latent_space(self) -> str:
        """The space sKL, traversals and interpolations use: z0 for decoupled priors."""
        return "z0" if self.is_decoupled else "z"

    @property
    def is_image(self) -> bool:
        return self.data.kind == "image"

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.options.seed, stream])

    def _shared(self, name: str, compute: Callable):
        if name not in self._cache:
            start, cpu = time.perf_counter(), time.process_time()
            self._cache[name] = compute()
            self.seconds[f"shared/{name}"] = time.perf_counter() - start
            self.cpu_seconds[f"shared/{name}"] = time.process_time() - cpu
        return self._cache[name]

    def progbar(self, target: int, label: str) -> keras.utils.Progbar:
        return keras.utils.Progbar(
            target, verbose=1 if self.options.verbose else 0, unit_name=label
        )

    def batched(
        self, fn: Callable, x: np.ndarray, label: str | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        """``fn`` over ``x`` in batches (default ``options.batch_size``), concatenated."""
        bs = batch_size or self.options.batch_size
        bar = self.progbar(len(x), label) if label else None
        out = []
        for i in range(0, len(x), bs):
            out.append(np.asarray(fn(x[i : i + bs])))
            if bar:
                bar.update(min(i + bs, len(x)))
        return np.concatenate(out, axis=0)

    def split_array(self) -> np.ndarray:
        split = self.options.split
        if split not in ("test", "val"):
            raise InvalidValue(f"Unknown split {split!r}. Valid splits: test, val.")
        return getattr(self.data, split)

    def eval_inputs(self, n: int, *, binarize: bool) -> np.ndarray:
        """The first n examples of the split as float32; binarized statically (as during
        validation) when ``binarize`` and the config binarizes."""
        x = self.split_array()[:n]
        if binarize and self.config.data.binarize != "none":
            x = data_lib.static_binarize(x)
        return data_lib.to_float(x).numpy()

    def encode_mean(self, x: np.ndarray) -> np.ndarray:
        """z_mean (stochastic encoders) or the code z (deterministic), ``[N, d]``."""
        return self.batched(lambda b: self.model.encode(tf.convert_to_tensor(b))[0].numpy(), x)

    def decode(self, z: np.ndarray, label: str | None = None, seed: int = 0) -> np.ndarray:
        """Images (likelihood mean; a sample for autoregressive decoders) for codes z."""
        counter = iter(range(1 << 30))

        def fn(b):
            return self.model.decode(
                tf.convert_to_tensor(b, tf.float32), seed=seed + next(counter)
            ).numpy()

        return self.batched(fn, np.asarray(z, np.float32), label)

    def to_z0(self, z: np.ndarray) -> np.ndarray:
        """g(z), ``[N, d]``."""
        z = np.asarray(z, np.float32)
        return self.batched(lambda b: self._to_z0(tf.constant(b)).numpy(), z, batch_size=10_000)

    def from_z0(self, z0: np.ndarray) -> np.ndarray:
        """g^-1(z0), ``[N, d]``."""
        z0 = np.asarray(z0, np.float32)
        return self.batched(lambda b: self._from_z0(tf.constant(b)).numpy(), z0, batch_size=10_000)

    def log_prior(self, z: np.ndarray) -> np.ndarray:
        """log p(z) (for dp models the full decoupled density), ``[N]``."""
        z = np.asarray(z, np.float32)
        return self.batched(
            lambda b: self.prior_log_prob(tf.constant(b)).numpy(), z, batch_size=10_000
        )

    def generate(self, n: int, seed: int, label: str | None = None) -> np.ndarray:
        """n samples: z0 ~ N(0, I), z = g^-1(z0), images decoded from z (as
        ``Autoencoder.generate``, whose override a model keeps if it has one)."""
        if type(self.model).generate is not Autoencoder.generate:
            bs = self.options.batch_size
            return np.concatenate(
                [
                    self.model.generate(min(bs, n - i), seed=seed + i).numpy()
                    for i in range(0, n, bs)
                ]
            )
        z0 = np.random.default_rng([self.options.seed, _GENERATE_STREAM, seed])
        z0 = z0.standard_normal((n, self.latent_dim)).astype(np.float32)
        return self.decode(self.from_z0(z0), label=label, seed=seed)

    def require_stochastic(self, what: str) -> None:
        if not self.model.stochastic:
            raise MetricUndefined(
                f"{what} needs q(z|x); {self.config.objective} has a deterministic encoder "
                "(no posterior density)."
            )

    @property
    def autoregressive(self) -> bool:
        return self.model.autoregressive

    def require_selected_if_autoregressive(self, name: str, what: str) -> None:
        """Runs metric ``name`` for an autoregressive decoder only when selected by name.

        A PixelCNN samples pixel by pixel (H*W decoder passes per batch) and scores every
        importance sample with a full pass; at the paper's sizes that takes hours on a CPU, so
        these metrics are opt-in for such models rather than part of the default run.
        """
        if self.autoregressive and name not in (self.options.metrics or ()):
            raise MetricUndefined(
                f"{what} with an autoregressive decoder needs a PixelCNN pass per pixel or per "
                f"importance sample (hours on a CPU at these sizes); select it by name "
                f"(--metrics={name}) to run it anyway."
            )

    def require_images(self, what: str) -> None:
        if not self.is_image:
            raise MetricUndefined(
                f"{what} need images; {self.config.data.name} is vector data "
                "(tools/two_moons.py draws the two-moons figures)."
            )

    # -- shared quantities -----------------------------------------------------------------
    def aggregate_encoding(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Encoder outputs for ``num_aggregate`` training examples: (z_mean, z_log_var [or None
        for deterministic encoders]); they define log q(z)."""
        return self._shared("aggregate_encoding", lambda: self._encode_train(0))

    def posterior_samples(self) -> np.ndarray:
        """``num_skl`` aggregate-posterior samples z ~ q(z|x) (codes for deterministic
        encoders) of training examples disjoint from those defining log q(z)."""

        def compute():
            z_mean, z_log_var = self._encode_train(1)
            if z_log_var is None:
                return z_mean
            eps = self.rng(_POSTERIOR_STREAM).standard_normal(z_mean.shape)
            return (z_mean + np.exp(0.5 * z_log_var) * eps).astype(np.float32)

        return self._shared("posterior_samples", compute)

    def _encode_train(self, part: int):
        """part 0: the first ``num_aggregate`` of a fixed permutation of the training split;
        part 1: the next ``num_skl`` (the last ones when the split is too small)."""
        o = self.options
        train = self.data.train
        order = self.rng(_AGGREGATE_STREAM).permutation(len(train))
        if part == 0:
            index = order[: o.num_aggregate]
        elif o.num_aggregate + o.num_skl <= len(train):
            index = order[o.num_aggregate : o.num_aggregate + o.num_skl]
        else:
            # Too few examples for disjoint sets: overlap with part 0 rather than repeat
            # examples (repeated codes of a deterministic encoder break the 1-NN estimator).
            index = np.take(order, np.arange(-o.num_skl, 0), mode="wrap")
        x = train[np.sort(index)]
        if self.config.data.binarize != "none":
            x = data_lib.static_binarize(x)

        means, log_vars = [], []
        for i in range(0, len(x), o.batch_size):
            z_mean, z_log_var = self.model.encode(data_lib.to_float(x[i : i + o.batch_size]))
            means.append(z_mean.numpy())  # [b, d]
            if z_log_var is not None:
                log_vars.append(z_log_var.numpy())  # [b, d]
        return np.concatenate(means), (np.concatenate(log_vars) if log_vars else None)

    def log_aggregate_posterior(self, z: np.ndarray) -> np.ndarray:
        """log q(z) of the aggregate posterior of ``num_aggregate`` training examples."""
        self.require_stochastic("log q(z)")
        z_mean, z_log_var = self.aggregate_encoding()
        return metrics.log_aggregate_posterior(z, z_mean, z_log_var, chunk_size=_AGGREGATE_CHUNK)

    def lp_pool(self) -> dict:
        """``num_fid / lp_fraction`` prior samples (z0, z = g^-1(z0)) and their log q(z)."""

        def compute():
            o = self.options
            m = int(math.ceil(o.num_fid / o.lp_fraction))
            z0 = self.rng(_LP_STREAM).standard_normal((m, self.latent_dim)).astype(np.float32)
            z = self.from_z0(z0)
            return {"z0": z0, "z": z, "log_q": self.log_aggregate_posterior(z)}

        self.require_stochastic("Low-posterior sampling")
        return self._shared("lp_pool", compute)

    def lp_indices(self, n: int) -> np.ndarray:
        """Indices of the n prior samples of ``lp_pool`` with the lowest log q(z)."""
        pool = self.lp_pool()
        idx = metrics.low_posterior_indices(pool["log_q"], self.options.lp_fraction)
        return idx[:n]

    def features(self) -> FeatureNetwork:
        def compute():
            net = feature_network(self.data, self.config.data.name, self.options)
            self.feature_identity = net.identity
            return net

        return self._shared("feature_network", compute)

    def real_features(self) -> np.ndarray:
        """Features of the first ``num_fid`` examples of the split (never binarized)."""

        def compute():
            x = self.eval_inputs(self.options.num_fid, binarize=False)
            return self.features().features(x, self.options.batch_size)

        return self._shared("real_features", compute)

    def image_features(self, images: np.ndarray) -> np.ndarray:
        """Features of generated images, clipped to the data range [0, 1] first."""
        if self.is_image:
            images = np.clip(images, 0.0, 1.0)
        return self.features().features(images, self.options.batch_size)

    def figure_path(self, name: str) -> tuple[str, str]:
        """(absolute path, path relative to the workdir) of a PNG figure."""
        rel = os.path.join(FIGURES_DIR, f"{name}.png")
        path = os.path.join(self.workdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path, rel
