"""The errors tfvae raises for bad input; the command line reports them in one line.

``tfvae.cli.run`` prints ``error: <message>`` and exits with status 2 for these (and for a
missing or unwritable file); any other exception is a bug in tfvae and keeps its traceback, an
arbitrary ``KeyError`` or ``ValueError`` included.
"""


class UserError(Exception):
    """Bad input from the command line: the message says what is wrong and how to fix it."""


class InvalidValue(UserError, ValueError):
    """A value tfvae's own checks refuse: an unknown name, a wrong config value or option.

    A ``ValueError`` too, so Python callers catch it as they catch any bad argument.
    """


class TrainingStopped(Exception):
    """A run that stopped on purpose, not on bad input: a NaN or infinite loss or weight.

    The message names the cause and the checkpoint kept; the command line prints it in one line
    and exits with status 1.
    """
