"""Table 1 of the dpVAE paper: train and evaluate a list of configs over seeds, write a table
of the rows and of the standard-against-dp comparisons with their verdicts.

    python -m tools.reproduce --dataset=mnist --steps=100000 --out=runs/table1_mnist
    python -m tools.reproduce --configs=configs/vae.py,configs/dpvae.py --seeds=0,1,2 \
        --protocol=controlled --steps=5000 --num_samples=2000 --out=runs/vae_pair
    python -m tools.reproduce --configs=configs/vae.py,configs/dpvae.py --out=/tmp/t --smoke
    python -m tools.reproduce --out=runs/vae_pair --configs=configs/vae.py,configs/dpvae.py \
        --seeds=0,1,2 --steps=5000 --report_only

Every row is trained for every seed into ``<out>/<row>/s<seed>``
(``tfvae.trainer.train_and_evaluate``), evaluated there (``tfvae.evaluation.evaluate_workdir``),
and ``<out>/table.md`` is rewritten after each run, so it always shows what has finished.
Without ``--steps`` each config trains for its own ``train.num_steps`` (100,000 for the Table-1
configs, 4 with ``--smoke``). Re-running the same command resumes (``tools.sweep``): finished
runs are not touched, missing metrics are evaluated, partial runs continue from their latest
checkpoint. ``--report_only`` trains nothing and writes the table from the workdirs it finds.

Protocols (``--protocol``):
- ``authors``: each config with its own settings, as the paper's Table 1 compares them. The
  authors' standard and dp configs of a pair may differ in learning rate, loss weight and batch
  size (their MNIST settings, ``SETTINGS``), so a difference in a row pair mixes the prior with
  those settings.
- ``controlled``: also each pair's dp config at the standard config's settings
  (``<dp>_at_<standard>``) and the standard config at the dp config's (``<standard>_at_<dp>``),
  so the prior is compared with everything else identical, at both settings. Pairs whose
  settings are identical already need no extra rows.

``--with_authors_code`` also trains the dpVAE authors' own PyTorch code (``tools.authors_code``:
their VAE and dpVAE, the MNIST architecture) on the same data for every seed, ports it into
tfvae workdirs ``<out>/authors_vae/s<seed>`` and ``<out>/authors_dpvae/s<seed>`` and scores it
with the same evaluation.

The table gives each metric's mean ± standard deviation over seeds, the paper's own numbers for
the same data set (MNIST, SVHN, CelebA; Bhalodia et al., Table 1), and for every standard/dp
pair the difference dp - standard with a verdict: "holds" (dp lower by more than the seed
spread: Welch's t-test, p < 0.05), "reversed" (higher by more than it), "not separated", or
"one seed". The paper computed FID with Inception-v3 features; tfvae names its feature network
under the table, and FIDs from different feature networks are comparable only in their ordering.
"""

import dataclasses
import json
import math
import os
import sys

from absl import app, flags

from tfvae import cli, evaluate, evaluation
from tfvae.config_loader import load_config
from tfvae.errors import InvalidValue
from tools import authors_code, sweep, verdicts

# The 12 rows of the paper's Table 1, in its order: each regularizer without and with dp.
TABLE1_CONFIGS = (
    "vae",
    "dpvae",
    "beta_vae_h",
    "beta_dpvae_h",
    "beta_vae_b",
    "beta_dpvae_b",
    "beta_tcvae",
    "beta_tc_dpvae",
    "factor_vae",
    "factor_dpvae",
    "info_vae",
    "info_dpvae",
)
ROW_NAMES = {
    "vae": "VAE",
    "dpvae": "dpVAE",
    "beta_vae_h": "β-VAE-H",
    "beta_dpvae_h": "β-dpVAE-H",
    "beta_vae_b": "β-VAE-B",
    "beta_dpvae_b": "β-dpVAE-B",
    "beta_tcvae": "β-TCVAE",
    "beta_tc_dpvae": "β-TC-dpVAE",
    "factor_vae": "FactorVAE",
    "factor_dpvae": "Factor-dpVAE",
    "info_vae": "InfoVAE",
    "info_dpvae": "Info-dpVAE",
}

# Bhalodia, Lee, Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs", ACCV 2020,
# Table 1, as printed in ../shared/papers/000_893c93a99d32074c.txt (its table rows survived the
# text extraction; the METHODS.md section 7 examples are among them and agree). Per data set:
# FID, FID (LP), sKL, NLL. The NLL column's unit (a power-of-ten scale) was lost in the
# extraction, so the paper's NLL is shown as printed and is not comparable with nats.
_PAPER_ROWS = """
vae           137.4 165.0 1.26 3.56   78.9  83.8 53.67 0.386  81.4 79.0 59.3  9.26
dpvae         129.0 153.1 0.88 3.53   50.8  55.2 13.02 0.318  71.5 74.3 10.4  4.91
beta_vae_h    144.2 163.1 4.49 4.12   96.7  97.6 10.35 0.611  80.3 79.9 39.7  6.93
beta_dpvae_h  127.1 127.4 1.07 2.98   65.2  67.7  4.05 0.592  67.2 72.5 33.5 10.6
beta_vae_b    130.8 163.6 2.74 3.11   61.7  68.5  2.62 0.606  75.7 79.6 25.8 12.5
beta_dpvae_b  113.3 114.1 1.32 2.80   51.1  50.3  2.47 0.550  67.9 72.0 19.1 10.4
beta_tcvae    149.8 200.3 4.48 2.91   69.2  70.5  7.76 9.86   83.8 83.0 93.6  9.33
beta_tc_dpvae 133.3 133.1 2.07 2.70   50.3  53.8  2.94 4.52   80.3 81.4 90.3 10.0
factor_vae    130.5 191.2 1.04 3.50   97.2 108.5  1.91 2.13   82.6 86.8 71.3  9.89
factor_dpvae  120.8 121.3 0.85 3.60   86.3  86.9  1.57 2.36   65.0 73.4 51.3 12.2
info_vae      128.7 133.2 2.89 2.88   81.3  83.2  4.91 1.55   76.5 79.1 30.6 11.1
info_dpvae    110.1 110.5 1.70 2.81   62.9  67.7  2.67 1.56   68.9 72.9 20.3 12.1
"""
PAPER_DATASETS = ("mnist", "svhn", "celeba")
COLUMNS = ("fid", "fid_lp", "skl", "nll")


def _paper_table() -> dict[str, dict[str, dict[str, float]]]:
    """{dataset: {config name: {"fid", "fid_lp", "skl", "nll"}}}."""
    table = {dataset: {} for dataset in PAPER_DATASETS}
    for line in _PAPER_ROWS.strip().splitlines():
        name, *values = line.split()
        if len(values) != 4 * len(PAPER_DATASETS):
            raise ValueError(f"Paper row {name!r} has {len(values)} numbers, expected 12.")
        for k, dataset in enumerate(PAPER_DATASETS):
            row = map(float, values[4 * k : 4 * k + 4])
            table[dataset][name] = dict(zip(COLUMNS, row, strict=True))
    return table


PAPER_TABLE1 = _paper_table()


# Each dp config of Table 1 -> its standard-prior counterpart.
PAIRS = {TABLE1_CONFIGS[i + 1]: TABLE1_CONFIGS[i] for i in range(0, len(TABLE1_CONFIGS), 2)}
# The fields in which the authors' standard and dp configs of a pair differ (their MNIST
# settings; configs.common.config_for): what "the same settings" means in the controlled protocol.
SETTINGS = (
    "train.batch_size",
    "optimizers.main.learning_rate",
    "optimizers.adversary.learning_rate",
    "model.likelihood.options.weight",
)
PROTOCOLS = ("authors", "controlled")
# The configs tools.authors_code can train with the authors' code, and their rows.
AUTHORS_ROWS = {"vae": "authors_vae", "dpvae": "authors_dpvae"}
FLAGS = flags.FLAGS


def define_configs_flag(flag_values: flags.FlagValues = FLAGS) -> None:
    """``--configs``, the config files of a study tool: the 12 Table-1 configs by default."""
    flags.DEFINE_list(
        "configs",
        [f"configs/{name}.py" for name in TABLE1_CONFIGS],
        "Config files (the paper's 12 Table-1 configs by default).",
        flag_values=flag_values,
    )


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """The CLI's flags (defined when run, so importing this module defines none)."""
    d = evaluation.EvalOptions()
    fv = {"flag_values": flag_values}
    define_configs_flag(flag_values)
    flags.DEFINE_string("dataset", "fashion_mnist", "Dataset preset of every config.", **fv)
    flags.DEFINE_integer(
        "steps",
        None,
        "Training steps of every config; default: each config's own train.num_steps "
        "(100,000 for the Table-1 configs; the smoke preset's 4 with --smoke).",
        **fv,
    )
    flags.DEFINE_list(
        "seeds", ["0"], "Seeds, one run of every row each (training and evaluation).", **fv
    )
    flags.DEFINE_enum(
        "protocol",
        "authors",
        PROTOCOLS,
        "authors: each config with its own settings (the paper's comparison); controlled: also "
        "each standard/dp pair with identical settings, at both configs' settings.",
        **fv,
    )
    flags.DEFINE_bool(
        "with_authors_code",
        False,
        "Also train and score the dpVAE authors' PyTorch code for vae and dpvae "
        "(tools.authors_code; needs --authors_checkout and --torch_python).",
        **fv,
    )
    flags.DEFINE_string(
        "authors_checkout", None, "Work tree of github.com/iyerkrithika21/dpVAE.", **fv
    )
    flags.DEFINE_string(
        "torch_python", sys.executable, "A Python interpreter that has torch.", **fv
    )
    flags.DEFINE_bool(
        "report_only", False, "Train and evaluate nothing: write the table from the workdirs.", **fv
    )
    flags.DEFINE_string("out", None, "Folder of the workdirs and table.md.", **fv)
    flags.DEFINE_bool("smoke", False, "Add ':smoke' to every config (a quick check).", **fv)
    flags.DEFINE_list(
        "metrics",
        None,
        "Evaluation metrics (tfvae.evaluate --metrics); default: every default metric.",
        **fv,
    )
    flags.DEFINE_integer(
        "num_samples", None, "Evaluation sample counts (tfvae.evaluate --num_samples).", **fv
    )
    flags.DEFINE_integer("nll_samples", d.nll_samples, "K for the importance-sampled NLL.", **fv)
    flags.DEFINE_integer(
        "nll_chunk", d.nll_chunk, "Importance samples per decoder call (bounds memory).", **fv
    )
    flags.DEFINE_string("inception_weights", None, "InceptionV3 weights for FID.", **fv)
    flags.DEFINE_string(
        "feature_cache", evaluation.DEFAULT_FEATURE_CACHE, "FID classifier cache folder.", **fv
    )
    flags.DEFINE_integer(
        "classifier_steps", d.classifier_steps, "Training steps of a new FID classifier.", **fv
    )


def seeds_from_flags(f: flags.FlagValues = FLAGS) -> tuple[int, ...]:
    """--seeds as distinct integers; a bad value fails naming the flag."""
    try:
        seeds = tuple(int(s) for s in f.seeds)
    except ValueError:
        raise cli.UserError(
            f"--seeds must be integers, e.g. --seeds=0,1,2; got {f.seeds}."
        ) from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise cli.UserError(f"--seeds must be distinct integers >= 0, got {f.seeds}.")
    return seeds


def options_from_flags(f: flags.FlagValues = FLAGS) -> evaluation.EvalOptions:
    """The evaluation options the flags ask for; bad values fail here, naming their flag.
    The seed is each run's own (``reproduce`` sets it)."""
    if f.out is None:
        raise cli.UserError("--out is required (the folder of the workdirs and table.md).")
    evaluate.check_minimums(f, {"steps": 1, **evaluate.FLAG_MINIMUM})
    metrics = tuple(f.metrics) if f.metrics else None
    evaluation.select_metrics(metrics)  # an unknown name fails before any training
    return evaluation.EvalOptions(
        metrics=metrics,
        nll_samples=f.nll_samples,
        nll_chunk=f.nll_chunk,
        inception_weights=f.inception_weights,
        feature_cache=f.feature_cache,
        classifier_steps=f.classifier_steps,
    ).with_num_samples(f.num_samples)


@dataclasses.dataclass(frozen=True)
class AuthorsCode:
    """Where the dpVAE authors' code runs (``tools.authors_code``)."""

    checkout: str
    torch_python: str
    threads: int = 0


def authors_from_flags(f: flags.FlagValues = FLAGS) -> AuthorsCode | None:
    if not f.with_authors_code:
        return None
    if not f.authors_checkout:
        raise cli.UserError(
            "--with_authors_code needs --authors_checkout=DIR, a work tree of "
            "https://github.com/iyerkrithika21/dpVAE (and --torch_python=PYTHON with torch)."
        )
    authors_code.check_checkout(f.authors_checkout, f.torch_python)
    return AuthorsCode(f.authors_checkout, f.torch_python)


def config_name(path: str) -> str:
    """``configs/info_dpvae.py`` -> ``info_dpvae`` (the row key of its own settings)."""
    return os.path.splitext(os.path.basename(path.partition(":")[0]))[0]


def load_run_config(path: str, *, dataset: str, steps: int | None, seed: int, smoke: bool):
    """The config of one run: ``path`` with the data set (and smoke) preset, the seed, and
    ``steps`` training steps (None: the config's own ``train.num_steps``)."""
    config = load_config(f"{path}:{dataset}{',smoke' if smoke else ''}")
    if steps is not None:
        config.train.num_steps = steps
    config.seed = seed
    return config


def _field(config, dotted: str):
    """The value of a dotted config field, or None when the config has no such field."""
    node = config
    for key in dotted.split("."):
        if key not in node:
            return None
        node = node[key]
    return node


def settings_of(config) -> dict:
    """The config's ``SETTINGS`` it has, field -> value."""
    return {k: v for k in SETTINGS if (v := _field(config, k)) is not None}


def with_settings(config, donor):
    """``config`` with the ``SETTINGS`` of ``donor`` (the fields both have)."""
    for dotted, value in settings_of(donor).items():
        if _field(config, dotted) is not None:
            *path, last = dotted.split(".")
            node = config
            for key in path:
                node = node[key]
            node[last] = value
    return config


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row: a config, trained with its own settings or another config's."""

    key: str  # the workdir folder and table key
    path: str  # the config file
    settings_from: str | None = None  # the config file whose SETTINGS it uses (None: its own)
    authors_code: bool = False  # trained by the authors' code (tools.authors_code)

    def config(self, *, dataset: str, steps: int | None, seed: int, smoke: bool):
        c = load_run_config(self.path, dataset=dataset, steps=steps, seed=seed, smoke=smoke)
        if self.settings_from:
            donor = load_run_config(
                self.settings_from, dataset=dataset, steps=steps, seed=seed, smoke=smoke
            )
            with_settings(c, donor)
        return c


def plan_rows(
    configs, *, protocol: str, dataset: str, smoke: bool, authors: bool = False
) -> list[Row]:
    """The rows of a run, in table order (each config's own first, then controlled rows, then
    the authors' code)."""
    if protocol not in PROTOCOLS:
        raise InvalidValue(f"Unknown protocol {protocol!r}. Valid: {', '.join(PROTOCOLS)}.")
    names = [config_name(path) for path in configs]
    if len(set(names)) != len(names):
        raise InvalidValue(f"Two configs share a name (their workdir): {names}.")
    rows = [Row(name, path) for name, path in zip(names, configs, strict=True)]
    path_of = dict(zip(names, configs, strict=True))
    if protocol == "controlled":
        for dp, std in PAIRS.items():
            if dp not in path_of or std not in path_of:
                continue
            own = {
                n: settings_of(
                    load_run_config(path_of[n], dataset=dataset, steps=None, seed=0, smoke=smoke)
                )
                for n in (dp, std)
            }
            if own[dp] != own[std]:
                rows.append(Row(f"{dp}_at_{std}", path_of[dp], settings_from=path_of[std]))
                rows.append(Row(f"{std}_at_{dp}", path_of[std], settings_from=path_of[dp]))
    if authors:
        missing = [n for n in AUTHORS_ROWS if n not in path_of]
        if missing:
            raise InvalidValue(
                f"--with_authors_code trains the authors' {' and '.join(AUTHORS_ROWS)}; add "
                f"{', '.join(f'configs/{n}.py' for n in missing)} to --configs."
            )
        rows += [Row(key, path_of[n], authors_code=True) for n, key in AUTHORS_ROWS.items()]
    return rows


def comparisons(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(description, standard row, dp row) of every comparison the rows allow."""
    keys = {row.key for row in rows}
    out = []
    for dp, std in PAIRS.items():
        if dp not in keys or std not in keys:
            continue
        controlled = f"{dp}_at_{std}" in keys
        out.append(("each its own (as the paper)" if controlled else "own settings", std, dp))
        if controlled:
            out.append((f"{std}'s", std, f"{dp}_at_{std}"))
            out.append((f"{dp}'s", f"{std}_at_{dp}", dp))
    if all(key in keys for key in AUTHORS_ROWS.values()):
        out.append(("authors' code", AUTHORS_ROWS["vae"], AUTHORS_ROWS["dpvae"]))
    return out


def row_label(key: str) -> str:
    if key in ROW_NAMES:
        return ROW_NAMES[key]
    for name, authors_key in AUTHORS_ROWS.items():
        if key == authors_key:
            return f"{ROW_NAMES[name]} (authors' code)"
    first, _, second = key.partition("_at_")
    return f"{ROW_NAMES.get(first, first)} @ {ROW_NAMES.get(second, second)} settings"


def workdir_of(out: str, key: str, seed: int) -> str:
    return os.path.join(out, key, f"s{seed}")


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


_DIGITS = {"fid": 1, "fid_lp": 1, "skl": 2, "nll": 1, "nll_bits_per_dim": 3}


_COLUMN_NAMES = {"fid": "FID", "fid_lp": "FID (LP)"}


def _feature_networks(report: dict) -> dict[str, dict]:
    """Table column (fid, fid_lp) -> the feature network of its number in ``report``."""
    by_metric = evaluation.report_feature_networks(report)
    return {key: by_metric[key] for key in _COLUMN_NAMES if by_metric.get(key)}


def _values(reports: list, metric: str) -> list[float]:
    return [r["metrics"][metric] for r in reports if metric in r.get("metrics", {})]


def _cell(reports: list, metric: str) -> str:
    s = verdicts.summarize(_values(reports, metric))
    return "–" if s is None else s.format(_DIGITS[metric])


def format_table(
    rows: dict[str, list], *, dataset: str, steps: int | str, seeds, compare=()
) -> str:
    """The Markdown table: our FID, FID (LP), sKL, NLL (mean ± std over seeds) beside the
    paper's, then each comparison's dp - standard difference and verdict.

    Args:
      rows: row key -> the metrics.json contents of its finished seeds ([]: none finished).
      dataset, steps, seeds: the shared settings, printed in the title (``steps`` may be a
        description such as "each config's own").
      compare: (description, standard row, dp row) triples (``comparisons``).
    """
    paper = PAPER_TABLE1.get(dataset)
    seeds = list(seeds)
    lines = [
        f"# dpVAE Table 1 on {dataset} ({steps} steps, seeds {', '.join(map(str, seeds))})",
        "",
        "| Method | seeds | FID | FID (LP) | sKL | NLL (nats) | NLL (bits/dim) "
        "| paper FID | paper FID (LP) | paper sKL | paper NLL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    # feature network (as JSON) -> the cells ("<row> <column>") computed with it
    notes, features = [], {}
    for key, reports in rows.items():
        label = row_label(key)
        ours = [_cell(reports, m) for m in (*COLUMNS, "nll_bits_per_dim")]
        if not reports:
            ours = ["(not finished)"] + [""] * 4
        if paper is not None and key in paper:
            theirs = [_fmt(paper[key][m], 2 if m in ("skl", "nll") else 1) for m in COLUMNS]
        else:
            theirs = ["n/a"] * 4
        lines.append(f"| {label} | {len(reports)} | " + " | ".join(ours + theirs) + " |")
        for report in reports:
            for metric, reason in report.get("skipped", {}).items():
                if metric in COLUMNS:  # other metrics' skips do not concern the table
                    notes.append(f"- {label} (step {report['step']}): {metric} skipped: {reason}")
            for m, feat in _feature_networks(report).items():
                who = features.setdefault(json.dumps(feat, sort_keys=True), [])
                if f"{label} {_COLUMN_NAMES[m]}" not in who:
                    who.append(f"{label} {_COLUMN_NAMES[m]}")
    lines.append("")
    for feat_json, who in features.items():
        desc = evaluation.describe_feature_network(json.loads(feat_json), sha=True)
        whom = "all rows" if len(features) == 1 else ", ".join(who)
        lines.append(f"FID features ({whom}): {desc}.")
    if paper is None:
        lines.append(
            f"The paper reports no numbers on {dataset} (it has MNIST, SVHN and CelebA); "
            "compare rows with each other."
        )
    else:
        lines.append(
            "Paper: Bhalodia et al. 2020, Table 1 (Inception-v3 FID, 100k steps). FIDs from "
            "different feature networks agree only in the ordering of rows. The paper's NLL is "
            "shown as printed: its unit was lost in the text extraction and it is not in nats."
        )
    lines += notes
    if compare:
        lines += format_comparisons(rows, compare)
    return "\n".join(lines) + "\n"


def format_comparisons(rows: dict[str, list], compare) -> list[str]:
    """The comparison section: dp - standard per metric, with the verdict of the claim that
    the decoupled prior lowers it (``tools.verdicts``)."""
    lines = [
        "",
        "## dp - standard, per pair and settings",
        "",
        "Verdict of the claim that the dp prior lowers the metric: holds / reversed when the "
        f"difference exceeds the seed spread (Welch's t-test, p < {verdicts.ALPHA}), "
        "not separated otherwise.",
        "",
        "| Pair | settings | FID dp/standard | FID | FID (LP) | sKL | NLL (nats) |",
        "|---|---|---:|---|---|---|---|",
    ]
    for description, std, dp in compare:
        cells = []
        for metric in COLUMNS:
            c = verdicts.compare(
                _values(rows.get(std, []), metric), _values(rows.get(dp, []), metric)
            )
            cells.append(verdicts.format_comparison(c, _DIGITS[metric]))
        fid = verdicts.compare(_values(rows.get(std, []), "fid"), _values(rows.get(dp, []), "fid"))
        ratio = "–" if fid is None else f"{fid.ratio:.2f}"
        pair = f"{row_label(std.partition('_at_')[0])} / {row_label(dp.partition('_at_')[0])}"
        lines.append(f"| {pair} | {description} | {ratio} | " + " | ".join(cells) + " |")
    return lines


def run_row(row: Row, seed: int, *, dataset, steps, out, options, smoke, authors) -> dict:
    """Trains (or resumes) and evaluates one row for one seed; returns its metrics.json."""
    config = row.config(dataset=dataset, steps=steps, seed=seed, smoke=smoke)
    workdir = workdir_of(out, row.key, seed)
    options = dataclasses.replace(options or evaluation.EvalOptions(), seed=seed)
    label = f"{row.key} s{seed}"
    if not row.authors_code:
        return sweep.run(config, workdir, options, label=label)
    authors_code.train_authors(
        config,
        workdir,
        checkout=authors.checkout,
        torch_python=authors.torch_python,
        data=os.path.join(out, f"authors_data_{config.data.name}.npz"),
        threads=authors.threads,
    )
    return sweep.evaluate(workdir, options, steps=int(config.train.num_steps), label=label)


def reproduce(
    configs,
    *,
    dataset: str,
    steps: int | None,
    seeds=(0,),
    out: str,
    options,
    smoke: bool = False,
    protocol: str = "authors",
    authors: AuthorsCode | None = None,
    report_only: bool = False,
) -> str:
    """Runs every row for every seed (resuming), rewrites ``<out>/table.md`` after each run;
    returns the table.

    ``steps`` None trains each config for its own ``train.num_steps`` (with ``smoke``, the
    smoke preset's); ``options`` None evaluates with the default ``EvalOptions``;
    ``report_only`` runs nothing and reads the workdirs' metrics.json.
    """
    os.makedirs(out, exist_ok=True)
    plan = plan_rows(
        configs, protocol=protocol, dataset=dataset, smoke=smoke, authors=authors is not None
    )
    steps_of = {
        row.key: int(row.config(dataset=dataset, steps=steps, seed=0, smoke=smoke).train.num_steps)
        for row in plan
    }
    shared = set(steps_of.values())
    described = shared.pop() if len(shared) == 1 else "each config's own"
    reports: dict[str, dict[int, dict]] = {row.key: {} for row in plan}
    for row in plan:
        for seed in seeds:
            report = sweep.read_metrics(workdir_of(out, row.key, seed))
            if report and report.get("step") == steps_of[row.key]:
                reports[row.key][seed] = report
    compare = comparisons(plan)

    def table() -> str:
        rows = {
            key: [by_seed[s] for s in seeds if s in by_seed] for key, by_seed in reports.items()
        }
        text = format_table(rows, dataset=dataset, steps=described, seeds=seeds, compare=compare)
        with open(os.path.join(out, "table.md"), "w") as f:
            f.write(text)
        return text

    text = table()
    if report_only:
        return text
    for row in plan:
        for seed in seeds:
            reports[row.key][seed] = run_row(
                row,
                seed,
                dataset=dataset,
                steps=steps,
                out=out,
                options=options,
                smoke=smoke,
                authors=authors,
            )
            text = table()
    return text


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, ".")  # config files import configs.common
    f = FLAGS
    table = reproduce(
        f.configs,
        dataset=f.dataset,
        steps=f.steps,
        seeds=seeds_from_flags(f),
        out=f.out,
        options=options_from_flags(f),
        smoke=f.smoke,
        protocol=f.protocol,
        authors=authors_from_flags(f),
        report_only=f.report_only,
    )
    print(table)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
