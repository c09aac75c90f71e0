"""The command-line wrapper: user errors end in one line and exit status 2."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    from tfvae import cli, registry

    def main(argv):
        kind = argv[-1]
        if kind == "value":
            raise cli.InvalidValue("Unknown prior 'gauss'. Valid: decoupled, standard_normal.")
        if kind == "lookup":
            registry.lookup({"vae": 1}, "vea", "objective")
        if kind == "user":
            raise cli.UserError("No such field 'num_stepz'.")
        if kind == "bug":
            raise ZeroDivisionError("a bug keeps its traceback")
        if kind == "bug_value":
            raise ValueError("math domain error")
        if kind == "bug_key":
            raise KeyError("kl")
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
        ("value", "error: Unknown prior 'gauss'. Valid: decoupled, standard_normal."),
        ("lookup", "error: Unknown objective 'vea'. Valid objectives: vae."),
        ("user", "error: No such field 'num_stepz'."),
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
    # A ValueError or KeyError that tfvae's checks did not raise is a bug too, not bad input.
    for kind, name in (("bug_value", "ValueError"), ("bug_key", "KeyError")):
        bug = _run(kind)
        assert bug.returncode == 1 and "Traceback" in bug.stderr and name in bug.stderr
        assert "error:" not in bug.stderr.splitlines()[-1]
    debug = _run("value", debug=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_normal_run_is_untouched():
    ok = _run("fine")
    assert ok.returncode == 0 and ok.stdout.strip() == "ran fine"
