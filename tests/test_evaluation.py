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
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from tests.smoke import smoke_root, smoke_workdir
from tfvae import cli, evaluate, evaluation, metrics, trainer
from tfvae.evaluation import context, dpvae, features
from tools import reproduce, sweep

# Every test here needs the module's expensive fixture (seconds to minutes).
pytestmark = pytest.mark.slow

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
    shutil.copytree(smoke_workdir(smoke_root(tmp_path_factory), "dpvae"), f"{out}/dpvae/s0")
    trained, runs = [], []
    original = features.train_feature_classifier
    original_train = trainer.train_and_evaluate

    def counting(*args, **kwargs):
        trained.append(1)
        return original(*args, **kwargs)

    def train(config, workdir):
        runs.append(os.path.relpath(workdir, out))
        return original_train(config, workdir)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(features, "train_feature_classifier", counting)
        mp.setattr(trainer, "train_and_evaluate", train)
        table = reproduce.reproduce(
            CONFIGS,
            dataset="fashion_mnist",
            steps=4,
            seeds=(0,),
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
    with open(os.path.join(run["out"], name, "s0", "metrics.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("name,space", [("vae", "z"), ("dpvae", "z0")])
def test_evaluation_writes_every_metric_and_figure(run, name, space):
    report = _report(run, name)
    workdir = os.path.join(run["out"], name, "s0")
    # Metrics registered by other modules may add scalars or skip; the built-in ones all ran.
    assert report["step"] == 4 and not set(report["skipped"]) & set(BUILTIN)
    # reproduce trained the VAE and resumed the copied dpVAE workdir at its last step.
    assert run["trained"] == ["vae/s0"]
    assert SCALARS <= set(report["metrics"])
    assert all(math.isfinite(report["metrics"][k]) for k in SCALARS)
    m = report["metrics"]
    # The importance-sampled bound is never below the ELBO from the same samples.
    assert m["nll"] <= m["neg_elbo"]
    assert m["nll_bits_per_dim"] == pytest.approx(m["nll"] / (28 * 28 * math.log(2)))
    # Decoupled priors are measured in the generation space z0, others in z.
    assert report["details"]["skl"]["space"] == space
    assert report["details"]["skl"]["standard_error"] > 0  # the estimator's sampling error
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
    return evaluation.load_experiment(os.path.join(run["out"], "dpvae", "s0"))


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
    assert "| Method | seeds | FID | FID (LP) | sKL | NLL (nats)" in table
    assert "| paper FID | paper FID (LP) | paper sKL | paper NLL |" in table
    vae_fid = _report(run, "vae")["metrics"]["fid"]
    rows = [line for line in table.splitlines() if line.startswith("| VAE |")]
    assert rows and rows[0].split("|")[3].strip() == f"{vae_fid:.1f}"
    assert "| dpVAE |" in table
    # Fashion-MNIST is not in the paper: its columns say so.
    assert rows[0].rstrip(" |").endswith("n/a") and "reports no numbers on fashion_mnist" in table
    assert "FID features (all rows): classifier fashion_mnist_28x28x1" in table


def test_reproduce_resumes_without_retraining_or_reevaluating(run, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished config was run again")

    monkeypatch.setattr(trainer, "train_and_evaluate", fail)
    monkeypatch.setattr(evaluation, "evaluate_workdir", fail)
    options = _options(run["cache"], metrics=BUILTIN)
    table = reproduce.reproduce(
        CONFIGS,
        dataset="fashion_mnist",
        steps=4,
        seeds=(0,),
        out=run["out"],
        options=options,
        smoke=True,
    )
    assert table == run["table"]
    # Without --steps, --smoke keeps the smoke preset's 4 steps: the same finished runs.
    table = reproduce.reproduce(
        CONFIGS, dataset="fashion_mnist", steps=None, seeds=(0,), out=run["out"], options=options,
        smoke=True,
    )  # fmt: skip
    assert table == run["table"]


def test_reproduce_flags_reach_the_evaluation_options():
    fv = flags.FlagValues()
    reproduce.define_flags(fv)
    fv(["reproduce", "--out=/tmp/x", "--smoke", "--metrics=skl,nll", "--nll_chunk=3",
        "--classifier_steps=7", "--num_samples=50", "--nll_samples=5"])  # fmt: skip
    assert fv.steps is None  # each config's own num_steps (4 under --smoke)
    o = reproduce.options_from_flags(fv)
    assert (o.metrics, o.nll_chunk, o.classifier_steps) == (("skl", "nll"), 3, 7)
    assert (o.num_fid, o.num_skl, o.num_nll, o.nll_samples) == (50, 50, 50, 5)
    fv.nll_chunk = 0
    with pytest.raises(cli.UserError, match="^--nll_chunk must be >= 1, got 0"):
        reproduce.options_from_flags(fv)


def test_reproduce_evaluates_only_the_missing_metrics_of_an_evaluated_workdir(
    run, tmp_path, monkeypatch
):
    out = str(tmp_path / "partial")
    shutil.copytree(os.path.join(run["out"], "dpvae"), os.path.join(out, "dpvae"))
    report = _report(run, "dpvae")
    evaluated = []

    def fake_evaluate(workdir, options):
        evaluated.append(options.metrics)
        return report

    monkeypatch.setattr(trainer, "train_and_evaluate", lambda *a: pytest.fail("retrained"))
    monkeypatch.setattr(evaluation, "evaluate_workdir", fake_evaluate)
    options = _options(run["cache"], metrics=("skl", "collapse", "nll"))
    reproduce.reproduce(
        CONFIGS[1:],
        dataset="fashion_mnist",
        steps=4,
        seeds=(0,),
        out=out,
        options=options,
        smoke=True,
    )
    assert evaluated == [("collapse",)]  # skl and nll are in its metrics.json already


def test_reproduce_evaluates_a_trained_but_unevaluated_workdir(run, tmp_path, monkeypatch):
    # A copy of the trained dpVAE workdir without metrics.json: only evaluation may run.
    out = str(tmp_path / "partial")
    shutil.copytree(os.path.join(run["out"], "dpvae"), os.path.join(out, "dpvae"))
    report = _report(run, "dpvae")
    os.remove(os.path.join(out, "dpvae", "s0", "metrics.json"))
    evaluated = []

    def fake_evaluate(workdir, options):
        evaluated.append(workdir)
        return report

    monkeypatch.setattr(trainer, "train_and_evaluate", lambda *a: pytest.fail("retrained"))
    monkeypatch.setattr(evaluation, "evaluate_workdir", fake_evaluate)
    reproduce.reproduce(
        CONFIGS[1:], dataset="fashion_mnist", steps=4, seeds=(0,), out=out, options=None, smoke=True
    )
    assert evaluated == [os.path.join(out, "dpvae", "s0")]
    assert sweep.checkpoint_step(os.path.join(out, "dpvae", "s0")) == 4


def test_paper_numbers_are_the_methods_md_examples():
    mnist = reproduce.PAPER_TABLE1["mnist"]
    assert mnist["info_vae"] == {"fid": 128.7, "fid_lp": 133.2, "skl": 2.89, "nll": 2.88}
    assert mnist["info_dpvae"]["fid"] == 110.1 and mnist["info_dpvae"]["skl"] == 1.70
    assert (mnist["beta_tcvae"]["fid"], mnist["beta_tcvae"]["fid_lp"]) == (149.8, 200.3)
    assert (mnist["beta_tc_dpvae"]["fid_lp"], mnist["beta_tc_dpvae"]["skl"]) == (133.1, 2.07)
    assert set(mnist) == set(reproduce.TABLE1_CONFIGS)
    scores = {"fid": 1.0, "fid_lp": 2.0, "skl": 0.5, "nll": 9.0}
    fake = {"info_dpvae": [{"metrics": scores, "feature_networks": {}}]}
    table = reproduce.format_table(fake, dataset="mnist", steps=1, seeds=[0])
    row = next(line for line in table.splitlines() if line.startswith("| Info-dpVAE |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["1", "1.0", "2.0", "0.50"] and cells[7:10] == ["110.1", "110.5", "1.70"]


def test_metric_selection(monkeypatch):
    assert evaluation.select_metrics(None)[: len(BUILTIN)] == list(BUILTIN)
    with pytest.raises(ValueError, match="Valid metrics: .*fid_lp"):
        evaluation.select_metrics(["fid", "fdi"])
    spec = evaluation.MetricSpec(lambda ctx: {}, False, "")
    monkeypatch.setitem(evaluation.METRICS, "latent_size", spec)
    assert "latent_size" not in evaluation.select_metrics(None)
    assert evaluation.select_metrics(["latent_size", "fid"]) == ["fid", "latent_size"]


def test_cli_runs_selected_and_registered_metrics_and_merges(run, monkeypatch):
    # Metrics listed in METRICS by another module, selected through the CLI's --metrics flag.

    def latent_size(ctx):
        return {"latent_size": ctx.latent_dim}

    def never(ctx):
        raise evaluation.MetricUndefined("not for this model")

    monkeypatch.setitem(
        evaluation.METRICS, "latent_size", evaluation.MetricSpec(latent_size, False, "")
    )
    monkeypatch.setitem(evaluation.METRICS, "never", evaluation.MetricSpec(never, False, ""))
    workdir = os.path.join(run["out"], "vae", "s0")
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
    assert after["options"]["skl"]["metrics"] == ["skl", "latent_size", "never"]
    assert after["options"]["fid"] == before["options"]["fid"]  # fid's own run
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


# ----------------------------------------------------------------------------------------------
# The quantities of a decoupled-prior model, recomputed from its prior maps
# ----------------------------------------------------------------------------------------------
def _log_q(z, z_mean, z_log_var):
    """log q(z) of the aggregate posterior, written out in numpy: [M]."""
    z, mean, log_var = (np.asarray(a, np.float64) for a in (z, z_mean, z_log_var))
    sq = (z[:, None, :] - mean[None]) ** 2 / np.exp(log_var)[None]  # [M, N, d]
    log_n = -0.5 * np.sum(np.log(2 * np.pi) + log_var[None] + sq, axis=-1)  # [M, N]
    top = log_n.max(axis=1)
    return top + np.log(np.exp(log_n - top[:, None]).sum(axis=1)) - np.log(len(mean))


def _recording_decode(ctx):
    """Makes ``ctx.decode`` record the codes it decodes; returns the list they go into."""
    calls, decode = [], ctx.decode

    def record(z, label=None, seed=0):
        calls.append(np.array(z))
        return decode(z, label=label, seed=seed)

    ctx.decode = record
    return calls


def _rows(a):
    """The rows of ``a`` in lexicographic order, to compare sets of codes."""
    a = np.asarray(a)
    return a[np.lexsort(a.T[::-1])]


@pytest.fixture
def curved_flow(dp_exp):
    """The smoke dpVAE's flow with large random weights for one test, restored after: a 4-step
    flow from the authors' initialization (tanh-bounded, small outputs) is nearly the identity
    near the codes, and the test needs z and z0 to differ."""
    variables = dp_exp.model.prior.trainable_variables
    saved = [v.numpy() for v in variables]
    rng = np.random.default_rng(0)
    for v in variables:
        v.assign(rng.normal(0.0, 0.5, v.shape).astype(np.float32))
    yield dp_exp
    for v, value in zip(variables, saved, strict=True):
        v.assign(value)


def test_dp_skl_leakage_and_interpolations_use_the_prior_map_g(run, curved_flow, monkeypatch):
    dp_exp = curved_flow
    prior = dp_exp.model.prior
    ctx = evaluation.EvalContext(dp_exp, _options(run["cache"]))
    z = ctx.posterior_samples()
    z0 = prior.to_z0(tf.constant(z)).numpy()
    assert np.abs(z0 - z).mean() > 0.1  # g is far from the identity: z and z0 differ

    # sKL between N(0, I) and the posterior samples mapped by g.
    p = np.random.default_rng([0, context._PRIOR_STREAM]).standard_normal(z.shape)
    expected = metrics.knn_kl_divergence(p, z0) + metrics.knn_kl_divergence(z0, p)
    in_z = metrics.knn_kl_divergence(p, z) + metrics.knn_kl_divergence(z, p)
    skl = dpvae.skl_metric(ctx).scalars["skl"]
    assert skl == pytest.approx(expected, rel=1e-4) and abs(in_z - expected) > 1e-3

    # Leakage: l(z) = log N(g(z); 0, I), and the mean log q(z) of the samples below tau.
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    details = dpvae.leakage_metric(ctx).details
    taus = evaluation.default_leakage_thresholds(2, 20)
    base = -0.5 * np.sum(z0**2 + np.log(2 * np.pi), axis=1)
    log_q = _log_q(z, *ctx.aggregate_encoding())
    fraction = [(base < tau).mean() for tau in taus]
    mean_log_q = [log_q[base < tau].mean() if (base < tau).any() else np.nan for tau in taus]
    np.testing.assert_allclose(details["threshold"], taus)
    np.testing.assert_allclose(details["fraction"], fraction, atol=1e-6)
    got = np.array(details["mean_log_q"], dtype=float)
    np.testing.assert_allclose(got, mean_log_q, rtol=1e-4, equal_nan=True)
    in_z = [(-0.5 * np.sum(z**2 + np.log(2 * np.pi), axis=1) < tau).mean() for tau in taus]
    assert np.abs(np.subtract(in_z, fraction)).max() > 0.05
    # Both panels of the plot span the same thresholds.
    left, right = figures[-1].axes
    assert left.get_xlim() == right.get_xlim() == pytest.approx((taus[0], taus[-1]))

    # Interpolations: linear in z0 between the encoded endpoints, mapped to z by g^-1. The
    # smoke model encodes every image near 0, where g is nearly affine: endpoints far apart
    # (z0 on a circle of radius 2) make a straight line in z differ from it.
    o = ctx.options
    angles = np.linspace(0, 2 * np.pi, 2 * o.num_interpolations, endpoint=False)
    ends = (2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.float32)
    ends[1::2] *= -1  # each pair on opposite sides of the origin
    monkeypatch.setattr(ctx, "encode_mean", lambda x: prior.from_z0(tf.constant(ends)).numpy())
    calls = _recording_decode(ctx)
    dpvae.interpolations_metric(ctx)
    start = prior.to_z0(prior.from_z0(tf.constant(ends))).numpy()
    t = np.linspace(0, 1, o.interpolation_steps)[None, :, None]
    line = (1 - t) * start[0::2, None] + t * start[1::2, None]  # [P, T, d] in z0
    expected = prior.from_z0(tf.constant(line.reshape(-1, 2), tf.float32)).numpy()
    (decoded,) = calls
    np.testing.assert_allclose(decoded, expected, atol=1e-4)
    # A straight line in z between the same endpoints differs from it.
    ez = expected.reshape(line.shape)
    straight = (1 - t) * ez[:, :1] + t * ez[:, -1:]
    assert np.abs(straight - ez).max() > 0.05


def test_lp_and_hp_samples_are_the_lowest_density_ones(run, dp_exp):
    ctx = evaluation.EvalContext(dp_exp, _options(run["cache"]))
    calls = _recording_decode(ctx)
    report = evaluation.run_metrics(ctx, ["fid_lp", "grids"])
    assert not report["skipped"]
    fid_lp, samples, lp_grid, hp_grid = calls
    # LP: the prior samples (z = g^-1(z0), z0 ~ N(0, I)) of lowest log q(z).
    pool = ctx.lp_pool()
    np.testing.assert_allclose(
        pool["z"], dp_exp.model.prior.from_z0(tf.constant(pool["z0"])).numpy(), atol=1e-5
    )
    order = np.argsort(_log_q(pool["z"], *ctx.aggregate_encoding()))
    assert len(pool["z"]) == 2000 and len(fid_lp) == 200
    np.testing.assert_array_equal(_rows(fid_lp), _rows(pool["z"][order[:200]]))
    np.testing.assert_array_equal(_rows(lp_grid), _rows(pool["z"][order[:16]]))
    # HP: the aggregate-posterior samples of lowest prior density log p(z) (latent leaks).
    z = ctx.posterior_samples()
    log_p = dp_exp.model.prior.log_prob(tf.constant(z)).numpy()
    np.testing.assert_array_equal(_rows(hp_grid), _rows(z[np.argsort(log_p)[:16]]))
    assert len(samples) == 16


def test_collapse_metric_uses_num_samples_examples(run, dp_exp):
    ctx = evaluation.EvalContext(dp_exp, _options(run["cache"]).with_num_samples(120))
    report = evaluation.run_metrics(ctx, ["collapse"])
    assert report["details"]["collapse"]["num_examples"] == 120


def test_report_names_each_fid_metrics_own_feature_network(run, tmp_path, monkeypatch):
    # FID (LP) came from the classifier (the fixture); now FID alone with Inception weights.
    workdir = str(tmp_path / "vae")
    shutil.copytree(os.path.join(run["out"], "vae", "s0"), workdir)
    weights = str(tmp_path / "inception.weights.h5")
    inception = {"name": "inception_v3_pool3", "path": weights, "sha256": "0" * 64}
    monkeypatch.setattr(
        features,
        "inception_features",
        lambda path, size: evaluation.FeatureNetwork(
            dict(inception), lambda x: np.asarray(x).reshape(len(x), -1)[:, 300:340]
        ),
    )
    options = _options(run["cache"], metrics=("fid",), inception_weights=weights)
    report = evaluation.evaluate_workdir(workdir, options)
    nets = report["feature_networks"]
    assert nets["fid"] == inception and nets["fid_lp"]["name"] == "classifier"
    assert report["details"]["fid"]["feature_network"] == inception
    assert report["feature_network"] is None  # no single network for the whole report
    # Each metric keeps the options it was computed with.
    assert report["options"]["fid"]["inception_weights"] == weights
    assert report["options"]["fid_lp"]["inception_weights"] is None
    text = evaluation.format_report(report)
    assert f"FID features (fid): inception_v3_pool3 {weights}" in text
    assert "FID features (fid_lp): classifier fashion_mnist_28x28x1" in text
    table = reproduce.format_table({"vae": [report]}, dataset="fashion_mnist", steps=4, seeds=[0])
    assert f"FID features (VAE FID): inception_v3_pool3 {weights}" in table
    assert "FID features (VAE FID (LP)): classifier fashion_mnist_28x28x1" in table


def test_cli_prints_progress_and_a_table_row_per_metric(run, tmp_path, capsys):
    workdir = str(tmp_path / "vae")
    shutil.copytree(os.path.join(run["out"], "vae", "s0"), workdir)
    fv = flags.FlagValues()
    evaluate.define_flags(fv)
    fv(["evaluate", f"--workdir={workdir}", "--metrics=skl,nll", "--num_samples=100",
        "--nll_samples=2", f"--feature_cache={run['cache']}"])  # fmt: skip
    report = evaluate.run(fv)
    out = capsys.readouterr().out
    assert "[1/2] skl" in out and "[2/2] nll" in out
    assert "100/100" in out  # the NLL's progress bar over the examples
    lines = out.splitlines()
    # Every scalar of metrics.json (this run's and the earlier ones') has its row.
    assert set(report["metrics"]) >= {"fid", "fid_lp", "skl", "nll", "neg_elbo"}
    for key, value in report["metrics"].items():
        assert any(line.split() == [key, f"{value:.4f}"] for line in lines), key
    assert "FID features (fid, fid_lp): classifier fashion_mnist_28x28x1" in out
    # The timing table's columns line up, long keys included.
    timings = [line for line in lines if line.startswith("  ") and line.split()[0] in
               report["seconds"]]  # fmt: skip
    assert "shared/aggregate_encoding" in out and len(timings) == len(report["seconds"])
    assert len({len(line) for line in timings}) == 1
    # The last time row is this call end to end, which holds both metrics that ran now (their
    # times include the shared work they triggered), and metrics.json records it.
    run_seconds = report["run_seconds"]
    assert run_seconds["metrics"] == ["skl", "nll"]
    assert run_seconds["wall"] >= report["seconds"]["skl"] + report["seconds"]["nll"]
    total = next(line for line in lines if "this evaluation (restore, metrics, files)" in line)
    assert total.split()[-2:] == [f"{run_seconds['wall']:.1f}", f"{run_seconds['cpu']:.1f}"]
    assert len(total) == len(timings[0])  # in the table's columns
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["run_seconds"] == run_seconds


# Runs ``python -m tfvae.evaluate`` (the module as __main__) once per argument list, all in one
# process since each process pays for importing TensorFlow; prints each run's exit status and
# stderr as a JSON line.
EVALUATE_COMMANDS = """
import contextlib, io, json, runpy, sys, traceback
from absl import app, flags, logging  # their flags stay defined between runs
for args in json.loads(sys.argv[1]):
    sys.argv = ["tfvae.evaluate", *args]
    defined = set(flags.FLAGS)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_module("tfvae.evaluate", run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code
        except BaseException:
            traceback.print_exc()
            code = 1
    for name in set(flags.FLAGS) - defined:  # the next run defines them again
        delattr(flags.FLAGS, name)
    print(json.dumps([code, err.getvalue()]), flush=True)
"""


def test_cli_user_errors_are_one_line_naming_the_flag_to_fix(run, tmp_path):
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(os.path.join(run["out"], "vae", "s0", "config.json"), untrained / "config.json")
    vae = os.path.join(run["out"], "vae", "s0")
    cases = [
        ([f"--workdir={vae}", "--nll_samples=0"], "error: --nll_samples must be >= 1, got 0."),
        ([f"--workdir={vae}", "--num_samples=1"], "error: --num_samples must be >= 2, got 1."),
        ([f"--workdir={tmp_path / 'nowhere'}"], "is not a tfvae workdir. Train one with"),
        ([f"--workdir={vae}", "--metrics=fid,fdi"], "error: Unknown metric 'fdi'. Valid"),
        ([f"--workdir={untrained}", "--metrics=skl"], "Train it first: python -m tfvae.train"),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TFVAE_TRACEBACK", None)
    result = subprocess.run(
        [sys.executable, "-c", EVALUATE_COMMANDS, json.dumps([args for args, _ in cases])],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(runs) == len(cases), result.stderr[-3000:]
    for (args, message), (code, stderr) in zip(cases, runs, strict=True):
        assert code == 2 and "Traceback" not in stderr, (args, stderr)
        assert stderr.count("\n") == 1 and stderr.startswith("error: "), (args, stderr)
        assert message in stderr, (args, stderr)
    assert f"--workdir={untrained}" in stderr and "require_checkpoint" not in stderr
