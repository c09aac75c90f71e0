"""What an evaluation computes (``EvalOptions``) and what a metric returns (``MetricResult``,
``MetricUndefined``)."""

import dataclasses
import os

from tfvae.errors import InvalidValue

DEFAULT_FEATURE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tfvae", "features")

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
    "num_disentanglement",
)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """What to compute and with how many samples. Defaults are the paper's sizes.

    Attributes:
      metrics: metric names to run (keys of ``tfvae.evaluation.METRICS``); None runs every
        metric whose spec has ``default=True``.
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
      num_disentanglement: iid samples of the disentanglement metrics (10,000 as
        disentanglement_lib; ``tfvae.evaluation.disentanglement.settings_for`` derives the rest).
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
    num_disentanglement: int = 10_000
    verbose: bool = True

    def __post_init__(self):
        for name in _POSITIVE_OPTIONS:
            value = getattr(self, name)
            if value < 1:
                raise InvalidValue(f"EvalOptions.{name} must be >= 1, got {value}.")
        if self.num_skl < 2:
            raise InvalidValue(f"EvalOptions.num_skl must be >= 2 (1-NN), got {self.num_skl}.")
        if not 0.0 < self.lp_fraction <= 1.0:
            raise InvalidValue(
                f"EvalOptions.lp_fraction must be in (0, 1], got {self.lp_fraction}."
            )

    def with_num_samples(self, n: int | None) -> "EvalOptions":
        """The same options with every sample count set to ``n`` (None: unchanged)."""
        if n is None:
            return self
        if n < 2:
            raise InvalidValue(f"num_samples must be >= 2, got {n}.")
        return dataclasses.replace(
            self,
            num_fid=n,
            num_skl=n,
            num_aggregate=n,
            num_nll=n,
            nll_batch=min(self.nll_batch, n),
            num_disentanglement=n,
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
