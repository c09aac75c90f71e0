"""Distribution strategies: mirrored equals one device; two workers on 127.0.0.1 train to the end;
mixed precision keeps losses in float32."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfvae import distribute
from tfvae.build import build_model, build_optimizers
from tfvae.config_loader import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "tests", "scripts")
MOONS = os.path.join(REPO, "configs", "vae.py") + ":two_moons,smoke"
# He et al.'s aggressive mode (data-dependent encoder updates, then the decoder's) on two moons.
AGGRESSIVE_MOONS = {
    "data.name": "two_moons",
    "data.binarize": "none",
    "data.num_examples": 512,
    "data.noise": 0.05,
    "data.val_size": 64,
    "model.latent_dim": 2,
    "model.encoder": {"name": "mlp", "options": {"hidden_sizes": (16,)}},
    "model.decoder": {"name": "mlp", "options": {"hidden_sizes": (16,)}},
    "model.likelihood": {"name": "gaussian", "options": {"weight": 1.0}},
}


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec,overrides",
    [
        (MOONS, {}),
        (os.path.join(REPO, "configs", "vae_aggressive.py") + ":smoke", AGGRESSIVE_MOONS),
    ],
    ids=["vae", "aggressive"],
)
def test_two_mirrored_cpus_match_one_device(tmp_path, spec, overrides):
    script = os.path.join(SCRIPTS, "mirrored_vs_single.py")
    out = subprocess.run(
        [sys.executable, script, spec, str(tmp_path), json.dumps(overrides)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == [1, 2]
    assert result["max_abs_weight"] > 0.01
    assert result["max_abs_diff"] < 1e-5, result
    single, mirrored = result["updates"]  # updates per optimizer over the 5 steps
    assert single == mirrored
    if overrides:  # aggressive: several encoder updates per step, then one decoder update
        assert single["decoder"] == 5 and single["encoder"] >= 5 * 20 and single["main"] == 0


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run_two_workers(tmp_path, workdir, *extra_args):
    """Starts both workers on fresh ports; returns [(returncode, stdout, stderr)] per worker."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        # Files, not pipes: a worker blocked on a full pipe would look like a hung collective.
        logs.append((tmp_path / f"worker-{index}.out", tmp_path / f"worker-{index}.err"))
        with open(logs[-1][0], "w") as out, open(logs[-1][1], "w") as err:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(SCRIPTS, "multi_worker.py"),
                        MOONS,
                        workdir,
                        *extra_args,
                    ],
                    stdout=out,
                    stderr=err,
                    env=_env(TF_CONFIG=tf_config),
                    cwd=REPO,
                )
            )
    try:
        # A worker that fails leaves the other waiting for it forever (deaf to SIGTERM): stop
        # both at the first failure.
        deadline = time.monotonic() + 600
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return [
        (p.returncode, out.read_text(), err.read_text())
        for p, (out, err) in zip(procs, logs, strict=True)
    ]


def _two_workers(tmp_path, workdir, *extra_args):
    """Both workers to the end; a port taken by another process between picking and binding
    (the serving tests start servers on ephemeral ports) makes a worker fail at start-up with
    "Could not start gRPC server": then again on new ports."""
    for _ in range(3):
        results = _run_two_workers(tmp_path, workdir, *extra_args)
        if not any("Could not start gRPC server" in err for _, _, err in results):
            break
    report = "\n".join(
        f"worker {i} exited {code}; stderr tail:\n{err[-2000:]}"
        for i, (code, _, err) in enumerate(results)
    )
    for code, out, _ in results:
        assert code == 0, report
        assert "FINAL" in out, report
    return results


@pytest.mark.slow
def test_two_workers_on_localhost_train_write_one_checkpoint_and_log_and_resume(tmp_path):
    workdir = str(tmp_path / "run")
    checkpoints = os.path.join(workdir, "checkpoints")
    _two_workers(tmp_path, workdir)  # the smoke config's 4 steps
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-4")
    assert len(os.listdir(os.path.join(workdir, "train"))) == 1  # one TensorBoard log
    assert not os.path.exists(os.path.join(workdir, ".workers", "worker-1", "checkpoints"))
    # Stopped and restarted with a longer budget: both workers resume from the chief's step 4.
    results = _two_workers(tmp_path, workdir, "8")
    for _, _, err in results:
        assert "Resumed from" in err and "ckpt-4 at step 4" in err, err[-2000:]
    assert tf.train.latest_checkpoint(checkpoints).endswith("ckpt-8")
    assert not os.path.exists(os.path.join(workdir, ".workers"))


def test_strategy_names_and_errors(monkeypatch):
    assert set(distribute.STRATEGIES) == {"default", "mirrored", "multi_worker", "tpu"}
    config = load_config(MOONS)
    with pytest.raises(ValueError, match="Valid distribution strategys: default, mirrored"):
        distribute.make_strategy(type(config.distribution)({"name": "horovod"}))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    cfg = config.distribution
    with cfg.unlocked():
        cfg.name = "multi_worker"
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy(cfg)
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"index": 1}})
    )
    assert distribute.task() == ("chief", 1)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("name", ["dpvae", "nevae_se"])  # conv decoder; PixelCNN (masked convs)
def test_mixed_precision_keeps_losses_float32(policy, name):
    config = load_config(os.path.join(REPO, "configs", f"{name}.py") + ":smoke")
    with config.unlocked():
        config.train.mixed_precision = policy
    model = build_model(config, (28, 28, 1), 100)
    optimizers = build_optimizers(config, model)
    assert (policy == "mixed_float16") == (
        type(optimizers["main"]).__name__ == "LossScaleOptimizer"
    )
    model.compile(optimizers)
    x = tf.random.stateless_uniform([8, 28, 28, 1], seed=[0, 1])
    model.build_all(x)
    assert model.encoder.compute_dtype == policy.split("_")[1]
    assert model.prior.compute_dtype == "float32"
    terms = model.loss_terms([x], True)
    assert all(t.dtype == tf.float32 for t in terms.values())
    logs = tf.function(model.train_step, autograph=False)(x)
    assert all(np.isfinite(float(v)) for v in logs.values())
    images = model.generate(2, seed=0)  # the PixelCNN samples pixel by pixel in low precision
    assert images.shape == (2, 28, 28, 1) and np.isfinite(np.asarray(images, np.float32)).all()
    with pytest.raises(ValueError, match="mixed_precision"):
        with config.unlocked():
            config.train.mixed_precision = "float8"
        build_model(config, (28, 28, 1), 100)
