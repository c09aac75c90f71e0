"""The one runner of the study tools: skip what is done, train, evaluate what is missing.

``tools.reproduce``, ``tools.two_moons``, ``tools.collapse_table`` and ``tools.mask_sweep``
each describe their runs (a locked config and a workdir) and draw their own table or figure;
this module runs them. A run is resumable at every point:

- a workdir whose latest checkpoint is behind ``config.train.num_steps`` trains on from it
  (``tfvae.trainer.train_and_evaluate`` resumes);
- a trained workdir is evaluated on the metrics its ``metrics.json`` lacks for that step;
- a workdir with all of them is not touched.

Delete a workdir's metrics.json to evaluate it again.
"""

import dataclasses
import json
import os

import keras

from tfvae import evaluation, experiment, trainer


def checkpoint_step(workdir: str) -> int:
    """Step of the workdir's newest checkpoint by its files (0 when there is none); training
    restores the newest one that reads back whole (``tfvae.experiment.restore``)."""
    latest = experiment.latest_checkpoint(workdir)
    return int(latest.rsplit("-", 1)[-1]) if latest else 0


def read_metrics(workdir: str) -> dict | None:
    """The workdir's metrics.json contents (None when it has none)."""
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def missing_metrics(report: dict | None, options, steps: int) -> list[str] | None:
    """The requested metrics a workdir's metrics.json lacks: None when it is not an
    evaluation of step ``steps`` (evaluate everything), [] when it is complete. A metric
    counts as done when it ran, also when it was skipped as not applying to the model."""
    if report is None or report.get("step") != steps:
        return None
    done = set(report.get("skipped", {})) | set(report.get("seconds", {}))
    return [name for name in evaluation.select_metrics(options.metrics) if name not in done]


def train(config, workdir: str, *, label: str | None = None) -> bool:
    """Trains ``config`` in ``workdir`` up to ``config.train.num_steps``, resuming from its
    latest checkpoint; returns whether anything was trained."""
    steps = int(config.train.num_steps)
    if checkpoint_step(workdir) >= steps:
        return False
    print(f"{label or workdir}: training to step {steps} in {workdir}.", flush=True)
    trainer.train_and_evaluate(config, workdir)
    return True


def evaluate(workdir: str, options, *, steps: int, label: str | None = None) -> dict:
    """Evaluates the trained ``workdir`` on the metrics of ``options`` its metrics.json lacks
    for step ``steps``; returns the (updated) metrics.json contents."""
    label = label or workdir
    report = read_metrics(workdir)
    missing = missing_metrics(report, options, steps)
    if missing == []:
        print(f"{label}: evaluated at step {steps}, skipped.", flush=True)
        return report
    if missing:
        print(f"{label}: evaluating the missing metrics {', '.join(missing)}.", flush=True)
        options = dataclasses.replace(options, metrics=tuple(missing))
    else:
        print(f"{label}: evaluating.", flush=True)
    report = evaluation.evaluate_workdir(workdir, options)
    keras.backend.clear_session()  # one model at a time in memory
    return report


def run(config, workdir: str, options=None, *, label: str | None = None) -> dict:
    """Trains (or resumes) and evaluates one run; returns its metrics.json contents.

    ``options`` None evaluates with the default ``EvalOptions``.
    """
    options = options or evaluation.EvalOptions()
    steps = int(config.train.num_steps)
    report = read_metrics(workdir)
    if missing_metrics(report, options, steps) == []:
        print(f"{label or workdir}: evaluated at step {steps}, skipped.", flush=True)
        return report
    if train(config, workdir, label=label):
        keras.backend.clear_session()
    return evaluate(workdir, options, steps=steps, label=label)
