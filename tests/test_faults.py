"""Damaged checkpoints: every reader falls back to the newest one that restores, nothing is lost.

A two-moons VAE trains 6 steps with a checkpoint every 2 (ckpt-2, ckpt-4, ckpt-6). Each test
damages a copy of that workdir the way a kill, a full disk or a careless hand does, then
checks that loading (what export and evaluate do) and training restore the newest intact
checkpoint, say which one they skipped, never start over at step 0, and delete nothing before
a new checkpoint is written and read back. A run resumed over a damaged checkpoint ends with
exactly the weights of a run that was never interrupted.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import configs
from configs import common
from tests.smoke import snapshot
from tfvae import experiment, trainer
from tfvae.config_loader import load_config
from tfvae.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = dict(num_steps=6, checkpoint_every=2, eval_every=100, log_every=100, image_every=100)


def _config(**train):
    config = load_config(os.path.join(REPO, "configs", "vae.py") + ":two_moons,smoke")
    with config.unlocked():
        config.train.deterministic = True
        config.train.keep_checkpoints = 10  # so any deleted checkpoint is a bug, not pruning
        config.train.update({**STEPS, **train})
    return config


def _tensors(path: str) -> dict:
    reader = tf.train.load_checkpoint(path)
    keys = set(reader.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    return {key: reader.get_tensor(key) for key in keys}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 6-step workdir (ckpt-2, 4, 6) and an uninterrupted 8-step run to compare with."""
    root = tmp_path_factory.mktemp("faults")
    trainer.train_and_evaluate(_config(), str(root / "six"))
    trainer.train_and_evaluate(_config(num_steps=8), str(root / "eight"))
    return {"six": str(root / "six"), "eight": str(root / "eight")}


@pytest.fixture
def workdir(trained, tmp_path):
    copy = str(tmp_path / "run")
    shutil.copytree(trained["six"], copy)
    return copy


def _data_file(workdir, n):
    [name] = [
        f
        for f in os.listdir(os.path.join(workdir, "checkpoints"))
        if f.startswith(f"ckpt-{n}.data")
    ]
    return os.path.join(workdir, "checkpoints", name)


def _index_file(workdir, n):
    return os.path.join(workdir, "checkpoints", f"ckpt-{n}.index")


def _truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def _empty(path):
    open(path, "wb").close()


def _flip(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0x10]))


# name -> (damage(workdir), the step the next run resumes from, the checkpoint it skips).
DAMAGE = {
    "index_deleted": (lambda w: os.remove(_index_file(w, 6)), 4, "ckpt-6"),
    "index_truncated": (lambda w: _truncate(_index_file(w, 6)), 4, "ckpt-6"),
    "data_deleted": (lambda w: os.remove(_data_file(w, 6)), 4, "ckpt-6"),
    "data_truncated": (lambda w: _truncate(_data_file(w, 6)), 4, "ckpt-6"),
    "data_emptied": (lambda w: _empty(_data_file(w, 6)), 4, "ckpt-6"),
    "data_bit_flipped": (lambda w: _flip(_data_file(w, 6)), 4, "ckpt-6"),
    # The state file names the latest checkpoint; lost or garbled, the files still tell.
    "state_deleted": (lambda w: os.remove(os.path.join(w, "checkpoints", "checkpoint")), 6, None),
    "state_garbage": (
        lambda w: open(os.path.join(w, "checkpoints", "checkpoint"), "wb").write(b"\x00garbage{"),
        6,
        None,
    ),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_loading_falls_back_to_the_newest_checkpoint_that_restores(kind, workdir, trained, capfd):
    damage, step, skipped = DAMAGE[kind]
    damage(workdir)
    before = snapshot(workdir)
    exp = experiment.load(workdir)  # what tfvae.export and tfvae.evaluate call
    assert exp.step == step and exp.restored_from.endswith(f"ckpt-{step}")
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    if skipped:
        directory = os.path.join(workdir, "checkpoints")
        [line] = warnings  # one line: what was skipped, why, and what was restored instead
        assert line.startswith(f"warning: skipped {skipped} (") and f"in {directory}; " in line
        assert line.endswith(f"restored {os.path.join(directory, f'ckpt-{step}')}"), line
    else:
        assert not warnings, err
    # The weights are the checkpoint's, not a fresh initialization.
    saved = _tensors(os.path.join(trained["six"], "checkpoints", f"ckpt-{step}"))
    weights = [v for k, v in sorted(saved.items()) if "/_trainable_variables/" in k]
    assert weights and len(weights) == len(exp.model.trainable_variables)
    for value in weights:  # each saved weight is in the restored model
        assert any(np.array_equal(v.numpy(), value) for v in exp.model.trainable_variables)
    assert int(exp.optimizers["main"].iterations.numpy()) == step
    assert snapshot(workdir) == before  # reading changes nothing


@pytest.mark.parametrize("kind", ["index_deleted", "data_bit_flipped", "state_garbage"])
def test_training_resumes_from_the_fallback_and_loses_nothing(kind, workdir, trained):
    damage, step, _ = DAMAGE[kind]
    damage(workdir)
    intact = {
        n for n in (2, 4, 6) if n <= step or kind.startswith("state")
    }  # the checkpoints left whole by the damage
    exp = trainer.Experiment(_config(num_steps=8), workdir)
    assert exp.step == step  # never step 0 over a workdir that holds checkpoints
    del exp
    trainer.train_and_evaluate(_config(num_steps=8), workdir)
    # The resumed run repeats the steps after its fallback: its ckpt-8 is the uninterrupted one.
    a = _tensors(os.path.join(workdir, "checkpoints", "ckpt-8"))
    b = _tensors(os.path.join(trained["eight"], "checkpoints", "ckpt-8"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    numbers = experiment.checkpoint_numbers(os.path.join(workdir, "checkpoints"))
    assert intact | {8} <= set(numbers), numbers
    for n in intact | {8}:
        experiment.verify(os.path.join(workdir, "checkpoints", f"ckpt-{n}"))
    # The state file is whole again and names the new checkpoint.
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-8")


def test_all_checkpoints_unreadable_fails_in_one_line_and_changes_nothing(workdir):
    for n in (2, 4, 6):
        _truncate(_data_file(workdir, n))
    before = snapshot(workdir)
    for run in (
        lambda: trainer.train_and_evaluate(_config(num_steps=8), workdir),
        lambda: experiment.load(workdir),
    ):
        with pytest.raises(UserError, match=r"No checkpoint in .* restores: ckpt-6 \(") as info:
            run()
        assert "\n" not in str(info.value) and "ckpt-2 (" in str(info.value)
        assert snapshot(workdir) == before


def test_nothing_is_pruned_before_a_new_checkpoint_is_verified(workdir, monkeypatch):
    before = set(os.listdir(os.path.join(workdir, "checkpoints")))

    real_verify = experiment.verify

    def broken(path):  # the new checkpoint reads back damaged; the old ones are fine
        if path.endswith("ckpt-8"):
            raise tf.errors.DataLossError(None, None, f"checksum mismatch in {path}")
        real_verify(path)

    monkeypatch.setattr(experiment, "verify", broken)
    with pytest.raises(tf.errors.DataLossError):
        trainer.train_and_evaluate(_config(num_steps=8, keep_checkpoints=1), workdir)
    after = set(os.listdir(os.path.join(workdir, "checkpoints")))
    assert before <= after  # ckpt-2, 4, 6 all still there
    monkeypatch.undo()
    # Verified, the same save prunes down to keep_checkpoints.
    trainer.train_and_evaluate(_config(num_steps=10, keep_checkpoints=2), workdir)
    assert experiment.checkpoint_numbers(os.path.join(workdir, "checkpoints")) == [10, 8]


def test_a_killed_write_leaves_no_temp_folder_behind(workdir, capfd):
    # Killed after TensorFlow moved the data file out of ckpt-8_temp/, before it wrote the index.
    checkpoints = os.path.join(workdir, "checkpoints")
    stale = os.path.join(checkpoints, "ckpt-8_temp")
    os.makedirs(stale)
    open(os.path.join(stale, "part-00000-of-00001.data-00000-of-00001"), "wb").close()
    orphan = os.path.join(checkpoints, "ckpt-8.data-00000-of-00001")
    shutil.copy(_data_file(workdir, 6), orphan)
    # Never a checkpoint, so not a damaged one: readers pass over it without a warning.
    assert experiment.load(workdir).step == 6
    assert "warning" not in capfd.readouterr().err
    assert os.path.isdir(stale) and os.path.exists(orphan)  # a reader deletes nothing
    trainer.train_and_evaluate(_config(num_steps=7), workdir)
    assert not os.path.exists(stale) and not os.path.exists(orphan)
    assert experiment.checkpoint_numbers(checkpoints) == [7, 6, 4, 2]


def test_a_first_write_killed_half_way_is_not_a_checkpoint(tmp_path):
    checkpoints = tmp_path / "fresh" / "checkpoints"
    (checkpoints / "ckpt-2_temp").mkdir(parents=True)
    (checkpoints / "ckpt-2.data-00000-of-00001").write_bytes(b"\0" * 64)
    assert experiment.checkpoint_numbers(str(checkpoints)) == []
    trainer.train_and_evaluate(_config(num_steps=2), str(tmp_path / "fresh"))  # starts, at 0
    assert experiment.checkpoint_numbers(str(checkpoints)) == [2]
    assert not (checkpoints / "ckpt-2_temp").exists()


def test_a_damaged_data_spec_is_named(workdir):
    path = os.path.join(workdir, experiment.DATA_SPEC_FILE)
    with open(path, "w") as f:
        f.write('{"shape": [2], ')
    with pytest.raises(UserError, match=f"{path} is damaged"):
        experiment.load(workdir)


def test_export_uses_the_fallback_checkpoint(workdir, tmp_path):
    from tfvae import export

    DAMAGE["data_truncated"][0](workdir)
    path = export.export_workdir(workdir, str(tmp_path / "models"), "moons")
    with open(os.path.join(path, export.EXPORT_INFO)) as f:
        info = json.load(f)
    assert info["step"] == 4 and info["checkpoint"].endswith("ckpt-4")


def test_every_config_and_dataset_preset_checkpoints_before_its_last_step():
    # A run that saves only at its end loses everything when stopped. The MaskAAE, AAE and
    # WAE-MMD manifold presets did (4,500 steps, a checkpoint every 5,000).
    checked = []
    for name in configs.NAMES:
        for dataset in (None, *common.DATASETS):
            try:
                path = os.path.join(REPO, "configs", f"{name}.py")
                config = load_config(path + (f":{dataset}" if dataset else ""))
            except ValueError:  # a dataset this config does not offer
                continue
            train = config.train
            assert train.checkpoint_every < train.num_steps, (name, dataset)
            checked.append((name, dataset))
    assert ("mask_aae", "manifold") in checked and ("vae", None) in checked
