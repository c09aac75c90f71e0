"""Loads a config file ``path[:arg]`` the way ``--config`` does, for code and tests."""

import importlib.util
import os

from tfvae.errors import InvalidValue


def load_config(spec: str):
    """``load_config("configs/info_dpvae.py:mnist,smoke")`` -> locked ConfigDict."""
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist (from {spec!r}).")
    module_spec = importlib.util.spec_from_file_location("tfvae_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    try:
        return module.get_config(arg or None)
    except InvalidValue:
        raise
    except ValueError as error:
        # A config file imports only configs, so it refuses a bad argument (``:mnsit``,
        # ``latent=x``) with a plain ValueError: bad input, said in one line on the command line.
        raise InvalidValue(str(error)) from error
