"""Does the decoupled prior keep the disentanglement? The 12 Table-1 configs on dSprites.

    python -m tools.disentanglement_study --out=runs/dis --steps=300000 --seeds=0,1,2

Every config (``--configs``, the 12 Table-1 ones by default) is trained with its ``:dsprites``
preset (Locatello et al. 2019's networks and settings) for every seed into
``<out>/seed<s>/<config>``, through ``tools.reproduce``'s resumable runner, and evaluated on
the disentanglement metrics (``tfvae.evaluate --metrics=disentanglement``) plus FID, FID (LP)
and sKL. Re-running the same command resumes. ``<out>/table.md`` gives each metric's mean and
standard deviation over seeds (rewritten after every run) and ``<out>/figure.png`` plots
disentanglement (MIG, FactorVAE score) against generation quality (FID, or sKL when FID is
not available), one point per config, standard and decoupled prior in two colors. The
disentanglement columns are measured on z (the representation); ``metrics.json`` also has them
on z0 (``*_z0``) for the dp configs.

``--smoke`` adds ``,smoke`` to every config (4 steps, batch 8) for a quick end-to-end check.
"""

import dataclasses
import json
import os
import sys

from absl import app, flags

from tfvae import cli, evaluation
from tfvae.errors import InvalidValue
from tools import reproduce, sweep, verdicts

FLAGS = flags.FLAGS
DATASET = "dsprites"
# Table columns: (metrics.json key, header, digits).
COLUMNS = (
    ("beta_vae", "BetaVAE", 3),
    ("factor_vae", "FactorVAE", 3),
    ("mig", "MIG", 3),
    ("sap", "SAP", 3),
    ("dci_disentanglement", "DCI D", 3),
    ("modularity", "Modularity", 3),
    ("explicitness", "Explicitness", 3),
    ("gaussian_total_correlation", "TC (Gauss.)", 2),
    ("fid", "FID", 1),
    ("fid_lp", "FID (LP)", 1),
    ("skl", "sKL", 2),
)
METRICS = ("disentanglement", "fid", "fid_lp", "skl")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("out", None, "Folder of the workdirs, table.md and figure.png.", **fv)
    reproduce.define_configs_flag(flag_values)
    flags.DEFINE_integer("steps", None, "Training steps (default: each config's own).", **fv)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; one run per config and seed.", **fv)
    flags.DEFINE_bool("smoke", False, "Add ',smoke' to every config (a quick check).", **fv)
    flags.DEFINE_integer(
        "num_samples", None, "Evaluation sample counts (tfvae.evaluate --num_samples).", **fv
    )
    d = evaluation.EvalOptions()
    flags.DEFINE_integer(
        "classifier_steps", d.classifier_steps, "Training steps of the FID classifier.", **fv
    )
    flags.DEFINE_string("feature_cache", d.feature_cache, "FID classifier cache folder.", **fv)


def _seeds(values) -> list[int]:
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        raise InvalidValue(f"--seeds must be integers, e.g. --seeds=0,1,2; got {values}.") from None
    if not seeds:
        raise InvalidValue("--seeds needs at least one seed, e.g. --seeds=0.")
    return seeds


def _decoupled(report: dict) -> bool:
    return report.get("prior") == "decoupled"


# The disentanglement columns, which decoupled priors also have on z0 (metrics.json "<key>_z0").
Z0_COLUMNS = COLUMNS[:8]


def _values(reports: list[dict], key: str) -> list[float]:
    """The runs' values of ``key`` (``tools.verdicts`` drops the missing and non-finite)."""
    return [r["metrics"][key] for r in reports if r and key in r.get("metrics", {})]


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """config -> metric -> (mean, standard deviation, number of seeds) over finished runs;
    the z0 columns of decoupled priors as ``<key>_z0``."""
    out = {}
    for name, reports in runs.items():
        out[name] = {}
        keys = [k for k, _, _ in COLUMNS] + [f"{k}_z0" for k, _, _ in Z0_COLUMNS]
        for key in keys:
            s = verdicts.summarize(_values(reports, key))
            if s is not None:
                out[name][key] = (s.mean, s.std, s.n)
    return out


def _cell(entry, digits: int) -> str:
    return "—" if entry is None else verdicts.Summary(*entry).format(digits)


def _rows(summary, priors, columns, *, suffix: str = "", only=None) -> list[str]:
    lines = [
        "| config | prior | " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "---|" * (len(columns) + 2),
    ]
    for name, row in summary.items():
        if only is not None and priors.get(name) != only:
            continue
        cells = [_cell(row.get(key + suffix), digits) for key, _, digits in columns]
        lines.append(f"| {name} | {priors.get(name, 'not run yet')} | " + " | ".join(cells) + " |")
    return lines


def _difference(baseline: list[float], treated: list[float], digits: int) -> str:
    c = verdicts.compare(baseline, treated)
    if c is None:
        return "—"
    p = "one seed" if c.p_value is None else f"p={c.p_value:.2g}"
    return f"{c.delta:+.{digits}f} ({p})"


def format_pairs(runs: dict[str, list[dict]]) -> list[str]:
    """dp - standard per regularizer on every column (on z), with Welch's p over seeds."""
    pairs = [(std, dp) for dp, std in reproduce.PAIRS.items() if runs.get(std) and runs.get(dp)]
    if not pairs:
        return []
    lines = [
        "",
        "dp - standard per regularizer (on z), with Welch's p over seeds (p < "
        f"{verdicts.ALPHA}: beyond the seed spread). The scores are better higher; FID, "
        "FID (LP), sKL and TC lower.",
        "",
        "| pair | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for std, dp in pairs:
        cells = [
            _difference(_values(runs[std], key), _values(runs[dp], key), digits)
            for key, _, digits in COLUMNS
        ]
        lines.append(f"| {std} / {dp} | " + " | ".join(cells) + " |")
    return lines


def format_table(summary: dict, priors: dict[str, str], *, steps, seeds, runs=None) -> str:
    """The Markdown report: every config on z; the decoupled priors on z0; dp - standard."""
    lines = [
        f"dSprites, {steps} steps, seeds {', '.join(map(str, seeds))}: mean ± std over seeds "
        "(disentanglement on z, the encoder mean).",
        "",
        *_rows(summary, priors, COLUMNS),
    ]
    if any(priors.get(n) == "decoupled" and "mig_z0" in row for n, row in summary.items()):
        lines += [
            "",
            "The decoupled priors' disentanglement on z0 = f^-1(z), the generation space.",
            "",
            *_rows(summary, priors, Z0_COLUMNS, suffix="_z0", only="decoupled"),
        ]
    lines += format_pairs(runs or {})
    return "\n".join(lines) + "\n"


def plot(summary: dict, priors: dict[str, str], path: str) -> None:
    """MIG and FactorVAE score against FID (sKL when no config has FID), one point per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quality = "fid" if any("fid" in row for row in summary.values()) else "skl"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = {"standard_normal": "tab:blue", "decoupled": "tab:orange"}
    for ax, key, label in zip(axes, ("mig", "factor_vae"), ("MIG", "FactorVAE score"), strict=True):
        for prior, color in colors.items():
            names = [
                n
                for n, row in summary.items()
                if priors.get(n) == prior and key in row and quality in row
            ]
            xs = [summary[n][quality][0] for n in names]
            ys = [summary[n][key][0] for n in names]
            ax.errorbar(
                xs,
                ys,
                xerr=[summary[n][quality][1] for n in names],
                yerr=[summary[n][key][1] for n in names],
                fmt="o",
                color=color,
                label="decoupled prior (dp)" if prior == "decoupled" else "standard normal",
            )
            for n, x, y in zip(names, xs, ys, strict=True):
                ax.annotate(n, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"{'FID' if quality == 'fid' else 'sKL'} (lower is better)")
        ax.set_ylabel(f"{label} (higher is better)")
        ax.legend(fontsize=8)
    fig.suptitle("dSprites: disentanglement vs generation quality")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def study(configs, *, out: str, steps, seeds, smoke: bool, options) -> str:
    """Trains and evaluates every config for every seed (resuming); writes table and figure.

    ``options``: the ``EvalOptions`` (their ``metrics`` are replaced by ``METRICS``)."""
    os.makedirs(out, exist_ok=True)
    options = dataclasses.replace(options, metrics=METRICS)
    names = [reproduce.config_name(p) for p in configs]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    priors: dict[str, str] = {}
    table = ""
    for seed in seeds:
        for path, name in zip(configs, names, strict=True):
            config = reproduce.Row(name, path).config(
                dataset=DATASET, steps=steps, seed=seed, smoke=smoke
            )
            report = sweep.run(
                config,
                reproduce.workdir_of(out, name, seed),
                dataclasses.replace(options, seed=seed),
                label=f"{name} s{seed}",
            )
            runs[name].append(report)
            priors[name] = "decoupled" if _decoupled(report) else "standard_normal"
            summary = summarize(runs)
            described = steps if steps is not None else "each config's own"
            table = format_table(summary, priors, steps=described, seeds=seeds, runs=runs)
            with open(os.path.join(out, "table.md"), "w") as f:
                f.write(table)
            with open(os.path.join(out, "summary.json"), "w") as f:
                json.dump({"summary": summary, "priors": priors}, f, indent=1)
    plot(summarize(runs), priors, os.path.join(out, "figure.png"))
    return table


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = FLAGS
    if f.out is None:
        raise InvalidValue("--out is required (the folder of the workdirs, table and figure).")
    if f.steps is not None and f.steps < 1:
        raise InvalidValue(f"--steps must be >= 1, got {f.steps}.")
    sys.path.insert(0, ".")  # config files import configs.common
    print(
        study(
            f.configs,
            out=f.out,
            steps=f.steps,
            seeds=_seeds(f.seeds),
            smoke=f.smoke,
            options=evaluation.EvalOptions(
                classifier_steps=f.classifier_steps, feature_cache=f.feature_cache
            ).with_num_samples(f.num_samples),
        )
    )


if __name__ == "__main__":
    define_flags()
    cli.run(main)
