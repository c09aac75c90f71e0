"""Evaluation of a trained workdir: the dpVAE paper's metrics and figures (METHODS.md section 4).

``evaluate_workdir(workdir, options)`` restores the workdir's latest checkpoint, runs the
selected metrics and writes

    workdir/metrics.json     scalars, curves, skipped metrics with the reason, timings, and
                             per metric the options used and (FID) the feature network
    workdir/figures/*.png    sample / LP / HP / reconstruction grids, interpolations,
                             traversals, the leakage plot
    workdir/eval/            TensorBoard: ``eval/<metric>`` scalars and the figures

All metric math lives in ``tfvae.metrics``; this module feeds it a model's samples and codes.

Metrics (``METRICS``, selected with ``EvalOptions.metrics``):
  fid             FID of random samples against the evaluation split.
  fid_lp          FID of low-posterior (LP) samples: ``num_fid / lp_fraction`` prior samples
                  (dp: z = g^-1(z0)) ranked by the aggregate posterior log q(z); the lowest
                  ``num_fid`` are decoded.
  skl             KL(p||q) + KL(q||p) between prior and aggregate posterior, 1-NN estimator,
                  ``num_skl`` samples each; in z0 space for decoupled priors.
  nll             Importance-sampled NLL with K samples, nats per example and bits per
                  dimension, and the negative ELBO from the same samples.
  leakage         Fraction of aggregate-posterior samples with l(z) = log N(f(z); 0, I) < tau
                  and their mean log q(z), as curves over tau (f = g for dp), and a plot.
  grids           Random, LP, HP samples and reconstructions as image grids.
  interpolations  Between encoded evaluation images: linear in z0 mapped to z for decoupled
                  priors, linear in z otherwise.
  traversals      One z0 dimension at a time from -r to r, the others 0 (mapped to z by g^-1).

A metric that does not apply to a model (no q(z|x) for a deterministic encoder, image figures
for vector data, FID without labels or Inception weights) is skipped and the reason recorded in
``metrics.json["skipped"]``; it never fails the evaluation. For autoregressive (PixelCNN)
decoders, the metrics that sample the decoder or score many importance samples (fid, fid_lp,
nll, interpolations, traversals, the sample grids) run only when selected by name: at these
sizes they take hours on a CPU.

Adding a metric (NE-VAE: MI / AU / re-encoding error; MaskAAE: NAC / active dims) needs no
change to the CLI: register it from any module the CLI imports, e.g. the objective's module::

    from tfvae import evaluation

    def active_units(ctx: evaluation.EvalContext):
        if not ctx.model.stochastic:
            raise evaluation.MetricUndefined("AU needs a stochastic encoder.")
        z_mean, _ = ctx.aggregate_encoding()
        return {"active_units": tfvae.metrics.active_units(z_mean)}

    evaluation.register_metric("au", active_units, description="He et al. active units")

and select it with ``--metrics=au`` (registered metrics with ``default=True`` also run when
``--metrics`` is not given). A metric function takes the ``EvalContext`` (``ctx.exp`` is the
restored ``tfvae.trainer.Experiment``; ``ctx`` caches codes, samples and features that several
metrics share) and returns a dict of scalars or a ``MetricResult``. This module imports no
objective, build or trainer module at import time (``import_metric_modules`` imports
``tfvae.trainer``, and with it every objective, before metrics are selected), so those modules
may import it and register metrics without an import cycle.

The FID feature network is named in every report. With ``inception_weights`` (a Keras weights
file for InceptionV3) it is Inception-v3 pool3 at 299x299, as in the paper. Otherwise it is a
small classifier trained on the dataset's labels and cached in ``feature_cache`` under a key
made of the dataset name and image shape, so every model of a data set is scored by the same
network; its identity (key, file hash, test accuracy) goes into ``metrics.json``. FID numbers
from different feature networks are not comparable.
"""

import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from tfvae import data as data_lib
from tfvae import metrics
from tfvae import workdir as workdir_lib
from tfvae.models import Autoencoder
from tfvae.priors import StandardNormalPrior
from tfvae.registry import lookup

DEFAULT_FEATURE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tfvae", "features")
# Bumped whenever the classifier's architecture or training changes, so old caches are not
# silently mixed with new ones.
CLASSIFIER_VERSION = 1
FIGURES_DIR = "figures"
METRICS_FILE = "metrics.json"

# Independent random streams of one evaluation (numpy Generator seeds [seed, stream]).
_AGGREGATE_STREAM, _POSTERIOR_STREAM, _PRIOR_STREAM, _LP_STREAM = 1, 2, 3, 4
_GENERATE_STREAM, _NLL_STREAM, _GRID_STREAM = 5, 6, 7
# Block size of log q(z): [4096, 4096] float64 blocks (about 0.5 GB of temporaries) run twice
# as fast as 1024-blocks; the LP pool (100,000 x 10,000 densities) dominates FID (LP).
_AGGREGATE_CHUNK = 4096


# ----------------------------------------------------------------------------------------------
# Options, results, registry
# ----------------------------------------------------------------------------------------------
# EvalOptions fields that count something and must be at least 1.
_POSITIVE_OPTIONS = (
    "num_fid",
    "num_aggregate",
    "num_nll",
    "nll_samples",
    "nll_chunk",
    "nll_batch",
    "batch_size",
    "grid_size",
    "num_interpolations",
    "interpolation_steps",
    "traversal_steps",
    "max_traversal_dims",
    "leakage_thresholds",
    "inception_size",
    "classifier_steps",
)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """What to compute and with how many samples. Defaults are the paper's sizes.

    Attributes:
      metrics: metric names to run; None runs every registered metric with ``default=True``.
      split: the data split real images and NLL come from ("test" or "val").
      num_fid: generated (and real) images for FID and for FID (LP).
      num_skl: samples of the prior and of the aggregate posterior for sKL and leakage.
      num_aggregate: encoded training examples defining log q(z) (a disjoint set of
        ``num_skl`` training examples provides the aggregate-posterior samples).
      num_nll: evaluation examples for the NLL (and the ``collapse`` metric).
      nll_samples: K, importance samples per example.
      nll_chunk: importance samples per decoder call (memory: nll_chunk * nll_batch rows).
      nll_batch: examples per NLL batch.
      lp_fraction: LP samples are the lowest ``lp_fraction`` of ``num_fid / lp_fraction``
        prior samples ranked by log q(z).
      batch_size: batch size for encoding, decoding and features.
      grid_size: images per sample grid.
      num_interpolations: interpolated pairs (rows of the interpolation figure).
      interpolation_steps: points per interpolation, endpoints included.
      traversal_steps: points per traversal.
      traversal_range: traversals run over [-r, r] in z0.
      max_traversal_dims: at most this many dimensions are traversed (most active first).
      leakage_thresholds: number of thresholds tau of the leakage curves.
      seed: seeds every draw of the evaluation (it is repeatable).
      inception_weights: Keras weights file of InceptionV3 (with or without top); None uses the
        cached dataset classifier.
      inception_size: input resolution of Inception (299 in the FID literature).
      feature_cache: folder of cached classifiers.
      classifier_steps: training steps of a new classifier (Adam, batch 64).
      verbose: progress bars and the printed table.
    """

    metrics: tuple[str, ...] | None = None
    split: str = "test"
    num_fid: int = 10_000
    num_skl: int = 5_000
    num_aggregate: int = 10_000
    num_nll: int = 10_000
    nll_samples: int = 100
    nll_chunk: int = 10
    nll_batch: int = 100
    lp_fraction: float = 0.1
    batch_size: int = 500
    grid_size: int = 64
    num_interpolations: int = 8
    interpolation_steps: int = 10
    traversal_steps: int = 11
    traversal_range: float = 3.0
    max_traversal_dims: int = 16
    leakage_thresholds: int = 50
    seed: int = 0
    inception_weights: str | None = None
    inception_size: int = 299
    feature_cache: str = DEFAULT_FEATURE_CACHE
    classifier_steps: int = 2000
    verbose: bool = True

    def __post_init__(self):
        for name in _POSITIVE_OPTIONS:
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"EvalOptions.{name} must be >= 1, got {value}.")
        if self.num_skl < 2:
            raise ValueError(f"EvalOptions.num_skl must be >= 2 (1-NN), got {self.num_skl}.")
        if not 0.0 < self.lp_fraction <= 1.0:
            raise ValueError(f"EvalOptions.lp_fraction must be in (0, 1], got {self.lp_fraction}.")

    def with_num_samples(self, n: int | None) -> "EvalOptions":
        """The same options with every sample count set to ``n`` (None: unchanged)."""
        if n is None:
            return self
        if n < 2:
            raise ValueError(f"num_samples must be >= 2, got {n}.")
        return dataclasses.replace(
            self, num_fid=n, num_skl=n, num_aggregate=n, num_nll=n, nll_batch=min(self.nll_batch, n)
        )


class MetricUndefined(Exception):
    """Raised by a metric that does not apply to the model; the message is recorded."""


@dataclasses.dataclass
class MetricResult:
    """What a metric returns.

    Attributes:
      scalars: name -> float, written to ``metrics.json["metrics"]`` and TensorBoard.
      details: JSON-serializable extras (curves, the space a metric was measured in, counts),
        written to ``metrics.json["details"][<metric>]``.
      figures: figure name -> path relative to the workdir.
    """

    scalars: dict[str, float] = dataclasses.field(default_factory=dict)
    details: dict = dataclasses.field(default_factory=dict)
    figures: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A registered metric: ``fn(ctx) -> MetricResult | dict[str, float]``."""

    fn: Callable[["EvalContext"], "MetricResult | dict"]
    default: bool
    description: str


METRICS: dict[str, MetricSpec] = {}


def register_metric(
    name: str,
    fn: Callable[["EvalContext"], "MetricResult | dict"],
    *,
    default: bool = True,
    description: str = "",
) -> Callable:
    """Adds ``fn`` to ``METRICS`` under ``name``; returns ``fn``.

    Args:
      name: the key ``--metrics`` selects it by; must be new.
      fn: ``fn(ctx: EvalContext)`` returning a ``MetricResult`` or a dict of floats; raises
        ``MetricUndefined(reason)`` when the metric does not apply to ``ctx.model``.
      default: run it when no metric list is given.
      description: one line shown by ``--metrics=help``.
    """
    if name in METRICS and METRICS[name].fn is not fn:
        raise ValueError(f"Metric {name!r} is already registered ({METRICS[name].fn}).")
    METRICS[name] = MetricSpec(fn, default, description)
    return fn


def import_metric_modules() -> None:
    """Imports every module that may register metrics: ``tfvae.trainer`` and what it imports
    (every objective module through ``tfvae.build``, ``tfvae.collapse``)."""
    import tfvae.trainer  # noqa: F401  (imported for its registrations)


def describe_metrics() -> str:
    """One line per registered metric: name, whether it runs by default, description."""
    import_metric_modules()
    return "\n".join(
        f"{name:<20} {'default' if spec.default else 'opt-in '}  {spec.description}"
        for name, spec in METRICS.items()
    )


def select_metrics(names: Sequence[str] | None) -> list[str]:
    """Validated metric names in registry order; None selects the defaults.

    Modules that register metrics are imported first (``import_metric_modules``).
    """
    import_metric_modules()
    if names is None:
        return [name for name, spec in METRICS.items() if spec.default]
    for name in names:
        lookup(METRICS, name, "metric")
    return [name for name in METRICS if name in set(names)]


# ----------------------------------------------------------------------------------------------
# Workdir loading
# ----------------------------------------------------------------------------------------------
def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The workdir's locked config (``tfvae.workdir.load_config``)."""
    return workdir_lib.load_config(workdir)


def load_experiment(workdir: str):
    """Rebuilds the workdir's model and restores its latest checkpoint.

    Returns:
      A ``tfvae.trainer.Experiment`` (``tfvae.workdir.load_experiment``).

    Raises:
      FileNotFoundError: if the workdir has no config.json or no checkpoint.
    """
    return workdir_lib.load_experiment(workdir, require_checkpoint=True)


# ----------------------------------------------------------------------------------------------
# Feature networks for FID
# ----------------------------------------------------------------------------------------------
def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class FeatureNetwork:
    """Images ``[N, H, W, C]`` in [0, 1] (or vectors) -> features ``[N, F]``.

    Attributes:
      identity: JSON-serializable description written into every report (name, file, hash).
      fn: the feature function on one batch.
    """

    identity: dict
    fn: Callable[[np.ndarray], np.ndarray]

    def features(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate(
            [self.fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)], axis=0
        )


def feature_cache_key(dataset: str, shape: Sequence[int]) -> str:
    """``fashion_mnist_28x28x1``: one cached classifier per data set and image shape."""
    return f"{dataset}_{'x'.join(str(int(s)) for s in shape)}"


def classifier_model(shape: Sequence[int], num_classes: int) -> keras.Model:
    """The FID feature classifier: 4 ReLU convs (32-32-64-64, two of stride 2), Dense(128)
    named ``features`` (the FID features), Dense(num_classes) logits."""
    return keras.Sequential(
        [
            keras.Input(tuple(shape)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu", name="features"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name="fid_classifier",
    )


def _scale_images(x, y):
    return data_lib.to_float(x), y


def train_feature_classifier(
    splits: data_lib.DataSplits, *, steps: int, seed: int, batch_size: int = 64
) -> tuple[keras.Model, float]:
    """Trains ``classifier_model`` on the training labels; returns it and its test accuracy."""
    if splits.train_labels is None:
        raise MetricUndefined(
            "the data set has no labels to train a FID classifier on; pass inception_weights."
        )
    keras.utils.set_random_seed(seed)
    num_classes = int(max(splits.train_labels.max(), splits.test_labels.max())) + 1
    model = classifier_model(splits.shape, num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ds = tf.data.Dataset.from_tensor_slices((splits.train, splits.train_labels))
    ds = ds.shuffle(len(splits.train), seed=seed).repeat().batch(batch_size)
    ds = ds.map(_scale_images).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    test = tf.data.Dataset.from_tensor_slices((splits.test, splits.test_labels)).batch(500)
    test = test.map(_scale_images)
    _, accuracy = model.evaluate(test, verbose=0)
    return model, float(accuracy)


def _classifier_features(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    extractor = keras.Model(model.inputs, model.get_layer("features").output)

    @tf.function(reduce_retracing=True)
    def call(x):
        return extractor(x, training=False)

    def features(x: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(x, tf.float32)).numpy()

    return features


def cached_classifier(
    splits: data_lib.DataSplits, dataset: str, *, cache_dir: str, steps: int, seed: int = 0
) -> FeatureNetwork:
    """The data set's FID classifier from ``cache_dir``, trained and stored on first use.

    The file is written to a temporary name and renamed, so concurrent evaluations never read
    a half-written classifier; whichever finishes first wins and later ones reuse it.
    """
    key = feature_cache_key(dataset, splits.shape)
    folder = os.path.join(cache_dir, f"{key}_v{CLASSIFIER_VERSION}")
    path = os.path.join(folder, "classifier.keras")
    info_path = os.path.join(folder, "identity.json")
    if not (os.path.exists(path) and os.path.exists(info_path)):
        logging.info("Training the FID feature classifier for %s (%d steps).", key, steps)
        model, accuracy = train_feature_classifier(splits, steps=steps, seed=seed)
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".keras", delete=False) as tmp:
            tmp_path = tmp.name
        model.save(tmp_path)
        info = {
            "name": "classifier",
            "description": "dataset-label classifier (tfvae.evaluation.classifier_model), "
            "Dense(128) features",
            "key": key,
            "version": CLASSIFIER_VERSION,
            "train_steps": steps,
            "test_accuracy": accuracy,
            "sha256": _sha256(tmp_path),
        }
        info_tmp = tmp_path + ".json"
        with open(info_tmp, "w") as f:
            json.dump(info, f, indent=2)
        os.replace(tmp_path, path)
        os.replace(info_tmp, info_path)
    with open(info_path) as f:
        identity = dict(json.load(f), path=path)
    model = keras.models.load_model(path)
    return FeatureNetwork(identity, _classifier_features(model))


def inception_features(weights_path: str, *, size: int = 299) -> FeatureNetwork:
    """Inception-v3 pool3 (2048-d global average pool) from a Keras weights file.

    Images in [0, 1] are resized to ``size`` x ``size`` (bilinear), grayscale is repeated to
    RGB, and values are scaled to [-1, 1] as InceptionV3 expects.
    """
    if not os.path.exists(weights_path):
        raise FileNotFoundError(f"Inception weights file {weights_path!r} does not exist.")
    shape = (size, size, 3)
    try:
        net = keras.applications.InceptionV3(
            include_top=False, weights=weights_path, input_shape=shape, pooling="avg"
        )
    except ValueError:
        # A full (with-top) weights file: build the full model, take its pool3 layer.
        if size != 299:
            raise ValueError(
                f"{weights_path} holds the classifier top, which needs inception_size=299."
            ) from None
        full = keras.applications.InceptionV3(include_top=True, weights=weights_path)
        net = keras.Model(full.inputs, full.get_layer("avg_pool").output)

    @tf.function(reduce_retracing=True)
    def call(x):
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        x = tf.image.resize(x, [size, size], method="bilinear")
        return net(2.0 * tf.clip_by_value(x, 0.0, 1.0) - 1.0, training=False)

    identity = {
        "name": "inception_v3_pool3",
        "path": os.path.abspath(weights_path),
        "sha256": _sha256(weights_path),
        "input_size": size,
    }

    def features(x: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(x, tf.float32)).numpy()

    return FeatureNetwork(identity, features)


def identity_features() -> FeatureNetwork:
    """Raw data as features, for vector data (two moons, the manifold set)."""
    return FeatureNetwork(
        {"name": "identity", "description": "raw data vectors (vector data set)"},
        lambda x: np.asarray(x, np.float32).reshape(len(x), -1),
    )


def feature_network(splits: data_lib.DataSplits, dataset: str, options: EvalOptions):
    """Inception when weights are given, raw vectors for vector data, else the classifier."""
    if options.inception_weights:
        if splits.kind != "image":
            raise MetricUndefined("Inception features need image data.")
        return inception_features(options.inception_weights, size=options.inception_size)
    if splits.kind != "image":
        return identity_features()
    return cached_classifier(
        splits,
        dataset,
        cache_dir=options.feature_cache,
        steps=options.classifier_steps,
        seed=options.seed,
    )


# ----------------------------------------------------------------------------------------------
# The evaluation context: a restored model plus caches shared by metrics
# ----------------------------------------------------------------------------------------------
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
      exp: the ``tfvae.trainer.Experiment`` (``exp.model``, ``exp.config``, ``exp.data``).
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
        self.prior_log_prob = tf.function(prior.log_prob, reduce_retracing=True)
        self._to_z0 = tf.function(prior.to_z0, reduce_retracing=True)
        self._from_z0 = tf.function(prior.from_z0, reduce_retracing=True)

    # -- helpers ---------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    @property
    def is_decoupled(self) -> bool:
        """Whether generation space z0 and representation space z differ (any prior but the
        standard normal, whose z0 = z)."""
        return not isinstance(self.model.prior, StandardNormalPrior)

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
            raise ValueError(f"Unknown split {split!r}. Valid splits: test, val.")
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
        return bool(getattr(self.model.decoder, "autoregressive", False))

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


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def tile_images(images: np.ndarray, cols: int) -> np.ndarray:
    """``[n, H, W, C]`` -> one ``[rows*(H+1)+1, cols*(W+1)+1, C]`` image with 1-pixel gaps."""
    n, h, w, c = images.shape
    rows = int(math.ceil(n / cols))
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, c), np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = 1 + r * (h + 1), 1 + q * (w + 1)
        grid[top : top + h, left : left + w] = images[i]
    return np.clip(grid, 0.0, 1.0)


def save_image_grid(images: np.ndarray, cols: int, path: str, scale: int = 2) -> np.ndarray:
    """Writes a grid of images in [0, 1] as an 8-bit PNG, each pixel ``scale`` x ``scale``."""
    from PIL import Image

    grid = tile_images(np.asarray(images, np.float32), cols)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    pixels = np.round(grid * 255).astype(np.uint8)
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
    return grid


# ----------------------------------------------------------------------------------------------
# Built-in metrics
# ----------------------------------------------------------------------------------------------
def _fid_result(ctx: EvalContext, key: str, images: np.ndarray, details: dict) -> MetricResult:
    fid = metrics.fid(ctx.real_features(), ctx.image_features(images))
    details = dict(details, num_images=len(images), feature_network=ctx.feature_identity)
    return MetricResult(scalars={key: fid}, details=details)


def fid_metric(ctx: EvalContext) -> MetricResult:
    """FID of ``num_fid`` random samples (z0 ~ N(0, I), z = g^-1(z0)) against real images."""
    ctx.require_selected_if_autoregressive("fid", "FID")
    ctx.features()  # fails (MetricUndefined) before any sampling when there is no network
    images = ctx.generate(ctx.options.num_fid, seed=0, label="samples")
    return _fid_result(ctx, "fid", images, {})


def fid_lp_metric(ctx: EvalContext) -> MetricResult:
    """FID of the ``num_fid`` low-posterior samples (lowest log q(z) of the LP pool)."""
    ctx.require_selected_if_autoregressive("fid_lp", "FID (LP)")
    ctx.features()
    ctx.require_stochastic("FID (LP)")
    idx = ctx.lp_indices(ctx.options.num_fid)
    z = ctx.lp_pool()["z"][idx]
    images = ctx.decode(z, label="LP samples", seed=int(ctx.rng(_LP_STREAM).integers(1 << 30)))
    pool = ctx.lp_pool()
    details = {
        "pool_size": len(pool["z"]),
        "lp_fraction": ctx.options.lp_fraction,
        "max_log_q_selected": float(pool["log_q"][idx].max()),
        "median_log_q_pool": float(np.median(pool["log_q"])),
    }
    return _fid_result(ctx, "fid_lp", images, details)


def skl_metric(ctx: EvalContext) -> MetricResult:
    """sKL between prior and aggregate posterior, 1-NN estimator, in z0 for dp models.

    Prior samples are N(0, I) draws in z0 (equivalently p(z) samples mapped by g); posterior
    samples are z ~ q(z|x) of training examples (codes for deterministic encoders), mapped by
    g for dp models.
    """
    z = ctx.posterior_samples()
    q = ctx.to_z0(z) if ctx.is_decoupled else z
    p = ctx.rng(_PRIOR_STREAM).standard_normal(q.shape)
    kl_pq = metrics.knn_kl_divergence(p, q)
    kl_qp = metrics.knn_kl_divergence(q, p)
    return MetricResult(
        scalars={"skl": kl_pq + kl_qp},
        details={
            "space": ctx.latent_space,
            "kl_prior_posterior": kl_pq,
            "kl_posterior_prior": kl_qp,
            "num_samples": len(q),
        },
    )


def nll_metric(ctx: EvalContext) -> MetricResult:
    """Importance-sampled NLL (nats, bits/dim) and -ELBO over ``num_nll`` examples."""
    ctx.require_stochastic("The importance-sampled NLL")
    ctx.require_selected_if_autoregressive("nll", "The importance-sampled NLL")
    o, model = ctx.options, ctx.model
    x = ctx.eval_inputs(o.num_nll, binarize=True)
    num_dims = int(np.prod(x.shape[1:]))

    @tf.function(reduce_retracing=True)
    def log_likelihood(xb, z):
        return model.likelihood.log_prob(xb, model.decoder_params(z, xb))

    @tf.function(reduce_retracing=True)
    def encode(xb):
        return model.encode(xb)

    log_px, elbo = [], []
    bar = ctx.progbar(len(x), "examples")
    for k, start in enumerate(range(0, len(x), o.nll_batch)):
        bounds = metrics.importance_sampled_bounds(
            tf.constant(x[start : start + o.nll_batch]),
            encode_fn=encode,
            log_likelihood_fn=log_likelihood,
            prior_log_prob_fn=ctx.prior_log_prob,
            num_samples=o.nll_samples,
            chunk_size=o.nll_chunk,
            seed=int(ctx.rng(_NLL_STREAM).integers(1 << 30)) + k,
        )
        log_px.append(bounds["log_px"])
        elbo.append(bounds["elbo"])
        bar.update(min(start + o.nll_batch, len(x)))
    nll = -float(np.mean(np.concatenate(log_px)))
    neg_elbo = -float(np.mean(np.concatenate(elbo)))
    return MetricResult(
        scalars={
            "nll": nll,
            "nll_bits_per_dim": float(metrics.bits_per_dim(nll, num_dims)),
            "neg_elbo": neg_elbo,
            "neg_elbo_bits_per_dim": float(metrics.bits_per_dim(neg_elbo, num_dims)),
        },
        details={
            "num_examples": len(x),
            "importance_samples": o.nll_samples,
            "likelihood": ctx.config.model.likelihood.name,
            "num_dims": num_dims,
        },
    )


def leakage_metric(ctx: EvalContext) -> MetricResult:
    """Leakage curves over tau and their plot (METHODS.md section 4)."""
    ctx.require_stochastic("Leakage (mean log q(z))")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = ctx.posterior_samples()
    base = metrics.log_standard_normal(ctx.to_z0(z) if ctx.is_decoupled else z)
    log_q = ctx.log_aggregate_posterior(z)
    taus = default_leakage_thresholds(ctx.latent_dim, ctx.options.leakage_thresholds)
    curve = metrics.leakage_curve(base, log_q, taus)
    path, rel = ctx.figure_path("leakage")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    label = f"{ctx.config.objective} ({ctx.config.model.prior.name} prior)"
    axes[0].plot(curve["threshold"], curve["fraction"], label=label)
    axes[0].set(xlabel="threshold tau on log N(f(z); 0, I)", ylabel="fraction of q(z) samples")
    axes[1].plot(curve["threshold"], curve["mean_log_q"], label=label)
    axes[1].set(xlabel="threshold tau", ylabel="mean log q(z) in the region")
    # The same tau axis on both panels: mean log q(z) is undefined (NaN, not drawn) below the
    # lowest l(z), which would otherwise narrow the right panel's range.
    for ax in axes:
        ax.set_xlim(float(taus[0]), float(taus[-1]))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return MetricResult(
        details={
            "f": "g" if ctx.is_decoupled else "identity",
            **{k: [None if np.isnan(v) else float(v) for v in vals] for k, vals in curve.items()},
        },
        figures={"leakage": rel},
    )


SAMPLE_GRIDS = ("samples", "lp_samples", "hp_samples")


def grids_metric(ctx: EvalContext) -> MetricResult:
    """Grids of random, LP and HP samples and of reconstructions (real above reconstruction).

    For an autoregressive decoder not selected by name, only the (teacher-forced)
    reconstructions are drawn (see ``EvalContext.require_selected_if_autoregressive``).
    """
    ctx.require_images("Sample grids")
    n, cols = ctx.options.grid_size, int(math.ceil(math.sqrt(ctx.options.grid_size)))
    seed = int(ctx.rng(_GRID_STREAM).integers(1 << 30))
    result = MetricResult()
    skipped = {}

    def save(name, images, columns=cols):
        path, rel = ctx.figure_path(name)
        save_image_grid(images, columns, path)
        result.figures[name] = rel

    x = ctx.eval_inputs(n // 2 if n > 1 else 1, binarize=True)
    recon = ctx.model.reconstruct(tf.constant(x)).numpy()
    # Rows alternate: real images, then their reconstructions.
    rows = [a for r in range(0, len(x), cols) for a in (x[r : r + cols], recon[r : r + cols])]
    save("reconstructions", np.concatenate(rows))
    try:
        ctx.require_selected_if_autoregressive("grids", "Sampling")
    except MetricUndefined as e:
        result.details = {"skipped_figures": dict.fromkeys(SAMPLE_GRIDS, str(e))}
        return result
    save("samples", ctx.generate(n, seed=seed))
    if ctx.model.stochastic:
        pool = ctx.lp_pool()
        save("lp_samples", ctx.decode(pool["z"][ctx.lp_indices(n)], seed=seed + 1))
    else:
        skipped["lp_samples"] = "needs log q(z); the encoder is deterministic"
    z = ctx.posterior_samples()
    hp = metrics.high_posterior_indices(ctx.log_prior(z), min(1.0, n / len(z)))[:n]
    save("hp_samples", ctx.decode(z[hp], seed=seed + 2))
    result.details = {"skipped_figures": skipped} if skipped else {}
    return result


def interpolations_metric(ctx: EvalContext) -> MetricResult:
    """Interpolations between pairs of encoded evaluation images: linear in z0 mapped to z by
    g^-1 for dp models, linear in z otherwise; real endpoints framed on both sides."""
    ctx.require_images("Interpolations")
    ctx.require_selected_if_autoregressive("interpolations", "Interpolation")
    o = ctx.options
    x = ctx.eval_inputs(2 * o.num_interpolations, binarize=True)
    z = ctx.encode_mean(x)
    start, end = z[0::2], z[1::2]  # [P, d] each
    if ctx.is_decoupled:
        start, end = ctx.to_z0(start), ctx.to_z0(end)
    t = np.linspace(0.0, 1.0, o.interpolation_steps)[None, :, None]  # [1, T, 1]
    path = (1.0 - t) * start[:, None] + t * end[:, None]  # [P, T, d]
    flat = path.reshape(-1, ctx.latent_dim).astype(np.float32)
    if ctx.is_decoupled:
        flat = ctx.from_z0(flat)
    images = ctx.decode(flat, seed=int(ctx.rng(_GRID_STREAM).integers(1 << 30)))
    images = images.reshape(len(start), o.interpolation_steps, *images.shape[1:])
    framed = np.concatenate([x[0::2, None], images, x[1::2, None]], axis=1)  # [P, T+2, ...]
    fig_path, rel = ctx.figure_path("interpolations")
    save_image_grid(framed.reshape(-1, *framed.shape[2:]), o.interpolation_steps + 2, fig_path)
    return MetricResult(details={"space": ctx.latent_space}, figures={"interpolations": rel})


def traversals_metric(ctx: EvalContext) -> MetricResult:
    """One row per latent dimension: z0_j from -r to r, the other z0 dimensions 0, mapped to z
    by g^-1 (the identity for a standard-normal prior). With more dimensions than
    ``max_traversal_dims``, the most active ones (variance of the encoded means in z0) are
    shown."""
    ctx.require_images("Traversals")
    ctx.require_selected_if_autoregressive("traversals", "Traversal")
    o, d = ctx.options, ctx.latent_dim
    dims = np.arange(d)
    if d > o.max_traversal_dims:
        z_mean, _ = ctx.aggregate_encoding()
        codes = ctx.to_z0(z_mean) if ctx.is_decoupled else z_mean  # [N, d]
        dims = np.argsort(-np.var(codes, axis=0), kind="stable")[: o.max_traversal_dims]
    values = np.linspace(-o.traversal_range, o.traversal_range, o.traversal_steps)
    z0 = np.zeros((len(dims), len(values), d), np.float32)
    for row, j in enumerate(dims):
        z0[row, :, j] = values
    flat = z0.reshape(-1, d)
    z = ctx.from_z0(flat) if ctx.is_decoupled else flat
    images = ctx.decode(z, seed=int(ctx.rng(_GRID_STREAM).integers(1 << 30)) + 7)
    path, rel = ctx.figure_path("traversals")
    save_image_grid(images, len(values), path)
    return MetricResult(
        details={"dimensions": [int(j) for j in dims], "values": values.tolist(), "space": "z0"},
        figures={"traversals": rel},
    )


register_metric("fid", fid_metric, description="FID of random samples")
register_metric("fid_lp", fid_lp_metric, description="FID of low-posterior samples")
register_metric("skl", skl_metric, description="symmetric KL prior vs aggregate posterior")
register_metric("nll", nll_metric, description="importance-sampled NLL and -ELBO")
register_metric("leakage", leakage_metric, description="leakage curves and plot")
register_metric("grids", grids_metric, description="sample / LP / HP / reconstruction grids")
register_metric("interpolations", interpolations_metric, description="latent interpolations")
register_metric("traversals", traversals_metric, description="per-dimension traversals")


# ----------------------------------------------------------------------------------------------
# Running and reporting
# ----------------------------------------------------------------------------------------------
def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_json(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_jsonable(payload), f, indent=2)
    os.replace(tmp, path)


def run_metrics(ctx: EvalContext, names: Sequence[str]) -> dict:
    """Runs the named metrics on ``ctx``; returns the report (see ``evaluate_workdir``).

    A metric raising ``MetricUndefined`` is recorded under ``skipped`` with its reason. A
    scalar name already reported by an earlier metric of the run is stored as
    ``<metric>/<name>``.
    """
    report = {
        "metrics": {},
        "details": {},
        "figures": {},
        "skipped": {},
        "seconds": {},
        "cpu_seconds": {},
    }
    for i, name in enumerate(names, start=1):
        if ctx.options.verbose:
            print(f"[{i}/{len(names)}] {name}", flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        shared_before = dict(ctx.seconds)
        try:
            result = METRICS[name].fn(ctx)
        except MetricUndefined as e:
            report["skipped"][name] = str(e)
            logging.info("Skipped %s: %s", name, e)
            continue
        finally:
            # Time of this metric, including the shared work it triggered first.
            report["seconds"][name] = time.perf_counter() - start
            report["cpu_seconds"][name] = time.process_time() - cpu
            for key in ctx.seconds.keys() - shared_before.keys():
                report["seconds"][key] = ctx.seconds[key]
                report["cpu_seconds"][key] = ctx.cpu_seconds[key]
        if isinstance(result, dict):
            result = MetricResult(scalars=dict(result))
        for key, value in result.scalars.items():
            if key in report["metrics"]:
                # Two metrics report a scalar of the same name (e.g. -ELBO): the first keeps
                # the plain name, later ones are prefixed, nothing is silently overwritten.
                key = f"{name}/{key}"
            report["metrics"][key] = float(value)
        if result.details:
            report["details"][name] = result.details
        report["figures"].update(result.figures)
    return report


def _write_summaries(workdir: str, step: int, report: dict, feature_identity) -> None:
    writer = tf.summary.create_file_writer(os.path.join(workdir, "eval"))
    with writer.as_default(step=step):
        for key, value in report["metrics"].items():
            if value is not None and np.isfinite(value):
                tf.summary.scalar(f"eval/{key}", value)
        for name, rel in report["figures"].items():
            with open(os.path.join(workdir, rel), "rb") as f:
                image = tf.image.decode_png(f.read(), channels=0)
            tf.summary.image(f"eval/{name}", image[None])
        if feature_identity is not None:
            tf.summary.text("eval/feature_network", json.dumps(feature_identity))
        for name, reason in report["skipped"].items():
            tf.summary.text(f"eval/skipped/{name}", reason)
    writer.flush()
    writer.close()


def describe_feature_network(identity: dict, *, sha: bool = False) -> str:
    """``classifier fashion_mnist_28x28x1, test accuracy 0.912`` (name, key or file, accuracy;
    with ``sha``, the start of the weights' sha256 when known)."""
    where = identity.get("key") or identity.get("path") or ""
    acc = identity.get("test_accuracy")
    extra = f", test accuracy {acc:.3f}" if acc is not None else ""
    if sha and "sha256" in identity:
        extra += f", sha256 {identity['sha256'][:12]}"
    return f"{identity['name']} {where}{extra}".replace("  ", " ").strip()


def feature_networks_by_metric(details: dict) -> dict[str, dict]:
    """metric -> the feature network its FID was computed with (from ``details``)."""
    return {
        name: d["feature_network"]
        for name, d in details.items()
        if isinstance(d, dict) and d.get("feature_network")
    }


def report_feature_networks(report: dict) -> dict[str, dict]:
    """FID metric -> its feature network, from a metrics.json (older versions kept a single
    ``feature_network`` for every FID metric of the report)."""
    by_metric = report.get("feature_networks")
    if by_metric is None:
        feat = report.get("feature_network")
        by_metric = {k: feat for k in report.get("metrics", {}) if feat and k.startswith("fid")}
    return by_metric


def group_feature_networks(by_metric: dict[str, dict]) -> list[tuple[dict, list[str]]]:
    """[(identity, metrics using it)], one entry per distinct network, in metric order."""
    groups: dict[str, tuple[dict, list[str]]] = {}
    for name, identity in by_metric.items():
        key = json.dumps(identity, sort_keys=True)
        groups.setdefault(key, (identity, []))[1].append(name)
    return list(groups.values())


def format_report(report: dict) -> str:
    """A short text table of scalars, timings and skipped metrics, under the FID feature
    network(s): one line per network, naming the metrics computed with it."""
    lines = io.StringIO()
    for identity, names in group_feature_networks(report_feature_networks(report)):
        lines.write(f"FID features ({', '.join(names)}): {describe_feature_network(identity)}\n")
    width = max([24, *(len(k) + 2 for k in report["metrics"])])
    lines.write(f"{'metric':<{width}}{'value':>14}\n")
    for key, value in report["metrics"].items():
        text = f"{value:>14.4f}" if value is not None else f"{'nan':>14}"
        lines.write(f"{key:<{width}}{text}\n")
    width = max([24, *(len(k) + 4 for k in report["seconds"])])
    lines.write(f"{'time':<{width}}{'wall s':>10}{'cpu s':>10}\n")
    for key, value in report["seconds"].items():
        cpu = report.get("cpu_seconds", {}).get(key)
        cpu = float("nan") if cpu is None else cpu
        lines.write(f"  {key:<{width - 2}}{value:>10.1f}{cpu:>10.1f}\n")
    for key, reason in report["skipped"].items():
        lines.write(f"skipped {key}: {reason}\n")
    return lines.getvalue()


def _previous_options(previous: dict) -> dict[str, dict]:
    """metric -> options of the run that computed it, from a metrics.json (older versions kept
    one flat ``options`` dict: it applied to every metric they had run)."""
    options = previous.get("options") or {}
    if "split" not in options:  # already per metric
        return options
    ran = set(previous.get("skipped", {})) | {
        k for k in previous.get("seconds", {}) if not k.startswith("shared/")
    }
    return {name: options for name in ran}


def evaluate_workdir(workdir: str, options: EvalOptions = EvalOptions()) -> dict:
    """Evaluates the workdir's latest checkpoint and writes metrics.json, figures, summaries.

    When metrics.json already holds results of the same checkpoint step and split, the new
    results are merged into it (so metrics can be added one at a time); otherwise it is
    replaced. Each metric keeps the options and the feature network it was computed with.

    Args:
      workdir: a trained tfvae workdir.
      options: see ``EvalOptions``.

    Returns:
      The report written to metrics.json: ``step``, ``objective``, ``prior``, ``dataset``,
      ``split``, ``metrics`` (scalars), ``details`` (curves and settings per metric),
      ``figures``, ``skipped`` (metric -> reason), ``seconds`` and ``cpu_seconds`` (wall and
      process CPU time of each metric, including the shared work it triggered first, and of
      each shared computation), ``options`` (metric -> the ``EvalOptions`` of the run that
      computed it), ``feature_networks`` (FID metric -> the identity of its feature network)
      and ``feature_network`` (that identity when every FID metric used the same network,
      None when they differ or no FID was computed).
    """
    names = select_metrics(options.metrics)
    exp = load_experiment(workdir)
    ctx = EvalContext(exp, options)
    report = run_metrics(ctx, names)
    header = {
        "step": exp.step,
        "objective": exp.config.objective,
        "prior": exp.config.model.prior.name,
        "dataset": exp.config.data.name,
        "split": options.split,
        "checkpoint": exp.restored_from,
    }
    path = os.path.join(workdir, METRICS_FILE)
    merged = dict(header, **report)
    merged["options"] = dict.fromkeys(names, dataclasses.asdict(options))
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous.get("step") == exp.step and previous.get("split") == options.split:
            for key in ("metrics", "details", "figures", "skipped", "seconds", "cpu_seconds"):
                merged[key] = {**previous.get(key, {}), **report[key]}
            # A metric that ran now is no longer skipped.
            for name in names:
                if name not in report["skipped"]:
                    merged["skipped"].pop(name, None)
            merged["options"] = {**_previous_options(previous), **merged["options"]}
    by_metric = feature_networks_by_metric(merged["details"])
    groups = group_feature_networks(by_metric)
    merged["feature_networks"] = by_metric
    merged["feature_network"] = groups[0][0] if len(groups) == 1 else None
    merged = _jsonable(merged)
    _write_json(path, merged)
    _write_summaries(workdir, exp.step, report, ctx.feature_identity)
    if options.verbose:
        print(format_report(merged), flush=True)
    return merged
