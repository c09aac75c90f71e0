"""Running tfvae's commands: user mistakes end in one clear line, not a traceback.

Every ``python -m tfvae.<command>`` and ``python -m tools.<command>`` calls ``cli.run(main)``
instead of ``absl.app.run(main)``. A :class:`UserError` (``tfvae.errors``: among them
``InvalidValue``, what tfvae's own checks raise for an unknown name or a wrong config value) and
a missing or unwritable file print

    error: <what is wrong and how to fix it>

on stderr and exits with status 2. ``TFVAE_TRACEBACK=1`` shows the full traceback instead,
for debugging tfvae itself. Anything else is a bug and keeps its traceback: an arbitrary
``KeyError`` or ``ValueError`` is not taken for bad input.
"""

import contextlib
import os
import sys

from absl import app

from tfvae.errors import InvalidValue, UserError

EXIT_USER_ERROR = 2

__all__ = ["EXIT_USER_ERROR", "USER_ERRORS", "InvalidValue", "UserError", "describe", "run"]

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
