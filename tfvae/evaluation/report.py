"""Running the selected metrics on a workdir and reporting them: metrics.json (merged with an
earlier evaluation of the same checkpoint), TensorBoard summaries under ``eval/``, the table."""

import dataclasses
import io
import json
import os
import time
from collections.abc import Sequence

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from tfvae import experiment as experiment_lib
from tfvae import workdir as workdir_lib
from tfvae.evaluation.context import EvalContext
from tfvae.evaluation.options import EvalOptions, MetricResult, MetricUndefined
from tfvae.evaluation.projector import write_projector
from tfvae.evaluation.registry import METRICS, select_metrics

METRICS_FILE = "metrics.json"


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The workdir's locked config (``tfvae.workdir.load_config``)."""
    return workdir_lib.load_config(workdir)


def load_experiment(workdir: str):
    """Rebuilds the workdir's model and restores its latest checkpoint.

    Returns:
      A ``tfvae.experiment.Experiment`` (``tfvae.experiment.load``); its dataset loads on
      first use of ``exp.data``.

    Raises:
      FileNotFoundError: if the workdir has no config.json or no checkpoint.
    """
    return experiment_lib.load(workdir, require_checkpoint=True)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_json(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_jsonable(payload), f, indent=2)
    os.replace(tmp, path)


def run_metrics(ctx: EvalContext, names: Sequence[str]) -> dict:
    """Runs the named metrics on ``ctx``; returns the report (see ``evaluate_workdir``).

    A metric raising ``MetricUndefined`` is recorded under ``skipped`` with its reason. A
    scalar name already reported by an earlier metric of the run is stored as
    ``<metric>/<name>``.
    """
    report = {
        "metrics": {},
        "details": {},
        "figures": {},
        "skipped": {},
        "seconds": {},
        "cpu_seconds": {},
    }
    for i, name in enumerate(names, start=1):
        if ctx.options.verbose:
            print(f"[{i}/{len(names)}] {name}", flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        shared_before = dict(ctx.seconds)
        try:
            result = METRICS[name].fn(ctx)
        except MetricUndefined as e:
            report["skipped"][name] = str(e)
            logging.info("Skipped %s: %s", name, e)
            continue
        finally:
            # Time of this metric, including the shared work it triggered first.
            report["seconds"][name] = time.perf_counter() - start
            report["cpu_seconds"][name] = time.process_time() - cpu
            for key in ctx.seconds.keys() - shared_before.keys():
                report["seconds"][key] = ctx.seconds[key]
                report["cpu_seconds"][key] = ctx.cpu_seconds[key]
        if isinstance(result, dict):
            result = MetricResult(scalars=dict(result))
        for key, value in result.scalars.items():
            if key in report["metrics"]:
                # Two metrics report a scalar of the same name (e.g. -ELBO): the first keeps
                # the plain name, later ones are prefixed, nothing is silently overwritten.
                key = f"{name}/{key}"
            report["metrics"][key] = float(value)
        if result.details:
            report["details"][name] = result.details
        report["figures"].update(result.figures)
    return report


def _write_summaries(workdir: str, step: int, report: dict, feature_identity) -> None:
    writer = tf.summary.create_file_writer(os.path.join(workdir, "eval"))
    with writer.as_default(step=step):
        for key, value in report["metrics"].items():
            if value is not None and np.isfinite(value):
                tf.summary.scalar(f"eval/{key}", value)
        for name, rel in report["figures"].items():
            with open(os.path.join(workdir, rel), "rb") as f:
                image = tf.image.decode_png(f.read(), channels=0)
            tf.summary.image(f"eval/{name}", image[None])
        if feature_identity is not None:
            tf.summary.text("eval/feature_network", json.dumps(feature_identity))
        for name, reason in report["skipped"].items():
            tf.summary.text(f"eval/skipped/{name}", reason)
    writer.flush()
    writer.close()


def describe_feature_network(identity: dict, *, sha: bool = False) -> str:
    """``classifier fashion_mnist_28x28x1, test accuracy 0.912`` (name, key or file, accuracy;
    with ``sha``, the start of the weights' sha256 when known)."""
    where = identity.get("key") or identity.get("path") or ""
    acc = identity.get("test_accuracy")
    extra = f", test accuracy {acc:.3f}" if acc is not None else ""
    if sha and "sha256" in identity:
        extra += f", sha256 {identity['sha256'][:12]}"
    return f"{identity['name']} {where}{extra}".replace("  ", " ").strip()


def feature_networks_by_metric(details: dict) -> dict[str, dict]:
    """metric -> the feature network its FID was computed with (from ``details``)."""
    return {
        name: d["feature_network"]
        for name, d in details.items()
        if isinstance(d, dict) and d.get("feature_network")
    }


def report_feature_networks(report: dict) -> dict[str, dict]:
    """FID metric -> its feature network, from a metrics.json report."""
    return report["feature_networks"]


def group_feature_networks(by_metric: dict[str, dict]) -> list[tuple[dict, list[str]]]:
    """[(identity, metrics using it)], one entry per distinct network, in metric order."""
    groups: dict[str, tuple[dict, list[str]]] = {}
    for name, identity in by_metric.items():
        key = json.dumps(identity, sort_keys=True)
        groups.setdefault(key, (identity, []))[1].append(name)
    return list(groups.values())


def format_report(report: dict) -> str:
    """A short text table of scalars, timings and skipped metrics, under the FID feature
    network(s): one line per network, naming the metrics computed with it."""
    lines = io.StringIO()
    for identity, names in group_feature_networks(report_feature_networks(report)):
        lines.write(f"FID features ({', '.join(names)}): {describe_feature_network(identity)}\n")
    width = max([24, *(len(k) + 2 for k in report["metrics"])])
    lines.write(f"{'metric':<{width}}{'value':>14}\n")
    for key, value in report["metrics"].items():
        text = f"{value:>14.4f}" if value is not None else f"{'nan':>14}"
        lines.write(f"{key:<{width}}{text}\n")
    run = report.get("run_seconds") or {}
    total = "this evaluation (restore, metrics, files)"
    width = max([24, *(len(k) + 4 for k in report["seconds"]), len(total) + 4 if run else 0])
    lines.write(f"{'time':<{width}}{'wall s':>10}{'cpu s':>10}\n")
    for key, value in report["seconds"].items():
        cpu = report.get("cpu_seconds", {}).get(key)
        cpu = float("nan") if cpu is None else cpu
        lines.write(f"  {key:<{width - 2}}{value:>10.1f}{cpu:>10.1f}\n")
    if "wall" in run:
        lines.write(f"  {total:<{width - 2}}{run['wall']:>10.1f}{run['cpu']:>10.1f}\n")
    for key, reason in report["skipped"].items():
        lines.write(f"skipped {key}: {reason}\n")
    return lines.getvalue()


def evaluate_workdir(workdir: str, options: EvalOptions = EvalOptions()) -> dict:
    """Evaluates the workdir's latest checkpoint and writes metrics.json, figures, summaries
    and the Embedding Projector's files (``tfvae.evaluation.projector``).

    When metrics.json already holds results of the same checkpoint step and split, the new
    results are merged into it (so metrics can be added one at a time); otherwise it is
    replaced. Each metric keeps the options and the feature network it was computed with.

    Args:
      workdir: a trained tfvae workdir.
      options: see ``EvalOptions``.

    Returns:
      The report written to metrics.json: ``step``, ``objective``, ``prior``, ``dataset``,
      ``split``, ``metrics`` (scalars), ``details`` (curves and settings per metric),
      ``figures``, ``skipped`` (metric -> reason), ``seconds`` and ``cpu_seconds`` (wall and
      process CPU time of each metric, including the shared work it triggered first, and of
      each shared computation), ``run_seconds`` (``wall`` and ``cpu`` seconds of this call
      end to end, checkpoint restore and files included, and the ``metrics`` it ran; the
      table's last time row), ``options`` (metric -> the ``EvalOptions`` of the run that
      computed it), ``feature_networks`` (FID metric -> the identity of its feature network)
      and ``feature_network`` (that identity when every FID metric used the same network,
      None when they differ or no FID was computed).
    """
    start, cpu = time.perf_counter(), time.process_time()
    names = select_metrics(options.metrics)
    exp = load_experiment(workdir)
    ctx = EvalContext(exp, options)
    report = run_metrics(ctx, names)
    header = {
        "step": exp.step,
        "objective": exp.config.objective,
        "prior": exp.config.model.prior.name,
        "dataset": exp.config.data.name,
        "split": options.split,
        "checkpoint": exp.restored_from,
    }
    path = os.path.join(workdir, METRICS_FILE)
    merged = dict(header, **report)
    merged["options"] = dict.fromkeys(names, dataclasses.asdict(options))
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous.get("step") == exp.step and previous.get("split") == options.split:
            for key in ("metrics", "details", "figures", "skipped", "seconds", "cpu_seconds"):
                merged[key] = {**previous.get(key, {}), **report[key]}
            # A metric that ran now is no longer skipped.
            for name in names:
                if name not in report["skipped"]:
                    merged["skipped"].pop(name, None)
            merged["options"] = {**previous["options"], **merged["options"]}
    # This call end to end (restoring the checkpoint, every metric, the files), the number to
    # hold against a time budget; the per-metric times above add up to most of it.
    merged["run_seconds"] = {"metrics": list(names)}
    by_metric = feature_networks_by_metric(merged["details"])
    groups = group_feature_networks(by_metric)
    merged["feature_networks"] = by_metric
    merged["feature_network"] = groups[0][0] if len(groups) == 1 else None
    merged = _jsonable(merged)
    _write_json(path, merged)
    _write_summaries(workdir, exp.step, report, ctx.feature_identity)
    # The codes of the evaluation split for TensorBoard's projector tab (eval/projector/).
    write_projector(ctx, os.path.join(workdir, "eval"))
    merged["run_seconds"].update(wall=time.perf_counter() - start, cpu=time.process_time() - cpu)
    _write_json(path, merged)
    if options.verbose:
        print(format_report(merged), flush=True)
    return merged
