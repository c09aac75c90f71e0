"""Checks of a config's values that need no TensorFlow.

``tfvae.train`` runs them before it imports TensorFlow, so a wrong value ends the command in
a fraction of a second, and ``tfvae.trainer.train_and_evaluate`` runs them again for callers
from Python. The data's own values (batch size against the data set's size, augmentation) are
checked when the training pipeline is built, also before anything is written.
"""

import os

import numpy as np

from tfvae.errors import InvalidValue

# train.<field>: the smallest valid value. Every one is a count or a period in steps.
TRAIN_MINIMUM = {
    "num_steps": 1,
    "batch_size": 1,
    "log_every": 1,
    "eval_every": 1,
    "image_every": 1,
    "checkpoint_every": 1,
    "keep_checkpoints": 1,
    "num_images": 1,
}
# data.binarize: none, a fresh Bernoulli draw at every step, or one fixed draw (tfvae.data).
BINARIZE_MODES = ("none", "dynamic", "static")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def check_config(config) -> None:
    """Refuses values a run cannot use, naming the field, the value and what is valid.

    Raises:
      InvalidValue: the first invalid field.
    """

    def refuse(field: str, value, valid: str):
        raise InvalidValue(f"--config.{field}={value!r} is invalid: {valid}.")

    for field, low in TRAIN_MINIMUM.items():
        value = config.train[field]
        if not _is_int(value) or value < low:
            refuse(f"train.{field}", value, f"it must be an integer >= {low}")
    val_batches = config.train.val_batches
    if val_batches is not None and (not _is_int(val_batches) or val_batches < 1):
        refuse("train.val_batches", val_batches, "it must be an integer >= 1, or None (all)")
    if not _is_int(config.seed):
        refuse("seed", config.seed, "it must be an integer")
    path = config.data.path
    if path is not None and not os.path.exists(path):
        refuse(
            "data.path",
            path,
            "no such file or folder; pass the data set's file or folder (the README names it)",
        )
    if config.data.binarize not in BINARIZE_MODES:
        refuse("data.binarize", config.data.binarize, f"valid: {', '.join(BINARIZE_MODES)}")
    for name, opt in config.optimizers.items():
        rate = opt.learning_rate
        if not _is_number(rate) or not 0 < rate < float("inf"):
            refuse(f"optimizers.{name}.learning_rate", rate, "it must be a number > 0")
        clip = opt.clipnorm if "clipnorm" in opt else None
        if clip is not None and (not _is_number(clip) or not clip > 0):
            refuse(f"optimizers.{name}.clipnorm", clip, "it must be a number > 0, or None")
