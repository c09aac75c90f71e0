"""Trains the same config on one device and on two logical CPUs under MirroredStrategy.

Run by tests/test_distribute.py in a fresh process (logical devices must be configured before
TensorFlow initializes). Prints the largest absolute weight difference as JSON. An optional
third argument, a JSON object, overrides config fields (``{"model.latent_dim": 2}``).
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfvae import trainer  # noqa: E402
from tfvae.config_loader import load_config  # noqa: E402


def run(spec, workdir, distribution):
    config = load_config(spec)
    with config.unlocked():
        for field, value in overrides.items():
            *path, name = field.split(".")
            node = config
            for key in path:
                node = node[key]
            node[name] = value
        config.train.update(num_steps=5, log_every=5, eval_every=5, checkpoint_every=5)
        config.train.deterministic = True
        config.distribution.name = distribution
        config.distribution.devices = ("/cpu:0", "/cpu:1") if distribution == "mirrored" else None
    trainer.train_and_evaluate(config, workdir)
    exp = trainer.Experiment(config, workdir)
    updates = {k: int(o.iterations.numpy()) for k, o in exp.optimizers.items()}
    return exp.strategy.num_replicas_in_sync, [v.numpy() for v in exp.model.weights], updates


spec, out = sys.argv[1], sys.argv[2]
overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
n1, single, updates1 = run(spec, out + "/single", "default")
n2, mirrored, updates2 = run(spec, out + "/mirrored", "mirrored")
diff = max(float(abs(a - b).max()) for a, b in zip(single, mirrored, strict=True))
moved = max(float(abs(a).max()) for a in single)
result = {"replicas": [n1, n2], "max_abs_diff": diff, "max_abs_weight": moved}
print(json.dumps({**result, "updates": [updates1, updates2]}))
