"""What TensorBoard shows of a run, read back from the event files the trainer and evaluation
write: every tag the README promises, with the values they must hold where a closed form
exists (the learning rate, the KL annealing weight, beta-VAE-B's capacity, MaskAAE's c)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from PIL import Image
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.projector import projector_config_pb2

from tests.smoke import SHARED_RUNS, smoke_root, smoke_workdir
from tfvae import evaluation, trainer
from tfvae.config_loader import load_config

# Every test here needs the module's expensive fixture (seconds to minutes).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _events(folder) -> dict:
    """tag -> {"plugin": name, "values": [(step, value as numpy)]} of the event files in
    ``folder`` (not its subfolders)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.startswith("events.out.tfevents"):
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                entry = out.setdefault(value.tag, {"plugin": None, "values": [], "metadata": []})
                if value.metadata.plugin_data.plugin_name:
                    entry["plugin"] = value.metadata.plugin_data.plugin_name
                    entry["metadata"].append(value.metadata.plugin_data.content)
                entry["values"].append((event.step, tf.make_ndarray(value.tensor)))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tensorboard")
    cfg = load_config(os.path.join(REPO, "configs/vae.py:smoke"))
    with cfg.unlocked():
        cfg.hparams.kl_warmup_start = 0.1
        cfg.hparams.kl_warmup_steps = 10
    cfg.model.latent_dim = 3
    vae = str(tmp / "vae")
    trainer.train_and_evaluate(cfg, vae)
    evaluation.evaluate_workdir(
        vae, evaluation.EvalOptions(metrics=("skl",), verbose=False).with_num_samples(64)
    )
    # The smoke runs test_training's every-config test reads too: trained once per test run.
    # (mask_aae's jit_compile "auto" is False on this CPU-only suite.)
    shared = {
        name: (
            smoke_workdir(smoke_root(tmp_path_factory), name),
            load_config(os.path.join(REPO, SHARED_RUNS[name])),
        )
        for name in ("beta_vae_b", "mask_aae")
    }
    return {"vae": (vae, cfg), **shared}


def _plugin(events, tag):
    assert tag in events, f"{tag} missing; tags: {sorted(events)}"
    return events[tag]["plugin"]


def _last(events, tag) -> float:
    return float(events[tag]["values"][-1][1])


def test_training_scalars_per_optimizer(runs):
    for name, (workdir, cfg) in runs.items():
        train = _events(os.path.join(workdir, "train"))
        for opt in cfg.optimizers:
            assert _plugin(train, f"train/learning_rate/{opt}") == "scalars"
            assert _last(train, f"train/learning_rate/{opt}") == pytest.approx(
                cfg.optimizers[opt].learning_rate, rel=1e-6
            ), name
            assert _plugin(train, f"train/grad_norm/{opt}") == "scalars"
            norms = [float(v) for _, v in train[f"train/grad_norm/{opt}"]["values"]]
            assert all(np.isfinite(norms)) and all(n > 0 for n in norms), (name, opt, norms)
        for tag in ("train/steps_per_second", "train/examples_per_second"):
            assert _plugin(train, tag) == "scalars"
        # examples/s = steps/s * the examples of one step (MaskAAE: several minibatches).
        ratio = _last(train, "train/examples_per_second") / _last(train, "train/steps_per_second")
        batches = ratio / cfg.train.batch_size
        assert batches == pytest.approx(round(batches), rel=1e-5) and batches >= 1, name
        assert name == "mask_aae" or batches == pytest.approx(1.0), name


def test_objective_scalars(runs):
    vae = _events(os.path.join(runs["vae"][0], "train"))
    # KL annealing from 0.1 to 1 over 10 steps: at step 4 (the last), 0.1 + 0.9 * 4 / 10.
    (step, weight) = vae["train/kl_weight"]["values"][-1]
    assert step == 4 and float(weight) == pytest.approx(0.1 + 0.9 * 4 / 10)
    beta = _events(os.path.join(runs["beta_vae_b"][0], "train"))
    cfg = runs["beta_vae_b"][1]
    assert _plugin(beta, "train/capacity") == "scalars"
    # C = C_max * t / C_stop, the mean over the logged steps (t = 2 and 3 before the last log).
    c = cfg.hparams.c_max / cfg.hparams.c_stop_steps
    assert _last(beta, "train/capacity") == pytest.approx(c * 2.5, rel=1e-5)
    mask = _events(os.path.join(runs["mask_aae"][0], "train"))
    for tag in ("train/poly_weight", "train/active_dims"):
        assert _plugin(mask, tag) == "scalars"
    d = runs["mask_aae"][1].model.latent_dim
    assert 0 <= _last(mask, "train/active_dims") <= d
    assert "train/kl_weight" not in beta and "train/kl_weight" not in mask


def test_validation_histograms(runs):
    vae = _events(os.path.join(runs["vae"][0], "val"))
    for tag in ("val/z_mean", "val/z_log_var", "val/kl_per_dim"):
        assert _plugin(vae, tag) == "histograms"
        steps = [s for s, _ in vae[tag]["values"]]
        assert steps == [2, 4], (tag, steps)  # every validation
    assert _plugin(vae, "val/active_units") == "scalars"
    assert 0 <= _last(vae, "val/active_units") <= 3
    # A deterministic encoder has codes but no variance or KL.
    mask = _events(os.path.join(runs["mask_aae"][0], "val"))
    assert _plugin(mask, "val/z_mean") == "histograms"
    assert "val/z_log_var" not in mask and "val/kl_per_dim" not in mask


def test_hparams_session(runs):
    for name, (workdir, cfg) in runs.items():
        events = _events(workdir)
        assert _plugin(events, "_hparams_/session_start_info") == "hparams"
        data = plugin_data_pb2.HParamsPluginData.FromString(
            events["_hparams_/session_start_info"]["metadata"][0]
        )
        values = data.session_start_info.hparams
        assert values["objective"].string_value == cfg.objective
        assert values["prior"].string_value == cfg.model.prior.name
        assert values["dataset"].string_value == cfg.data.name
        assert values["latent_dim"].number_value == cfg.model.latent_dim
        for key, value in dict(cfg.hparams).items():
            assert f"hparams.{key}" in values, (name, key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert values[f"hparams.{key}"].number_value == pytest.approx(value)
        # The dashboard's metrics: the validation terms and (after tfvae.evaluate) eval/.
        assert "val/loss" in _events(os.path.join(workdir, "val"))
    assert "eval/skl" in _events(os.path.join(runs["vae"][0], "eval"))


def test_projector(runs):
    workdir = runs["vae"][0]
    eval_dir = os.path.join(workdir, "eval")
    config = projector_config_pb2.ProjectorConfig()
    with open(os.path.join(eval_dir, "projector_config.pbtxt")) as f:
        text_format.Parse(f.read(), config)
    (embedding,) = config.embeddings
    codes = np.loadtxt(os.path.join(eval_dir, embedding.tensor_path), delimiter="\t")
    assert codes.shape == (64, 3)
    with open(os.path.join(eval_dir, embedding.metadata_path)) as f:
        labels = [int(line) for line in f]
    exp = evaluation.load_experiment(workdir)
    assert labels == exp.data.test_labels[:64].tolist()
    x = tf.cast(exp.data.test[:64], tf.float32) / 255.0
    np.testing.assert_allclose(codes, exp.model.encode(x)[0].numpy(), atol=1e-4)
    sprite = np.asarray(Image.open(os.path.join(eval_dir, embedding.sprite.image_path)))
    assert list(embedding.sprite.single_image_dim) == [28, 28]
    assert sprite.shape == (8 * 28, 8 * 28)
    np.testing.assert_array_equal(sprite[28:56, :28], exp.data.test[8, ..., 0])  # row 1, col 0
