"""Trains a tfvae model.

    python -m tfvae.train --config=configs/info_dpvae.py --workdir=runs/info_dpvae
    python -m tfvae.train --config=configs/info_dpvae.py:mnist,smoke --workdir=/tmp/smoke
    python -m tfvae.train --config=configs/vae.py --config.train.num_steps=20000 ...

Re-running the same command resumes from the workdir's latest checkpoint. Watch it with
``tensorboard --logdir=<workdir>``.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from tfvae import trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, path[:arg].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Config files import ``configs.common``; make the repository root importable.
    sys.path.insert(0, ".")
    final = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print("final validation:", {k: round(v, 4) for k, v in final.items()})


if __name__ == "__main__":
    app.run(main)
