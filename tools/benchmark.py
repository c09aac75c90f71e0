"""How fast a config trains and evaluates on this machine, on synthetic data of the right shape.

    python -m tools.benchmark --config=configs/dpvae.py
    python -m tools.benchmark --config=configs/dpvae.py --jit_compile=true --batch_size=100
    python -m tools.benchmark --config=configs/dpvae.py --config.train.jit_compile=True
    python -m tools.benchmark --config=configs/dpvae.py --what=train,fid,nll,generate
    python -m tools.benchmark --config=configs/dpvae.py --reference     # + PyTorch, same run
    python -m tools.benchmark --config=configs/dpvae.py --reference=official --checkout=DIR \
        --torch_python=PYTHON_WITH_TORCH          # + the authors' own step, same run
    python -m tools.benchmark --config=configs/dpvae.py --what=breakdown  # where time goes
    python -m tools.benchmark --config=configs/dpvae.py --what=data       # real input pipeline
    python -m tools.benchmark --config=configs/nevae_se.py --what=pixelcnn_sampling --repeats=1
    python -m tools.benchmark --matrix --reference --out=/tmp/table.md  # objective x prior x
                                                  # fp32 / fp32 XLA / bf16, vs PyTorch

The model and its optimizers are built from the config exactly as ``tfvae.train`` builds them
(``tfvae.experiment.build``: ``build_model``, ``build_optimizers``, ``compile``, ``build_all``),
and the step is the trainer's own
``tf.function(model.train_step, jit_compile=config.train.jit_compile)``; only the data differ:
one synthetic batch of the data set's shape (``tfvae.data.example_shape``), so no data set is
needed (except ``--what=data``, which times the real pipeline against it).

Timing: ``--warmup`` calls (the first one traces, and with XLA compiles), then ``--repeats``
rounds of ``--steps`` calls, each round closed by reading a result back to the host. The best
round is the number to compare (other processes on a shared machine only ever slow a round
down); the median is printed beside it.

Printed for ``train``:
  steps/s, examples/s   best round (median).
  FLOP/step             counted on the traced TF graph of the step (``graph_flops``): 2*M*N*K
                        for every MatMul, 2*|output|*kh*kw*c_in for Conv2D and the same for its
                        two backprops (counted from the output gradient, so exact for any
                        padding), one per element for arithmetic element-wise ops and one per
                        input element for reductions; shape, copy and variable ops count 0.
  layer FLOP            2 * multiply-adds of the model's Dense/Conv layers for one forward pass,
                        and 3x that, the usual estimate of one training step.
  GFLOP/s               graph FLOP/step * steps/s, and its fraction of this run's matmul peak:
                        a ``--peak_size``^3 float32 and bfloat16 ``tf.linalg.matmul``
                        (``tools.bench_common.matmul_peak``), timed in the same process just
                        before and after the step (the faster of the two); of the float32
                        peak always, of the bfloat16 peak too for ``mixed_bfloat16``. No peak
                        measured elsewhere is ever used.
  peak RSS              ``ru_maxrss``: the most resident memory the process ever had, shared
                        libraries included (importing TensorFlow alone is ~0.7 GB of it);
                        ``RssAnon`` is the process's own allocations at the end.
"""

import dataclasses
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import app, flags
from ml_collections import config_flags

from tfvae import cli, experiment
from tfvae import data as data_lib
from tfvae.build import resolve_jit_compile
from tools.bench_common import (
    Timing,
    matmul_peaks,
    max_peaks,
    peak_fractions,
    synthetic_batch,
    time_calls,
)
from tools.bench_eval import bench_fid, bench_generate, bench_nll, bench_pixelcnn_sampling
from tools.flops import graph_flops, layer_flops

__all__ = [
    "Timing",
    "bench_fid",
    "bench_generate",
    "bench_nll",
    "bench_pixelcnn_sampling",
    "synthetic_batch",
    "time_calls",
]

# The Table-1 configs (dpVAE paper): each objective without and with the decoupled prior.
MATRIX = (
    ("vae", "vae", "dpvae"),
    ("beta_vae_h", "beta_vae_h", "beta_dpvae_h"),
    ("beta_vae_b", "beta_vae_b", "beta_dpvae_b"),
    ("beta_tcvae", "beta_tcvae", "beta_tc_dpvae"),
    ("factor_vae", "factor_vae", "factor_dpvae"),
    ("info_vae", "info_vae", "info_dpvae"),
)

# Configs of the other papers, each with its own prior (--matrix --extra).
EXTRA = (
    ("wae_mmd", "standard normal", "wae_mmd"),
    ("aae", "standard normal", "aae"),
    ("mask_aae", "standard normal", "mask_aae"),
    ("ne_vae (PixelCNN, Omniglot)", "standard normal", "nevae_se"),
)


# ----------------------------------------------------------------------------------------------
# Building the model on synthetic data
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Setup:
    """A model built as the trainer builds it, and a batch to feed it.

    Attributes:
      config: the config.
      model: the built ``tfvae.models.Autoencoder`` (variables and optimizer slots created).
      optimizers: name -> optimizer, as ``Experiment.optimizers``.
      batch: ``[batch_size * model.batches_per_step, *shape]`` float32 synthetic data.
      shape: the per-example shape.
      batch_size: examples per minibatch (one step sees ``batches_per_step`` of them).
    """

    config: object
    model: keras.Model
    optimizers: dict
    batch: tf.Tensor
    shape: tuple[int, ...]
    batch_size: int

    def train_fn(self, jit_compile: bool | None = None) -> Callable:
        """The trainer's step function (``tfvae.trainer.train_and_evaluate``)."""
        jit = resolve_jit_compile(
            self.config.train.jit_compile if jit_compile is None else jit_compile
        )
        return tf.function(self.model.train_step, jit_compile=bool(jit), autograph=False)


def build_setup(config, batch_size: int | None = None) -> Setup:
    """The model and optimizers as the trainer builds them (``tfvae.experiment.build``: same
    seed, same calls), without data, checkpoints or workdir, and a synthetic batch."""
    experiment.seed(config)
    shape = data_lib.example_shape(config.data)
    spec = experiment.DataSpec(shape, data_lib.num_train_examples(config.data))
    model, optimizers = experiment.build(config, spec)
    b = int(batch_size or config.train.batch_size)
    batch = synthetic_batch(config, shape, b * model.batches_per_step, seed=config.seed)
    return Setup(config, model, optimizers, batch, shape, b)


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
# Memory and machine
# ----------------------------------------------------------------------------------------------
def memory_mb() -> dict[str, float]:
    """Peak resident memory of this process (ru_maxrss), current RSS and its anonymous part."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        with open("/proc/self/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        out["rss_mb"] = int(status["VmRSS"].split()[0]) / 1024
        out["rss_anon_mb"] = int(status["RssAnon"].split()[0]) / 1024
    except (OSError, KeyError):
        pass
    return out


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


# ----------------------------------------------------------------------------------------------
# The benchmarks
# ----------------------------------------------------------------------------------------------
def bench_train(setup: Setup, *, jit_compile: bool, steps: int, repeats: int, warmup: int):
    """Training steps per second, FLOPs and memory (see the module docstring)."""
    fn = setup.train_fn(jit_compile)
    timing = time_calls({"train": fn}, (setup.batch,), steps=steps, repeats=repeats, warmup=warmup)
    timing = timing["train"]
    flops = graph_flops(fn.get_concrete_function(setup.batch))
    model = setup.model
    fwd, skipped = layer_flops(model.encoder, model.decoder, model.prior)
    examples = setup.batch_size * model.batches_per_step
    return {
        "steps_per_s": timing.best,
        "steps_per_s_median": timing.median,
        "examples_per_s": timing.best * examples,
        "first_step_s": timing.first_call_s,
        "flop_per_step": flops.total,
        "flop_per_example": flops.total / examples,
        "flop_by_type": flops.by_type,
        "flop_unknown_ops": flops.unknown,
        "flop_uncounted_calls": flops.calls,
        "layer_forward_flop_per_example": fwd,
        "layer_skipped": skipped,
        "gflop_per_s": flops.total * timing.best / 1e9,
    }


def bench_breakdown(setup: Setup, *, steps: int, repeats: int, warmup: int, jit_compile: bool):
    """Where a step's time goes: the step and its pieces, timed in turns.

    Pieces: each phase's forward loss, forward + gradients, the optimizers' updates alone (zero
    gradients), the prior's log-density with gradients, and the step without the trackers.
    """
    model, batch = setup.model, setup.batch
    batches = model.split_batches(batch)
    fns = {"train step": model.train_step}

    def pieces(phase):
        def forward(x):
            return model.reduce_terms(phase.loss_fn(model.split_batches(x), True))[phase.loss_key]

        def gradients(x):
            variables = [v for _, group in phase.groups() for v in group]
            with tf.GradientTape() as tape:
                loss = model.reduce_terms(phase.loss_fn(model.split_batches(x), True))[
                    phase.loss_key
                ]
            grads = tape.gradient(loss, variables)
            return [loss] + [g for g in grads if g is not None]

        return forward, gradients

    for i, phase in enumerate(model.phases()):
        tag = f"phase {i} ({phase.optimizer})"
        fns[f"{tag}: loss"], fns[f"{tag}: loss + gradients"] = pieces(phase)

    def updates(x):
        del x
        for phase in model.phases():
            for key, variables in phase.groups():
                model.optimizers[key].apply_gradients([(tf.zeros_like(v), v) for v in variables])
        return tf.constant(0.0)

    fns["optimizer updates only"] = updates
    z = tf.random.normal([int(batches[0].shape[0]), model.latent_dim], seed=1)

    def prior(x):
        del x
        with tf.GradientTape() as tape:
            tape.watch(z)
            log_p = tf.reduce_mean(model.prior.log_prob(z))
        return [log_p] + tape.gradient(log_p, [z] + model.prior.trainable_variables)

    fns["prior log_prob + gradients"] = prior

    def no_trackers(x):
        out = {}
        for phase in model.phases():
            for _ in range(phase.repeats):
                out = model.apply_phase(phase, model.split_batches(x))
        model.step.assign_add(1)
        return out

    if hasattr(model, "apply_phase"):
        fns["train step without trackers"] = no_trackers
    # Traced as the trainer traces its step, without AutoGraph. (AutoGraph caches a conversion
    # per code object, so with several phases, MaskAAE's four, the second piece once ran with
    # the first's closure and failed.)
    compiled = {k: tf.function(f, jit_compile=jit_compile, autograph=False) for k, f in fns.items()}
    timings = time_calls(compiled, (batch,), steps=steps, repeats=repeats, warmup=warmup)
    return {k: 1000.0 / t.best for k, t in timings.items()}


def bench_data(setup: Setup, *, jit_compile: bool, steps: int, repeats: int, warmup: int):
    """The trainer's input pipeline on the real data set against the synthetic batch."""
    config, model = setup.config, setup.model
    splits = data_lib.load(config.data)
    batch = setup.batch_size * model.batches_per_step
    ds = data_lib.train_dataset(
        splits.train,
        batch_size=batch,
        seed=config.seed,
        **data_lib.train_transforms(config.data),
    )
    it = iter(ds)
    fn = setup.train_fn(jit_compile)
    fns = {
        "pipeline alone (batches/s)": lambda x: next(it),
        "step on real batches": lambda x: fn(next(it)),
        "step on one synthetic batch": fn,
    }
    timings = time_calls(fns, (setup.batch,), steps=steps, repeats=repeats, warmup=warmup)
    return {k: t.best for k, t in timings.items()}


def run_reference(
    *,
    batch_size: int,
    steps: int,
    repeats: int,
    warmup: int,
    prior: str,
    torch_python: str | None = None,
    official: str | None = None,
):
    """``tools.reference_torch`` in a subprocess of ``torch_python`` (default: this Python; its
    own memory and threads); its JSON. With ``official`` (a checkout of iyerkrithika21/dpVAE)
    the authors' own step is timed in the same process, in turns (``official_*`` keys)."""
    cmd = [
        torch_python or sys.executable,
        "-m",
        "tools.reference_torch",
        f"--batch_size={batch_size}",
        f"--steps={steps}",
        f"--repeats={repeats}",
        f"--warmup={warmup}",
        f"--prior={prior}",
        "--json",
    ]
    if official:
        cmd.append(f"--official={official}")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=_repo_root())
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------
def _fmt_flops(n: float) -> str:
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} FLOP"


def describe(config, setup: Setup, jit: bool) -> str:
    m = config.model
    return (
        f"objective {config.objective}, prior {m.prior.name}, encoder {m.encoder.name}, decoder "
        f"{m.decoder.name}, latent {m.latent_dim}, data {config.data.name} {setup.shape}, batch "
        f"{setup.batch_size} x {setup.model.batches_per_step}, jit_compile {jit}"
    )


def print_train(r: dict, steps: int, repeats: int, jit: bool) -> None:
    print(
        f"  steps/s          {r['steps_per_s']:.1f}  (best of {repeats} rounds of {steps}; "
        f"median {r['steps_per_s_median']:.1f})"
    )
    print(f"  examples/s       {r['examples_per_s']:.0f}")
    what = "tracing and XLA compilation" if jit else "tracing"
    print(f"  first step       {r['first_step_s']:.1f} s ({what})")
    print(
        f"  FLOP/step        {_fmt_flops(r['flop_per_step'])} "
        f"({_fmt_flops(r['flop_per_example'])}/example), counted on the traced step graph"
    )
    top = sorted(r["flop_by_type"].items(), key=lambda kv: -kv[1])[:6]
    share = ", ".join(f"{k} {100 * v / max(r['flop_per_step'], 1):.0f}%" for k, v in top)
    print(f"                   by op: {share}")
    if r["flop_unknown_ops"] or r["flop_uncounted_calls"]:
        print(
            f"                   not counted: ops of unknown shape {r['flop_unknown_ops']}, "
            f"{r['flop_uncounted_calls']} function calls"
        )
    fwd = r["layer_forward_flop_per_example"]
    print(
        f"  layer FLOP       {_fmt_flops(fwd)}/example forward through the Dense/Conv layers; "
        f"3x = {_fmt_flops(3 * fwd)}/example for a training step"
    )
    peaks = ""
    if "fp32_peak_fraction" in r:
        peaks = f" = {100 * r['fp32_peak_fraction']:.0f}% of this run's float32 matmul peak"
    if "bf16_peak_fraction" in r:
        peaks += f", {100 * r['bf16_peak_fraction']:.0f}% of its bfloat16 peak"
    print(f"  achieved         {r['gflop_per_s']:.1f} GFLOP/s{peaks}")


def print_memory(mem: dict) -> None:
    print(
        f"  memory           peak RSS {mem['peak_rss_mb']:.0f} MB; now RSS "
        f"{mem.get('rss_mb', float('nan')):.0f} MB, of which own allocations (RssAnon) "
        f"{mem.get('rss_anon_mb', float('nan')):.0f} MB"
    )


# ----------------------------------------------------------------------------------------------
# The matrix: every objective x prior x setting, each in a fresh process
# ----------------------------------------------------------------------------------------------
# (column, train.mixed_precision, jit_compile): full precision without and with XLA, and
# bfloat16 compute (float32 variables and losses), which oneDNN runs on AVX512-BF16/AMX CPUs.
SETTINGS = (
    ("fp32", "float32", False),
    ("fp32 XLA", "float32", True),
    ("bf16", "mixed_bfloat16", False),
)


def run_matrix(
    *,
    batch_size: int,
    steps: int,
    repeats: int,
    warmup: int,
    reference: bool,
    extra: bool,
    peak_size: int = 2048,
    torch_python: str | None = None,
    official: str | None = None,
) -> tuple[list[dict], dict]:
    """Times every config of ``MATRIX`` (and ``EXTRA``) under every ``SETTINGS`` entry.

    With ``reference``, ``tools.reference_torch`` is timed first for both priors, so that the
    ratios compare numbers from the same minutes of the machine. Returns (rows, references).
    """
    timing = dict(batch_size=batch_size, steps=steps, repeats=repeats, warmup=warmup)
    references = {}
    if reference:
        for prior in ("standard_normal", "decoupled"):
            references[prior] = run_reference(
                prior=prior, torch_python=torch_python, official=official, **timing
            )
            print(json.dumps({"reference": prior, **references[prior]}))
    configs = [
        (o, p, n)
        for o, plain, dp in MATRIX
        for p, n in (("standard normal", plain), ("decoupled", dp))
    ]
    if extra:
        configs += list(EXTRA)
    rows = []
    for objective, prior, name in configs:
        for column, precision, jit in SETTINGS:
            cmd = [
                sys.executable,
                "-m",
                "tools.benchmark",
                f"--config=configs/{name}.py",
                f"--batch_size={batch_size}",
                f"--steps={steps}",
                f"--repeats={repeats}",
                f"--warmup={warmup}",
                f"--jit_compile={str(jit).lower()}",
                f"--config.train.mixed_precision={precision}",
                f"--peak_size={peak_size}",
                "--json",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=_repo_root())
            row = {"objective": objective, "prior": prior, "config": name, "setting": column}
            if done.returncode != 0:
                row["error"] = (done.stderr.strip().splitlines() or ["failed"])[-1]
            else:
                row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps({k: row.get(k) for k in ("config", "setting", "steps_per_s")}))
            rows.append(row)
    return rows, references


def matrix_table(rows: list[dict], references: dict | None = None) -> str:
    """Markdown: one row per config, steps/s for every ``SETTINGS`` column, and the ratio of
    the fastest fp32 and the bf16 rate to the PyTorch reference of the same prior timed in the
    same run (``--reference``); without one there is nothing to compare with on this machine, so
    no ratio. The reference is the dpVAE MNIST model, so ``EXTRA`` configs (other models) get no
    ratio either. The last two columns give each setting's GFLOP/s as a percentage of the
    float32 matmul peak, and the bf16 setting's of the bfloat16 peak, both measured in that
    setting's own process just before its step (``--peak_size``); "-" when not measured."""
    references = references or {}
    by_key = {(r["config"], r["setting"]): r for r in rows}
    configs = list(dict.fromkeys((r["objective"], r["prior"], r["config"]) for r in rows))
    columns = [c for c, _, _ in SETTINGS]
    lines = [
        "| objective | prior | config | "
        + " | ".join(f"steps/s {c}" for c in columns)
        + " | PyTorch steps/s | fp32 speedup | bf16 speedup | MFLOP/example | "
        + "peak RSS MB ("
        + "/".join(columns)
        + ") | % fp32 peak ("
        + "/".join(columns)
        + ") | % bf16 peak (bf16) |",
        "|---|---|---|" + "---:|" * (len(columns) + 7),
    ]

    def percent(r, key):
        return f"{100 * r[key]:.0f}" if r.get(key) is not None else "-"

    def rate(r):
        return r.get("steps_per_s")

    comparable = {n for _, plain, dp in MATRIX for n in (plain, dp)}
    for objective, prior, name in configs:
        cells = [by_key.get((name, c), {}) for c in columns]
        ref = references.get("decoupled" if prior == "decoupled" else "standard_normal", {})
        base = ref.get("steps_per_s")
        if name not in comparable:  # the reference is the dpVAE MNIST model, not this one
            base = None
        fp32 = max((rate(r) or 0.0) for r, c in zip(cells, columns, strict=True) if "fp32" in c)
        bf16 = rate(by_key.get((name, "bf16"), {})) or 0.0
        flop = next((r["flop_per_example"] for r in cells if r.get("flop_per_example")), None)
        mem = "/".join(f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-" for r in cells)

        def ratio(x, base=base):
            return f"{x / base:.2f}x" if x and base else "-"

        lines.append(
            f"| {objective} | {prior} | {name} | "
            + " | ".join(f"{rate(r):.1f}" if rate(r) else "error" for r in cells)
            + (f" | {base:.1f}" if base else " | -")
            + f" | {ratio(fp32)} | {ratio(bf16)} | "
            + (f"{flop / 1e6:.1f}" if flop else "-")
            + f" | {mem} | "
            + "/".join(percent(r, "fp32_peak_fraction") for r in cells)
            + f" | {percent(by_key.get((name, 'bf16'), {}), 'bf16_peak_fraction')} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, path[:arg].")
_BATCH = flags.DEFINE_integer("batch_size", None, "Examples per minibatch (default: config's).")
_STEPS = flags.DEFINE_integer("steps", 100, "Timed calls per round.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed rounds; the best one is reported.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed calls first (the first traces/compiles).")
_JIT = flags.DEFINE_boolean(
    "jit_compile", None, "XLA on/off (default: config.train.jit_compile, 'auto': off on CPU)."
)
_WHAT = flags.DEFINE_list(
    "what",
    ["train"],
    "Any of train, breakdown, data, fid, nll, generate, pixelcnn_sampling (comma-separated).",
)
_REFERENCE = flags.DEFINE_enum(
    "reference",
    None,
    ["tfvae", "official"],
    "Also time, in this run, tools.reference_torch (tfvae's PyTorch dpVAE MNIST: 'tfvae', or a "
    "bare --reference) and with 'official' the authors' own step beside it (--checkout).",
)
_TORCH_PYTHON = flags.DEFINE_string(
    "torch_python", None, "A Python with torch for --reference (default: this one)."
)
_CHECKOUT = flags.DEFINE_string(
    "checkout", None, "With --reference=official: a checkout of iyerkrithika21/dpVAE."
)
_SAVEDMODEL = flags.DEFINE_string(
    "savedmodel", None, "A SavedModel version folder for --what=generate (default: export now)."
)
_FID_IMAGES = flags.DEFINE_integer("fid_images", 1000, "Images per call for --what=fid.")
_NLL_SAMPLES = flags.DEFINE_integer("nll_samples", 100, "K for --what=nll.")
_NLL_CHUNK = flags.DEFINE_integer("nll_chunk", 10, "Importance samples per decoder call.")
_SAMPLE_IMAGES = flags.DEFINE_integer(
    "sample_images", 10, "Images per call for --what=pixelcnn_sampling."
)
_SAMPLE_REFERENCE = flags.DEFINE_boolean(
    "sample_reference",
    True,
    "--what=pixelcnn_sampling also times the full-pass-per-pixel reference sampler.",
)
_INTRA = flags.DEFINE_integer("intra_op_threads", 0, "TF intra-op threads (0: TF's default).")
_INTER = flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0: TF's default).")
_JSON = flags.DEFINE_boolean("json", False, "Print one JSON line of the train results only.")
_MATRIX = flags.DEFINE_boolean(
    "matrix", False, "Time every Table-1 objective x prior in fp32, fp32 with XLA and bf16."
)
_EXTRA = flags.DEFINE_boolean(
    "extra", False, "With --matrix: also the WAE, AAE, MaskAAE and NE-VAE configs."
)
_OUT = flags.DEFINE_string("out", None, "With --matrix: write the Markdown table here.")
_PEAK_SIZE = flags.DEFINE_integer(
    "peak_size",
    2048,
    "Side of the square float32 and bfloat16 matmuls timed as this run's peak (0: skip).",
)

_WHATS = ("train", "breakdown", "data", "fid", "nll", "generate", "pixelcnn_sampling")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, ".")  # config files import ``configs.common``
    steps, repeats, warmup = _STEPS.value, _REPEATS.value, _WARMUP.value
    if _MATRIX.value:
        rows, references = run_matrix(
            batch_size=_BATCH.value or 100,
            steps=steps,
            repeats=repeats,
            warmup=warmup,
            reference=_REFERENCE.value is not None,
            extra=_EXTRA.value,
            peak_size=_PEAK_SIZE.value,
            **_reference_source(),
        )
        table = matrix_table(rows, references)
        print(table)
        if _OUT.value:
            with open(_OUT.value, "w") as f:
                f.write(table + "\n")
            with open(_OUT.value + ".json", "w") as f:
                json.dump({"rows": rows, "references": references}, f, indent=1)
        return
    if _CONFIG.value is None:
        raise app.UsageError("--config is required (or --matrix).")
    unknown = set(_WHAT.value) - set(_WHATS)
    if unknown:
        raise app.UsageError(f"Unknown --what {sorted(unknown)}; valid: {list(_WHATS)}.")
    if _INTRA.value:
        tf.config.threading.set_intra_op_parallelism_threads(_INTRA.value)
    if _INTER.value:
        tf.config.threading.set_inter_op_parallelism_threads(_INTER.value)
    config = _CONFIG.value
    jit = resolve_jit_compile(config.train.jit_compile if _JIT.value is None else _JIT.value)
    load_before = load_average()
    setup = build_setup(config, _BATCH.value)
    timing = dict(steps=steps, repeats=repeats, warmup=warmup)

    precision = config.train.mixed_precision
    if _JSON.value:
        peaks = matmul_peaks(_PEAK_SIZE.value) if _PEAK_SIZE.value else None
        result = bench_train(setup, jit_compile=jit, **timing)
        if peaks:
            peaks = max_peaks(peaks, matmul_peaks(_PEAK_SIZE.value))
            result.update(peak_fractions(result["gflop_per_s"], peaks, precision))
            result["matmul_peak_gflop_per_s"] = peaks
        result.update(memory_mb(), load=load_average(), jit_compile=jit, batch=setup.batch_size)
        print(json.dumps(result))
        return

    print(f"tools.benchmark: {describe(config, setup, jit)}")
    info = machine()
    print(
        f"  machine          {info['cpus']} CPUs, TF {info['tensorflow']}, Keras "
        f"{info['keras']}, threads intra {info['intra_op_threads'] or 'default'} / inter "
        f"{info['inter_op_threads'] or 'default'}, oneDNN {info['onednn']}, load average "
        f"{load_before:.1f}"
    )
    reference = None
    if _REFERENCE.value:
        # First, so that the two numbers come from the same minutes of this machine.
        reference = run_reference(
            batch_size=setup.batch_size,
            prior=config.model.prior.name,
            **_reference_source(),
            **timing,
        )
    if "train" in _WHAT.value:
        n, peaks = _PEAK_SIZE.value, None
        if n:
            # Measured here, just before and after the step, so the fraction compares like
            # with like; the faster of the two, as for every rate here.
            peaks = matmul_peaks(n)
        result = bench_train(setup, jit_compile=jit, **timing)
        if peaks:
            after = matmul_peaks(n)
            print(
                f"matmul peak ({n}^3 tf.linalg.matmul, best of 3 rounds before and after the "
                f"step, this run): float32 {max(peaks['float32'], after['float32']):.0f} "
                f"GFLOP/s ({peaks['float32']:.0f} / {after['float32']:.0f}), bfloat16 "
                f"{max(peaks['bfloat16'], after['bfloat16']):.0f} GFLOP/s "
                f"({peaks['bfloat16']:.0f} / {after['bfloat16']:.0f})"
            )
            peaks = max_peaks(peaks, after)
            result.update(peak_fractions(result["gflop_per_s"], peaks, precision))
        print(f"train step (synthetic batch, {precision}):")
        print_train(result, steps, repeats, jit)
        if reference is not None:
            if "steps_per_s" in reference:
                print(
                    f"  reference        PyTorch {reference['torch']} (tools.reference_torch): "
                    f"{reference['steps_per_s']:.1f} steps/s, peak RSS "
                    f"{reference['peak_rss_mb']:.0f} MB -> tfvae is "
                    f"{result['steps_per_s'] / reference['steps_per_s']:.2f}x"
                )
            else:
                print(f"  reference        not run: {reference['error']}")
            if "official_steps_per_s" in reference:
                official = reference["official_steps_per_s"]
                print(
                    "  authors' code    iyerkrithika21/dpVAE step "
                    f"({reference['official_checkout']}, tools/authors_torch.py), same PyTorch "
                    f"process: {official:.1f} steps/s -> "
                    f"tfvae is {result['steps_per_s'] / official:.2f}x, tfvae's reference "
                    f"{reference['steps_per_s'] / official:.2f}x"
                )
        # A ratio only against a reference timed here and now: a number measured on another
        # machine or day says nothing about this one (--reference times it).
    if "breakdown" in _WHAT.value:
        print("breakdown (ms per call, best round; pieces overlap, they do not add up):")
        for name, ms in bench_breakdown(setup, jit_compile=jit, **timing).items():
            print(f"  {name:40s} {ms:7.2f} ms")
    if "data" in _WHAT.value:
        print(f"input pipeline ({config.data.name}, tfvae.data.train_dataset):")
        r = bench_data(setup, jit_compile=jit, **timing)
        for name, rate in r.items():
            print(f"  {name:40s} {rate:7.1f} /s")
        ratio = r["step on real batches"] / r["step on one synthetic batch"]
        print(f"  real / synthetic step rate: {ratio:.2f}")
    if "fid" in _WHAT.value:
        r = bench_fid(setup, num_images=_FID_IMAGES.value, **timing)
        print("FID features (tfvae.evaluation.classifier_model, untrained weights):")
        for key, value in r.items():
            print(f"  {key:40s} {value if isinstance(value, str) else f'{value:.0f}'}")
    if "nll" in _WHAT.value:
        r = bench_nll(
            setup, num_samples=_NLL_SAMPLES.value, chunk_size=_NLL_CHUNK.value, repeats=repeats
        )
        print("importance-sampled NLL (tfvae.metrics.importance_sampled_bounds):")
        for key, value in r.items():
            print(f"  {key:40s} {value if isinstance(value, str) else f'{value:.4g}'}")
    if "generate" in _WHAT.value:
        r = bench_generate(setup, savedmodel=_SAVEDMODEL.value, **timing)
        print("exported generate signature (tf.saved_model.load(...).signatures['generate']):")
        for key, value in r.items():
            print(f"  {key:40s} {value if isinstance(value, str) else f'{value:.4g}'}")
    if "pixelcnn_sampling" in _WHAT.value:
        r = bench_pixelcnn_sampling(
            setup,
            num_images=_SAMPLE_IMAGES.value,
            repeats=repeats,
            reference=_SAMPLE_REFERENCE.value,
        )
        print("PixelCNN sampling (decoder.sample_with_uniforms; best round, first call untimed):")
        for key, value in r.items():
            print(f"  {key:40s} {value if isinstance(value, str) else f'{value:.4g}'}")
    print_memory(memory_mb())
    load_after = load_average()
    if max(load_before, load_after) > 1.5 * (os.cpu_count() or 1):
        print(
            f"  note: load average {load_before:.1f} -> {load_after:.1f} on "
            f"{os.cpu_count()} CPUs: other processes shared the machine; rates are low bounds."
        )


def _reference_source() -> dict:
    """``torch_python`` and ``official`` for ``run_reference`` from the flags."""
    official = None
    if _REFERENCE.value == "official":
        if not _CHECKOUT.value:
            raise app.UsageError("--reference=official needs --checkout=<iyerkrithika21/dpVAE>.")
        official = os.path.abspath(_CHECKOUT.value)
    return {"torch_python": _TORCH_PYTHON.value, "official": official}


def bare_reference(argv: list[str]) -> list[str]:
    """A bare ``--reference`` (the flag was a boolean before ``official``) means tfvae's."""
    return ["--reference=tfvae" if a == "--reference" else a for a in argv]


if __name__ == "__main__":
    cli.run(main, argv=bare_reference(sys.argv))
