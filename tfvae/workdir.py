"""Reading a training workdir's resolved config back.

A workdir written by ``tfvae.trainer.train_and_evaluate`` holds ``config.json`` (the resolved
config, as JSON) and ``checkpoints/``; ``tfvae.experiment.load`` restores its model:

    config = load_config("runs/dpvae")          # locked ConfigDict, as trained

JSON has no tuples; lists are read back as tuples, as the configs write them.
"""

import json
import os

import ml_collections

from tfvae.errors import UserError

CONFIG_FILE = "config.json"


def _tuples(value):
    """JSON lists back to tuples, as the configs write them (``hidden_units=(64, 64)``)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _one_line(error: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The locked config a workdir was trained with, from ``<workdir>/config.json``.

    Raises:
      FileNotFoundError: the workdir has no config.json (not a tfvae training workdir).
      UserError: config.json is not valid JSON (a damaged file), naming it.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist: {workdir!r} is not a tfvae workdir. Train one with "
            f"`python -m tfvae.train --config=configs/<name>.py --workdir={workdir}`."
        )
    try:
        with open(path, encoding="utf-8") as f:
            saved = _tuples(json.load(f))
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise UserError(
            f"{path} is not a readable config ({_one_line(error)}): restore it from a copy, or "
            "train in another --workdir."
        ) from None
    if not isinstance(saved, dict):
        raise UserError(f"{path} holds no config (a JSON object): restore it from a copy.")
    config = ml_collections.ConfigDict(saved)
    config.lock()
    return config
