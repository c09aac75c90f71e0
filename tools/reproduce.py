"""Table 1 of the dpVAE paper: train and evaluate a list of configs, write a Markdown table.

    python -m tools.reproduce --dataset=mnist --steps=100000 --out=runs/table1_mnist
    python -m tools.reproduce --configs=configs/info_vae.py,configs/info_dpvae.py \
        --dataset=fashion_mnist --steps=20000 --out=runs/info --num_samples=2000

    python -m tools.reproduce --configs=configs/vae.py,configs/dpvae.py --out=/tmp/t --smoke

Every config is trained with the same number of steps and the same seed into
``<out>/<config name>`` (``tfvae.trainer.train_and_evaluate``), evaluated there
(``tfvae.evaluation.evaluate_workdir``), and the table is rewritten after each config, so
``<out>/table.md`` always shows what has finished. Without ``--steps`` each config trains for
its own ``train.num_steps`` (100,000 for the Table-1 configs, 4 with ``--smoke``).
Re-running the same command resumes: a config whose workdir has a metrics.json of the
requested step with every requested metric is not touched, one missing some metrics is
evaluated on those only, a partially trained one continues from its latest checkpoint, a
trained but unevaluated one is only evaluated. Delete a workdir's metrics.json to evaluate it
again.

The table has the paper's columns, FID, FID (LP), sKL and NLL, and beside them the paper's own
numbers for the same data set (MNIST, SVHN, CelebA) from Bhalodia et al., Table 1. The paper
computed FID with Inception-v3 features; tfvae names its feature network under the table, and
FID values from different feature networks are comparable only in their ordering of rows.
"""

import dataclasses
import json
import math
import os
import sys

import keras
import tensorflow as tf
from absl import app, flags

from tfvae import cli, evaluate, evaluation, trainer
from tfvae.config_loader import load_config
from tfvae.errors import InvalidValue

# The 12 rows of the paper's Table 1, in its order: each regularizer without and with dp.
TABLE1_CONFIGS = (
    "vae",
    "dpvae",
    "beta_vae_h",
    "beta_dpvae_h",
    "beta_vae_b",
    "beta_dpvae_b",
    "beta_tcvae",
    "beta_tc_dpvae",
    "factor_vae",
    "factor_dpvae",
    "info_vae",
    "info_dpvae",
)
ROW_NAMES = {
    "vae": "VAE",
    "dpvae": "dpVAE",
    "beta_vae_h": "β-VAE-H",
    "beta_dpvae_h": "β-dpVAE-H",
    "beta_vae_b": "β-VAE-B",
    "beta_dpvae_b": "β-dpVAE-B",
    "beta_tcvae": "β-TCVAE",
    "beta_tc_dpvae": "β-TC-dpVAE",
    "factor_vae": "FactorVAE",
    "factor_dpvae": "Factor-dpVAE",
    "info_vae": "InfoVAE",
    "info_dpvae": "Info-dpVAE",
}

# Bhalodia, Lee, Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs", ACCV 2020,
# Table 1, as printed in ../shared/papers/000_893c93a99d32074c.txt (its table rows survived the
# text extraction; the METHODS.md section 7 examples are among them and agree). Per data set:
# FID, FID (LP), sKL, NLL. The NLL column's unit (a power-of-ten scale) was lost in the
# extraction, so the paper's NLL is shown as printed and is not comparable with nats.
_PAPER_ROWS = """
vae           137.4 165.0 1.26 3.56   78.9  83.8 53.67 0.386  81.4 79.0 59.3  9.26
dpvae         129.0 153.1 0.88 3.53   50.8  55.2 13.02 0.318  71.5 74.3 10.4  4.91
beta_vae_h    144.2 163.1 4.49 4.12   96.7  97.6 10.35 0.611  80.3 79.9 39.7  6.93
beta_dpvae_h  127.1 127.4 1.07 2.98   65.2  67.7  4.05 0.592  67.2 72.5 33.5 10.6
beta_vae_b    130.8 163.6 2.74 3.11   61.7  68.5  2.62 0.606  75.7 79.6 25.8 12.5
beta_dpvae_b  113.3 114.1 1.32 2.80   51.1  50.3  2.47 0.550  67.9 72.0 19.1 10.4
beta_tcvae    149.8 200.3 4.48 2.91   69.2  70.5  7.76 9.86   83.8 83.0 93.6  9.33
beta_tc_dpvae 133.3 133.1 2.07 2.70   50.3  53.8  2.94 4.52   80.3 81.4 90.3 10.0
factor_vae    130.5 191.2 1.04 3.50   97.2 108.5  1.91 2.13   82.6 86.8 71.3  9.89
factor_dpvae  120.8 121.3 0.85 3.60   86.3  86.9  1.57 2.36   65.0 73.4 51.3 12.2
info_vae      128.7 133.2 2.89 2.88   81.3  83.2  4.91 1.55   76.5 79.1 30.6 11.1
info_dpvae    110.1 110.5 1.70 2.81   62.9  67.7  2.67 1.56   68.9 72.9 20.3 12.1
"""
PAPER_DATASETS = ("mnist", "svhn", "celeba")
COLUMNS = ("fid", "fid_lp", "skl", "nll")


def _paper_table() -> dict[str, dict[str, dict[str, float]]]:
    """{dataset: {config name: {"fid", "fid_lp", "skl", "nll"}}}."""
    table = {dataset: {} for dataset in PAPER_DATASETS}
    for line in _PAPER_ROWS.strip().splitlines():
        name, *values = line.split()
        if len(values) != 4 * len(PAPER_DATASETS):
            raise ValueError(f"Paper row {name!r} has {len(values)} numbers, expected 12.")
        for k, dataset in enumerate(PAPER_DATASETS):
            row = map(float, values[4 * k : 4 * k + 4])
            table[dataset][name] = dict(zip(COLUMNS, row, strict=True))
    return table


PAPER_TABLE1 = _paper_table()
FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """The CLI's flags (defined when run, so importing this module defines none)."""
    d = evaluation.EvalOptions()
    fv = {"flag_values": flag_values}
    flags.DEFINE_list(
        "configs",
        [f"configs/{name}.py" for name in TABLE1_CONFIGS],
        "Config files (the paper's 12 Table-1 configs by default).",
        **fv,
    )
    flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset of every config.", **fv)
    flags.DEFINE_integer(
        "steps",
        None,
        "Training steps of every config; default: each config's own train.num_steps "
        "(100,000 for the Table-1 configs; the smoke preset's 4 with --smoke).",
        **fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed of every config (training and evaluation).", **fv)
    flags.DEFINE_string("out", None, "Folder of the workdirs and table.md.", **fv)
    flags.DEFINE_bool("smoke", False, "Add ':smoke' to every config (a quick check).", **fv)
    flags.DEFINE_list(
        "metrics",
        None,
        "Evaluation metrics (tfvae.evaluate --metrics); default: every default metric.",
        **fv,
    )
    flags.DEFINE_integer(
        "num_samples", None, "Evaluation sample counts (tfvae.evaluate --num_samples).", **fv
    )
    flags.DEFINE_integer("nll_samples", d.nll_samples, "K for the importance-sampled NLL.", **fv)
    flags.DEFINE_integer(
        "nll_chunk", d.nll_chunk, "Importance samples per decoder call (bounds memory).", **fv
    )
    flags.DEFINE_string("inception_weights", None, "InceptionV3 weights for FID.", **fv)
    flags.DEFINE_string(
        "feature_cache", evaluation.DEFAULT_FEATURE_CACHE, "FID classifier cache folder.", **fv
    )
    flags.DEFINE_integer(
        "classifier_steps", d.classifier_steps, "Training steps of a new FID classifier.", **fv
    )


def options_from_flags(f: flags.FlagValues = FLAGS) -> evaluation.EvalOptions:
    """The evaluation options the flags ask for; bad values fail here, naming their flag."""
    if f.out is None:
        raise cli.UserError("--out is required (the folder of the workdirs and table.md).")
    evaluate.check_minimums(f, {"steps": 1, **evaluate.FLAG_MINIMUM})
    metrics = tuple(f.metrics) if f.metrics else None
    evaluation.select_metrics(metrics)  # an unknown name fails before any training
    return evaluation.EvalOptions(
        metrics=metrics,
        nll_samples=f.nll_samples,
        nll_chunk=f.nll_chunk,
        seed=f.seed,
        inception_weights=f.inception_weights,
        feature_cache=f.feature_cache,
        classifier_steps=f.classifier_steps,
    ).with_num_samples(f.num_samples)


def config_name(path: str) -> str:
    """``configs/info_dpvae.py`` -> ``info_dpvae`` (the workdir and row key)."""
    return os.path.splitext(os.path.basename(path.partition(":")[0]))[0]


def checkpoint_step(workdir: str) -> int:
    """Step of the workdir's latest checkpoint (0 when there is none)."""
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return int(latest.rsplit("-", 1)[-1]) if latest else 0


def _read_metrics(workdir: str) -> dict | None:
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def load_run_config(path: str, *, dataset: str, steps: int | None, seed: int, smoke: bool):
    """The config of one row: ``path`` with the data set (and smoke) preset, the seed, and
    ``steps`` training steps (None: the config's own ``train.num_steps``)."""
    config = load_config(f"{path}:{dataset}{',smoke' if smoke else ''}")
    if steps is not None:
        config.train.num_steps = steps
    config.seed = seed
    return config


def missing_metrics(report: dict | None, options, steps: int) -> list[str] | None:
    """The requested metrics a workdir's metrics.json lacks: None when it is not an
    evaluation of step ``steps`` (evaluate everything), [] when it is complete. A metric
    counts as done when it ran, also when it was skipped as not applying to the model."""
    if report is None or report.get("step") != steps:
        return None
    done = set(report.get("skipped", {})) | set(report.get("seconds", {}))
    return [name for name in evaluation.select_metrics(options.metrics) if name not in done]


def run_config(
    path: str, *, dataset: str, steps: int | None, seed: int, out: str, options, smoke: bool
):
    """Trains (or resumes) and evaluates one config; returns its metrics.json contents.

    ``steps`` None trains for the config's own ``train.num_steps``; ``options`` None evaluates
    with the default ``EvalOptions``.
    """
    options = options or evaluation.EvalOptions()
    name = config_name(path)
    workdir = os.path.join(out, name)
    config = load_run_config(path, dataset=dataset, steps=steps, seed=seed, smoke=smoke)
    steps = int(config.train.num_steps)
    report = _read_metrics(workdir)
    missing = missing_metrics(report, options, steps)
    if missing == []:
        print(f"{name}: evaluated at step {steps}, skipped.", flush=True)
        return report
    if checkpoint_step(workdir) < steps:
        print(f"{name}: training to step {steps} in {workdir}.", flush=True)
        trainer.train_and_evaluate(config, workdir)
    if missing:
        print(f"{name}: evaluating the missing metrics {', '.join(missing)}.", flush=True)
        options = dataclasses.replace(options, metrics=tuple(missing))
    else:
        print(f"{name}: evaluating.", flush=True)
    report = evaluation.evaluate_workdir(workdir, options)
    keras.backend.clear_session()  # one model at a time in memory
    return report


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


_DIGITS = {"fid": 1, "fid_lp": 1, "skl": 2, "nll": 1}


_COLUMN_NAMES = {"fid": "FID", "fid_lp": "FID (LP)"}


def _feature_networks(report: dict) -> dict[str, dict]:
    """Table column (fid, fid_lp) -> the feature network of its number in ``report``."""
    by_metric = evaluation.report_feature_networks(report)
    return {key: by_metric[key] for key in _COLUMN_NAMES if by_metric.get(key)}


def format_table(rows: dict[str, dict | None], *, dataset: str, steps: int | str, seed: int) -> str:
    """The Markdown table: our FID, FID (LP), sKL, NLL beside the paper's.

    Args:
      rows: config name -> its metrics.json contents (None: not finished yet).
      dataset, steps, seed: the shared settings, printed under the table (``steps`` may be a
        description such as "each config's own").
    """
    paper = PAPER_TABLE1.get(dataset)
    lines = [
        f"# dpVAE Table 1 on {dataset} ({steps} steps, seed {seed})",
        "",
        "| Method | FID | FID (LP) | sKL | NLL (nats) | NLL (bits/dim) "
        "| paper FID | paper FID (LP) | paper sKL | paper NLL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    # feature network (as JSON) -> the cells ("<row> <column>") computed with it
    notes, features = [], {}
    for name, report in rows.items():
        label = ROW_NAMES.get(name, name)
        metrics = (report or {}).get("metrics", {})
        ours = [_fmt(metrics.get(key), _DIGITS[key]) for key in COLUMNS]
        ours.append(_fmt(metrics.get("nll_bits_per_dim"), 3))
        if report is None:
            ours = ["(not finished)"] + [""] * 4
        if paper is not None and name in paper:
            theirs = [_fmt(paper[name][key], 2 if key in ("skl", "nll") else 1) for key in COLUMNS]
        else:
            theirs = ["n/a"] * 4
        lines.append(f"| {label} | " + " | ".join(ours + theirs) + " |")
        for metric, reason in (report or {}).get("skipped", {}).items():
            if metric in COLUMNS:  # other metrics' skips do not concern the table
                notes.append(f"- {label}: {metric} skipped: {reason}")
        for key, feat in (_feature_networks(report) if report else {}).items():
            who = features.setdefault(json.dumps(feat, sort_keys=True), [])
            who.append(f"{label} {_COLUMN_NAMES[key]}")
    lines.append("")
    for feat_json, who in features.items():
        desc = evaluation.describe_feature_network(json.loads(feat_json), sha=True)
        whom = "all rows" if len(features) == 1 else ", ".join(who)
        lines.append(f"FID features ({whom}): {desc}.")
    if paper is None:
        lines.append(
            f"The paper reports no numbers on {dataset} (it has MNIST, SVHN and CelebA); "
            "compare rows with each other."
        )
    else:
        lines.append(
            "Paper: Bhalodia et al. 2020, Table 1 (Inception-v3 FID, 100k steps). FIDs from "
            "different feature networks agree only in the ordering of rows. The paper's NLL is "
            "shown as printed: its unit was lost in the text extraction and it is not in nats."
        )
    lines += notes
    return "\n".join(lines) + "\n"


def reproduce(
    configs,
    *,
    dataset: str,
    steps: int | None,
    seed: int,
    out: str,
    options,
    smoke: bool = False,
) -> str:
    """Runs every config (resuming), rewrites ``<out>/table.md`` after each; returns it.

    ``steps`` None trains each config for its own ``train.num_steps`` (with ``smoke``, the
    smoke preset's); ``options`` None evaluates with the default ``EvalOptions``.
    """
    os.makedirs(out, exist_ok=True)
    names = [config_name(path) for path in configs]
    if len(set(names)) != len(names):
        raise InvalidValue(f"Two configs share a name (their workdir): {names}.")
    steps_of = {
        name: int(
            load_run_config(
                path, dataset=dataset, steps=steps, seed=seed, smoke=smoke
            ).train.num_steps
        )
        for path, name in zip(configs, names, strict=True)
    }
    shared = set(steps_of.values())
    described = shared.pop() if len(shared) == 1 else "each config's own"
    rows: dict[str, dict | None] = {name: _read_metrics(os.path.join(out, name)) for name in names}
    rows = {
        name: (r if r and r.get("step") == steps_of[name] else None) for name, r in rows.items()
    }
    table = ""
    for path, name in zip(configs, names, strict=True):
        rows[name] = run_config(
            path, dataset=dataset, steps=steps, seed=seed, out=out, options=options, smoke=smoke
        )
        table = format_table(rows, dataset=dataset, steps=described, seed=seed)
        with open(os.path.join(out, "table.md"), "w") as f:
            f.write(table)
    return table


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, ".")  # config files import configs.common
    f = FLAGS
    table = reproduce(
        f.configs,
        dataset=f.dataset,
        steps=f.steps,
        seed=f.seed,
        out=f.out,
        options=options_from_flags(f),
        smoke=f.smoke,
    )
    print(table)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
