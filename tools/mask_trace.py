"""Plots MaskAAE's mask values over training (the paper's Figure 5) from a run's TensorBoard logs.

    python -m tools.mask_trace runs/mask_aae
    python -m tools.mask_trace runs/sweep/mask_aae/m16 runs/sweep/mask_aae/m32 --out=fig5.png

The trainer writes the mask alpha [d] at every logging step as the exact tensor summary
``train/alpha_values`` (``tfvae.trainer``); this tool reads it back, draws one line per latent
dimension against the training step with the activity threshold 0.1, one panel per workdir,
and writes the figure (default ``<first workdir>/figures/mask_trace.png``) and the trace as
``mask_trace.npz`` (``step [T]``, ``alpha [T, d]``) next to each workdir's logs.
"""

import glob
import os

import numpy as np
from absl import app, flags

from tfvae import cli
from tfvae.errors import InvalidValue

TAG = "train/alpha_values"
THRESHOLD = 0.1

FLAGS = flags.FLAGS


def define_flags():
    """Defined when run as a program, so importing this module defines no flag that could
    collide with another tool's in the same process."""
    flags.DEFINE_string("out", None, "Figure path (default: <workdir>/figures/mask_trace.png).")


def read_trace(workdir: str, tag: str = TAG) -> tuple[np.ndarray, np.ndarray]:
    """(step [T], values [T, d]) of a vector summary in ``<workdir>/train``, sorted by step.

    When a resumed run logged a step twice, the last value written wins.

    Raises:
      FileNotFoundError: no event file holds ``tag`` (not a MaskAAE run, or no step logged).
    """
    import tensorflow as tf

    by_step: dict[int, np.ndarray] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "train", "events*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    by_step[int(event.step)] = tf.make_ndarray(value.tensor)
    if not by_step:
        raise FileNotFoundError(
            f"No {tag!r} summaries under {os.path.join(workdir, 'train')}: is it a MaskAAE run "
            "that has logged at least once?"
        )
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.stack([by_step[s] for s in steps]).astype(np.float32)


def plot_traces(workdirs: list[str], path: str, threshold: float = THRESHOLD):
    """One panel per workdir: alpha_j against the step for every j, and the threshold; writes
    the figure to ``path`` and returns it (closed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(
        1, len(workdirs), figsize=(5 * len(workdirs), 3.6), squeeze=False, sharey=True
    )
    for ax, workdir in zip(axes[0], workdirs, strict=True):
        steps, alpha = read_trace(workdir)
        # Markers while the points are few: a run that logged once is a point, not nothing.
        ax.plot(steps, alpha, linewidth=0.8, marker="o" if len(steps) <= 30 else None, ms=3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps
        ax.axhline(threshold, color="k", linestyle="--", linewidth=0.8)
        active = int((alpha[-1] >= threshold).sum())
        ax.set_title(
            f"{os.path.basename(os.path.normpath(workdir))}: m = {alpha.shape[1]}, "
            f"{active} active at step {steps[-1]}",
            fontsize=9,
        )
        ax.set_xlabel("training step")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("mask value alpha")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig


def trace(workdirs: list[str], out: str | None = None) -> str:
    """Writes ``mask_trace.npz`` into every workdir and the figure (default
    ``<first workdir>/figures/mask_trace.png``); returns the figure's path."""
    if not workdirs:
        raise InvalidValue("Give one or more MaskAAE workdirs.")
    for workdir in workdirs:
        steps, alpha = read_trace(workdir)
        np.savez(os.path.join(workdir, "mask_trace.npz"), step=steps, alpha=alpha)
    out = out or os.path.join(workdirs[0], "figures", "mask_trace.png")
    plot_traces(workdirs, out)
    return out


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        raise app.UsageError("Give one or more MaskAAE workdirs.")
    print(f"wrote {trace(workdirs, FLAGS.out)}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
