"""Evaluation of a trained workdir: the dpVAE paper's metrics and figures (METHODS.md section 4).

``evaluate_workdir(workdir, options)`` restores the workdir's latest checkpoint, runs the
selected metrics and writes

    workdir/metrics.json     scalars, curves, skipped metrics with the reason, timings, and
                             per metric the options used and (FID) the feature network
    workdir/figures/*.png    sample / LP / HP / reconstruction grids, interpolations,
                             traversals, the leakage plot
    workdir/eval/            TensorBoard: ``eval/<metric>`` scalars and the figures

All metric math lives in ``tfvae.metrics``; this package feeds it a model's samples and codes.

The dpVAE metrics (``METRICS``, selected with ``EvalOptions.metrics``; NE-VAE and MaskAAE add
theirs, ``--metrics=help`` lists all):
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

Disentanglement (``disentanglement.py``, opt-in; ``--metrics=disentanglement`` selects all):
  beta_vae, factor_vae, mig, sap, dci, modularity, unsupervised, disentanglement_traversals:
  disentanglement_lib's suite on z_mean (and ``*_z0`` for decoupled priors), on data with
  known factors (``DataSplits.factors``: dsprites).

A metric that does not apply to a model (no q(z|x) for a deterministic encoder, image figures
for vector data, FID without labels or Inception weights) is skipped and the reason recorded in
``metrics.json["skipped"]``; it never fails the evaluation. For autoregressive (PixelCNN)
decoders, the metrics that sample the decoder or score many importance samples (fid, fid_lp,
nll, interpolations, traversals, the sample grids) run only when selected by name: at these
sizes they take hours on a CPU.

Adding a metric: write ``fn(ctx: EvalContext) -> MetricResult | dict[str, float]`` in the
module of its paper and list it in ``METRICS`` (``tfvae/evaluation/registry.py``); select it with
``--metrics=<name>`` (metrics with ``default=True`` also run when ``--metrics`` is not given).
``ctx.exp`` is the restored ``tfvae.experiment.Experiment``; ``ctx`` caches codes, samples and
features that several metrics share. Nothing registers itself on import: objectives and
``tfvae.collapse`` do not import this package, it imports them.

The package:

    options.py    EvalOptions, MetricResult, MetricUndefined
    context.py    EvalContext: the restored model and the shared, timed intermediate results
    features.py   FID feature networks (Inception, raw vectors, the cached dataset classifier)
    dpvae.py      the dpVAE paper's metrics and figures
    collapse.py   NE-VAE's collapse metrics (the analysis is tfvae.collapse)
    mask_aae.py   MaskAAE's active dimensions and NAC
    registry.py   METRICS, describe_metrics, select_metrics
    report.py     run_metrics, evaluate_workdir: metrics.json, TensorBoard, the table

The FID feature network is named in every report. With ``inception_weights`` (a Keras weights
file for InceptionV3) it is Inception-v3 pool3 at 299x299, as in the paper. Otherwise it is a
small classifier trained on the dataset's labels and cached in ``feature_cache`` under a key
made of the dataset name and image shape, so every model of a data set is scored by the same
network; its identity (key, file hash, test accuracy) goes into ``metrics.json``. FID numbers
from different feature networks are not comparable.
"""

from tfvae.evaluation.context import EvalContext, default_leakage_thresholds
from tfvae.evaluation.features import (
    CLASSIFIER_VERSION,
    FeatureNetwork,
    cached_classifier,
    classifier_model,
    feature_cache_key,
    feature_network,
    identity_features,
    inception_features,
    train_feature_classifier,
)
from tfvae.evaluation.options import (
    DEFAULT_FEATURE_CACHE,
    EvalOptions,
    MetricResult,
    MetricUndefined,
)
from tfvae.evaluation.registry import METRICS, MetricSpec, describe_metrics, select_metrics
from tfvae.evaluation.report import (
    METRICS_FILE,
    describe_feature_network,
    evaluate_workdir,
    feature_networks_by_metric,
    format_report,
    group_feature_networks,
    load_experiment,
    load_workdir_config,
    report_feature_networks,
    run_metrics,
)

__all__ = [
    "CLASSIFIER_VERSION",
    "DEFAULT_FEATURE_CACHE",
    "METRICS",
    "METRICS_FILE",
    "EvalContext",
    "EvalOptions",
    "FeatureNetwork",
    "MetricResult",
    "MetricSpec",
    "MetricUndefined",
    "cached_classifier",
    "classifier_model",
    "default_leakage_thresholds",
    "describe_feature_network",
    "describe_metrics",
    "evaluate_workdir",
    "feature_cache_key",
    "feature_network",
    "feature_networks_by_metric",
    "format_report",
    "group_feature_networks",
    "identity_features",
    "inception_features",
    "load_experiment",
    "load_workdir_config",
    "report_feature_networks",
    "run_metrics",
    "select_metrics",
    "train_feature_classifier",
]
