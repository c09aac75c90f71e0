"""The dpVAE paper's metrics and figures (METHODS.md section 4): FID, FID (LP), sKL, NLL,
leakage, sample grids, interpolations, traversals. The math is in ``tfvae.metrics``."""

import math

import numpy as np
import tensorflow as tf

from tfvae import metrics
from tfvae.evaluation.context import (
    _GRID_STREAM,
    _LP_STREAM,
    _NLL_STREAM,
    _PRIOR_STREAM,
    EvalContext,
    default_leakage_thresholds,
)
from tfvae.evaluation.options import MetricResult, MetricUndefined
from tfvae.images import save_image_grid
from tfvae.traversals import line_codes, single_dimension_codes


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
            # The estimator's own sampling error: compare models only beyond it.
            "standard_error": metrics.symmetric_kl_standard_error(p, q),
            "num_samples": len(q),
        },
    )


def nll_functions(model):
    """The traced ``encode(x)`` and ``log_likelihood(x, z)`` of ``model`` that
    ``metrics.importance_sampled_bounds`` calls (the NLL metric and ``tools.benchmark``)."""

    @tf.function(reduce_retracing=True, autograph=False)
    def log_likelihood(xb, z):
        return model.likelihood.log_prob(xb, model.decoder_params(z, xb))

    @tf.function(reduce_retracing=True, autograph=False)
    def encode(xb):
        return model.encode(xb)

    return encode, log_likelihood


def nll_metric(ctx: EvalContext) -> MetricResult:
    """Importance-sampled NLL (nats, bits/dim) and -ELBO over ``num_nll`` examples."""
    ctx.require_stochastic("The importance-sampled NLL")
    ctx.require_selected_if_autoregressive("nll", "The importance-sampled NLL")
    o, model = ctx.options, ctx.model
    x = ctx.eval_inputs(o.num_nll, binarize=True)
    num_dims = int(np.prod(x.shape[1:]))
    encode, log_likelihood = nll_functions(model)

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
    path = line_codes(start, end, o.interpolation_steps)  # [P, T, d]
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
    r, steps = o.traversal_range, o.traversal_steps
    z0 = single_dimension_codes(d, dims, low=-r, high=r, steps=steps)  # [rows, steps, d]
    flat = z0.reshape(-1, d)
    z = ctx.from_z0(flat) if ctx.is_decoupled else flat
    images = ctx.decode(z, seed=int(ctx.rng(_GRID_STREAM).integers(1 << 30)) + 7)
    path, rel = ctx.figure_path("traversals")
    save_image_grid(images, steps, path)
    values = np.linspace(-r, r, steps)  # as the codes take them
    return MetricResult(
        details={"dimensions": [int(j) for j in dims], "values": values.tolist(), "space": "z0"},
        figures={"traversals": rel},
    )
