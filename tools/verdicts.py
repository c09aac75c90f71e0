"""Seed statistics and verdicts for paired comparisons (used by ``tools.reproduce``).

A claim such as "the decoupled prior lowers FID" compares two rows, each measured over seeds.
The difference of their means is called out only when it exceeds the seed spread: Welch's
t-test (unequal variances) at ``ALPHA`` on the per-seed values. With one seed on either side
nothing can be separated, and the verdict says so instead of guessing.
"""

import dataclasses
import math

import numpy as np
from scipy import stats

ALPHA = 0.05

HOLDS = "holds"
REVERSED = "reversed"
NOT_SEPARATED = "not separated"
ONE_SEED = "one seed"
NOT_MEASURED = "not measured"


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (0 for one value) and count of per-seed values."""

    mean: float
    std: float
    n: int

    def format(self, digits: int) -> str:
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def summarize(values) -> Summary | None:
    """The finite values' summary (None when there is none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return None
    return Summary(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``treated`` against ``baseline`` on one metric where lower is better."""

    delta: float  # mean(treated) - mean(baseline)
    ratio: float  # mean(treated) / mean(baseline)
    p_value: float | None  # Welch's t-test; None with one seed on either side
    verdict: str  # HOLDS (treated lower), REVERSED (higher), NOT_SEPARATED, ONE_SEED


def compare(baseline, treated, *, alpha: float = ALPHA) -> Comparison | None:
    """Compares per-seed values; None when either side has no finite value.

    The claim tested is "``treated`` is lower than ``baseline``": HOLDS when it is lower by
    more than the seed spread, REVERSED when it is higher by more than it.
    """
    b = [x for x in baseline if x is not None and math.isfinite(x)]
    t = [x for x in treated if x is not None and math.isfinite(x)]
    if not b or not t:
        return None
    delta = float(np.mean(t) - np.mean(b))
    ratio = float(np.mean(t) / np.mean(b)) if np.mean(b) != 0 else math.nan
    if len(b) < 2 or len(t) < 2:
        return Comparison(delta, ratio, None, ONE_SEED)
    if np.var(b) == 0 and np.var(t) == 0:  # the t statistic is undefined
        p = 0.0 if delta != 0 else 1.0
    else:
        p = float(stats.ttest_ind(t, b, equal_var=False).pvalue)
    if p >= alpha:
        verdict = NOT_SEPARATED
    else:
        verdict = HOLDS if delta < 0 else REVERSED
    return Comparison(delta, ratio, p, verdict)


def format_comparison(c: Comparison | None, digits: int) -> str:
    """One table cell: the difference, with its verdict and p-value."""
    if c is None:
        return NOT_MEASURED
    p = "" if c.p_value is None else f", p={c.p_value:.2g}"
    return f"{c.delta:+.{digits}f} ({c.verdict}{p})"
