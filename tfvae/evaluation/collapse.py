"""NE-VAE's posterior-collapse metrics (``--metrics=collapse,collapse_traversals``); the
analysis itself is ``tfvae.collapse``."""

import os

import numpy as np

from tfvae import collapse, metrics
from tfvae.evaluation.context import EvalContext
from tfvae.evaluation.options import MetricResult


def collapse_metric(ctx: EvalContext) -> MetricResult:
    """-ELBO, KL, recon, MI, AU, re-encoding error and the activity plot on the first
    ``options.num_nll`` examples of the split (``--num_samples`` sets it)."""
    ctx.require_stochastic("MI, active units and the re-encoding error")
    result = collapse.analyze(
        ctx.model,
        ctx.split_array(),
        batch_size=ctx.config.train.batch_size,
        binarize=ctx.config.data.binarize,
        max_examples=ctx.options.num_nll,
        seed=ctx.options.seed,
    )
    path, rel = ctx.figure_path("activity")
    collapse.plot_activity(result["activity"], path)
    return MetricResult(
        scalars={key: float(result[key]) for key in collapse.SCALARS},
        details={
            "activity": result["activity"].tolist(),
            "reencode_error_per_dim": result["reencode_error_per_dim"].tolist(),
            "batch_size": int(ctx.config.train.batch_size),
            "threshold": collapse.ACTIVE_THRESHOLD,
            "num_examples": result["num_examples"],
        },
        figures={"activity": rel},
    )


def collapse_traversals_metric(ctx: EvalContext) -> MetricResult:
    """Single-dimension (-10..10, 100 steps) and random-direction (distance 10) traversals,
    and random directions with the active units held at 0 (activity of the split's codes)."""
    ctx.require_images("Traversals")
    x = ctx.eval_inputs(len(ctx.split_array()), binarize=True)
    activity = metrics.activity(ctx.encode_mean(x))  # [d]
    path, rel = ctx.figure_path("traversal_dims")
    names = collapse.traversal_figures(
        ctx.model, os.path.dirname(path), seed=ctx.options.seed, activity=activity
    )
    folder = os.path.dirname(rel)
    return MetricResult(
        details={
            "space": "z0 mapped to z",
            "range": [-10.0, 10.0],
            "steps": 100,
            "distance": 10.0,
            "shown_steps": collapse.shown_steps(100, 4).tolist(),
            "active_dims": np.flatnonzero(activity > collapse.ACTIVE_THRESHOLD).tolist(),
        },
        figures={name: os.path.join(folder, file) for name, file in names.items()},
    )
