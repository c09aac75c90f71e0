"""The dpVAE paper's Figures 1 and 3 on two moons: latent pockets and leaks, with and without dp.

    python -m tools.two_moons --out=runs/two_moons              # 12 models, then the figures
    python -m tools.two_moons --out=/tmp/moons --steps=2000     # a quick look
    python -m tools.two_moons --out=/tmp/moons --smoke          # 4 steps: checks it runs

For each regularizer with and without the decoupled prior (``configs/<name>.py:two_moons``,
trained with the same steps and seed into ``<out>/<name>``; re-running resumes), it draws

  (a) generated samples (z0 ~ N(0, I), z = g^-1(z0), decoder mean) over the data;
  (b) the aggregate posterior (one z ~ q(z|x) per test point, coloured by moon) with the
      low-posterior (LP) samples (black crosses): prior samples whose log q(z) is among the
      lowest ``lp_fraction``, i.e. prior mass in the latent pockets;
  (c) the LP samples decoded, over the data (off the moons when the pockets are real);
  (d) for dp models, the generation space z0: the posterior mapped by g and the LP samples'
      z0, over the N(0, I) contours at radius 1, 2, 3.

Figures: ``<out>/<name>.png`` per model; ``<out>/figure1.png`` (beta-VAE-H without and with
the decoupled prior, the paper's Figure 1); ``<out>/figure3.png`` (every regularizer, the
paper's Figure 3). Expect, after enough steps, LP samples of the regularized VAEs decoded off
the moons and those of the dp versions on them.
"""

import os
import sys

import keras
import matplotlib
import numpy as np
import tensorflow as tf
from absl import app, flags

from tfvae import cli, evaluation
from tfvae.config_loader import load_config
from tools import sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

# (standard-normal prior, decoupled prior) configs of each regularizer, as in Table 1.
PAIRS = (
    ("vae", "dpvae"),
    ("beta_vae_h", "beta_dpvae_h"),
    ("beta_vae_b", "beta_dpvae_b"),
    ("beta_tcvae", "beta_tc_dpvae"),
    ("factor_vae", "factor_dpvae"),
    ("info_vae", "info_dpvae"),
)
FIGURE1_PAIR = ("beta_vae_h", "beta_dpvae_h")
PANELS = ("samples", "aggregate posterior + LP", "LP samples decoded", "z0 space")
# Training steps of every model unless --steps (or --smoke, the preset's 4 steps) says otherwise.
DEFAULT_STEPS = 20_000
MOON_COLOURS = ("tab:blue", "tab:orange")
# LP samples: black crosses, visible on the grey data and on both moon colours.
LP_STYLE = {"s": 16, "c": "black", "marker": "x", "linewidths": 1.0, "zorder": 3}
FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags (defined when run, so importing this module defines none)."""
    flags.DEFINE_string("out", None, "Folder of the workdirs and figures.", required=True)
    flags.DEFINE_integer(
        "steps",
        None,
        f"Training steps of every model; default {DEFAULT_STEPS:,} (the smoke preset's 4 with "
        "--smoke).",
    )
    flags.DEFINE_integer("seed", 0, "Seed of every model and of the figures.")
    flags.DEFINE_list(
        "configs", [name for pair in PAIRS for name in pair], "Config names under configs/."
    )
    flags.DEFINE_integer("num_points", 2000, "Points per scatter (samples, posterior).")
    flags.DEFINE_float("lp_fraction", 0.05, "LP samples: the lowest fraction by log q(z).")
    flags.DEFINE_bool("smoke", False, "Add ':smoke' to every config (a quick check).")
    flags.DEFINE_float(
        "mse_weight",
        None,
        "Weight w of the Gaussian likelihood w * sum (x - x_hat)^2; default: the :two_moons "
        "preset's w = 200, a standard deviation of 0.05, the data's noise (configs/common.py).",
    )


def train(
    name: str,
    *,
    steps: int | None = None,
    seed: int,
    out: str,
    mse_weight: float | None = None,
    smoke: bool = False,
) -> str:
    """Trains ``configs/<name>.py:two_moons`` into ``<out>/<name>`` (resuming); returns the
    workdir. ``steps`` None trains ``DEFAULT_STEPS`` (with ``smoke``, the smoke preset's
    steps); ``mse_weight`` overrides the preset's likelihood weight when given."""
    workdir = os.path.join(out, name)
    config = load_config(f"configs/{name}.py:two_moons{',smoke' if smoke else ''}")
    if steps is None:
        steps = int(config.train.num_steps) if smoke else DEFAULT_STEPS
    config.train.num_steps = steps
    config.seed = seed
    if config.model.likelihood.name != "gaussian":
        raise ValueError(f"{name}: expected a Gaussian likelihood on two moons.")
    if mse_weight is not None:
        config.model.likelihood.options.weight = mse_weight
    sweep.train(config, workdir, label=name)
    return workdir


def model_points(workdir: str, *, num_points: int, lp_fraction: float, seed: int) -> dict:
    """Every point set the panels draw, as numpy arrays.

    Returns:
      ``data`` [n, 2] test points and ``moon`` [n] their moon; ``samples`` [n, 2] generated;
      ``z`` [n, d] one posterior sample per test point; ``lp_z`` [k, d] LP samples and
      ``lp_x`` [k, 2] their decodings (absent for deterministic encoders); for dp models
      ``z0`` = g(z) and ``lp_z0``; ``name``, ``decoupled``.
    """
    exp = evaluation.load_experiment(workdir)
    options = evaluation.EvalOptions(
        num_fid=max(1, int(num_points * lp_fraction)),
        lp_fraction=lp_fraction,
        num_aggregate=min(num_points * 5, len(exp.data.train)),
        seed=seed,
        verbose=False,
    )
    ctx = evaluation.EvalContext(exp, options)
    n = min(num_points, len(exp.data.test))
    x = exp.data.test[:n]
    out = {
        "name": exp.config.objective,
        "decoupled": ctx.is_decoupled,
        "data": x,
        "moon": exp.data.test_labels[:n],
        "samples": ctx.generate(n, seed=seed),
    }
    z_mean, z_log_var = exp.model.encode(tf.constant(x))
    z = z_mean.numpy()
    if z_log_var is not None:
        eps = np.random.default_rng([seed, 1]).standard_normal(z.shape)
        z = z + np.exp(0.5 * z_log_var.numpy()) * eps
    out["z"] = z
    if exp.model.stochastic:
        pool = ctx.lp_pool()
        out["lp_z"] = pool["z"][ctx.lp_indices(options.num_fid)]
        out["lp_x"] = ctx.decode(out["lp_z"])
    if ctx.is_decoupled:
        out["z0"] = ctx.to_z0(z)
        if "lp_z" in out:
            out["lp_z0"] = pool["z0"][ctx.lp_indices(options.num_fid)]
    keras.backend.clear_session()
    return out


def _scatter_moons(ax, points: np.ndarray, moon: np.ndarray) -> None:
    for k, colour in enumerate(MOON_COLOURS):
        mine = points[moon == k]
        ax.scatter(mine[:, 0], mine[:, 1], s=3, color=colour, alpha=0.5, label=f"moon {k + 1}")


def draw_row(axes, points: dict, title: str, *, legend: bool = True) -> list[str]:
    """Fills four axes with panels (a)-(d) of one model; returns the panels drawn (the z0
    panel only for decoupled priors)."""
    data, moon = points["data"], points["moon"]
    grey = {"s": 3, "color": "0.8", "label": "data"}
    drawn = list(PANELS[:3])

    ax = axes[0]
    ax.scatter(data[:, 0], data[:, 1], **grey)
    ax.scatter(
        points["samples"][:, 0], points["samples"][:, 1], s=3, color="tab:green", label="samples"
    )
    ax.set_ylabel(title, fontsize=9)

    ax = axes[1]
    _scatter_moons(ax, points["z"], moon)
    if "lp_z" in points:
        ax.scatter(points["lp_z"][:, 0], points["lp_z"][:, 1], label="LP samples", **LP_STYLE)

    ax = axes[2]
    ax.scatter(data[:, 0], data[:, 1], **grey)
    if "lp_x" in points:
        ax.scatter(
            points["lp_x"][:, 0], points["lp_x"][:, 1], label="LP samples decoded", **LP_STYLE
        )

    ax = axes[3]
    if "z0" in points:
        drawn.append(PANELS[3])
        for radius in (1, 2, 3):
            ax.add_patch(plt.Circle((0, 0), radius, fill=False, ls="--", lw=0.6, color="0.5"))
        _scatter_moons(ax, points["z0"], moon)
        if "lp_z0" in points:
            ax.scatter(points["lp_z0"][:, 0], points["lp_z0"][:, 1], label="LP samples", **LP_STYLE)
        ax.set_aspect("equal", adjustable="datalim")
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "standard normal prior:\nz0 = z", ha="center", va="center", fontsize=8)
    for a in axes:
        a.tick_params(labelsize=6)
        if legend and a.axison:
            a.legend(fontsize=6, markerscale=2, loc="best", framealpha=0.8)
    return drawn


def draw_figure(rows: dict[str, dict], path: str) -> dict[str, list[str]]:
    """One row of the four panels per model, with legends on the first row and on the first z0
    panel; returns each row's drawn panels."""
    fig, axes = plt.subplots(len(rows), 4, figsize=(12, 2.6 * len(rows)), squeeze=False)
    drawn, z0_legend = {}, False
    for r, (name, points) in enumerate(rows.items()):
        drawn[name] = draw_row(axes[r], points, name, legend=r == 0)
        if "z0" in points and not z0_legend:
            axes[r, 3].legend(fontsize=6, markerscale=2, loc="best", framealpha=0.8)
            z0_legend = True
    for c in range(4):
        axes[0, c].set_title(f"({'abcd'[c]}) {PANELS[c]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def make_figures(
    names,
    *,
    steps: int | None = None,
    seed: int,
    out: str,
    num_points: int,
    lp_fraction: float,
    mse_weight: float | None = None,
    smoke: bool = False,
) -> dict[str, str]:
    """Trains every named config and writes every figure; returns figure name -> path."""
    os.makedirs(out, exist_ok=True)
    rows = {}
    for name in names:
        workdir = train(name, steps=steps, seed=seed, out=out, mse_weight=mse_weight, smoke=smoke)
        rows[name] = model_points(
            workdir, num_points=num_points, lp_fraction=lp_fraction, seed=seed
        )
    figures = {}
    for name, points in rows.items():
        figures[name] = os.path.join(out, f"{name}.png")
        draw_figure({name: points}, figures[name])
    if all(name in rows for name in FIGURE1_PAIR):
        figures["figure1"] = os.path.join(out, "figure1.png")
        draw_figure({name: rows[name] for name in FIGURE1_PAIR}, figures["figure1"])
    figures["figure3"] = os.path.join(out, "figure3.png")
    draw_figure(rows, figures["figure3"])
    return figures


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, ".")  # config files import configs.common
    f = FLAGS
    figures = make_figures(
        f.configs,
        steps=f.steps,
        seed=f.seed,
        out=f.out,
        num_points=f.num_points,
        lp_fraction=f.lp_fraction,
        mse_weight=f.mse_weight,
        smoke=f.smoke,
    )
    for name, path in figures.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
