"""One worker of a two-worker MultiWorkerMirroredStrategy run (TF_CONFIG from the caller).

multi_worker.py CONFIG WORKDIR [NUM_STEPS]
"""

import sys

from absl import logging

from tfvae import trainer
from tfvae.config_loader import load_config

logging.set_verbosity(logging.INFO)  # the trainer's "Resumed from ..." line
config = load_config(sys.argv[1])
with config.unlocked():
    config.distribution.name = "multi_worker"
    if len(sys.argv) > 3:
        config.train.num_steps = int(sys.argv[3])
final = trainer.train_and_evaluate(config, sys.argv[2])
print("FINAL", final)
