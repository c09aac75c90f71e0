"""tools.mask_sweep (the MaskAAE paper's Figure 4) and tools.mask_trace (Figure 5).

The sweep runs as a program on the manifold data with smoke-sized networks, two starting sizes
and two training steps per run, and its results.json, results.csv and figure4.png are checked;
re-running it trains nothing, and a different setting in the same folder is refused. The
figures' contents are checked against their inputs: the trace figure's lines are the mask
values the trainer's own summary writer logged.
"""

import csv
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfvae import networks, trainer
from tfvae.likelihoods import build_likelihood
from tfvae.objectives.mask_aae import MaskAAE
from tfvae.priors import build_prior
from tools import mask_sweep, mask_trace

# Every test here needs the module's expensive fixture (seconds to minutes).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS, MS, N, STEPS = ("wae_mmd", "mask_aae"), (2, 3), 2, 2


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sweep"))
    cmd = [
        sys.executable,
        "-m",
        "tools.mask_sweep",
        f"--out={out}",
        "--dataset=manifold",
        f"--n={N}",
        "--m=" + ",".join(map(str, MS)),
        "--models=" + ",".join(MODELS),
        "--config_args=smoke",
        f"--num_steps={STEPS}",
        "--num_samples=64",
        "--jit_compile=false",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_sweep_writes_one_row_per_model_and_m(sweep_dir):
    with open(os.path.join(sweep_dir, "results.json")) as f:
        results = json.load(f)
    assert results["dataset"] == "manifold" and results["n"] == N
    assert results["config_args"] == ["smoke"]
    runs = results["runs"]
    assert sorted(runs) == sorted(MODELS)
    for model in MODELS:
        assert sorted(int(m) for m in runs[model]) == list(MS)
        for m in MS:
            row = runs[model][str(m)]
            assert math.isfinite(row["fid"]) and row["fid"] > 0, row
            assert 0 <= row["discovered"] <= m and row["discovered"] == int(row["discovered"])
            assert row["step"] == STEPS
            assert row["workdir"] == os.path.join(sweep_dir, model, f"m{m}")
            assert os.path.isdir(os.path.join(row["workdir"], "train"))
    # Without a mask every dimension reaches the decoder.
    assert [runs["wae_mmd"][str(m)]["discovered"] for m in MS] == list(MS)
    with open(os.path.join(sweep_dir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(MODELS) * len(MS)
    assert {(r["model"], int(r["m"])) for r in rows} == {(a, m) for a in MODELS for m in MS}
    for r in rows:
        recorded = runs[r["model"]][r["m"]]
        assert float(r["fid"]) == pytest.approx(recorded["fid"])
        assert float(r["discovered"]) == recorded["discovered"]
    with Image.open(os.path.join(sweep_dir, "figure4.png")) as image:
        assert image.size[0] > 300 and image.size[1] > 200


def test_sweep_resumes_without_training_and_refuses_another_setting(sweep_dir, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a recorded (model, m) was trained again")

    monkeypatch.setattr(mask_sweep, "run_one", no_training)
    os.remove(os.path.join(sweep_dir, "figure4.png"))
    common = dict(dataset="manifold", ms=MS, models=MODELS, num_steps=STEPS, config_args=["smoke"])
    results = mask_sweep.sweep(sweep_dir, n=N, **common)
    assert sorted(results["runs"]) == sorted(MODELS)
    assert os.path.exists(os.path.join(sweep_dir, "figure4.png"))
    with pytest.raises(ValueError, match="Use another --out"):
        mask_sweep.sweep(sweep_dir, n=N + 1, **common)


def test_results_are_standard_json_and_csv_even_with_an_undefined_nac(tmp_path):
    # An undefined NAC (a model without a mask) is NaN in metrics.json; the results hold null.
    nac = mask_sweep._finite_or_none(float("nan"))
    assert nac is None and mask_sweep._finite_or_none(0.5) == 0.5
    row = {"fid": 1.5, "discovered": 2.0, "nac": nac, "step": 4, "workdir": "w"}
    results = {"dataset": "manifold", "n": 2, "runs": {"mask_aae": {"2": row}}}
    mask_sweep.save_results(str(tmp_path), results)
    assert mask_sweep.load_results(str(tmp_path)) == results

    def refuse(name):
        raise AssertionError(f"{name} in results.json")

    with open(tmp_path / "results.json") as f:
        assert json.load(f, parse_constant=refuse)["runs"]["mask_aae"]["2"]["nac"] is None
    with open(tmp_path / "results.csv") as f:
        assert list(csv.reader(f))[1] == ["mask_aae", "2", "1.5", "2.0", "", "4"]


def test_figure4_draws_the_results_with_integer_ticks_for_the_discovered_size(tmp_path):
    results = {
        "dataset": "manifold",
        "n": 2,
        "runs": {
            "wae_mmd": {"2": {"fid": 3.0, "discovered": 2.0}, "3": {"fid": 5.0, "discovered": 3}},
            "mask_aae": {"2": {"fid": 2.0, "discovered": 2.0}, "3": {"fid": 2.5, "discovered": 2}},
        },
    }
    path = str(tmp_path / "figure4.png")
    fig = mask_sweep.plot_figure4(results, path)
    assert os.path.getsize(path) > 0
    left, right = fig.axes
    lines = {line.get_label(): line for line in left.lines + right.lines}
    np.testing.assert_array_equal(lines["wae_mmd FID"].get_ydata(), [3.0, 5.0])
    np.testing.assert_array_equal(lines["mask_aae FID"].get_ydata(), [2.0, 2.5])
    np.testing.assert_array_equal(lines["mask_aae discovered size"].get_xdata(), [2, 3])
    np.testing.assert_array_equal(lines["mask_aae discovered size"].get_ydata(), [2.0, 2.0])
    assert "wae_mmd discovered size" not in lines  # no mask: nothing discovered
    lo, hi = right.get_ylim()
    ticks = [t for t in right.get_yticks() if lo <= t <= hi]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


def _mask_model(d: int) -> MaskAAE:
    model = MaskAAE(
        encoder=networks.build_encoder("mlp", input_shape=(6,), out_dim=d, hidden_sizes=(8,)),
        decoder=networks.build_decoder("mlp", latent_dim=d, output_shape=(6,), hidden_sizes=(8,)),
        adversary=networks.build_adversary("mlp_critic", input_dim=d, hidden_sizes=(8,)),
        prior=build_prior("standard_normal", d),
        likelihood=build_likelihood("bernoulli"),
        latent_dim=d,
        dataset_size=100,
        schedule_interval=75,
        seed=0,
    )
    return model


def _log_mask(workdir: str, d: int, steps, rng) -> np.ndarray:
    """Logs a MaskAAE's mask with the trainer's own writer at ``steps``, moving m in between;
    returns the alpha [T, d] the model had at each logged step."""
    model = _mask_model(d)
    writer = tf.summary.create_file_writer(os.path.join(workdir, "train"))
    logged = []
    with writer.as_default():
        for step in steps:
            model.latent_mask.m.assign(rng.uniform(0.0, 3.0, d).astype("float32"))
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", 1.0)  # other tags are ignored
                trainer._write_vector_summaries(model)
            logged.append(model.alpha().numpy())
    writer.close()
    return np.stack(logged)


def test_mask_trace_plots_the_logged_alpha_of_two_workdirs(tmp_path):
    rng = np.random.default_rng(0)
    steps = [2, 4, 6]
    workdirs = [str(tmp_path / "m3"), str(tmp_path / "m5")]
    logged = [_log_mask(w, d, steps, rng) for w, d in zip(workdirs, (3, 5), strict=True)]
    out = str(tmp_path / "figs" / "fig5.png")
    assert mask_trace.trace(workdirs, out) == out
    with Image.open(out) as image:
        assert image.size[0] > image.size[1] > 100  # two panels side by side
    fig = mask_trace.plot_traces(workdirs, out)
    assert len(fig.axes) == 2
    for ax, workdir, alpha in zip(fig.axes, workdirs, logged, strict=True):
        d = alpha.shape[1]
        curves = [line for line in ax.lines if len(line.get_xdata()) == len(steps)]
        assert len(curves) == d  # one line per latent dimension, plus the threshold
        for j, line in enumerate(curves):
            np.testing.assert_array_equal(line.get_xdata(), steps)
            np.testing.assert_allclose(line.get_ydata(), alpha[:, j], rtol=1e-6)
        active = int((alpha[-1] >= mask_trace.THRESHOLD).sum())
        assert ax.get_title().startswith(f"{os.path.basename(workdir)}: m = {d}, {active} active")
        saved = np.load(os.path.join(workdir, "mask_trace.npz"))
        assert saved["step"].tolist() == steps
        np.testing.assert_allclose(saved["alpha"], alpha, rtol=1e-6)
        lo, hi = ax.get_xlim()
        assert all(float(t).is_integer() for t in ax.get_xticks() if lo <= t <= hi)
    # A run that logged once still shows its values: one marker per dimension.
    single = str(tmp_path / "once")
    alpha = _log_mask(single, 2, [2], rng)
    (ax,) = mask_trace.plot_traces([single], str(tmp_path / "once.png")).axes
    curves = [line for line in ax.lines if len(line.get_xdata()) == 1]
    assert [line.get_marker() for line in curves] == ["o", "o"]
    np.testing.assert_allclose([line.get_ydata()[0] for line in curves], alpha[0], rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="MaskAAE"):
        mask_trace.read_trace(str(tmp_path / "figs"))
    keras.backend.clear_session()
