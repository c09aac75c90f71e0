"""Refused commands: one ``error:`` line, exit status 2, and the workdir left as it was.

Every bad value is refused before anything is written: an existing workdir stays
byte-identical and a fresh one is not created. A resumed run may change only
``trainer.RESUMABLE`` (how long it runs, how often it logs and saves); anything else is refused
naming the field, the stored value and the new one. The command-line forms run as a user types
them (subprocesses); the values are checked in-process, where the command line is not the point.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.smoke import snapshot
from tfvae import trainer
from tfvae.config_loader import load_config
from tfvae.errors import InvalidValue, TrainingStopped, UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOONS = os.path.join(REPO, "configs", "vae.py") + ":two_moons,smoke"


def _config(**fields):
    """The two-moons smoke VAE with ``fields`` ({"train.num_steps": 2, ...}) set."""
    config = load_config(MOONS)
    with config.unlocked():
        config.train.num_steps = 2
        for path, value in fields.items():
            node = config
            *parents, leaf = path.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("config_errors") / "run")
    trainer.train_and_evaluate(_config(), workdir)
    return workdir


@pytest.fixture
def workdir(trained, tmp_path):
    copy = str(tmp_path / "run")
    shutil.copytree(trained, copy)
    return copy


# (field, bad value, text the one-line message must hold besides the field and the value)
BAD_VALUES = [
    ("train.num_steps", 0, ">= 1"),
    ("train.num_steps", -3, ">= 1"),
    ("train.eval_every", -1, ">= 1"),
    ("train.eval_every", 0, ">= 1"),
    ("train.val_batches", 0, ">= 1, or None"),
    ("train.batch_size", -4, ">= 1"),
    ("train.batch_size", 0, ">= 1"),
    ("train.batch_size", 100_000, "at most"),
    ("train.checkpoint_every", 0, ">= 1"),
    ("train.log_every", 0, ">= 1"),
    ("train.image_every", 0, ">= 1"),
    ("train.keep_checkpoints", 0, ">= 1"),
    ("optimizers.main.learning_rate", -1e-3, "> 0"),
    ("optimizers.main.learning_rate", 0.0, "> 0"),
    ("data.binarize", "nope", "dynamic"),
    ("data.path", "/no/such/tfvae/data", "no such file or folder"),
]


@pytest.mark.parametrize(
    "field, value, valid", BAD_VALUES, ids=[f"{f}={v}" for f, v, _ in BAD_VALUES]
)
def test_a_refused_value_leaves_the_workdir_as_it_was(field, value, valid, workdir, tmp_path):
    before = snapshot(workdir)
    fresh = str(tmp_path / "fresh")
    for target in (fresh, workdir):
        with pytest.raises(InvalidValue) as info:
            trainer.train_and_evaluate(_config(**{field: value}), target)
        message = str(info.value)
        assert "\n" not in message and field in message and repr(value) in message, message
        assert valid in message or "cannot change" in message, message
    assert not os.path.exists(fresh)
    assert snapshot(workdir) == before


def test_resumed_run_refuses_a_new_learning_rate_and_accepts_new_steps(workdir):
    before = snapshot(workdir)
    with pytest.raises(InvalidValue) as info:
        trainer.train_and_evaluate(_config(**{"optimizers.main.learning_rate": 0.5}), workdir)
    message = str(info.value)
    stored = json.loads(open(os.path.join(workdir, "config.json")).read())
    old = stored["optimizers"]["main"]["learning_rate"]
    assert f"optimizers.main.learning_rate is {old!r} in" in message and "0.5 here" in message
    assert "train.num_steps" in message  # says what a resumed run may change
    assert snapshot(workdir) == before
    # The cadence and the length may change; config.json then says what ran.
    trainer.train_and_evaluate(_config(**{"train.num_steps": 3, "train.log_every": 1}), workdir)
    stored = json.loads(open(os.path.join(workdir, "config.json")).read())
    assert stored["train"]["num_steps"] == 3 and stored["train"]["log_every"] == 1
    assert all(not trainer._resumable(f) for f in ("model.latent_dim", "seed", "train.batch_size"))


def test_a_corrupt_config_json_is_named_and_kept(workdir):
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        f.write('{"objective": "vae", ')
    before = snapshot(workdir)
    with pytest.raises(UserError, match=f"{path} is not a readable config"):
        trainer.train_and_evaluate(_config(), workdir)
    assert snapshot(workdir) == before


def _command(module, *args, cwd=REPO):
    env = {k: v for k, v in os.environ.items() if k != "TFVAE_TRACEBACK"}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


# TensorFlow's own start-up lines (its C++ logging before absl initializes it, e.g. "no CUDA
# driver"), printed by any command that imports it, whatever tfvae does.
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


def _one_error_line(result) -> str:
    lines = [
        line for line in result.stderr.splitlines() if line.strip() and not TF_NOISE.match(line)
    ]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "no_get_config.py").write_text("x = 1\n")
    (root / "folder").mkdir()
    return root


# (arguments of tfvae.train, text of the one line)
CLI_CASES = [
    (["--config=configs/vae.py:smoke", "--config.train.batch_size=abc"], "batch_size=abc"),
    (["--config=configs/vae.py:smoke", "--config.train.num_steps=2.5"], "num_steps=2.5"),
    (["--config.train.num_steps=3"], "--config is required"),
    (["--config=configs/vae.py:smoke", "--num_stepz=3"], "Unknown command line flag 'num_stepz'"),
    (["--config=configs/vae.py:smoke", "--workdir="], "--workdir is empty"),
    (["--config={files}/folder"], "is not a Python file"),
    (["--config={files}/no_get_config.py"], "defines no get_config"),
    (["--config=configs/vae.py:smoke", "--config.train.batch_size=-4"], "train.batch_size=-4"),
]


@pytest.mark.parametrize(
    "args, text", CLI_CASES, ids=[" ".join(a[1:]) or a[0] for a, _ in CLI_CASES]
)
@pytest.mark.slow
def test_train_command_refuses_in_one_line_and_writes_nothing(args, text, files, workdir):
    before = snapshot(workdir)
    args = [a.format(files=files) for a in args]
    if not any(a.startswith("--workdir") for a in args):
        args.append(f"--workdir={workdir}")
    line = _one_error_line(_command("tfvae.train", *args))
    assert text in line, line
    assert snapshot(workdir) == before


REFUSE_WITHOUT_TF = textwrap.dedent(
    """
    import sys
    from tfvae import train

    try:
        train.run(sys.argv)
    except SystemExit as stop:
        print(stop.code, "tensorflow" in sys.modules)
    """
)


def test_a_wrong_value_is_refused_before_tensorflow_is_imported(workdir):
    before = snapshot(workdir)
    env = {k: v for k, v in os.environ.items() if k != "TFVAE_TRACEBACK"}
    args = ["--config=configs/vae.py:smoke", "--config.train.batch_size=-4", f"--workdir={workdir}"]
    result = subprocess.run(
        [sys.executable, "-c", REFUSE_WITHOUT_TF, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**env, "PYTHONPATH": REPO},
        timeout=120,
    )
    assert result.stdout.split() == ["2", "False"], (result.stdout, result.stderr[-2000:])
    assert "train.batch_size=-4 is invalid" in result.stderr
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_serve_refuses_a_port_out_of_range_in_one_line(tmp_path):
    line = _one_error_line(_command("tfvae.serve", f"--model_base_path={tmp_path}", "--port=99999"))
    assert "--port" in line and "65535" in line, line


@pytest.mark.slow
def test_evaluate_names_a_corrupt_config_json(workdir):
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        f.write("{garbage")
    line = _one_error_line(_command("tfvae.evaluate", f"--workdir={workdir}", "--quiet"))
    assert f"{path} is not a readable config" in line, line


STOPPED = textwrap.dedent(
    """
    from tfvae import cli
    from tfvae.errors import TrainingStopped

    class NonFinite(FloatingPointError, TrainingStopped):
        pass

    def main(argv):
        raise NonFinite("Non-finite loss at step 4: 'kl' is inf (and so is 'loss'). Training "
                        "stopped; the last good checkpoint is run/checkpoints/ckpt-2.")

    cli.run(main)
    """
)


def test_a_nan_stop_is_one_line_with_status_1():
    env = {k: v for k, v in os.environ.items() if k != "TFVAE_TRACEBACK"}
    result = subprocess.run(
        [sys.executable, "-c", STOPPED], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: Non-finite loss at step 4: 'kl' is inf (and so is 'loss'). Training stopped; the "
        "last good checkpoint is run/checkpoints/ckpt-2."
    ]
    # The trainer's NaN stop is such a TrainingStopped (its message: tests/test_training.py).
    assert issubclass(trainer.NonFiniteLossError, TrainingStopped)
