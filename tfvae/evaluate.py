"""Evaluates a trained tfvae workdir: the dpVAE paper's metrics and figures.

    python -m tfvae.evaluate --workdir=runs/info_dpvae
    python -m tfvae.evaluate --workdir=runs/info_dpvae --num_samples=1000 --nll_samples=20
    python -m tfvae.evaluate --workdir=runs/info_dpvae --metrics=fid,fid_lp
    python -m tfvae.evaluate --workdir=runs/info_dpvae --inception_weights=inception_v3.h5
    python -m tfvae.evaluate --metrics=help    (lists the metrics, tfvae.evaluation.METRICS)

Writes ``metrics.json``, ``figures/*.png`` and TensorBoard summaries (``eval/``) into the
workdir and prints a short table. Defaults are the paper's sizes: 10,000 images for FID and
FID (LP), 5,000 samples for sKL, K = 100 importance samples for the NLL on 10,000 test images.
See ``tfvae.evaluation`` for the metrics and for adding new ones.
"""

import os
import sys

from absl import app, flags

from tfvae import cli, evaluation

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the CLI's flags in ``flag_values`` (here rather than at import, so importing
    this module next to other entry points in one process cannot define a flag twice)."""
    d = evaluation.EvalOptions()
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("workdir", None, "A trained tfvae workdir.", **fv)
    flags.DEFINE_list(
        "metrics",
        None,
        "Metrics to run (default: every default metric); 'help' lists them.",
        **fv,
    )
    flags.DEFINE_integer(
        "num_samples",
        None,
        "Sets every sample count (FID images, sKL samples, encoded training examples, NLL "
        "examples) at once; default: the paper's sizes.",
        **fv,
    )
    flags.DEFINE_integer("nll_samples", d.nll_samples, "K, importance samples per example.", **fv)
    flags.DEFINE_integer(
        "nll_chunk", d.nll_chunk, "Importance samples per decoder call (bounds memory).", **fv
    )
    flags.DEFINE_enum("split", d.split, ["test", "val"], "Evaluation split.", **fv)
    flags.DEFINE_integer("seed", d.seed, "Seed of every evaluation draw.", **fv)
    flags.DEFINE_integer("batch_size", d.batch_size, "Encode / decode batch size.", **fv)
    flags.DEFINE_string(
        "inception_weights",
        None,
        "Keras weights file of InceptionV3: FID on its pool3 features. Default: the data "
        "set's cached label classifier.",
        **fv,
    )
    flags.DEFINE_string("feature_cache", d.feature_cache, "Folder of cached FID classifiers.", **fv)
    flags.DEFINE_integer(
        "classifier_steps", d.classifier_steps, "Training steps of a new FID classifier.", **fv
    )
    flags.DEFINE_bool("quiet", False, "No progress bars or table.", **fv)


# Integer flags and their smallest valid value (tools.reproduce checks its own with these).
FLAG_MINIMUM = {
    "num_samples": 2,
    "nll_samples": 1,
    "nll_chunk": 1,
    "batch_size": 1,
    "classifier_steps": 1,
}


def check_minimums(f: flags.FlagValues, minimum: dict[str, int]) -> None:
    """cli.UserError naming the first flag of ``minimum`` (that ``f`` has) set below its
    smallest valid value."""
    for name, low in minimum.items():
        value = f[name].value if name in f else None
        if value is not None and value < low:
            raise cli.UserError(f"--{name} must be >= {low}, got {value}.")


def validate_flags(f: flags.FlagValues = FLAGS) -> None:
    """Checks the flags before anything is loaded; a bad value fails at once, naming its flag.

    Raises:
      cli.UserError: a missing --workdir, a value out of range, a missing weights file.
    """
    if f.workdir is None:
        raise cli.UserError("--workdir is required (a trained tfvae workdir).")
    check_minimums(f, FLAG_MINIMUM)
    if f.inception_weights and not os.path.isfile(f.inception_weights):
        raise cli.UserError(f"--inception_weights: no such file {f.inception_weights!r}.")


def options_from_flags(f=FLAGS) -> evaluation.EvalOptions:
    return evaluation.EvalOptions(
        metrics=tuple(f.metrics) if f.metrics else None,
        split=f.split,
        nll_samples=f.nll_samples,
        nll_chunk=f.nll_chunk,
        batch_size=f.batch_size,
        seed=f.seed,
        inception_weights=f.inception_weights,
        feature_cache=f.feature_cache,
        classifier_steps=f.classifier_steps,
        verbose=not f.quiet,
    ).with_num_samples(f.num_samples)


def run(f: flags.FlagValues = FLAGS) -> dict | None:
    """What the command does with parsed flags; returns the report (None for help)."""
    if f.metrics == ["help"]:
        print(evaluation.describe_metrics())
        return None
    validate_flags(f)
    options = options_from_flags(f)
    evaluation.select_metrics(options.metrics)  # an unknown name fails before loading
    return evaluation.evaluate_workdir(f.workdir, options)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Workdir configs may name data paths relative to the repository root, as training does.
    sys.path.insert(0, ".")
    run(FLAGS)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
