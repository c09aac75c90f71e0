"""The command-line wrapper: user errors end in one line and exit status 2."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    from tfvae import cli

    def main(argv):
        kind = argv[-1]
        if kind == "value":
            raise ValueError("Unknown prior 'gauss'. Valid priors: decoupled, standard_normal.")
        if kind == "key":
            raise KeyError("No such field 'num_stepz'.")
        if kind == "bug":
            raise ZeroDivisionError("a bug keeps its traceback")
        print("ran", kind)

    cli.run(main)
    """
)


def _run(arg, debug=False):
    env = {k: v for k, v in os.environ.items() if k != "TFVAE_TRACEBACK"}
    if debug:
        env["TFVAE_TRACEBACK"] = "1"
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, arg], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    "arg, message",
    [
        ("value", "error: Unknown prior 'gauss'. Valid priors: decoupled, standard_normal."),
        ("key", "error: No such field 'num_stepz'."),
    ],
)
def test_user_errors_print_one_line_and_exit_2(arg, message):
    result = _run(arg)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == message
    assert "Traceback" not in result.stderr


def test_bugs_keep_their_traceback_and_debug_switch_shows_user_errors_in_full():
    bug = _run("bug")
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "ZeroDivisionError" in bug.stderr
    debug = _run("value", debug=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_normal_run_is_untouched():
    ok = _run("fine")
    assert ok.returncode == 0 and ok.stdout.strip() == "ran fine"
