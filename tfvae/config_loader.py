"""Loads a config file ``path[:arg]`` the way ``--config`` does, for code and tests."""

import importlib.util
import os

from tfvae.errors import InvalidValue, UserError


def load_config(spec: str):
    """``load_config("configs/info_dpvae.py:mnist,smoke")`` -> locked ConfigDict.

    Raises:
      FileNotFoundError: no such file.
      UserError: the path is a folder, the file does not run, or defines no ``get_config``.
      InvalidValue: the config refuses its argument (``:mnsit``).
    """
    path, _, arg = spec.partition(":")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist (from {spec!r}).")
    if not os.path.isfile(path) or not path.endswith(".py"):
        raise UserError(
            f"Config {path!r} is not a Python file: give a config file such as "
            "configs/vae.py (a folder or another file is not a config)."
        )
    module_spec = importlib.util.spec_from_file_location("tfvae_config", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as error:
        raise UserError(
            f"Config file {path!r} does not parse: {error.msg} (line {error.lineno})."
        ) from error
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise UserError(
            f"Config file {path!r} defines no get_config(arg) function; a config file returns "
            "its ConfigDict from get_config (see configs/vae.py)."
        )
    try:
        return get_config(arg or None)
    except InvalidValue:
        raise
    except ValueError as error:
        # A config file imports only configs, so it refuses a bad argument (``:mnsit``,
        # ``latent=x``) with a plain ValueError: bad input, said in one line on the command line.
        raise InvalidValue(str(error)) from error
