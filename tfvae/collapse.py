"""Posterior-collapse analysis: the NE-VAE paper's metrics, activity plot and traversals.

Over a data set (``analyze``), with z ~ q(z|x) one reparameterized sample per example
(METHODS.md section 5):

  neg_elbo              -ELBO = -log p(x|z) + KL(q(z|x) || p(z)), nats per example; ``recon``
                        and ``kl`` are its two parts (``recon`` uses the normalized likelihood,
                        so for a Gaussian it differs from the training term by a constant).
  mutual_information    He et al.'s estimate E[log q(z|x)] - E[log q(z)], log q(z) from each
                        batch; the example-weighted mean over batches. It is at most about
                        log B, so it depends on the batch size (He et al. and NE-VAE: 50).
  activity              A_j = Var_x(E_q[z_j | x]) per dimension, and ``active_units`` =
                        #{j : A_j > 0.01}.
  reencode_error        the se re-encoding error (1/d) sum_j (z_j - z'_j)^2, z' ~ q(z | x_hat),
                        x_hat the decoder mean (teacher-forced for PixelCNN); also per dimension.
  iw_nll                importance-sampled -log p(x) with K samples (``iw_samples`` > 0).

``validation_metrics`` gives the cheap part of these during training (``train.collapse_metrics``
and aggressive training use it; TensorBoard tags ``val/mutual_information``,
``val/active_units``, ``val/reencode_error``).

Figures: ``plot_activity`` (bars of A_j, log scale, the 0.01 threshold); traversals
``tfvae.traversals.single_dimension_codes`` (one dimension from -10 to 10 in 100 steps, the
rest 0) and ``random_direction_codes`` (origin to a random point at distance 10, optionally with
some dimensions held at 0: the NE-VAE paper holds the active ones at 0 to show what the collapsed
ones carry). Lines are drawn in the generation space z0 and mapped to z by the prior (g^-1; the
identity for N(0, I)), so for dp models a straight line in z0 is a curve in z.
``decode_codes`` renders them; for a PixelCNN every image of one call shares the same uniform
noise, so the differences along a row come from z alone. ``traversal_figures`` writes the three
grids, drawing every 4th of the 100 points and the last (a PixelCNN sample costs H*W network
passes: on a CPU, a full-size model takes hours for all grids, a GPU minutes).

The evaluation CLI runs these as the metrics ``collapse`` (default) and ``collapse_traversals``
(opt-in; ``tfvae.evaluation.collapse``):
``python -m tfvae.evaluate --workdir=... --metrics=collapse,collapse_traversals``.
Standalone: ``python -m tfvae.collapse --workdir=runs/nevae_se [--traversals]
[--traversal_every=4] [--iw_samples=100]`` writes ``<workdir>/collapse/{metrics.json,*.png}``.
"""

import json
import os

import numpy as np
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import metrics
from tfvae.errors import InvalidValue
from tfvae.images import save_image_grid
from tfvae.traversals import line_codes, single_dimension_codes

ACTIVE_THRESHOLD = 0.01
# Stateless seed streams of one analysis: posterior sample z, re-encoding sample z'.
_Z_STREAM, _REENCODE_STREAM = 1, 2


def _require_stochastic(model) -> None:
    if not model.stochastic:
        raise InvalidValue(
            f"{type(model).__name__} has a deterministic encoder: MI, activity and the "
            "re-encoding error need q(z|x) = N(mu, sigma^2)."
        )


@tf.function(reduce_retracing=True, autograph=False)
def _batch_terms(model, x: tf.Tensor, seed: tf.Tensor) -> dict:
    """Per-example terms of one batch; ``seed`` [2] int seeds z and z' statelessly."""
    z_mean, z_log_var = model.encode(x)  # [B, d] each
    shape = tf.shape(z_mean)
    fold_in = tf.random.experimental.stateless_fold_in
    eps = tf.random.stateless_normal(shape, fold_in(seed, _Z_STREAM))
    z = z_mean + tf.exp(0.5 * z_log_var) * eps  # [B, d]
    params = model.decoder_params(z, x)  # teacher-forced for autoregressive decoders
    recon = -model.likelihood.log_prob(x, params)  # [B]
    kl = model.prior.kl(z, z_mean, z_log_var)  # [B]
    x_hat = model.likelihood.mean(params)  # [B, ...]
    re_mean, re_log_var = model.encode(x_hat)
    eps_re = tf.random.stateless_normal(shape, fold_in(seed, _REENCODE_STREAM))
    z_re = re_mean + tf.exp(0.5 * re_log_var) * eps_re  # [B, d]
    return {
        "z_mean": z_mean,
        "z_log_var": z_log_var,
        "recon": recon,
        "kl": kl,
        "reencode_sq": tf.square(z - z_re),  # [B, d]
    }


def analyze(
    model,
    x: np.ndarray,
    *,
    batch_size: int = 50,
    binarize: str = "none",
    max_examples: int | None = None,
    iw_samples: int = 0,
    iw_chunk: int = 10,
    seed: int = 0,
    threshold: float = ACTIVE_THRESHOLD,
) -> dict:
    """The collapse metrics of ``model`` over ``x`` (see the module docstring).

    Args:
      model: a stochastic tfvae model.
      x: ``[N, ...]`` examples as stored (uint8 images are scaled by ``tfvae.data.to_float``).
      batch_size: B; also the batch the MI estimate uses.
      binarize: the config's ``data.binarize``; anything but "none" binarizes statically, as
        validation does.
      max_examples: use only the first ones (None: all).
      iw_samples: K for the importance-sampled NLL; 0 skips it.
      iw_chunk: importance samples per decoder call.
      seed: seeds every draw; the analysis is repeatable.
      threshold: the activity above which a unit counts as active.

    Returns:
      Floats ``neg_elbo``, ``recon``, ``kl``, ``mutual_information``, ``active_units``,
      ``reencode_error``, ``num_examples`` (and ``iw_nll``), arrays ``activity`` [d] and
      ``reencode_error_per_dim`` [d].
    """
    _require_stochastic(model)
    if max_examples is not None:
        x = x[:max_examples]
    if len(x) < 2:
        raise InvalidValue(f"Need at least 2 examples for the activity, got {len(x)}.")
    z_means, sums, mi_sum, iw_nll_sum = [], {}, 0.0, 0.0
    ds = data_lib.eval_dataset(x, batch_size=batch_size, binarize=binarize)
    for i, xb in enumerate(ds):
        terms = _batch_terms(model, xb, tf.constant([seed, i], tf.int32))
        n = int(xb.shape[0])
        z_means.append(terms["z_mean"].numpy())
        for key in ("recon", "kl"):
            sums[key] = sums.get(key, 0.0) + float(tf.reduce_sum(terms[key]))
        sums["reencode_sq"] = sums.get("reencode_sq", 0.0) + terms["reencode_sq"].numpy().sum(0)
        mi_sum += n * metrics.mutual_information(
            terms["z_mean"].numpy(), terms["z_log_var"].numpy(), seed=seed * 100_003 + i
        )
        if iw_samples:
            log_px = metrics.importance_sampled_log_likelihood(
                xb,
                encode_fn=model.encode,
                log_likelihood_fn=lambda xs, z: model.likelihood.log_prob(
                    xs, model.decoder_params(z, xs)
                ),
                prior_log_prob_fn=model.prior.log_prob,
                num_samples=iw_samples,
                chunk_size=iw_chunk,
                seed=seed * 100_003 + i,
            )
            iw_nll_sum -= float(np.sum(log_px))
    n = len(x)
    z_means = np.concatenate(z_means)  # [N, d]
    act = metrics.activity(z_means)  # [d]
    per_dim = sums["reencode_sq"] / n  # [d]
    out = {
        "neg_elbo": (sums["recon"] + sums["kl"]) / n,
        "recon": sums["recon"] / n,
        "kl": sums["kl"] / n,
        "mutual_information": mi_sum / n,
        "active_units": int(np.sum(act > threshold)),
        "reencode_error": float(np.mean(per_dim)),
        "num_examples": n,
        "activity": act,
        "reencode_error_per_dim": per_dim,
    }
    if iw_samples:
        out["iw_nll"] = iw_nll_sum / n
    return out


def validation_metrics(exp, num_batches: int | None) -> dict:
    """MI, active units and re-encoding error on the validation split, for TensorBoard.

    Args:
      exp: a ``tfvae.trainer.Experiment``.
      num_batches: batches of ``config.train.batch_size`` to use (None: the whole split).
    """
    cfg = exp.config
    n = None if num_batches is None else num_batches * cfg.train.batch_size
    result = analyze(
        exp.model,
        exp.data.val,
        batch_size=cfg.train.batch_size,
        binarize=cfg.data.binarize,
        max_examples=n,
        seed=cfg.seed,
    )
    return {
        key: float(result[key]) for key in ("mutual_information", "active_units", "reencode_error")
    }


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def plot_activity(activity, path: str, *, threshold: float = ACTIVE_THRESHOLD, title=None):
    """Bar plot of the per-dimension activity A_j (log scale) with the AU threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    act = np.asarray(activity, np.float64)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.2 * len(act) + 1.5), 3.0))
    colors = ["tab:blue" if a > threshold else "tab:gray" for a in act]
    ax.bar(np.arange(len(act)), np.maximum(act, 1e-8), color=colors)
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"{threshold}")
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension j")
    ax.set_ylabel("activity Var_x E[z_j|x]")
    au = int(np.sum(act > threshold))
    ax.set_title(title or f"AU = {au} of {len(act)}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def random_direction_codes(
    latent_dim: int,
    num_directions: int,
    *,
    distance: float = 10.0,
    steps: int = 100,
    zero_dims=(),
    seed: int = 0,
) -> np.ndarray:
    """z0 on straight lines from the origin to random points at Euclidean ``distance``.

    The direction is uniform on the sphere of the dimensions not in ``zero_dims`` (those stay 0,
    the NE-VAE paper's test with the active dimensions switched off). Returns
    ``[num_directions, steps, d]``; point k of a row is (k / (steps - 1)) * target.
    """
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((num_directions, latent_dim))  # [n, d]
    direction[:, list(zero_dims)] = 0.0
    norms = np.linalg.norm(direction, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise InvalidValue("zero_dims leaves no dimension to move along.")
    target = distance * direction / norms  # [n, d], ||target|| = distance
    return line_codes(np.zeros_like(target), target, steps).astype(np.float32)


def to_representation(model, z0: np.ndarray) -> np.ndarray:
    """Maps z0 (any leading shape, last axis d) to z = g^-1(z0) with the model's prior."""
    flat = tf.reshape(tf.convert_to_tensor(z0, tf.float32), [-1, z0.shape[-1]])
    return model.prior.from_z0(flat).numpy().reshape(z0.shape)


def decode_codes(model, z: np.ndarray, *, seed: int = 0, chunk_size: int = 200) -> np.ndarray:
    """Images for codes ``z`` [..., d]: the likelihood mean, or for an autoregressive decoder a
    sample whose uniform noise is the same for every image, so images differ only through z.
    Returns ``[..., H, W, C]``."""
    lead = z.shape[:-1]
    flat = np.asarray(z, np.float32).reshape(-1, z.shape[-1])
    autoregressive = model.autoregressive
    shape = tuple(model.decoder.image_shape) if autoregressive else None
    out = []
    for i in range(0, len(flat), chunk_size):
        zb = tf.convert_to_tensor(flat[i : i + chunk_size])
        if autoregressive:
            u = tf.random.stateless_uniform((1, *shape), seed=[seed, 0])  # [1, H, W, C]
            u = tf.tile(u, [zb.shape[0], 1, 1, 1])
            out.append(model.decoder.sample_with_uniforms(zb, u).numpy())  # x_i = 1[u_i < p_i]
        else:
            out.append(model.decode(zb).numpy())
    images = np.concatenate(out)
    return images.reshape(*lead, *images.shape[1:])


def shown_steps(steps: int, every: int) -> np.ndarray:
    """Indices of the traversal points drawn: every ``every``-th one and always the last, so a
    grid shows both ends of the line (for 100 steps and every 4: 0, 4, ..., 96, 99)."""
    if steps < 1 or every < 1:
        raise InvalidValue(f"steps ({steps}) and every ({every}) must be >= 1.")
    return np.unique(np.append(np.arange(0, steps, every), steps - 1))


def save_traversal_grid(images: np.ndarray, path: str, *, scale: int = 1):
    """Writes ``[rows, columns, H, W, C]`` traversal images as one PNG, one line per row."""
    rows, cols = images.shape[:2]
    save_image_grid(images.reshape(rows * cols, *images.shape[2:]), cols, path, scale)


# The scalars of ``analyze`` printed by the CLI and reported by the ``collapse`` metric.
SCALARS = ("neg_elbo", "recon", "kl", "mutual_information", "active_units", "reencode_error")


def traversal_figures(
    model,
    directory: str,
    *,
    seed: int = 0,
    num_directions: int = 8,
    steps: int = 100,
    every: int = 4,
    activity=None,
    threshold: float = ACTIVE_THRESHOLD,
) -> dict:
    """The NE-VAE traversal figures of ``model`` written into ``directory`` (section 5.3).

    ``traversal_dims.png``: row j moves dimension j from -10 to 10 in ``steps`` points, the
    others 0. ``traversal_random.png``: ``num_directions`` rows from the origin to random points
    at distance 10. With ``activity`` ([d], from ``analyze``) and some but not all units active,
    also ``traversal_random_inactive.png``: the same with the active dimensions held at 0 (the
    paper's test of whether the collapsed dimensions carry anything). Lines are drawn in z0 and
    mapped to z by the prior. Only the drawn points (``shown_steps(steps, every)``) are decoded:
    a PixelCNN samples each image pixel by pixel, which dominates the cost. For a PixelCNN all
    images share one noise image, so a collapsed dimension gives a row of identical images.

    Returns:
      figure name -> file name in ``directory``.
    """
    os.makedirs(directory, exist_ok=True)
    d = int(model.latent_dim)
    columns = shown_steps(steps, every)
    figures = {
        "traversal_dims": single_dimension_codes(d, steps=steps),
        "traversal_random": random_direction_codes(d, num_directions, steps=steps, seed=seed),
    }
    if activity is not None:
        active = np.flatnonzero(np.asarray(activity) > threshold)
        if 0 < len(active) < d:
            figures["traversal_random_inactive"] = random_direction_codes(
                d, num_directions, steps=steps, zero_dims=active, seed=seed
            )
    out = {}
    for name, z0 in figures.items():
        z0 = z0[:, columns]  # [rows, columns, d]
        images = decode_codes(model, to_representation(model, z0), seed=seed)
        save_traversal_grid(images, os.path.join(directory, f"{name}.png"))
        out[name] = f"{name}.png"
    return out


def _main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
    from tfvae import experiment

    exp = experiment.load(f.workdir)
    out_dir = f.out or os.path.join(f.workdir, "collapse")
    os.makedirs(out_dir, exist_ok=True)
    result = analyze(
        exp.model,
        getattr(exp.data, f.split),
        batch_size=exp.config.train.batch_size,
        binarize=exp.config.data.binarize,
        max_examples=f.max_examples,
        iw_samples=f.iw_samples,
        seed=f.seed,
    )
    plot_activity(result["activity"], os.path.join(out_dir, "activity.png"))
    if f.traversals:
        traversal_figures(
            exp.model,
            out_dir,
            seed=f.seed,
            num_directions=f.num_directions,
            every=f.traversal_every,
            activity=result["activity"],
        )
    payload = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
    payload.update(step=exp.step, split=f.split)
    with open(os.path.join(out_dir, "metrics.json"), "w") as fh:
        json.dump(payload, fh, indent=2)
    for key in (*SCALARS, "iw_nll"):
        if key in result:
            print(f"{key:<20} {result[key]:.4f}")
    print("activity A_j         " + " ".join(f"{a:.3g}" for a in result["activity"]))


if __name__ == "__main__":
    from absl import flags

    flags.DEFINE_string("workdir", None, "A trained tfvae workdir.", required=True)
    flags.DEFINE_enum("split", "test", ["test", "val"], "Data split.")
    flags.DEFINE_integer("max_examples", None, "Use only the first examples of the split.")
    flags.DEFINE_integer("iw_samples", 0, "K for the importance-sampled NLL (0: skip).")
    flags.DEFINE_integer("seed", 0, "Seed of every draw.")
    flags.DEFINE_bool("traversals", False, "Also write the traversal figures.")
    flags.DEFINE_integer("traversal_every", 4, "Draw (and decode) every n-th of the 100 points.")
    flags.DEFINE_integer("num_directions", 8, "Rows of the random-direction traversals.")
    flags.DEFINE_string("out", None, "Output folder (default: <workdir>/collapse).")
    from tfvae import cli

    cli.run(_main)
