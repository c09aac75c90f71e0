"""Tables 1 and 2 of the NE-VAE paper: train the collapse configs with one budget, tabulate.

    python -m tools.collapse_table --out=runs/collapse                      # full 100 epochs
    python -m tools.collapse_table --out=runs/collapse --steps=5000 --max_examples=2000
    python -m tools.collapse_table --out=runs/collapse --rows=all --tables=1
    python -m tools.collapse_table --out=/tmp/collapse --smoke --rows=VAE --latents=8
    python -m tools.collapse_table --out=runs/collapse_small --decoder=small --steps=4400 --tables=1

Every row is a config of ``configs/`` with an argument (``TABLE1``, ``TABLE2``) trained into
``<out>/<slug>`` by ``tfvae.trainer.train_and_evaluate`` with the same seed, data set and number
of steps, then analyzed on the test split (``tfvae.collapse.analyze``: -ELBO, KL, MI with
batches of 50, AU with threshold 0.01, re-encoding error). ``--steps`` is the shared budget;
when it differs from the configs' 100 epochs, every epoch-based schedule (KL annealing over 10
epochs, validation and checkpoints once per epoch, hence aggressive training's MI checks) is
scaled by the same factor, so the runs keep the paper's proportions. ``--decoder=small`` gives
every row the collapse configs' ``decoder=small`` setting (a 5-layer, 32-channel PixelCNN, ~14x
fewer FLOPs per step) for budgets at which He et al.'s decoder cannot train here.

Re-running the same command resumes: a row analyzed at the requested step is not touched, a
partially trained one continues from its latest checkpoint, a trained one is only analyzed.
``<out>/table1.md``, ``<out>/table2.md`` and ``<out>/results.json`` are rewritten after every
row. Beside our numbers the tables show the paper's (Omniglot, 100 epochs); on Fashion-MNIST
and MNIST the paper has none, so compare rows with each other.
"""

import json
import math
import os
import re
import sys

import keras
from absl import app, flags

from tfvae import cli, collapse, experiment
from tfvae.config_loader import load_config
from tfvae.errors import InvalidValue
from tools import sweep

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
# Table 1 (Omniglot, d = 32): row -> (config, argument, paper's -ELBO, KL, MI, AU).
TABLE1 = {
    "VAE no anneal": ("vae_anneal", "anneal=0", (88.79, 1.10, 1.08, 2)),
    "VAE": ("vae_anneal", "", (88.91, 2.12, 1.83, 6)),
    "Aggressive": ("vae_aggressive", "", (88.71, 1.80, 1.64, 5)),
    "Aggr. no anneal": ("vae_aggressive", "anneal=0", (88.84, 2.38, 2.28, 6)),
    "β-VAE(0.9)": ("beta_vae_collapse", "beta=0.9", (89.42, 5.48, 3.32, 27)),
    "β-VAE(0.8)": ("beta_vae_collapse", "beta=0.8", (90.92, 16.25, 3.86, 32)),
    "β-VAE(0.7)": ("beta_vae_collapse", "beta=0.7", (93.65, 27.56, 3.87, 32)),
    "β-VAE(0.6)": ("beta_vae_collapse", "beta=0.6", (96.77, 37.12, 3.87, 32)),
    "β-VAE(0.5)": ("beta_vae_collapse", "beta=0.5", (100.62, 46.37, 3.87, 32)),
    "NE-VAE se": ("nevae_se", "", (89.57, 2.55, 2.39, 26)),
    "NE-VAE lp(c=5.0)": ("nevae_lp", "c=5.0", (88.93, 2.01, 1.33, 6)),
    "NE-VAE lp(c=3.0)": ("nevae_lp", "c=3.0", (88.89, 1.75, 1.19, 6)),
    "NE-VAE lp(c=1.0)": ("nevae_lp", "c=1.0", (88.96, 1.69, 0.47, 6)),
    "NE-VAE lp(c=0.1)": ("nevae_lp", "c=0.1", (89.61, 3.40, 0.81, 28)),
    "NE-VAE lp(c=0.0)": ("nevae_lp", "c=0.0", (89.64, 4.02, 0.87, 22)),
    "NE-VAE lp(c=-0.1)": ("nevae_lp", "c=-0.1", (89.89, 5.23, 1.21, 28)),
    "NE-VAE lp(c=-1.0)": ("nevae_lp", "c=-1.0", (94.33, 19.28, 3.71, 32)),
    "NE-VAE lp(c=-3.0)": ("nevae_lp", "c=-3.0", (122.03, 60.03, 3.87, 32)),
    "NE-VAE lp(c=-5.0)": ("nevae_lp", "c=-5.0", (148.33, 87.50, 3.87, 32)),
}
DEFAULT_ROWS = ("VAE no anneal", "VAE", "Aggressive", "β-VAE(0.9)", "NE-VAE se", "NE-VAE lp(c=0.1)")
# Table 2: row -> (config, paper's AU for d = 8, 16, 64).
TABLE2 = {
    "VAE": ("vae_anneal", {8: 5, 16: 7, 64: 4}),
    "Aggressive": ("vae_aggressive", {8: 7, 16: 7, 64: 4}),
    "NE-VAE se": ("nevae_se", {8: 8, 16: 12, 64: 55}),
}
LATENTS = (8, 16, 64)
COLUMNS = ("neg_elbo", "kl", "mutual_information", "active_units")
RESULT_FILE = "collapse_table.json"


def slug(config: str, arg: str) -> str:
    """Workdir name of a run: ``nevae_lp`` + ``c=-0.1`` -> ``nevae_lp_c-0.1``."""
    parts = [config] + [re.sub(r"[^A-Za-z0-9.\-]", "", a) for a in arg.split(",") if a]
    return "_".join(parts)


def build_config(config: str, arg: str, *, dataset: str, steps: int | None, seed: int, smoke: bool):
    """The locked config of one run with the shared budget; schedules scaled to ``steps``."""
    tokens = [dataset] + [a for a in arg.split(",") if a] + (["smoke"] if smoke else [])
    c = load_config(os.path.join(CONFIG_DIR, f"{config}.py") + ":" + ",".join(tokens))
    c.seed = seed
    if steps is not None and steps != c.train.num_steps:
        factor = steps / c.train.num_steps

        def scaled(n: int) -> int:
            return max(1, round(n * factor))

        for key in ("eval_every", "checkpoint_every", "image_every", "log_every"):
            c.train[key] = scaled(c.train[key])
        if c.hparams.kl_warmup_steps:
            c.hparams.kl_warmup_steps = scaled(c.hparams.kl_warmup_steps)
        c.train.num_steps = steps
    return c


def _read_result(workdir: str) -> dict | None:
    path = os.path.join(workdir, RESULT_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def run(config, workdir: str, *, max_examples: int | None, iw_samples: int, seed: int) -> dict:
    """Trains (or resumes) one run and analyzes it on the test split; cached in the workdir."""
    steps = config.train.num_steps
    settings = {"max_examples": max_examples, "iw_samples": iw_samples, "seed": seed}
    cached = _read_result(workdir)
    if cached and cached.get("step") == steps and cached.get("settings") == settings:
        print(f"{workdir}: analyzed at step {steps}, skipped.", flush=True)
        return cached
    sweep.train(config, workdir)
    exp = experiment.load(workdir)
    print(f"{workdir}: analyzing.", flush=True)
    result = collapse.analyze(
        exp.model,
        exp.data.test,
        batch_size=config.train.batch_size,
        binarize=config.data.binarize,
        max_examples=max_examples,
        iw_samples=iw_samples,
        seed=seed,
    )
    payload = {
        "step": exp.step,
        "settings": settings,
        "result": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in result.items()},
    }
    with open(os.path.join(workdir, RESULT_FILE), "w") as f:
        json.dump(payload, f, indent=2)
    keras.backend.clear_session()  # one model at a time in memory
    return payload


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if digits else f"{int(value)}"


_DIGITS = {"neg_elbo": 2, "kl": 2, "mutual_information": 2, "active_units": 0}


def _budget(steps: int | None, decoder: str = "he") -> str:
    budget = f"{steps} steps each" if steps else "each config's own schedule"
    return budget if decoder == "he" else f"{budget}, decoder={decoder}"


def format_table1(
    rows: dict, *, dataset: str, steps: int | None, latent: int = 32, decoder: str = "he"
) -> str:
    """Markdown Table 1: ours (-ELBO, KL, MI, AU, re-encoding error) beside the paper's."""
    lines = [
        f"# NE-VAE Table 1 on {dataset} (d = {latent}, {_budget(steps, decoder)})",
        "",
        "| Method | -ELBO | KL | MI | AU | re-enc. error "
        "| paper -ELBO | paper KL | paper MI | paper AU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, payload in rows.items():
        paper = TABLE1[name][2]
        if payload is None:
            ours = ["(not finished)", "", "", "", ""]
        else:
            r = payload["result"]
            ours = [_fmt(r[k], _DIGITS[k]) for k in COLUMNS] + [_fmt(r["reencode_error"], 3)]
        theirs = [_fmt(v, d) for v, d in zip(paper, (2, 2, 2, 0), strict=True)]
        lines.append(f"| {name} | " + " | ".join(ours + theirs) + " |")
    lines += ["", _paper_note(dataset)]
    return "\n".join(lines) + "\n"


def format_table2(rows: dict, *, dataset: str, steps: int | None, decoder: str = "he") -> str:
    """Markdown Table 2: AU for each latent size, ours beside the paper's."""
    head = " | ".join(f"AU (d={d})" for d in LATENTS)
    paper_head = " | ".join(f"paper (d={d})" for d in LATENTS)
    lines = [
        f"# NE-VAE Table 2 on {dataset} ({_budget(steps, decoder)})",
        "",
        f"| Method | {head} | {paper_head} |",
        "|---|" + "---:|" * (2 * len(LATENTS)),
    ]
    for name, by_latent in rows.items():
        ours = [
            "–" if by_latent.get(d) is None else _fmt(by_latent[d]["result"]["active_units"], 0)
            for d in LATENTS
        ]
        theirs = [str(TABLE2[name][1][d]) for d in LATENTS]
        lines.append(f"| {name} | " + " | ".join(ours + theirs) + " |")
    lines += ["", _paper_note(dataset)]
    return "\n".join(lines) + "\n"


def _paper_note(dataset: str) -> str:
    note = "Paper: NE-VAE, Omniglot, ResNet encoder + 13-layer PixelCNN, 100 epochs."
    if dataset != "omniglot":
        note += f" The paper has no {dataset} numbers: compare our rows with each other."
    return note


def collapse_tables(
    *,
    out: str,
    dataset: str = "fashion_mnist",
    steps: int | None = None,
    seed: int = 0,
    rows=DEFAULT_ROWS,
    tables=(1, 2),
    latents=LATENTS,
    smoke: bool = False,
    max_examples: int | None = None,
    iw_samples: int = 0,
    decoder: str = "he",
) -> dict:
    """Runs the selected rows (resuming) and writes the tables; returns all results."""
    for name in rows:
        if name not in TABLE1:
            raise InvalidValue(f"Unknown Table 1 row {name!r}; valid: {list(TABLE1)}.")
    for d in latents:
        if d not in LATENTS:
            raise InvalidValue(f"Table 2 latent sizes are {list(LATENTS)}; got {d}.")
    os.makedirs(out, exist_ok=True)
    results: dict = {}
    table1 = {name: None for name in rows} if 1 in tables else {}
    table2 = {name: {} for name in TABLE2} if 2 in tables else {}

    def write():
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        if table1:
            with open(os.path.join(out, "table1.md"), "w") as f:
                f.write(format_table1(table1, dataset=dataset, steps=steps, decoder=decoder))
        if table2:
            with open(os.path.join(out, "table2.md"), "w") as f:
                f.write(format_table2(table2, dataset=dataset, steps=steps, decoder=decoder))

    jobs = [(name, None, *TABLE1[name][:2]) for name in table1]
    jobs += [(name, d, TABLE2[name][0], f"latent={d}") for name in table2 for d in latents]
    # A config argument, so it names the workdirs too and the two settings never share a run.
    setting = "" if decoder == "he" else f"decoder={decoder}"
    for name, latent, config_name, arg in jobs:
        arg = ",".join(a for a in (arg, setting) if a)
        workdir = os.path.join(out, slug(config_name, arg))
        config = build_config(
            config_name, arg, dataset=dataset, steps=steps, seed=seed, smoke=smoke
        )
        payload = run(config, workdir, max_examples=max_examples, iw_samples=iw_samples, seed=seed)
        results[os.path.basename(workdir)] = payload
        if latent is None:
            table1[name] = payload
        else:
            table2[name][latent] = payload
        write()
    write()
    return results


def _define_flags():
    # Defined only when run as a script, so importing this module defines no global flags.
    flags.DEFINE_string("out", None, "Folder of the workdirs and tables.", required=True)
    flags.DEFINE_string("dataset", "fashion_mnist", "fashion_mnist, mnist or omniglot.")
    flags.DEFINE_integer("steps", None, "Shared budget (default: the configs' 100 epochs).")
    flags.DEFINE_integer("seed", 0, "Seed of every run and of the analysis.")
    flags.DEFINE_list("rows", list(DEFAULT_ROWS), "Table 1 rows ('all': every paper row).")
    flags.DEFINE_list("tables", ["1", "2"], "Which tables to produce.")
    flags.DEFINE_list("latents", [str(d) for d in LATENTS], "Table 2 latent sizes.")
    flags.DEFINE_bool("smoke", False, "Add ':smoke' to every config (a quick check).")
    flags.DEFINE_integer("max_examples", None, "Analyze only the first test examples.")
    flags.DEFINE_integer("iw_samples", 0, "K for the importance-sampled NLL (0: skip).")
    flags.DEFINE_enum("decoder", "he", ["he", "small"], "The collapse configs' decoder= setting.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.path.insert(0, ".")  # config files import configs.common
    f = flags.FLAGS
    rows = list(TABLE1) if f.rows == ["all"] else f.rows
    collapse_tables(
        out=f.out,
        dataset=f.dataset,
        steps=f.steps,
        seed=f.seed,
        rows=rows,
        tables=tuple(int(t) for t in f.tables),
        latents=tuple(int(d) for d in f.latents),
        smoke=f.smoke,
        max_examples=f.max_examples,
        iw_samples=f.iw_samples,
        decoder=f.decoder,
    )
    for name in ("table1.md", "table2.md"):
        path = os.path.join(f.out, name)
        if os.path.exists(path):
            print(open(path).read())


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
