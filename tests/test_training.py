"""The trainer: resume equals an uninterrupted run, NaN stops cleanly, configs lock and run."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.smoke import SHARED_RUNS, smoke_root, smoke_workdir
from tfvae import data as data_lib
from tfvae import models, train, trainer
from tfvae.config_loader import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
    p
    for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
    if "common" not in p and "__" not in p
)


def _moons(name="dpvae.py", **train):
    config = load_config(os.path.join(REPO, "configs", name) + ":two_moons,smoke")
    with config.unlocked():
        config.train.deterministic = True
        config.train.update(train)
    return config


def _checkpoint(workdir) -> dict:
    """Every tensor of the latest checkpoint: model and optimizer variables, step, RNG state."""
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    keys = set(reader.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    return {key: reader.get_tensor(key) for key in keys}


@pytest.mark.slow
def test_resume_reaches_the_same_step_and_weights(tmp_path):
    steps = dict(num_steps=6, checkpoint_every=3, eval_every=3, log_every=3)
    trainer.train_and_evaluate(_moons(**steps), str(tmp_path / "a"))

    first_half = _moons(**{**steps, "num_steps": 3})
    trainer.train_and_evaluate(first_half, str(tmp_path / "b"))
    trainer.train_and_evaluate(_moons(**steps), str(tmp_path / "b"))  # the same command again

    # The checkpoints hold the model's weights (through the optimizer's variable list), every
    # optimizer's state and the random state: read back, they are identical.
    a, b = _checkpoint(str(tmp_path / "a")), _checkpoint(str(tmp_path / "b"))
    assert a.keys() == b.keys()
    value = "/.ATTRIBUTES/VARIABLE_VALUE"
    assert a["model/step" + value] == b["model/step" + value] == 6
    assert a["optimizer_main/_iterations" + value] == 6
    assert "model/rng_state" + value in a
    weights = [k for k in a if k.startswith("optimizer_main/_trainable_variables/")]
    assert len(weights) > 0
    for key in sorted(a):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_workdir_holds_config_logs_and_checkpoints(tmp_path):
    config = _moons("factor_dpvae.py", num_steps=4)
    final = trainer.train_and_evaluate(config, str(tmp_path))
    assert set(final) == {"loss", "recon", "kl", "tc", "adversary_loss", "adversary_accuracy"}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["objective"] == "factor_vae" and saved["model"]["prior"]["name"] == "decoupled"
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    tags = set()
    for split in ("train", "val"):
        for path in glob.glob(str(tmp_path / split / "events*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                tags |= {v.tag for v in event.summary.value}
    assert {"train/loss", "train/tc", "val/loss", "val/adversary_loss"} <= tags
    # The final terms are the last step's validation: a run resumed at its end, which has no
    # step to run and validates the restored weights afresh, reports the same.
    assert trainer.train_and_evaluate(config, str(tmp_path)) == pytest.approx(final, rel=1e-6)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    config = _moons("vae.py", num_steps=2)
    trainer.train_and_evaluate(config, str(tmp_path))
    real_load = data_lib.load

    def poisoned(cfg):
        splits = real_load(cfg)
        splits.train[:] = np.nan
        return splits

    monkeypatch.setattr(data_lib, "load", poisoned)
    # NaN data: the root terms are named, the total after them.
    with pytest.raises(
        trainer.NonFiniteLossError,
        match=r"step 4: 'recon' is nan, 'kl' is nan \(and so is 'loss'\).*ckpt-2",
    ):
        trainer.train_and_evaluate(_moons("vae.py", num_steps=4), str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")


def test_non_finite_message_names_the_root_terms():
    inf, nan = float("inf"), float("nan")
    with pytest.raises(trainer.NonFiniteLossError, match=r"'kl' is inf \(and so is 'loss'\)"):
        trainer._check_finite({"loss": inf, "recon": 1.0, "kl": inf}, 3, None)
    # Two phases (FactorVAE): each phase's loss is a total; a total alone is its own root.
    totals = {"loss", "adversary_loss"}
    logs = {"loss": nan, "tc": nan, "adversary_loss": inf, "kl": 0.5}
    with pytest.raises(
        trainer.NonFiniteLossError, match=r"'tc' is nan \(and so are 'loss', 'adversary_loss'\)"
    ):
        trainer._check_finite(logs, 3, None, totals)
    with pytest.raises(trainer.NonFiniteLossError, match=r": 'adversary_loss' is inf\. "):
        trainer._check_finite({"loss": 1.0, "adversary_loss": inf}, 3, None, totals)
    trainer._check_finite({"loss": 1.0, "kl": 0.0}, 3, None)  # finite: no error


def test_non_finite_weights_are_not_checkpointed(tmp_path, monkeypatch):
    # An update on a finite loss that leaves non-finite weights (an exploding gradient): the
    # step's logged terms are finite, so only the weights show it.
    config = _moons("vae.py", num_steps=2)
    trainer.train_and_evaluate(config, str(tmp_path))
    real_phases = models.Autoencoder._run_phases  # the compiled body of every step

    def exploding(self, phases, data, finish):
        logs = real_phases(self, phases, data, finish)
        kernel = self.decoder.trainable_variables[0]
        kernel.assign(tf.where(self.step >= 4, kernel + float("nan"), kernel))
        return logs

    monkeypatch.setattr(models.Autoencoder, "_run_phases", exploding)
    with pytest.raises(trainer.NonFiniteLossError, match=r"Non-finite weights at step 4 .*ckpt-2"):
        trainer.train_and_evaluate(_moons("vae.py", num_steps=4), str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")


def _images(logdir) -> dict:
    """The last image summary of each tag in ``logdir``'s event files, decoded [H, W, C]."""
    images = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.metadata.plugin_data.plugin_name == "images":
                    png = tf.make_ndarray(v.tensor)[2]  # [width, height, png, ...]
                    images[v.tag] = tf.io.decode_png(png).numpy()
    return images


def test_image_runs_write_sample_and_reconstruction_grids(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 8, 8, 1), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", x_train=x, x_test=x[:16])
    config = load_config(os.path.join(REPO, "configs", "vae.py") + ":smoke")
    with config.unlocked():
        config.data.update(name="npz", path=str(tmp_path / "tiny.npz"), val_size=16)
        for net in (config.model.encoder, config.model.decoder):
            net.name, net.options = "mlp", {"hidden_sizes": (16,)}
        config.train.update(num_steps=2, num_images=4)
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
    images = _images(str(tmp_path / "run" / "val"))
    assert set(images) == {"samples", "reconstructions"}
    assert images["samples"].shape == (16, 16, 1)  # 4 samples of 8x8 in a 2x2 grid
    # Each validation image next to its reconstruction: a 2x2 grid of 8x16 pairs.
    grid = images["reconstructions"]
    assert grid.shape == (16, 32, 1)
    val = data_lib.load(config.data).val[:4]
    shown = np.stack([grid[:8, :8], grid[:8, 16:24], grid[8:, :8], grid[8:, 16:24]])
    np.testing.assert_allclose(shown, val, atol=1)


def test_other_objective_in_same_workdir_is_refused(tmp_path):
    trainer.train_and_evaluate(_moons("vae.py", num_steps=2), str(tmp_path))
    with pytest.raises(ValueError, match="Use another --workdir"):
        trainer.train_and_evaluate(_moons("info_vae.py", num_steps=2), str(tmp_path))


def test_misspelled_objective_leaves_the_workdir_usable(tmp_path):
    config = _moons("info_vae.py", num_steps=2)
    with config.unlocked():
        config.objective = "info_vea"
    with pytest.raises(ValueError, match="Unknown objective 'info_vea'"):
        trainer.train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "config.json").exists()
    # A config.json with no checkpoint (a run that died before its first one) holds nothing to
    # resume and does not block the workdir either.
    trainer._write_config(_moons("vae.py"), str(tmp_path))
    trainer.train_and_evaluate(_moons("info_vae.py", num_steps=2), str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["objective"] == "info_vae"


@pytest.mark.slow
def test_same_seed_same_result_on_cpu(tmp_path):
    a = trainer.train_and_evaluate(_moons("beta_tcvae.py", num_steps=3), str(tmp_path / "a"))
    b = trainer.train_and_evaluate(_moons("beta_tcvae.py", num_steps=3), str(tmp_path / "b"))
    assert a == b


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_config_is_locked_documented_and_validates_arguments(path):
    config = load_config(path)
    doc = open(path).read()
    assert "python -m tfvae.train --config=configs/" + os.path.basename(path) in doc
    with pytest.raises(AttributeError, match="bach_size"):
        config.train.bach_size = 8
    with pytest.raises(ValueError, match="Valid: datasets"):
        load_config(path + ":mnsit")
    assert load_config(path + ":mnist").data.name == "mnist"


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_every_config_runs_under_smoke(path, tmp_path, tmp_path_factory):
    name = os.path.basename(path)[: -len(".py")]
    if SHARED_RUNS.get(name) == f"configs/{name}.py:smoke":
        # The same run that other test files read (test_export, test_evaluation,
        # test_tensorboard): trained once per test run.
        workdir = smoke_workdir(smoke_root(tmp_path_factory), name)
        with open(os.path.join(workdir, "train_metrics.json")) as f:
            final = json.load(f)["val"]
    else:
        workdir = str(tmp_path)
        final = trainer.train_and_evaluate(load_config(path + ":smoke"), workdir)
    assert final and all(np.isfinite(v) for v in final.values()), final
    assert os.path.exists(os.path.join(workdir, "checkpoints", "checkpoint"))


@pytest.mark.parametrize(
    "path", [p for p in CONFIG_FILES if ":two_moons" in open(p).read()], ids=os.path.basename
)
def test_two_moons_preset_weights_the_likelihood_by_the_data_noise(path):
    # w = 1 collapses every model on two moons; w = 1 / (2 noise^2) = 200 is the Gaussian whose
    # standard deviation is the data's noise (tools/two_moons.py relies on this default).
    config = load_config(path + ":two_moons")
    assert config.model.likelihood.name == "gaussian"
    assert config.data.noise == 0.05
    assert config.model.likelihood.options.weight == pytest.approx(200.0)


def test_unknown_dataset_fails_with_valid_names(tmp_path):
    config = _moons("vae.py")
    with config.unlocked():
        config.data.name = "fashion"
    with pytest.raises(ValueError, match="Valid datasets: .*fashion_mnist"):
        trainer.train_and_evaluate(config, str(tmp_path))


def test_workdir_config_round_trip_keeps_per_choice_options(tmp_path):
    # A Bernoulli likelihood has no ``weight``: filling fields newer than a workdir from the
    # base config must not copy the Gaussian's options into it.
    from tfvae import workdir as workdir_lib

    config = load_config(os.path.join(REPO, "configs", "vae.py") + ":omniglot")
    trainer._write_config(config, str(tmp_path))
    loaded = workdir_lib.load_config(str(tmp_path))
    assert loaded.model.likelihood.name == "bernoulli"
    assert dict(loaded.model.likelihood.options) == {}
    assert loaded.model.prior.options == config.model.prior.options


def _train_command(*args, cwd=REPO):
    env = {k: v for k, v in os.environ.items() if k != "TFVAE_TRACEBACK"}
    env["PYTHONPATH"] = REPO
    return subprocess.run(
        [sys.executable, "-m", "tfvae.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--config=configs/vae.py:smoke", "--config.train.num_stepz=3"],
            "error: --config.train.num_stepz: config.train has no field 'num_stepz'; did you "
            "mean 'num_steps'?",
        ),
        (
            ["--config=configs/beta_vae_h.py", "--config.hparams.betta=2"],
            "error: --config.hparams.betta: config.hparams has no field 'betta'; did you mean "
            "'beta'?",
        ),
        (
            ["--config=configs/vae.py:mnsit"],
            "error: --config=configs/vae.py:mnsit: Unknown config argument 'mnsit'. Valid: "
            "datasets [",
        ),
        (["--config=configs/vea.py"], "error: Config file 'configs/vea.py' does not exist"),
    ],
    ids=["override", "hparam", "argument", "file"],
)
def test_train_command_reports_bad_config_input_in_one_line(args, message, tmp_path):
    result = _train_command(*args, f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (tmp_path / "run").exists()


def test_default_workdir_is_named_after_the_config():
    assert train.default_workdir("configs/info_dpvae.py") == os.path.join("runs", "info_dpvae")
    assert train.default_workdir("configs/info_dpvae.py:smoke") == os.path.join(
        "runs", "info_dpvae_smoke"
    )
    assert train.default_workdir("/x/vae.py:mnist,latent=16") == os.path.join(
        "runs", "vae_mnist_latent_16"
    )


@pytest.mark.slow
def test_train_command_without_workdir_trains_in_runs(tmp_path):
    config = os.path.join(REPO, "configs", "vae.py") + ":two_moons,smoke"
    result = _train_command(f"--config={config}", "--config.train.num_steps=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    workdir = os.path.join("runs", "vae_two_moons_smoke")
    assert f"workdir: {workdir}" in result.stdout.splitlines()
    assert tf.train.latest_checkpoint(str(tmp_path / workdir / "checkpoints")).endswith("ckpt-2")
