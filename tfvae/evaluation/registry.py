"""``METRICS``: every metric ``--metrics`` can select, in one explicit dict.

A metric is ``fn(ctx: EvalContext) -> MetricResult | dict[str, float]``; it raises
``MetricUndefined(reason)`` when it does not apply to ``ctx.model``. Adding one means writing the
function in the module of its paper (``dpvae``, ``collapse``, ``mask_aae``) and listing it here;
nothing registers itself on import. The dict's order is the order metrics run and are reported.
"""

import dataclasses
from collections.abc import Callable, Sequence

from tfvae.evaluation import collapse, disentanglement, dpvae, mask_aae
from tfvae.evaluation.context import EvalContext
from tfvae.evaluation.options import MetricResult
from tfvae.registry import lookup


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A metric: ``fn(ctx) -> MetricResult | dict[str, float]``; ``default``: it runs when no
    metric list is given; ``description``: the line ``--metrics=help`` shows."""

    fn: Callable[[EvalContext], MetricResult | dict]
    default: bool
    description: str


METRICS: dict[str, MetricSpec] = {
    # The dpVAE paper (METHODS.md section 4).
    "fid": MetricSpec(dpvae.fid_metric, True, "FID of random samples"),
    "fid_lp": MetricSpec(dpvae.fid_lp_metric, True, "FID of low-posterior samples"),
    "skl": MetricSpec(dpvae.skl_metric, True, "symmetric KL prior vs aggregate posterior"),
    "nll": MetricSpec(dpvae.nll_metric, True, "importance-sampled NLL and -ELBO"),
    "leakage": MetricSpec(dpvae.leakage_metric, True, "leakage curves and plot"),
    "grids": MetricSpec(dpvae.grids_metric, True, "sample / LP / HP / reconstruction grids"),
    "interpolations": MetricSpec(dpvae.interpolations_metric, True, "latent interpolations"),
    "traversals": MetricSpec(dpvae.traversals_metric, True, "per-dimension traversals"),
    # MaskAAE.
    "active_dims": MetricSpec(
        mask_aae.active_dims_metric, True, "MaskAAE: active latent dimensions, mask"
    ),
    "nac": MetricSpec(
        mask_aae.nac_metric, True, "normalized absolute off-diagonal covariance of the codes"
    ),
    # NE-VAE: posterior collapse.
    "collapse": MetricSpec(
        collapse.collapse_metric,
        True,
        "-ELBO, KL, MI, active units, re-encoding error, activity plot",
    ),
    "collapse_traversals": MetricSpec(
        collapse.collapse_traversals_metric,
        False,
        "NE-VAE traversals: one dimension -10..10, random directions to distance 10",
    ),
}

# Disentanglement (disentanglement_lib's suite), on data with known factors; opt-in, or all at
# once with --metrics=disentanglement.
_DISENTANGLEMENT = {
    "beta_vae": "BetaVAE score (Higgins et al. 2017)",
    "factor_vae": "FactorVAE score (Kim and Mnih 2018)",
    "mig": "mutual information gap (Chen et al. 2018)",
    "sap": "SAP score (Kumar et al. 2018)",
    "dci": "DCI disentanglement, completeness, informativeness",
    "modularity": "modularity and explicitness (Ridgeway and Mozer 2018)",
    "unsupervised": "Gaussian total / Wasserstein correlation, code mutual information",
}
for _name, _description in _DISENTANGLEMENT.items():
    METRICS[_name] = MetricSpec(disentanglement.make_metric(_name), False, _description)
METRICS["disentanglement_traversals"] = MetricSpec(
    disentanglement.traversals_metric, False, "traversals per dimension: PNG grid and GIF"
)
# Names that select several metrics.
GROUPS: dict[str, tuple[str, ...]] = {
    "disentanglement": (*_DISENTANGLEMENT, "disentanglement_traversals"),
}


def describe_metrics() -> str:
    """One line per metric: name, whether it runs by default, description."""
    return "\n".join(
        f"{name:<20} {'default' if spec.default else 'opt-in '}  {spec.description}"
        for name, spec in METRICS.items()
    ) + "".join(f"\n{name:<20} group    {', '.join(names)}" for name, names in GROUPS.items())


def select_metrics(names: Sequence[str] | None) -> list[str]:
    """Validated metric names in ``METRICS`` order; None selects the defaults; a ``GROUPS``
    name selects its members."""
    if names is None:
        return [name for name, spec in METRICS.items() if spec.default]
    selected = set()
    for name in names:
        if name in GROUPS:
            selected.update(GROUPS[name])
        else:
            lookup({**METRICS, **GROUPS}, name, "metric")
            selected.add(name)
    return [name for name in METRICS if name in selected]
