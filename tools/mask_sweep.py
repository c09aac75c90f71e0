"""Sweeps the starting latent size m for WAE and MaskAAE: the MaskAAE paper's Figure 4.

    python -m tools.mask_sweep --out=runs/sweep_manifold --dataset=manifold --n=8 \
        --m=2,4,8,12,16,20
    python -m tools.mask_sweep --out=runs/sweep_fmnist --dataset=fashion_mnist --m=8,16,32,64
    python -m tools.mask_sweep ... --models=wae_mmd,aae,mask_aae   (add the mask-free critic AAE)

For every model and m it trains ``configs/<model>.py:<dataset>,m=<m>[,n=<n>]`` in
``<out>/<model>/m<m>`` and evaluates FID, the active dimensions and NAC there
(``tfvae.evaluation``; the manifold data's FID is the Frechet distance of the raw 128-d vectors,
the images' uses the data set's cached classifier unless ``--inception_weights`` is given).
It writes

    <out>/results.json, results.csv   model, m, FID, discovered size, NAC, step
    <out>/figure4.png                 FID against m per model (left axis) and the discovered
                                      size against m (right axis), with the true n dashed

``--config_args=smoke`` (4 steps, small networks) with ``--num_samples=64 --jit_compile=false``
checks the whole pipeline in about a minute, saying nothing of quality.

Resumable: training resumes from each workdir's checkpoint and a (model, m) whose results were
recorded at its final step is not evaluated again; re-run the same command after a stop.

The paper's baseline ("WAE ... with exactly the same architecture without the mask layer") is,
in the authors' code, the WGAN-GP AAE (``aae``); ``wae_mmd`` is the MMD WAE. Expect WAE's FID
to follow a U-curve with its minimum near n, MaskAAE's to stay flat for m >= n, and MaskAAE's
discovered size to stay near n for every m >= n.
"""

import csv
import json
import math
import os
import sys

from absl import app, flags

from tfvae import cli
from tfvae.errors import InvalidValue

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JIT_CHOICES = ("config", "true", "false")


def define_flags():
    """Defined when run as a program, so importing this module defines no flag that could
    collide with another tool's in the same process."""
    flags.DEFINE_string("out", None, "Sweep directory (workdirs, results, figure).")
    flags.DEFINE_enum(
        "dataset", "manifold", ["manifold", "fashion_mnist", "mnist"], "Data set preset."
    )
    flags.DEFINE_integer("n", 8, "True latent size of the manifold data (ignored for images).")
    flags.DEFINE_list("m", ["2", "4", "8", "12", "16", "20"], "Starting latent sizes m.")
    flags.DEFINE_list("models", ["wae_mmd", "mask_aae"], "Configs (objectives) to sweep.")
    flags.DEFINE_integer(
        "num_steps", None, "Training steps of every run (default: each config's own)."
    )
    flags.DEFINE_integer("num_samples", 10_000, "Generated samples for the FID.")
    flags.DEFINE_list(
        "mask_aae_args", [], "Extra config arguments of the mask_aae runs, e.g. lr_drop=1."
    )
    flags.DEFINE_list(
        "config_args", [], "Extra config arguments of every run, e.g. smoke (a quick check)."
    )
    flags.DEFINE_enum(
        "jit_compile",
        "config",
        list(JIT_CHOICES),
        "XLA for training: each config's own setting, or forced on or off (off compiles faster "
        "for very short runs).",
    )
    flags.DEFINE_string(
        "inception_weights", None, "InceptionV3 Keras weights for image FID (default: classifier)."
    )
    flags.mark_flag_as_required("out")


RESULTS = "results.json"
MASKED = ("mask_aae",)


def config_arg(dataset: str, m: int, n: int, extra=()) -> str:
    """The config argument string of one run."""
    return ",".join([dataset, f"m={m}", *([f"n={n}"] if dataset == "manifold" else []), *extra])


def load_results(out: str) -> dict:
    path = os.path.join(out, RESULTS)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _finite_or_none(value: float) -> float | None:
    """NaN (an undefined metric) as JSON null: results.json stays standard JSON."""
    return None if value is None or math.isnan(value) else value


def save_results(out: str, results: dict) -> None:
    """results.json (atomically) and results.csv."""
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, RESULTS + ".tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True, allow_nan=False)
    os.replace(tmp, os.path.join(out, RESULTS))
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "m", "fid", "discovered", "nac", "step"])
        for model, runs in sorted(results.get("runs", {}).items()):
            for m, r in sorted(runs.items(), key=lambda kv: int(kv[0])):
                nac = "" if r["nac"] is None else r["nac"]
                writer.writerow([model, m, r["fid"], r["discovered"], nac, r["step"]])


def run_one(
    model: str,
    m: int,
    *,
    out: str,
    dataset: str,
    n: int,
    options,
    num_steps: int | None = None,
    config_args=(),
    mask_aae_args=(),
    jit_compile: str = "config",
) -> dict:
    """Trains (or resumes) one run and evaluates it; returns its results row."""
    from tfvae.config_loader import load_config
    from tools import sweep

    extra = [*config_args, *(mask_aae_args if model == "mask_aae" else ())]
    arg = config_arg(dataset, m, n, extra)
    config = load_config(os.path.join(REPO, "configs", f"{model}.py") + ":" + arg)
    with config.unlocked():
        if num_steps is not None:
            config.train.num_steps = num_steps
        if jit_compile != "config":
            config.train.jit_compile = jit_compile == "true"
    workdir = os.path.join(out, model, f"m{m}")
    report = sweep.run(config, workdir, options, label=f"{model} m={m}")
    scalars = report["metrics"]
    return {
        "fid": float(scalars["fid"]),
        # Without a mask every dimension reaches the decoder.
        "discovered": float(scalars.get("active_dims", m)),
        "nac": _finite_or_none(float(scalars.get("nac", float("nan")))),
        "step": int(report["step"]),
        "workdir": workdir,
    }


def plot_figure4(results: dict, path: str):
    """FID against m per model (left) and discovered size against m (right axis, integer
    ticks); returns the (closed) figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    right = ax.twinx()
    n = results.get("n")
    all_m = []
    for model, runs in sorted(results.get("runs", {}).items()):
        ms = sorted(int(k) for k in runs)
        all_m += ms
        ax.plot(ms, [runs[str(m)]["fid"] for m in ms], "o-", label=f"{model} FID")
        if model in MASKED:
            found = [runs[str(m)]["discovered"] for m in ms]
            right.plot(ms, found, "s--", color="tab:green", label=f"{model} discovered size")
    if all_m:
        lo, hi = min(all_m), max(all_m)
        right.plot([lo, hi], [lo, hi], ":", color="gray", linewidth=0.8, label="m (no masking)")
        right.set_ylim(0, 1.05 * hi)
        ax.set_xticks(sorted(set(all_m)))
    if n is not None:
        ax.axvline(n, color="k", linestyle="--", linewidth=0.8)
        right.axhline(n, color="tab:green", linestyle=":", linewidth=0.8, label=f"true n = {n}")
    ax.set_xlabel("starting latent size m")
    ax.set_yscale("log")  # FID spans orders of magnitude across m
    ax.set_ylabel("FID (log scale)")
    right.set_ylabel("active dimensions")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of dimensions
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper center")
    ax.set_title(f"{results.get('dataset')}: FID and discovered latent size against m")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig


def sweep(
    out: str,
    *,
    dataset: str,
    n: int,
    ms,
    models,
    num_steps: int | None = None,
    num_samples: int = 10_000,
    config_args=(),
    mask_aae_args=(),
    inception_weights: str | None = None,
    jit_compile: str = "config",
) -> dict:
    """Trains and evaluates every (model, m) not yet recorded, writes results.json, results.csv
    and figure4.png under ``out``; returns the results."""
    from tfvae import evaluation

    if jit_compile not in JIT_CHOICES:
        raise InvalidValue(f"jit_compile must be one of {JIT_CHOICES}, got {jit_compile!r}.")
    ms = [int(v) for v in ms]
    if not ms or min(ms) < 1:
        raise InvalidValue(f"Starting latent sizes m must be positive integers, got {ms}.")
    n = n if dataset == "manifold" else None
    options = evaluation.EvalOptions(
        metrics=("fid", "active_dims", "nac"),
        num_fid=num_samples,
        inception_weights=inception_weights,
        verbose=False,
    )
    results = load_results(out)
    setting = {
        "dataset": dataset,
        "n": n,
        "mask_aae_args": list(mask_aae_args),
        "config_args": list(config_args),
    }
    previous = {
        "mask_aae_args": [],
        "config_args": [],
        **{k: results[k] for k in setting if k in results},
    }
    if results and previous != setting:
        raise InvalidValue(
            f"{out} holds a sweep of {previous}; this is {setting}. Use another --out."
        )
    results.update(setting)
    runs = results.setdefault("runs", {})
    for model in models:
        for m in ms:
            done = runs.get(model, {}).get(str(m))
            if done is not None and num_steps in (None, done["step"]):
                continue  # trained to the end and evaluated by an earlier invocation
            print(f"== {model}, m = {m}", flush=True)
            row = run_one(
                model,
                m,
                out=out,
                dataset=dataset,
                n=n,
                options=options,
                num_steps=num_steps,
                config_args=config_args,
                mask_aae_args=mask_aae_args,
                jit_compile=jit_compile,
            )
            runs.setdefault(model, {})[str(m)] = row
            save_results(out, results)
            print(f"   FID {row['fid']:.3f}, discovered {row['discovered']:.0f}", flush=True)
    save_results(out, results)
    plot_figure4(results, os.path.join(out, "figure4.png"))
    print(f"wrote {os.path.join(out, 'figure4.png')}")
    return results


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, REPO)  # configs import ``configs.common``
    sweep(
        FLAGS.out,
        dataset=FLAGS.dataset,
        n=FLAGS.n,
        ms=FLAGS.m,
        models=FLAGS.models,
        num_steps=FLAGS.num_steps,
        num_samples=FLAGS.num_samples,
        config_args=FLAGS.config_args,
        mask_aae_args=FLAGS.mask_aae_args,
        inception_weights=FLAGS.inception_weights,
        jit_compile=FLAGS.jit_compile,
    )


if __name__ == "__main__":
    define_flags()
    cli.run(main)
