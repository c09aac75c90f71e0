"""Running tfvae's commands: user mistakes end in one clear line, not a traceback.

Every ``python -m tfvae.<command>`` and ``python -m tools.<command>`` calls ``cli.run(main)``
instead of ``absl.app.run(main)``. A :class:`UserError` (and the errors tfvae raises for bad
input: an unknown name, a missing file or dataset, a wrong config value) prints

    error: <what is wrong and how to fix it>

on stderr and exits with status 2. ``TFVAE_TRACEBACK=1`` shows the full traceback instead,
for debugging tfvae itself. Anything else is a bug and keeps its traceback.
"""

import contextlib
import os
import sys

from absl import app

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the command line: the message says what is wrong and how to fix it."""


# What tfvae raises for bad input. Library code keeps raising the standard exceptions, so that
# Python callers can catch them; the command line turns them into one line.
USER_ERRORS = (
    UserError,
    ValueError,
    KeyError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    PermissionError,
)


def describe(error: BaseException) -> str:
    """The one-line (or few-line) message for ``error``."""
    # KeyError's str() is the repr of its argument; show the text itself.
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return str(text).strip() or type(error).__name__


@contextlib.contextmanager
def user_errors_exit():
    """Inside: a user error prints ``error: ...`` and exits with 2 (or re-raises, debugging)."""
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get("TFVAE_TRACEBACK"):
            raise
        print(f"error: {describe(error)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def run(main, argv=None) -> None:
    """``absl.app.run(main)`` that reports user errors in one line and exits with 2."""

    def guarded(args):
        with user_errors_exit():
            return main(args)

    app.run(guarded, argv=argv)
