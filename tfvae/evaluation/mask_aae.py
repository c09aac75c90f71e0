"""MaskAAE's metrics (``--metrics=active_dims,nac``): the active latent dimensions of the learned
mask and the NAC of the codes over them (MaskAAE paper, Table 2)."""

import numpy as np

from tfvae import metrics
from tfvae.evaluation.context import EvalContext
from tfvae.evaluation.options import MetricResult, MetricUndefined


def active_dimensions(model) -> np.ndarray:
    """Bool [d]: the latent dimensions the decoder uses; all of them for a model without a mask."""
    if hasattr(model, "active_mask"):
        return np.asarray(model.active_mask())
    return np.ones([model.latent_dim], bool)


def active_dims_metric(ctx: EvalContext) -> MetricResult:
    """Number of active dimensions (alpha_j >= threshold) and the mask values."""
    model = ctx.model
    if not hasattr(model, "active_mask"):
        raise MetricUndefined(
            f"{ctx.config.objective} has no latent mask: all {model.latent_dim} dimensions "
            "reach the decoder."
        )
    active = active_dimensions(model)
    return MetricResult(
        scalars={"active_dims": float(active.sum())},
        details={
            "alpha": np.asarray(model.alpha()).tolist(),
            "threshold": float(model.latent_mask.threshold),
            "latent_dim": int(model.latent_dim),
        },
    )


def nac_metric(ctx: EvalContext) -> MetricResult:
    """NAC of the codes of ``num_aggregate`` training examples, over the active dimensions
    (MaskAAE paper, Table 2; ``tfvae.metrics.nac``). Codes are z (deterministic encoders) or
    z_mean; models without a mask use every dimension."""
    z, _ = ctx.aggregate_encoding()  # [N, d]
    active = active_dimensions(ctx.model)
    try:
        value = metrics.nac(z, active)
    except ValueError as e:  # an active dimension with constant codes: no correlation
        raise MetricUndefined(str(e)) from None
    return MetricResult(
        scalars={"nac": value},
        details={"num_active": int(active.sum()), "num_codes": int(len(z))},
    )
