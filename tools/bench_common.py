"""What every part of ``tools.benchmark`` shares: the synthetic batch, the timing loop, and this
machine's matrix-multiply peak, measured in the same run as the rates it is compared with."""

import dataclasses
import statistics
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf


def synthetic_batch(config, shape: tuple[int, ...], batch_size: int, seed: int = 0) -> tf.Tensor:
    """A float32 batch ``[B, *shape]`` like the training pipeline's: [0, 1] pixels for images
    ({0, 1} when the config binarizes), standard-normal values for vector data."""
    rng = np.random.default_rng(seed)
    if len(shape) == 1:
        x = rng.standard_normal((batch_size, *shape))
    elif config.data.binarize != "none":
        x = rng.random((batch_size, *shape)) < 0.5
    else:
        x = rng.random((batch_size, *shape))
    return tf.constant(x.astype(np.float32))


@dataclasses.dataclass
class Timing:
    """Calls per second of each timed round, and how long the first call took."""

    first_call_s: float
    rates: list[float]

    @property
    def best(self) -> float:
        return max(self.rates)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def _sync(out) -> None:
    """Reads one result back, so that every call queued before has finished."""
    leaves = [t for t in tf.nest.flatten(out) if isinstance(t, tf.Tensor)]
    if leaves:
        leaves[0].numpy()


def time_calls(
    fns: dict[str, Callable], args: tuple, *, steps: int, repeats: int, warmup: int
) -> dict[str, Timing]:
    """Times each ``fn(*args)``; the functions take turns round by round, so a burst of load
    from other processes falls on all of them alike."""
    first, rates = {}, {name: [] for name in fns}
    for name, fn in fns.items():
        start = time.perf_counter()
        _sync(fn(*args))
        first[name] = time.perf_counter() - start
        out = None
        for _ in range(max(warmup - 1, 0)):
            out = fn(*args)
        _sync(out)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                out = fn(*args)
            _sync(out)
            rates[name].append(steps / (time.perf_counter() - start))
    return {name: Timing(first[name], rates[name]) for name in fns}


# The dtypes whose matmul rate is measured: float32, and bfloat16, the compute dtype of
# ``train.mixed_precision="mixed_bfloat16"`` (oneDNN runs it on AVX512-BF16 / AMX).
PEAK_DTYPES = ("float32", "bfloat16")


def matmul_peak(
    dtype: str, *, size: int = 2048, steps: int = 3, repeats: int = 3, warmup: int = 2
) -> dict:
    """This machine's matmul rate now: ``tf.matmul`` of two ``[size, size]`` matrices of
    ``dtype`` in a ``tf.function``, 2 * size^3 FLOP per call, best of ``repeats`` rounds of
    ``steps`` calls (``time_calls``). The peak a training step's GFLOP/s is a fraction of:
    a large dense product is the most this library stack gets out of the cores."""
    rng = np.random.default_rng(0)
    a, b = (
        tf.cast(tf.constant(rng.standard_normal((size, size)), tf.float32), dtype) for _ in "ab"
    )
    fn = tf.function(tf.linalg.matmul)
    timing = time_calls({dtype: fn}, (a, b), steps=steps, repeats=repeats, warmup=warmup)[dtype]
    flop = 2.0 * size**3
    return {
        "dtype": dtype,
        "size": size,
        "gflop_per_s": flop * timing.best / 1e9,
        "gflop_per_s_median": flop * timing.median / 1e9,
    }


def matmul_peaks(size: int, **timing) -> dict[str, float]:
    """``{"float32": GFLOP/s, "bfloat16": GFLOP/s}`` measured now (``matmul_peak``)."""
    return {d: matmul_peak(d, size=size, **timing)["gflop_per_s"] for d in PEAK_DTYPES}


def max_peaks(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Per dtype the faster of two ``matmul_peaks`` (before and after a step: other processes
    only ever slow a measurement down)."""
    return {d: max(a[d], b[d]) for d in a}


def peak_fractions(gflop_per_s: float, peaks: dict[str, float], precision: str) -> dict:
    """A step's rate as a fraction of the same-run peaks: of the float32 peak always, and of
    the bfloat16 peak too when the step computes in bfloat16 (``mixed_bfloat16``)."""
    out = {"fp32_peak_fraction": gflop_per_s / peaks["float32"]}
    if precision == "mixed_bfloat16":
        out["bf16_peak_fraction"] = gflop_per_s / peaks["bfloat16"]
    return out
