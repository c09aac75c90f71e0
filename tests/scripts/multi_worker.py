"""One worker of a two-worker MultiWorkerMirroredStrategy run (TF_CONFIG from the caller)."""

import sys

from tfvae import trainer
from tfvae.config_loader import load_config

config = load_config(sys.argv[1])
with config.unlocked():
    config.distribution.name = "multi_worker"
final = trainer.train_and_evaluate(config, sys.argv[2])
print("FINAL", final)
