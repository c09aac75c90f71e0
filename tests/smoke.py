"""Smoke-trained models shared by the test files that need the same ones.

The runs in ``SHARED_RUNS`` are trained once per test run, under pytest-xdist too: the workdirs
live in the run's shared temporary folder and a lock per model makes a second caller (another
test file or xdist worker) wait for the first and reuse its files. Tests that change a workdir
copy it first.
"""

import fcntl
import os

from tfvae import trainer
from tfvae.config_loader import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The cheaper VAE first: when test_export trains these while test_evaluation (another xdist
# worker) needs the dpVAE, the two train side by side instead of one waiting for both.
SMOKE_CONFIGS = {"vae": "configs/vae.py:smoke", "dpvae": "configs/dpvae.py:smoke"}
# Every shared run: the exported ones (test_export exports each of SMOKE_CONFIGS) and the runs
# test_tensorboard reads that test_training's every-config smoke test also trains.
SHARED_RUNS = {
    **SMOKE_CONFIGS,
    "beta_vae_b": "configs/beta_vae_b.py:smoke",
    "mask_aae": "configs/mask_aae.py:smoke",
}


def smoke_root(tmp_path_factory):
    """Where the smoke models live for this test run.

    Under pytest-xdist each worker has its own basetemp inside the run's folder: the models go
    to that shared folder instead, so the workers train them once between them.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / "tfvae_smoke"


def smoke_workdir(root, name: str) -> str:
    """The workdir of ``SHARED_RUNS[name]`` under ``root``, trained by the first caller."""
    os.makedirs(root, exist_ok=True)
    workdir = os.path.join(str(root), name)
    with open(os.path.join(str(root), f".lock-{name}"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(workdir, "train_metrics.json")):
            path, _, arg = SHARED_RUNS[name].partition(":")
            trainer.train_and_evaluate(load_config(os.path.join(REPO, path) + ":" + arg), workdir)
    return workdir


def snapshot(folder) -> dict:
    """Relative path -> sha256 of every file (None for every folder) under ``folder``: two
    snapshots are equal only if nothing in it was added, removed or changed."""
    import hashlib

    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(os.path.join(root, name), folder)] = digest
    return out
