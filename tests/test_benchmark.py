"""tools.benchmark: the tool runs end to end and prints every field; its FLOP counts are exact."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import networks
from tfvae.config_loader import load_config
from tools import bench_common, benchmark, flops

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(spec):
    return load_config(os.path.join(REPO, "configs", spec))


@pytest.mark.slow
def test_the_tool_runs_a_smoke_config_and_prints_every_field():
    cmd = [
        sys.executable,
        "-m",
        "tools.benchmark",
        "--config=configs/dpvae.py:smoke",
        "--steps=2",
        "--repeats=2",
        "--warmup=2",
        "--peak_size=256",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for field in (
        "objective vae, prior decoupled, encoder mnist_conv",
        "batch 8 x 1, jit_compile False",
        "steps/s",
        "examples/s",
        "first step",
        "FLOP/step",
        "by op: Conv2D",
        "layer FLOP",
        "GFLOP/s",
        "peak RSS",
        "RssAnon",
        "matmul peak (256^3 tf.linalg.matmul, best of 3 rounds before and after the step, "
        "this run): float32 ",
        "train step (synthetic batch, float32)",
        "% of this run's float32 matmul peak",
    ):
        assert field in out, f"{field!r} missing from:\n{out}"
    # The paper's conv model: ~28.6 MFLOP per example per step; the graph count of the step
    # (convolutions, dense layers, flow, Adam) is a little above the 3x-forward estimate.
    flop_line = next(line for line in out.splitlines() if "FLOP/step" in line)
    per_example = float(flop_line.split("(")[1].split(" MFLOP/example")[0])
    assert 28.0 < per_example < 31.0, flop_line
    # Without --reference nothing was timed to compare with: no ratio, no remembered constant.
    assert "vs authors" not in out and "issue 7" not in out, out
    # float32 compute: no fraction of the bfloat16 peak.
    assert "of its bfloat16 peak" not in out, out
    # The percentage is the achieved rate over the peak printed above it.
    peak_text = out.split("this run): float32 ")[1]
    peak = float(peak_text.split(" GFLOP/s")[0])
    # The faster of the measurements before and after the step.
    before, after = peak_text.split("(")[1].split(")")[0].split(" / ")
    assert peak == max(float(before), float(after)), peak_text
    line = next(x for x in out.splitlines() if "achieved" in x)
    achieved = float(line.split("achieved")[1].split("GFLOP/s")[0])
    percent = float(line.split("= ")[1].split("%")[0])
    assert abs(percent - 100 * achieved / peak) <= 0.5 + 100 * 0.05 * achieved / peak, line


def _run_tool(*args):
    cmd = [sys.executable, "-m", "tools.benchmark", *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_json_line_of_a_bfloat16_run_gives_both_peak_fractions():
    # What --matrix runs for its bf16 column (its command line, with a smaller peak matmul).
    out = _run_tool(
        "--config=configs/dpvae.py:smoke",
        "--batch_size=8",
        "--steps=2",
        "--repeats=1",
        "--warmup=1",
        "--jit_compile=false",
        "--config.train.mixed_precision=mixed_bfloat16",
        "--peak_size=256",
        "--json",
    )
    r = json.loads(out.strip().splitlines()[-1])
    peaks = r["matmul_peak_gflop_per_s"]
    assert set(peaks) == {"float32", "bfloat16"} and min(peaks.values()) > 0
    assert r["fp32_peak_fraction"] == pytest.approx(r["gflop_per_s"] / peaks["float32"])
    assert r["bf16_peak_fraction"] == pytest.approx(r["gflop_per_s"] / peaks["bfloat16"])


@pytest.mark.slow
def test_pixelcnn_sampling_is_timed_against_the_reference_sampler():
    out = _run_tool(
        "--config=configs/nevae_se.py:smoke",
        "--what=pixelcnn_sampling",
        "--sample_images=2",
        "--repeats=1",
    )
    assert "PixelCNN sampling" in out, out
    for field in ("row-cached_images_per_s", "reference_images_per_s", "speedup"):
        assert field in out, out
    assert "matmul peak" not in out  # measured for the train step only
    out = _run_tool(
        "--config=configs/nevae_se.py:smoke",
        "--what=pixelcnn_sampling",
        "--sample_images=2",
        "--repeats=1",
        "--sample_reference=false",
    )
    assert "row-cached_images_per_s" in out and "reference_images_per_s" not in out, out
    # A decoder that is not autoregressive has no pixel sampler to time.
    out = _run_tool("--config=configs/vae.py:smoke", "--what=pixelcnn_sampling", "--repeats=1")
    assert "skipped" in out and "not autoregressive" in out, out


# A Python with torch and a checkout of iyerkrithika21/dpVAE (neither is a tfvae dependency).
TORCH_PYTHON = os.environ.get("TFVAE_TORCH_PYTHON", "/work/torchenv/bin/python")
AUTHORS_CHECKOUT = os.environ.get("TFVAE_AUTHORS_CHECKOUT", "/work/authors")


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.path.exists(TORCH_PYTHON) and os.path.isdir(os.path.join(AUTHORS_CHECKOUT, "models"))),
    reason="needs TFVAE_TORCH_PYTHON (a Python with torch) and TFVAE_AUTHORS_CHECKOUT",
)
def test_reference_official_times_the_authors_step_beside_tfvaes_reference():
    # docs/benchmarks.md's command with its placeholders filled in, and a small budget.
    small = ("--config=configs/dpvae.py:smoke", "--steps=2", "--repeats=1", "--warmup=1")
    out = _run_tool(
        *small,
        "--peak_size=0",
        "--reference=official",
        f"--checkout={AUTHORS_CHECKOUT}",
        f"--torch_python={TORCH_PYTHON}",
    )
    ref = next(x for x in out.splitlines() if x.startswith("  reference "))
    authors = next(x for x in out.splitlines() if x.startswith("  authors' code "))
    assert "steps/s" in ref and "tfvae is" in ref, out
    assert os.path.abspath(AUTHORS_CHECKOUT) in authors and "tfvae's reference" in authors, out
    assert "matmul peak" not in out  # --peak_size=0 skips it
    # The bare flag of before still means tfvae's own reference alone.
    out = _run_tool(*small, "--peak_size=0", "--reference", f"--torch_python={TORCH_PYTHON}")
    assert "  reference        PyTorch" in out and "authors' code" not in out, out


@pytest.mark.slow
def test_reference_official_without_a_checkout_is_refused_in_one_line():
    cmd = [sys.executable, "-m", "tools.benchmark", "--config=configs/dpvae.py:smoke"]
    done = subprocess.run(
        [*cmd, "--reference=official"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode != 0
    assert "--reference=official needs --checkout" in done.stderr, done.stderr[-2000:]


def test_a_bare_reference_flag_means_tfvaes_reference():
    argv = ["tools.benchmark", "--reference", "--reference=official", "--steps=2"]
    assert benchmark.bare_reference(argv) == [
        "tools.benchmark",
        "--reference=tfvae",
        "--reference=official",
        "--steps=2",
    ]


def test_matmul_peak_counts_two_n_cubed_flop_per_call():
    r = bench_common.matmul_peak("bfloat16", size=64, steps=2, repeats=2, warmup=1)
    assert r["dtype"] == "bfloat16" and r["size"] == 64
    assert r["gflop_per_s"] >= r["gflop_per_s_median"] > 0
    fractions = bench_common.peak_fractions(50.0, {"float32": 200.0, "bfloat16": 500.0}, "float32")
    assert fractions == {"fp32_peak_fraction": 0.25}
    fractions = bench_common.peak_fractions(
        50.0, {"float32": 200.0, "bfloat16": 500.0}, "mixed_bfloat16"
    )
    assert fractions == {"fp32_peak_fraction": 0.25, "bf16_peak_fraction": 0.1}


@pytest.fixture(scope="module")
def conv_setup():
    return benchmark.build_setup(_config("vae.py:smoke"), batch_size=4)


@pytest.mark.slow
def test_evaluation_pieces_and_breakdown_report_rates(conv_setup):
    timing = dict(steps=2, repeats=1, warmup=1)
    pieces = benchmark.bench_breakdown(conv_setup, jit_compile=False, **timing)
    assert {"train step", "optimizer updates only", "prior log_prob + gradients"} <= set(pieces)
    assert "phase 0 (main): loss + gradients" in pieces
    assert all(ms > 0 for ms in pieces.values())
    nll = benchmark.bench_nll(conv_setup, num_samples=4, chunk_size=2, repeats=1)
    assert nll["batch"] == 4 and nll["examples_per_s"] > 0
    fid = benchmark.bench_fid(conv_setup, num_images=8, **timing)
    assert fid["features_images_per_s"] > 0 and fid["generate_and_features_images_per_s"] > 0
    gen = benchmark.bench_generate(conv_setup, savedmodel=None, **timing)
    assert gen["batch"] == 4 and gen["images_per_s"] > 0


@pytest.mark.slow
def test_breakdown_times_every_phase_of_a_multi_phase_model():
    # MaskAAE: main, 5 critic updates, generator, mask. AutoGraph once gave every phase's piece
    # the first one's closure, and the second phase failed.
    setup = benchmark.build_setup(_config("mask_aae.py:smoke"), batch_size=4)
    # The failure first showed with XLA on, but came from AutoGraph's per-code-object cache, so
    # XLA stays off here (compiling the 12 pieces took 25 of the test's 40 s).
    timing = dict(steps=2, repeats=2, warmup=2)  # retraces happen on later calls
    pieces = benchmark.bench_breakdown(setup, jit_compile=False, **timing)
    phases = setup.model.phases()
    assert len(phases) > 2
    for i, phase in enumerate(phases):
        for what in ("loss", "loss + gradients"):
            assert pieces[f"phase {i} ({phase.optimizer}): {what}"] > 0


def test_flop_count_of_a_tiny_dense_model_matches_the_hand_count():
    layer = keras.layers.Dense(3)
    layer.build((None, 5))
    x = tf.zeros([4, 5])  # B = 4, n = 5, m = 3

    forward = tf.function(lambda x: layer(x)).get_concrete_function(x)
    # MatMul 2*B*n*m = 120, BiasAdd B*m = 12.
    assert flops.graph_flops(forward).total == 2 * 4 * 5 * 3 + 4 * 3

    def grads(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.trainable_variables)

    count = flops.graph_flops(tf.function(grads).get_concrete_function(x))
    # Forward 132, the sum 12, dW = x^T dy another 2*B*n*m, db a 12-element reduction; the
    # gradient of the sum is a broadcast (no arithmetic), and x needs no gradient.
    assert count.by_type == {"MatMul": 240, "BiasAdd": 12, "Sum": 12, "BiasAddGrad": 12}
    assert count.total == 276 and not count.unknown


@pytest.mark.parametrize("transpose", [False, True])
def test_conv_and_its_backprops_are_counted_exactly_with_valid_padding(transpose):
    # 'valid' k3 s1: TF's profiler registry assumes 'same' padding for the backprops and
    # over-counts them; graph_flops counts each from the output (gradient) it produces.
    if transpose:
        layer, x = keras.layers.Conv2DTranspose(3, 3, use_bias=False), tf.zeros([2, 4, 4, 4])
    else:
        layer, x = keras.layers.Conv2D(4, 3, use_bias=False), tf.zeros([2, 6, 6, 3])
    layer.build(x.shape)

    def grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    count = flops.graph_flops(tf.function(grads).get_concrete_function(x))
    macs = 2 * 4 * 4 * 3 * 3 * 3 * 4  # B * (4x4 positions of the small side) * k*k * 3 * 4
    assert count.by_type["Conv2D"] == 2 * macs
    assert count.by_type["Conv2DBackpropInput"] == 2 * macs
    assert count.by_type["Conv2DBackpropFilter"] == 2 * macs


def test_layer_flops_of_the_paper_mnist_model():
    enc = networks.build_encoder("mnist_conv", input_shape=(28, 28, 1), out_dim=4)
    dec = networks.build_decoder("mnist_conv", latent_dim=2, output_shape=(28, 28, 1))
    # Multiply-adds per example, 28 -> 14 -> 12 -> 6 -> 4 and back (authors' valid k3 convs).
    convs = 14 * 14 * 16 * 1 * 32 + 12 * 12 * 9 * 32 * 32 + 6 * 6 * 16 * 32 * 32 + 16 * 9 * 1024
    enc_dense = 512 * 256 + 256 * 256 + 256 * 4
    dec_dense = 2 * 256 + 256 * 256 + 256 * 512
    total, skipped = flops.layer_flops(enc, dec)
    assert skipped == 0
    assert total == 2 * (2 * convs + enc_dense + dec_dense)
    # The "~28 MFLOP per example per step" is 3x this forward count.
    assert 27e6 < 3 * total < 29e6


def test_time_calls_counts_every_call_and_returns_positive_rates():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn(x):
            calls[name] += 1
            return x

        return fn

    t = benchmark.time_calls(
        {"a": make("a"), "b": make("b")}, (tf.constant(1.0),), steps=3, repeats=4, warmup=2
    )
    assert calls == {"a": 2 + 3 * 4, "b": 2 + 3 * 4}
    assert len(t["a"].rates) == 4 and min(t["a"].rates) > 0
    assert t["a"].best == max(t["a"].rates) >= t["a"].median


def test_synthetic_setup_has_the_data_shape_and_builds_like_the_trainer():
    config = _config("factor_vae.py:smoke")
    setup = benchmark.build_setup(config, batch_size=5)
    assert setup.shape == (28, 28, 1)
    # FactorVAE consumes two minibatches per step.
    assert setup.batch.shape == (10, 28, 28, 1)
    x = setup.batch.numpy()
    assert x.min() >= 0.0 and x.max() <= 1.0
    # Every optimizer slot exists before the first step, as after Experiment's build_all.
    assert all(opt.built for opt in setup.optimizers.values())
    logs = setup.train_fn(False)(setup.batch)
    assert np.isfinite(float(logs["loss"]))
    assert int(setup.model.step.numpy()) == 1


def test_input_shapes_of_the_presets():
    assert data_lib.example_shape(_config("vae.py:svhn").data) == (32, 32, 3)
    assert data_lib.example_shape(_config("vae.py:celeba").data) == (64, 64, 3)
    assert data_lib.example_shape(_config("vae.py:two_moons").data) == (2,)
    binarized = _config("vae.py:omniglot")
    x = benchmark.synthetic_batch(binarized, (28, 28, 1), 6).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0}


def test_matrix_table_compares_the_fastest_fp32_and_bf16_with_the_reference():
    def row(setting, rate, **extra):
        return dict(
            objective="vae",
            prior="decoupled",
            config="dpvae",
            setting=setting,
            steps_per_s=rate,
            **extra,
        )

    rows = [
        row("fp32", 20.0, flop_per_example=28e6, peak_rss_mb=770.0, fp32_peak_fraction=0.3),
        row("fp32 XLA", 25.0, peak_rss_mb=1130.0, fp32_peak_fraction=0.375),
        row("bf16", 30.0, peak_rss_mb=760.0, fp32_peak_fraction=0.45, bf16_peak_fraction=0.11),
    ]
    assert [s for s, _, _ in benchmark.SETTINGS] == ["fp32", "fp32 XLA", "bf16"]
    # Against a PyTorch reference of the same prior timed in the same run.
    table = benchmark.matrix_table(rows, {"decoupled": {"steps_per_s": 12.5}})
    line = next(x for x in table.splitlines() if "| dpvae |" in x)
    assert "| 20.0 | 25.0 | 30.0 | 12.5 | 2.00x | 2.40x | 28.0 | 770/1130/760 |" in line
    # Each setting's share of the float32 matmul peak of its own run; bf16's of bfloat16's.
    assert line.endswith("| 770/1130/760 | 30/38/45 | 11 |"), line
    assert "| % fp32 peak (fp32/fp32 XLA/bf16) | % bf16 peak (bf16) |" in table
    # Without one, nothing timed on this machine to compare with: no ratio.
    line = next(x for x in benchmark.matrix_table(rows).splitlines() if "| dpvae |" in x)
    assert "| 20.0 | 25.0 | 30.0 | - | - | - | 28.0 |" in line
    # A failed setting shows as an error, not as a number.
    failed = ("steps_per_s", "fp32_peak_fraction", "bf16_peak_fraction")
    rows[2] = {k: v for k, v in rows[2].items() if k not in failed} | {"error": "boom"}
    reference = {"decoupled": {"steps_per_s": 12.5}}
    line = next(x for x in benchmark.matrix_table(rows, reference).splitlines() if "| dpvae |" in x)
    assert "| 20.0 | 25.0 | error |" in line and "| 2.00x | - |" in line
    assert line.endswith("| 30/38/- | - |"), line  # no peak fraction for a failed setting
    # The other papers' models are not the reference's model: no ratio for them.
    extra = [dict(r, objective="aae", prior="standard normal", config="aae") for r in rows[:2]]
    line = next(x for x in benchmark.matrix_table(extra).splitlines() if "| aae |" in x)
    assert "| 20.0 | 25.0 | error | - | - | - | 28.0 |" in line
