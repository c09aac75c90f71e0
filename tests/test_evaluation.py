"""Tests for the evaluation CLI and its selection logic (tfvae.evaluation, tfvae.evaluate,
tools.reproduce). The metric math is tested in test_metrics.py.

One module fixture runs ``tools.reproduce`` on two smoke configs (VAE with the standard-normal
prior, dpVAE with the decoupled prior) and evaluates them with small sample counts and a 30-step
FID classifier in a temporary cache. It trains the VAE for 4 steps; the dpVAE workdir is a copy
of the identical run ``tests.smoke`` shares with test_export, which reproduce resumes at step 4
without retraining. The tests read what it wrote.
"""

import dataclasses
import glob
import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from tests.smoke import smoke_root, smoke_workdir
from tfvae import evaluate, evaluation, trainer
from tools import reproduce

CONFIGS = ("configs/vae.py", "configs/dpvae.py")
SCALARS = {"fid", "fid_lp", "skl", "nll", "nll_bits_per_dim", "neg_elbo", "neg_elbo_bits_per_dim"}
FIGURES = {
    "samples",
    "reconstructions",
    "lp_samples",
    "hp_samples",
    "leakage",
    "interpolations",
    "traversals",
}


BUILTIN = ("fid", "fid_lp", "skl", "nll", "leakage", "grids", "interpolations", "traversals")


def _options(cache: str, **kwargs) -> evaluation.EvalOptions:
    small = evaluation.EvalOptions(
        nll_samples=4,
        nll_chunk=2,
        batch_size=100,
        grid_size=16,
        num_interpolations=2,
        interpolation_steps=4,
        traversal_steps=5,
        leakage_thresholds=20,
        feature_cache=cache,
        classifier_steps=30,
        verbose=False,
    ).with_num_samples(200)
    return dataclasses.replace(small, **kwargs)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    cache, out = str(root / "cache"), str(root / "table")
    # The same config, steps and seed as reproduce's smoke run of configs/dpvae.py.
    shutil.copytree(smoke_workdir(smoke_root(tmp_path_factory), "dpvae"), f"{out}/dpvae")
    trained, runs = [], []
    original = evaluation.train_feature_classifier
    original_train = trainer.train_and_evaluate

    def counting(*args, **kwargs):
        trained.append(1)
        return original(*args, **kwargs)

    def train(config, workdir):
        runs.append(os.path.basename(workdir))
        return original_train(config, workdir)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "train_feature_classifier", counting)
        mp.setattr(trainer, "train_and_evaluate", train)
        table = reproduce.reproduce(
            CONFIGS,
            dataset="fashion_mnist",
            steps=4,
            seed=0,
            out=out,
            # The built-in metrics only: metrics other modules register have their own tests.
            options=_options(cache, metrics=BUILTIN),
            smoke=True,
        )
    return {
        "out": out,
        "cache": cache,
        "table": table,
        "classifier_trainings": len(trained),
        "trained": runs,
    }


def _report(run, name: str) -> dict:
    with open(os.path.join(run["out"], name, "metrics.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("name,space", [("vae", "z"), ("dpvae", "z0")])
def test_evaluation_writes_every_metric_and_figure(run, name, space):
    report = _report(run, name)
    workdir = os.path.join(run["out"], name)
    # Metrics registered by other modules may add scalars or skip; the built-in ones all ran.
    assert report["step"] == 4 and not set(report["skipped"]) & set(BUILTIN)
    # reproduce trained the VAE and resumed the copied dpVAE workdir at its last step.
    assert run["trained"] == ["vae"]
    assert SCALARS <= set(report["metrics"])
    assert all(math.isfinite(report["metrics"][k]) for k in SCALARS)
    m = report["metrics"]
    # The importance-sampled bound is never below the ELBO from the same samples.
    assert m["nll"] <= m["neg_elbo"]
    assert m["nll_bits_per_dim"] == pytest.approx(m["nll"] / (28 * 28 * math.log(2)))
    # Decoupled priors are measured in the generation space z0, others in z.
    assert report["details"]["skl"]["space"] == space
    assert report["details"]["interpolations"]["space"] == space
    assert report["details"]["leakage"]["f"] == ("g" if space == "z0" else "identity")
    assert len(report["details"]["leakage"]["fraction"]) == 20
    assert FIGURES <= set(report["figures"])
    for rel in report["figures"].values():
        with Image.open(os.path.join(workdir, rel)) as image:
            assert min(image.size) > 10
    # Every timed metric is reported, and the FID network is named.
    assert {"fid", "fid_lp", "skl", "nll"} <= set(report["seconds"])
    assert report["feature_network"]["key"] == "fashion_mnist_28x28x1"
    # TensorBoard summaries: one scalar per metric, one image per figure.
    tags = set()
    for path in glob.glob(os.path.join(workdir, "eval", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags |= {value.tag for value in event.summary.value}
    assert {f"eval/{k}" for k in SCALARS} | {f"eval/{k}" for k in FIGURES} <= tags


@pytest.fixture(scope="module")
def dp_exp(run):
    """The trained dpVAE, loaded once for the tests that inspect or patch a model."""
    return evaluation.load_experiment(os.path.join(run["out"], "dpvae"))


def test_feature_classifier_is_trained_once_and_shared(run, dp_exp):
    assert run["classifier_trainings"] == 1
    identities = [_report(run, name)["feature_network"] for name in ("vae", "dpvae")]
    assert identities[0] == identities[1]
    assert identities[0]["name"] == "classifier" and len(identities[0]["sha256"]) == 64
    # A later evaluation loads the cached network instead of training again.
    splits = dp_exp.data
    net = evaluation.cached_classifier(splits, "fashion_mnist", cache_dir=run["cache"], steps=1)
    assert net.identity["sha256"] == identities[0]["sha256"]
    assert net.features(splits.test[:3].astype(np.float32) / 255, 2).shape == (3, 128)


def test_table_has_rows_columns_and_feature_network(run):
    table = run["table"]
    with open(os.path.join(run["out"], "table.md")) as f:
        assert f.read() == table
    assert "| Method | FID | FID (LP) | sKL | NLL (nats)" in table
    assert "| paper FID | paper FID (LP) | paper sKL | paper NLL |" in table
    vae_fid = _report(run, "vae")["metrics"]["fid"]
    rows = [line for line in table.splitlines() if line.startswith("| VAE |")]
    assert rows and rows[0].split("|")[2].strip() == f"{vae_fid:.1f}"
    assert "| dpVAE |" in table
    # Fashion-MNIST is not in the paper: its columns say so.
    assert rows[0].rstrip(" |").endswith("n/a") and "reports no numbers on fashion_mnist" in table
    assert "FID features (all rows): classifier fashion_mnist_28x28x1" in table


def test_reproduce_resumes_without_retraining_or_reevaluating(run, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished config was run again")

    monkeypatch.setattr(trainer, "train_and_evaluate", fail)
    monkeypatch.setattr(evaluation, "evaluate_workdir", fail)
    table = reproduce.reproduce(
        CONFIGS, dataset="fashion_mnist", steps=4, seed=0, out=run["out"], options=None, smoke=True
    )
    assert table == run["table"]


def test_reproduce_evaluates_a_trained_but_unevaluated_workdir(run, tmp_path, monkeypatch):
    # A copy of the trained dpVAE workdir without metrics.json: only evaluation may run.
    out = str(tmp_path / "partial")
    shutil.copytree(os.path.join(run["out"], "dpvae"), os.path.join(out, "dpvae"))
    report = _report(run, "dpvae")
    os.remove(os.path.join(out, "dpvae", "metrics.json"))
    evaluated = []

    def fake_evaluate(workdir, options):
        evaluated.append(workdir)
        return report

    monkeypatch.setattr(trainer, "train_and_evaluate", lambda *a: pytest.fail("retrained"))
    monkeypatch.setattr(evaluation, "evaluate_workdir", fake_evaluate)
    reproduce.reproduce(
        CONFIGS[1:], dataset="fashion_mnist", steps=4, seed=0, out=out, options=None, smoke=True
    )
    assert evaluated == [os.path.join(out, "dpvae")]
    assert reproduce.checkpoint_step(os.path.join(out, "dpvae")) == 4


def test_paper_numbers_are_the_methods_md_examples():
    mnist = reproduce.PAPER_TABLE1["mnist"]
    assert mnist["info_vae"] == {"fid": 128.7, "fid_lp": 133.2, "skl": 2.89, "nll": 2.88}
    assert mnist["info_dpvae"]["fid"] == 110.1 and mnist["info_dpvae"]["skl"] == 1.70
    assert (mnist["beta_tcvae"]["fid"], mnist["beta_tcvae"]["fid_lp"]) == (149.8, 200.3)
    assert (mnist["beta_tc_dpvae"]["fid_lp"], mnist["beta_tc_dpvae"]["skl"]) == (133.1, 2.07)
    assert set(mnist) == set(reproduce.TABLE1_CONFIGS)
    fake = {"info_dpvae": {"metrics": {"fid": 1.0, "fid_lp": 2.0, "skl": 0.5, "nll": 9.0}}}
    table = reproduce.format_table(fake, dataset="mnist", steps=1, seed=0)
    row = next(line for line in table.splitlines() if line.startswith("| Info-dpVAE |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["1.0", "2.0", "0.50"] and cells[6:9] == ["110.1", "110.5", "1.70"]


def test_metric_selection_and_registration(monkeypatch):
    assert evaluation.select_metrics(None)[: len(BUILTIN)] == list(BUILTIN)
    with pytest.raises(ValueError, match="Valid metrics: .*fid_lp"):
        evaluation.select_metrics(["fid", "fdi"])
    monkeypatch.setattr(evaluation, "METRICS", dict(evaluation.METRICS))
    evaluation.register_metric("latent_size", lambda ctx: {}, default=False)
    assert "latent_size" not in evaluation.select_metrics(None)
    assert evaluation.select_metrics(["latent_size", "fid"]) == ["fid", "latent_size"]
    with pytest.raises(ValueError, match="already registered"):
        evaluation.register_metric("latent_size", lambda ctx: {})


def test_cli_runs_selected_and_registered_metrics_and_merges(run, monkeypatch):
    # Metrics registered by another module, selected through the CLI's --metrics flag.
    monkeypatch.setattr(evaluation, "METRICS", dict(evaluation.METRICS))

    def latent_size(ctx):
        return {"latent_size": ctx.latent_dim}

    def never(ctx):
        raise evaluation.MetricUndefined("not for this model")

    evaluation.register_metric("latent_size", latent_size, default=False)
    evaluation.register_metric("never", never, default=False)
    workdir = os.path.join(run["out"], "vae")
    before = _report(run, "vae")
    fv = flags.FlagValues()
    evaluate.define_flags(fv)
    fv(
        [
            "evaluate",
            f"--workdir={workdir}",
            "--metrics=skl,latent_size,never",
            "--num_samples=100",
            "--nll_samples=7",
            f"--feature_cache={run['cache']}",
            "--quiet",
        ]
    )
    options = evaluate.options_from_flags(fv)
    counts = (options.num_fid, options.num_skl, options.num_nll, options.nll_samples)
    assert counts == (100, 100, 100, 7)
    after = evaluate.run(fv)
    assert after["options"]["metrics"] == ["skl", "latent_size", "never"]
    assert after["metrics"]["latent_size"] == 2.0
    assert after["skipped"]["never"] == "not for this model"
    assert after["details"]["skl"]["num_samples"] == 100  # re-measured on 100 samples
    # Earlier results of the same checkpoint are kept.
    assert after["metrics"]["fid"] == before["metrics"]["fid"]
    assert after["feature_network"] == before["feature_network"]
    assert after == _report(run, "vae")


def test_metrics_that_do_not_apply_are_skipped_with_their_reason(run, dp_exp, monkeypatch):
    model = dp_exp.model
    # An autoregressive decoder: sampling metrics are opt-in (hours on a CPU at full size).
    monkeypatch.setattr(model.decoder, "autoregressive", True)
    ctx = evaluation.EvalContext(dp_exp, _options(run["cache"]))
    report = evaluation.run_metrics(ctx, ["fid", "fid_lp", "nll", "traversals"])
    assert set(report["skipped"]) == {"fid", "fid_lp", "nll", "traversals"}
    assert all("--metrics=" in reason for reason in report["skipped"].values())
    monkeypatch.setattr(model.decoder, "autoregressive", False)
    # A deterministic encoder (WAE, AAE, MaskAAE): codes, no posterior variance.
    monkeypatch.setattr(model, "stochastic", False)
    monkeypatch.setattr(model, "encode", lambda x, training=False: (model.encoder(x)[:, :2], None))
    ctx = evaluation.EvalContext(dp_exp, _options(run["cache"], num_fid=50))
    report = evaluation.run_metrics(ctx, ["fid_lp", "skl", "nll", "leakage", "grids"])
    assert set(report["skipped"]) == {"fid_lp", "nll", "leakage"}
    assert all("deterministic" in reason for reason in report["skipped"].values())
    assert math.isfinite(report["metrics"]["skl"])
    assert report["details"]["grids"]["skipped_figures"].keys() == {"lp_samples"}
    assert {"samples", "hp_samples", "reconstructions"} <= set(report["figures"])
