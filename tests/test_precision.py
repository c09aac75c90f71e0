"""train.mixed_precision="auto" and tools.precision_parity: which precision runs, and the
verdict that bfloat16 matches float32 within the seed spread."""

import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tfvae import build
from tfvae.config_loader import load_config
from tfvae.errors import InvalidValue
from tools import precision_parity as pp
from tools import verdicts

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_accelerator(monkeypatch):
    """This CPU only, whatever the machine has: "auto" then depends on the CPU flags given."""
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [])
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\nbugs\t\t: spectre\n")
    assert build.cpu_flags(str(info)) == {"fpu", "avx2", "amx_bf16", "amx_tile"}
    assert build.cpu_flags(str(tmp_path / "missing")) == set()


def test_auto_picks_bfloat16_only_where_the_cpu_has_a_bfloat16_unit(no_accelerator):
    assert build.resolve_mixed_precision("auto", {"avx2", "amx_bf16"}) == "mixed_bfloat16"
    assert build.resolve_mixed_precision("auto", {"avx512f", "avx512_bf16"}) == "mixed_bfloat16"
    # AVX2 only (the EPYC of docs/benchmarks.md): bfloat16 is emulated there, 16x slower.
    assert build.resolve_mixed_precision("auto", {"avx2", "fma"}) == "float32"
    assert "amx_bf16" in build.fast_bfloat16({"amx_bf16"})
    # An explicit policy is never changed.
    assert build.resolve_mixed_precision("float32", {"amx_bf16"}) == "float32"
    assert build.resolve_mixed_precision("mixed_float16", set()) == "mixed_float16"


def test_an_unknown_precision_names_the_valid_ones():
    with pytest.raises(InvalidValue, match=r"'auto'.*--config.train.mixed_precision=auto"):
        build.resolve_mixed_precision("bfloat16")


@pytest.mark.parametrize("flags, policy", [({"amx_bf16"}, "mixed_bfloat16"), (set(), "float32")])
def test_auto_reaches_the_networks(no_accelerator, monkeypatch, flags, policy):
    monkeypatch.setattr(build, "cpu_flags", lambda: flags)
    config = load_config(os.path.join(REPO, "configs", "dpvae.py") + ":smoke")
    config.train.mixed_precision = "auto"
    model = build.build_model(config, (28, 28, 1), dataset_size=100)
    assert model.encoder.dtype_policy.name == policy
    assert model.decoder.dtype_policy.name == policy


def test_difference_is_measured_in_float32_standard_deviations():
    # float32 [1, 2, 3]: mean 2, sample std 1.
    d = pp.difference([1.0, 2.0, 3.0], [3.4, 3.6])
    assert d.delta == pytest.approx(1.5) and d.in_std == pytest.approx(1.5) and d.within
    # The rule's false-alarm rate at 3 and 3 seeds: delta / (s sqrt(2/3)) is t with 2 degrees of
    # freedom, P(|t| > x) = 1 - x / sqrt(2 + x^2); x = 2 / sqrt(2/3) = sqrt(6): 1 - sqrt(3)/2.
    assert pp.difference([1.0, 2.0, 3.0], [3.0, 3.0, 3.1]).chance == pytest.approx(
        1 - math.sqrt(3) / 2
    )
    far = pp.difference([1.0, 2.0, 3.0], [4.5, 4.6])
    assert far.in_std == pytest.approx(2.55) and not far.within
    assert 0 < far.p_value < 0.05
    assert pp.difference([1.0], [1.0]).in_std is None  # no float32 spread
    assert pp.difference([2.0, 2.0], [2.5, 2.5]).in_std == math.inf
    assert pp.difference([], [1.0]) is None


def test_verdict_names_the_numbers_outside_the_spread():
    results = {
        "float32": [{"fid": f, "val/loss": v} for f, v in zip([1, 2, 3], [5, 6, 7], strict=True)],
        "mixed_bfloat16": [{"fid": 2.5, "val/loss": 9.5}, {"fid": 1.5, "val/loss": 9.0}],
    }
    diffs = pp.compare_config(results)
    assert set(diffs) == {"fid", "val/loss"}
    assert pp.verdict(diffs) == f"{pp.DIFFERS}: val/loss"  # +3.25 std against fid's 0
    # Welch separates val/loss too (p = 0.019), and not fid (p = 1).
    table = pp.format_table({"c": results}, dataset="d", steps=5, seeds=[0, 1, 2])
    assert f"| c | 3 | 2 | {pp.DIFFERS}: val/loss | val/loss |" in table
    assert "| c | val/loss | 6.0 ± 1.0 | 9.2 ± 0.4 | +3.2 | +3.2 | 0.019 |" in table
    # 3 and 2 seeds: each number falls outside by chance with P(|t_2| > 2 / sqrt(1/3 + 1/2)).
    x = 2 / math.sqrt(1 / 3 + 1 / 2)
    chance = 2 * (1 - x / math.sqrt(2 + x**2))
    assert "1 of 2 numbers outside 2 float32 standard deviations, where identical " in table
    assert f"would put {chance:.1f} outside" in table and "1 of 2 separated by Welch" in table
    results["mixed_bfloat16"] = [{"fid": 2.5, "val/loss": 6.5}, {"fid": 1.5, "val/loss": 6.0}]
    assert pp.verdict(pp.compare_config(results)) == pp.PARITY
    results["float32"] = results["float32"][:1]
    assert pp.verdict(pp.compare_config(results)) == verdicts.ONE_SEED
    assert pp.verdict({}) == verdicts.NOT_MEASURED


def test_precision_parity_from_the_command_line(tmp_path):
    # As the README shows it, with an out folder of the test's own.
    out = tmp_path / "parity"
    cmd = [sys.executable, "-m", "tools.precision_parity", f"--out={out}"]
    cmd += ["--configs=configs/dpvae.py", "--smoke", "--seeds=0", "--metrics=skl"]
    cmd += ["--num_samples=64"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for precision in pp.PRECISIONS:
        workdir = out / "dpvae" / precision / "s0"
        stored = json.loads((workdir / "config.json").read_text())
        assert stored["train"]["mixed_precision"] == precision
        assert "skl" in json.loads((workdir / "metrics.json").read_text())["metrics"]
    table = (out / "table.md").read_text()
    assert f"| dpvae | 1 | 1 | {verdicts.ONE_SEED} | – |" in table
    assert "| dpvae | val/loss |" in table and "| dpvae | skl |" in table
    bad = subprocess.run(
        [*cmd[:4], "--metrics=fidd"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert bad.returncode != 0 and "fidd" in bad.stderr
