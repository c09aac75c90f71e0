"""Running tfvae's commands: user mistakes end in one clear line, not a traceback.

Every ``python -m tfvae.<command>`` and ``python -m tools.<command>`` calls ``cli.run(main)``
instead of ``absl.app.run(main)``. A :class:`UserError` (``tfvae.errors``: among them
``InvalidValue``, what tfvae's own checks raise for an unknown name or a wrong config value) and
a missing or unwritable file print

    error: <what is wrong and how to fix it>

on stderr and exits with status 2. ``TFVAE_TRACEBACK=1`` shows the full traceback instead,
for debugging tfvae itself. Anything else is a bug and keeps its traceback: an arbitrary
``KeyError`` or ``ValueError`` is not taken for bad input.

Flag mistakes are bad input too: an unknown flag, a missing required one, a value of the
wrong type or out of its bounds print one ``error:`` line and exit with 2 (absl itself prints
a two-line ``FATAL`` and exits with 1). A run that stopped on purpose (``TrainingStopped``: a
NaN loss) prints one ``error:`` line and exits with status 1.
"""

import contextlib
import os
import sys

from absl import app, flags

from tfvae.errors import InvalidValue, TrainingStopped, UserError

EXIT_USER_ERROR = 2
EXIT_STOPPED = 1

__all__ = [
    "EXIT_STOPPED",
    "EXIT_USER_ERROR",
    "USER_ERRORS",
    "InvalidValue",
    "TrainingStopped",
    "UserError",
    "describe",
    "parse_flags",
    "run",
]

# What the command line reports in one line: tfvae's own input errors and file errors.
USER_ERRORS = (
    UserError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
)


def describe(error: BaseException) -> str:
    """The one-line (or few-line) message for ``error``."""
    # KeyError's str() is the repr of its argument; show the text itself.
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(str(text).split())  # one line, whatever the exception's text holds
    return text or type(error).__name__


@contextlib.contextmanager
def user_errors_exit():
    """Inside: a user error prints ``error: ...`` and exits with 2 (or re-raises, debugging)."""
    try:
        yield
    except (*USER_ERRORS, TrainingStopped, app.UsageError) as error:
        if os.environ.get("TFVAE_TRACEBACK"):
            raise
        print(f"error: {describe(error)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_STOPPED if isinstance(error, TrainingStopped) else EXIT_USER_ERROR)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors as one ``error:`` line and exit status 2.

    Covers an unknown flag, a missing required flag, a value of the wrong type or outside its
    bounds (``--port=99999``), and ml_collections' ``--config`` overrides of the wrong type.
    """
    try:
        return flags.FLAGS(argv)
    except (flags.Error, ValueError, TypeError, AttributeError, OverflowError) as error:
        if os.environ.get("TFVAE_TRACEBACK"):
            raise
        print(f"error: {describe(error)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


def run(main, argv=None) -> None:
    """``absl.app.run(main)`` that reports user errors in one line and exits with 2."""

    def guarded(args):
        with user_errors_exit():
            return main(args)

    app.run(guarded, argv=argv, flags_parser=parse_flags)
