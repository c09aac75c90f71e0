"""tfvae.experiment: a trained model back from its workdir without the training machinery."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.smoke import smoke_root, smoke_workdir
from tfvae import data as data_lib
from tfvae import experiment, trainer
from tfvae import workdir as workdir_lib
from tfvae.errors import UserError


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    copy = str(tmp_path_factory.mktemp("experiment") / "vae")
    shutil.copytree(smoke_workdir(smoke_root(tmp_path_factory), "vae"), copy)
    return copy


def test_load_restores_the_trained_weights_without_loading_the_data(workdir, monkeypatch):
    with open(os.path.join(workdir, experiment.DATA_SPEC_FILE)) as f:
        assert json.load(f) == {"shape": [28, 28, 1], "num_train": 55_000, "kind": "image"}
    trained = trainer.Experiment(workdir_lib.load_config(workdir), workdir)

    def no_data(*args, **kwargs):
        raise AssertionError("experiment.load read the data set")

    monkeypatch.setattr(data_lib, "load", no_data)
    exp = experiment.load(workdir)
    assert exp.step == trained.step == 4 and exp.restored_from == trained.restored_from
    assert exp.spec == trained.spec
    for a, b in zip(exp.model.weights, trained.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for name, optimizer in trained.optimizers.items():
        assert int(exp.optimizers[name].iterations.numpy()) == int(optimizer.iterations.numpy())


def test_a_workdir_without_a_data_spec_gets_one_from_the_data_set_once(workdir, tmp_path):
    older = str(tmp_path / "older")
    shutil.copytree(workdir, older)
    os.remove(os.path.join(older, experiment.DATA_SPEC_FILE))
    assert experiment.load(older).spec == experiment.load(workdir).spec
    assert os.path.exists(os.path.join(older, experiment.DATA_SPEC_FILE))


def test_a_config_json_without_a_field_the_build_needs_is_named(workdir, tmp_path):
    # config.json is read as written; a workdir of an older version lacks newer fields.
    older = str(tmp_path / "older")
    shutil.copytree(workdir, older)
    path = os.path.join(older, "config.json")
    with open(path) as f:
        config = json.load(f)
    del config["model"]["initializer"]
    with open(path, "w") as f:
        json.dump(config, f)
    with pytest.raises(UserError, match=r"config.json has no field 'initializer'.*older version"):
        experiment.load(older)


def test_no_checkpoint_says_how_to_train(tmp_path, workdir):
    empty = str(tmp_path / "untrained")
    os.makedirs(empty)
    shutil.copy(os.path.join(workdir, "config.json"), empty)
    with pytest.raises(FileNotFoundError, match="No checkpoint in .*python -m tfvae.train"):
        experiment.load(empty)


# One fresh Python: loading a trained model, evaluating and exporting import no training
# machinery; importing the trainer, the collapse analysis and the objectives afterwards adds
# nothing to METRICS (one explicit dict, nothing registers itself on import). That none of them
# imports the evaluation package is an import-linter contract (pyproject.toml).
_IMPORTS = """
import json, sys
import tfvae.experiment, tfvae.export
from tfvae import evaluation
loaded = sorted(sys.modules)
metrics = sorted(evaluation.METRICS)
import tfvae.trainer, tfvae.collapse, tfvae.objectives
print(json.dumps([loaded, metrics, sorted(evaluation.METRICS), "tfvae.trainer" in sys.modules]))
"""


@pytest.mark.slow
def test_loading_imports_no_trainer_and_importing_registers_no_metric():
    done = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded, metrics, after, trainer_loaded = json.loads(done.stdout.splitlines()[-1])
    assert "tfvae.evaluation" in loaded and "tfvae.trainer" not in loaded
    assert trainer_loaded and after == metrics and "fid" in metrics
