"""Evaluates a trained tfvae workdir: the dpVAE paper's metrics and figures.

    python -m tfvae.evaluate --workdir=runs/info_dpvae
    python -m tfvae.evaluate --workdir=runs/info_dpvae --num_samples=1000 --nll_samples=20
    python -m tfvae.evaluate --workdir=runs/info_dpvae --metrics=fid,fid_lp
    python -m tfvae.evaluate --workdir=runs/info_dpvae --inception_weights=inception_v3.h5
    python -m tfvae.evaluate --workdir=... --metrics=help    (lists the registered metrics)

Writes ``metrics.json``, ``figures/*.png`` and TensorBoard summaries (``eval/``) into the
workdir and prints a short table. Defaults are the paper's sizes: 10,000 images for FID and
FID (LP), 5,000 samples for sKL, K = 100 importance samples for the NLL on 10,000 test images.
See ``tfvae.evaluation`` for the metrics and for adding new ones.
"""

import sys

from absl import app, flags

from tfvae import evaluation

_DEFAULTS = evaluation.EvalOptions()

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained tfvae workdir.")
_METRICS = flags.DEFINE_list(
    "metrics", None, "Metrics to run (default: every default metric); 'help' lists them."
)
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples",
    None,
    "Sets every sample count (FID images, sKL samples, encoded training examples, NLL "
    "examples) at once; default: the paper's sizes.",
)
_NLL_SAMPLES = flags.DEFINE_integer(
    "nll_samples", _DEFAULTS.nll_samples, "K, importance samples per example."
)
_NLL_CHUNK = flags.DEFINE_integer(
    "nll_chunk", _DEFAULTS.nll_chunk, "Importance samples per decoder call (bounds memory)."
)
_SPLIT = flags.DEFINE_enum("split", _DEFAULTS.split, ["test", "val"], "Evaluation split.")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of every evaluation draw.")
_BATCH = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Encode/decode batch size.")
_INCEPTION = flags.DEFINE_string(
    "inception_weights",
    None,
    "Keras weights file of InceptionV3: FID on its pool3 features. Default: the data set's "
    "cached label classifier.",
)
_CACHE = flags.DEFINE_string(
    "feature_cache", _DEFAULTS.feature_cache, "Folder of cached FID classifiers."
)
_CLASSIFIER_STEPS = flags.DEFINE_integer(
    "classifier_steps", _DEFAULTS.classifier_steps, "Training steps of a new FID classifier."
)
_QUIET = flags.DEFINE_bool("quiet", False, "No progress bars or table.")


def options_from_flags() -> evaluation.EvalOptions:
    return evaluation.EvalOptions(
        metrics=tuple(_METRICS.value) if _METRICS.value else None,
        split=_SPLIT.value,
        nll_samples=_NLL_SAMPLES.value,
        nll_chunk=_NLL_CHUNK.value,
        batch_size=_BATCH.value,
        seed=_SEED.value,
        inception_weights=_INCEPTION.value,
        feature_cache=_CACHE.value,
        classifier_steps=_CLASSIFIER_STEPS.value,
        verbose=not _QUIET.value,
    ).with_num_samples(_NUM_SAMPLES.value)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _METRICS.value == ["help"]:
        for name, spec in evaluation.METRICS.items():
            print(f"{name:<16} {'default' if spec.default else '       '}  {spec.description}")
        return
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required.")
    # Workdir configs may name data paths relative to the repository root, as training does.
    sys.path.insert(0, ".")
    evaluation.evaluate_workdir(_WORKDIR.value, options_from_flags())


if __name__ == "__main__":
    app.run(main)
