"""Trains a tfvae model.

    python -m tfvae.train --config=configs/info_dpvae.py            (workdir runs/info_dpvae)
    python -m tfvae.train --config=configs/info_dpvae.py:mnist,smoke --workdir=/tmp/smoke
    python -m tfvae.train --config=configs/vae.py --config.train.num_steps=20000 ...

Without ``--workdir`` the run goes to ``runs/<config file stem>``, followed by the config
argument if one is given (``configs/info_dpvae.py:smoke`` -> ``runs/info_dpvae_smoke``); the
workdir is printed at start. Re-running the same command resumes from the workdir's latest
checkpoint. Watch it with ``tensorboard --logdir=<workdir>``.

A bad config argument, a misspelled override, a value of the wrong type or out of range, an
unknown name or flag ends in one ``error:`` line (exit status 2; ``TFVAE_TRACEBACK=1`` shows the
traceback, ``tfvae.cli``), and the workdir is left as it was: nothing is written before the
whole config has been checked. Field names and values (``tfvae.config_checks``) are checked
before TensorFlow is imported, in well under a second. A NaN stop is one ``error:`` line too
(exit status 1).
"""

import difflib
import os
import re
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from tfvae import cli, config_checks
from tfvae.config_loader import load_config
from tfvae.errors import InvalidValue

FLAGS = flags.FLAGS


def define_flags():
    """Defined when run as a program, so importing this module defines no flag that could
    collide with another tool's (``tools.benchmark`` also has ``--config``)."""
    config_flags.DEFINE_config_file("config", None, "Config file, path[:arg].")
    flags.DEFINE_string(
        "workdir",
        None,
        "Directory for checkpoints, logs and metrics. Default: runs/<config file stem>[_<arg>].",
    )
    flags.mark_flags_as_required(["config"])


def default_workdir(spec: str) -> str:
    """``runs/<config file stem>[_<arg>]`` for ``--config=spec``, the arg made path-safe.

    >>> default_workdir("configs/info_dpvae.py:mnist,smoke")
    'runs/info_dpvae_mnist_smoke'
    """
    path, _, arg = spec.partition(":")
    name = os.path.splitext(os.path.basename(path))[0]
    arg = re.sub(r"[^A-Za-z0-9.-]+", "_", arg).strip("_.")
    return os.path.join("runs", f"{name}_{arg}" if arg else name)


def _flag_value(argv: list[str], name: str) -> str | None:
    """The last value of ``--name=value`` / ``--name value`` in argv (None if absent)."""
    value = None
    for i, arg in enumerate(argv):
        match = re.fullmatch(rf"--?{name}(=(.*))?", arg)
        if match:
            value = match.group(2) if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else "")
    return value


def _check_field(config: ml_collections.ConfigDict, override: str):
    """Raises ValueError if ``override`` (``train.num_steps``) is not a field of ``config``,
    naming the closest valid name."""
    node, walked = config, "config"
    for part in override.split("."):
        if not isinstance(node, ml_collections.ConfigDict):
            raise InvalidValue(f"--config.{override}: {walked} is a value, not a group of fields.")
        if part not in node:
            valid = sorted(node.keys())
            close = difflib.get_close_matches(part, valid, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"valid fields: {', '.join(valid) or '(none)'}."
            )
            raise InvalidValue(f"--config.{override}: {walked} has no field {part!r}; {hint}")
        node, walked = node[part], f"{walked}.{part}"


def check_command_line(argv: list[str]):
    """Loads ``--config`` and checks every ``--config.<field>`` override names a field.

    absl parses flags before ``main`` runs, where ml_collections reports these mistakes as
    tracebacks; checked here first, they raise ValueError / FileNotFoundError with one clear
    message.
    """
    spec = _flag_value(argv, "config")
    if not spec:
        if any(re.match(r"--?(help|helpshort|helpfull|helpxml)$", arg) for arg in argv):
            return  # absl prints the help
        raise cli.UserError(
            "--config is required: a config file and its argument, e.g. "
            "--config=configs/vae.py:smoke."
        )
    try:
        config = load_config(spec)
    except ValueError as error:
        raise InvalidValue(f"--config={spec}: {cli.describe(error)}") from error
    for arg in argv:
        match = re.match(r"--?(?:no)?config\.([^=]+)", arg)
        if match:
            _check_field(config, match.group(1))


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.workdir is not None and not FLAGS.workdir.strip():
        raise InvalidValue(
            "--workdir is empty: give a folder, or leave the flag out for runs/<config>."
        )
    config_checks.check_config(FLAGS.config)  # a wrong value fails before TensorFlow loads
    from tfvae import trainer  # TensorFlow: imported once the command line is known to be good

    workdir = FLAGS.workdir or default_workdir(config_flags.get_config_filename(FLAGS["config"]))
    print(f"workdir: {workdir}", flush=True)
    final = trainer.train_and_evaluate(FLAGS.config, workdir)
    print("final validation:", {k: round(v, 4) for k, v in final.items()})


def run(argv: list[str] | None = None):
    """``python -m tfvae.train``: checks the config arguments, then parses flags and trains."""
    argv = list(sys.argv if argv is None else argv)
    # Config files import ``configs.common``; make the repository root importable.
    sys.path.insert(0, ".")
    with cli.user_errors_exit():
        check_command_line(argv[1:])
    define_flags()
    cli.run(main, argv)


if __name__ == "__main__":
    run()
