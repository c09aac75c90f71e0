"""tools/setup.sh: a failed dataset install is reported, never followed by "set up"."""

import os
import shutil
import stat
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stub(path, body):
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _setup(tmp_path, apt_get):
    """Runs a copy of setup.sh with stubs: a .venv whose pip does nothing, root, ``apt-get``."""
    (tmp_path / "tools").mkdir()
    shutil.copy(os.path.join(REPO, "tools", "setup.sh"), tmp_path / "tools" / "setup.sh")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    _stub(tmp_path / ".venv" / "bin" / "python", "exit 0")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir / "id", "echo 0")
    _stub(bin_dir / "apt-get", apt_get)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:/usr/bin:/bin",
        TFVAE_FASHION_MNIST_DIR=str(tmp_path / "not-installed"),
    )
    return subprocess.run(
        ["bash", str(tmp_path / "tools" / "setup.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_a_failing_apt_get_is_reported_with_how_to_install_the_dataset(tmp_path):
    lock = "echo 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2; exit 100"
    result = _setup(tmp_path, lock)
    assert "tfvae is set up" not in result.stdout + result.stderr
    assert "default dataset (Fashion-MNIST) was NOT" in result.stderr
    assert "apt-get install dataset-fashion-mnist" in result.stderr
    assert "--config.data.path=<folder>" in result.stderr


def test_a_working_apt_get_reports_success(tmp_path):
    result = _setup(tmp_path, "exit 0")
    assert result.returncode == 0, result.stderr
    assert "tfvae is set up" in result.stdout and "NOT" not in result.stderr
