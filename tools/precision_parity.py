"""Is bfloat16 safe? Each config trained in float32 and in mixed_bfloat16, compared with the
seed spread of float32.

    python -m tools.precision_parity --out=runs/parity --steps=2000 --seeds=0,1,2 \
        --num_samples=5000
    python -m tools.precision_parity --out=/tmp/parity --configs=configs/dpvae.py --smoke \
        --seeds=0 --metrics=skl --num_samples=64

Every config (``--configs``, the dpVAE paper's 12 Table-1 configs by default) is trained on
``--dataset`` for every seed with ``train.mixed_precision`` set to each of ``PRECISIONS`` into
``<out>/<config>/<precision>/s<seed>``, through the study tools' resumable runner
(``tools.sweep``), and evaluated on ``--metrics`` (FID by default). Re-running the same command
resumes. ``<out>/table.md`` (rewritten after every run) compares, per config, the final
validation terms (``train_metrics.json``) and the evaluation metrics: the mean and standard
deviation of each precision over seeds, the difference mixed_bfloat16 - float32 in units of
float32's seed-to-seed standard deviation, and Welch's p. A config is at **parity** when every
difference is within ``TOLERANCE`` float32 standard deviations; with one float32 seed there is
no spread and the verdict is "one seed". The numbers Welch's test separates (p < 0.05, which
weighs the bfloat16 seeds' spread too) are listed beside the verdict. Both rules raise false
alarms: with 3 seeds a side, a number that has the same distribution in both precisions falls
outside 2 standard deviations 13 % of the time. So the table also counts, over all configs, the
numbers outside each rule against the count chance alone gives.
"""

import dataclasses
import json
import math
import os
import sys

from absl import app, flags
from scipy import stats

from tfvae import cli, evaluate, evaluation
from tools import reproduce, sweep, verdicts

PRECISIONS = ("float32", "mixed_bfloat16")
# A difference counts as within the seed spread up to this many float32 standard deviations.
TOLERANCE = 2.0
PARITY = "parity"
DIFFERS = "differs"
FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """The CLI's flags (defined when run, so importing this module defines none)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("out", None, "Folder of the workdirs and table.md.", **fv)
    reproduce.define_configs_flag(flag_values)
    flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset of every config.", **fv)
    flags.DEFINE_integer("steps", None, "Training steps (default: each config's own).", **fv)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; one run per config, precision, seed.", **fv)
    flags.DEFINE_list("metrics", ["fid"], "Evaluation metrics (tfvae.evaluate --metrics).", **fv)
    flags.DEFINE_integer(
        "num_samples", None, "Evaluation sample counts (tfvae.evaluate --num_samples).", **fv
    )
    flags.DEFINE_bool("smoke", False, "Add ',smoke' to every config (a quick check).", **fv)
    flags.DEFINE_bool(
        "report_only", False, "Train and evaluate nothing: write the table from the workdirs.", **fv
    )


def workdir_of(out: str, name: str, precision: str, seed: int) -> str:
    return os.path.join(out, name, precision, f"s{seed}")


def run_values(workdir: str, steps: int) -> dict[str, float] | None:
    """The numbers of one finished run at step ``steps``: the final validation terms as
    ``val/<term>`` and the evaluation metrics by name; None when it has not reached ``steps``."""
    report = sweep.read_metrics(workdir)
    path = os.path.join(workdir, "train_metrics.json")
    if report is None or report.get("step") != steps or not os.path.exists(path):
        return None
    with open(path) as f:
        trained = json.load(f)
    values = {f"val/{k}": float(v) for k, v in trained.get("val", {}).items()}
    values.update(
        {k: float(v) for k, v in report.get("metrics", {}).items() if isinstance(v, int | float)}
    )
    return values


@dataclasses.dataclass(frozen=True)
class Difference:
    """mixed_bfloat16 against float32 on one number."""

    float32: verdicts.Summary
    bfloat16: verdicts.Summary
    delta: float  # mean(bfloat16) - mean(float32)
    in_std: float | None  # delta / std(float32); None with one float32 seed
    p_value: float | None  # Welch's t-test; None with one seed on either side

    @property
    def within(self) -> bool | None:
        return None if self.in_std is None else abs(self.in_std) <= TOLERANCE

    @property
    def separated(self) -> bool:
        """Welch's test puts the difference beyond the seed spread (p < ``verdicts.ALPHA``)."""
        return self.p_value is not None and self.p_value < verdicts.ALPHA

    @property
    def chance(self) -> float | None:
        """How often a number whose two precisions have the same normal distribution falls
        outside the rule with these seed counts: delta / (s sqrt(1/n + 1/m)) is Student's t
        with n - 1 degrees of freedom (n float32 and m bfloat16 seeds, s the float32 std)."""
        n, m = self.float32.n, self.bfloat16.n
        if n < 2:
            return None
        return float(2 * stats.t.sf(TOLERANCE / math.sqrt(1 / n + 1 / m), n - 1))


def difference(float32, bfloat16) -> Difference | None:
    """The comparison of the per-seed values of one number (None when a side has none)."""
    a, b = verdicts.summarize(float32), verdicts.summarize(bfloat16)
    if a is None or b is None:
        return None
    delta = b.mean - a.mean
    if a.n < 2:
        in_std = None
    elif a.std > 0:
        in_std = delta / a.std
    else:  # identical float32 seeds: any difference is outside their (zero) spread
        in_std = 0.0 if delta == 0 else math.copysign(math.inf, delta)
    c = verdicts.compare(float32, bfloat16)
    return Difference(a, b, delta, in_std, None if c is None else c.p_value)


def verdict(diffs: dict[str, Difference | None]) -> str:
    """PARITY when every measured difference is within the float32 spread; DIFFERS (naming the
    numbers) otherwise; ONE_SEED without a float32 spread; NOT_MEASURED without numbers."""
    measured = {k: d for k, d in diffs.items() if d is not None}
    if not measured:
        return verdicts.NOT_MEASURED
    if any(d.within is None for d in measured.values()):
        return verdicts.ONE_SEED
    outside = [k for k, d in measured.items() if not d.within]
    return f"{DIFFERS}: {', '.join(outside)}" if outside else PARITY


def compare_config(by_precision: dict[str, list[dict]]) -> dict[str, Difference | None]:
    """number -> the difference, over the numbers every finished run of both precisions has."""
    runs = [r for p in PRECISIONS for r in by_precision.get(p, [])]
    keys = sorted(set.intersection(*(set(r) for r in runs))) if runs else []
    return {
        key: difference(
            [r[key] for r in by_precision.get(PRECISIONS[0], [])],
            [r[key] for r in by_precision.get(PRECISIONS[1], [])],
        )
        for key in keys
    }


def chance_summary(comparisons: dict[str, dict[str, Difference | None]]) -> list[str]:
    """How many numbers of all configs fail each rule, against how many would by chance alone
    if bfloat16 and float32 gave the same distribution (the rules' false-alarm rates)."""
    diffs = [d for by_key in comparisons.values() for d in by_key.values() if d is not None]
    spread = [d for d in diffs if d.chance is not None]
    welch = [d for d in diffs if d.p_value is not None]
    if not spread:
        return []
    outside = sum(not d.within for d in spread)
    expected = sum(d.chance for d in spread)
    separated = sum(d.separated for d in welch)
    return [
        f"All configs: {outside} of {len(spread)} numbers outside {TOLERANCE:g} float32 "
        f"standard deviations, where identical distributions would put {expected:.1f} "
        f"outside by chance at these seed counts; {separated} of {len(welch)} separated by "
        f"Welch's test, {verdicts.ALPHA * len(welch):.1f} by chance."
    ]


def _digits(key: str) -> int:
    return 1 if key in ("fid", "fid_lp") or key.startswith("val/") else 3


def format_table(results: dict[str, dict[str, list[dict]]], *, dataset, steps, seeds) -> str:
    """The Markdown report: one verdict line per config, then each number's comparison."""
    lines = [
        f"# float32 against mixed_bfloat16 on {dataset} ({steps} steps, seeds "
        f"{', '.join(map(str, seeds))})",
        "",
        f"Parity: every difference within {TOLERANCE:g} standard deviations of float32 over "
        "seeds. Validation terms are the final `train_metrics.json` values.",
        "",
        "| config | float32 seeds | mixed_bfloat16 seeds | verdict | separated by Welch "
        f"(p < {verdicts.ALPHA}) |",
        "|---|---:|---:|---|---|",
    ]
    comparisons = {name: compare_config(by_p) for name, by_p in results.items()}
    for name, by_p in results.items():
        n32, n16 = (len(by_p.get(p, [])) for p in PRECISIONS)
        diffs = comparisons[name]
        welch = [k for k, d in diffs.items() if d and d.separated]
        measured = any(d and d.p_value is not None for d in diffs.values())
        separated = ", ".join(welch) if welch else ("none" if measured else "–")
        lines.append(f"| {name} | {n32} | {n16} | {verdict(diffs)} | {separated} |")
    lines += ["", *chance_summary(comparisons)]
    lines += [
        "",
        "| config | number | float32 | mixed_bfloat16 | bf16 - fp32 | in fp32 std | Welch p |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, diffs in comparisons.items():
        for key, d in diffs.items():
            if d is None:
                continue
            k = _digits(key)
            in_std = "–" if d.in_std is None else f"{d.in_std:+.1f}"
            p = "–" if d.p_value is None else f"{d.p_value:.2g}"
            lines.append(
                f"| {name} | {key} | {d.float32.format(k)} | {d.bfloat16.format(k)} "
                f"| {d.delta:+.{k}f} | {in_std} | {p} |"
            )
    return "\n".join(lines) + "\n"


def parity(
    configs,
    *,
    out: str,
    dataset: str,
    steps: int | None,
    seeds,
    options,
    smoke: bool = False,
    report_only: bool = False,
) -> str:
    """Trains and evaluates every config, precision and seed (resuming) and writes
    ``<out>/table.md`` after every run; returns the table."""
    os.makedirs(out, exist_ok=True)
    names = [reproduce.config_name(p) for p in configs]
    results: dict[str, dict[str, list[dict]]] = {n: {p: [] for p in PRECISIONS} for n in names}

    def load(path: str, seed: int, precision: str):
        config = reproduce.load_run_config(
            path, dataset=dataset, steps=steps, seed=seed, smoke=smoke
        )
        config.train.mixed_precision = precision
        return config

    step_counts = {int(load(p, 0, PRECISIONS[0]).train.num_steps) for p in configs}
    described = step_counts.pop() if len(step_counts) == 1 else "each config's own"

    def write() -> str:
        text = format_table(results, dataset=dataset, steps=described, seeds=seeds)
        with open(os.path.join(out, "table.md"), "w") as f:
            f.write(text)
        return text

    for path, name in zip(configs, names, strict=True):
        for precision in PRECISIONS:
            for seed in seeds:
                config = load(path, seed, precision)
                workdir = workdir_of(out, name, precision, seed)
                if not report_only:
                    sweep.run(
                        config,
                        workdir,
                        dataclasses.replace(options, seed=seed),
                        label=f"{name} {precision} s{seed}",
                    )
                values = run_values(workdir, int(config.train.num_steps))
                if values is not None:
                    results[name][precision].append(values)
                write()
    return write()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, ".")  # config files import configs.common
    f = FLAGS
    if f.out is None:
        raise cli.UserError("--out is required (the folder of the workdirs and table.md).")
    evaluate.check_minimums(f, {"steps": 1, "num_samples": evaluate.FLAG_MINIMUM["num_samples"]})
    options = evaluation.EvalOptions(
        metrics=tuple(evaluation.select_metrics(f.metrics))  # an unknown name fails here
    ).with_num_samples(f.num_samples)
    print(
        parity(
            f.configs,
            out=f.out,
            dataset=f.dataset,
            steps=f.steps,
            seeds=reproduce.seeds_from_flags(f),
            options=options,
            smoke=f.smoke,
            report_only=f.report_only,
        )
    )


if __name__ == "__main__":
    define_flags()
    cli.run(main)
