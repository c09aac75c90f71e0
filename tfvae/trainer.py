"""Training loop: ``train_and_evaluate(config, workdir)``.

The workdir is the record and the resume point:

    workdir/config.json          the resolved config
    workdir/checkpoints/         model, every optimizer, step and random state
    workdir/train/, workdir/val/ TensorBoard logs (tags ``train/<term>``, ``val/<term>``)

Re-running the same command restores the latest checkpoint and continues from its step. The
input pipeline is deterministic by step (``tfvae.data.train_dataset``) and the model's random
state lives in its ``SeedGenerator`` variable, so a resumed run repeats exactly what an
uninterrupted run would have done.

Checkpoints are found by their files (``tfvae.experiment.checkpoint_numbers``): a run over a
workdir that holds any resumes from the newest that restores, skipping damaged ones with a
warning, and refuses to start when none restores; a new checkpoint is read back before older
ones are pruned (``tfvae.experiment.CheckpointStore``).

Nothing is written into the workdir until the whole config has been checked: the values
(``tfvae.config_checks.check_config``), the data (the training pipeline is built first) and,
when resuming, that only the fields in ``RESUMABLE`` differ from the workdir's ``config.json``.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tensorboard.plugins.hparams import api as hparams_api

from tfvae import collapse, distribute, metrics
from tfvae import data as data_lib
from tfvae import experiment as experiment_lib
from tfvae import workdir as workdir_lib
from tfvae.build import fast_bfloat16, resolve_jit_compile, resolve_mixed_precision
from tfvae.config_checks import check_config
from tfvae.errors import InvalidValue, TrainingStopped
from tfvae.images import tile_images


class NonFiniteLossError(FloatingPointError, TrainingStopped):
    """A loss term became NaN or infinite; training stopped before saving it."""


# What a resumed run may change: how long it runs, how often it logs, evaluates, draws images
# and saves, where the data files live and how the step is executed. Anything else (the model,
# the objective, the data's values, the optimizers, the batch size, the seed) would make the
# restored state and config.json disagree with what runs; a resumed run refuses it.
RESUMABLE = (
    "train.num_steps",
    "train.log_every",
    "train.eval_every",
    "train.val_batches",
    "train.image_every",
    "train.num_images",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.collapse_metrics",
    "train.jit_compile",
    "train.deterministic",
    "data.data_dir",
    "data.download",
    "data.path",
    "distribution.",
)


def image_grid(images: np.ndarray) -> np.ndarray:
    """[n, H, W, C] images as one [1, rows*H, cols*W, C] summary image, floor(sqrt(n)) rows."""
    cols = int(np.ceil(len(images) / int(np.floor(np.sqrt(len(images))))))
    return tile_images(images, cols, gap=0, background=0.0)[None]


class Experiment:
    """Training state for one workdir: data, model, optimizers, strategy, checkpoint manager
    and the compiled step functions.

    ``Experiment(config, workdir)`` restores the latest checkpoint if there is one. The model
    is built by ``tfvae.experiment.build`` (as everything that loads a trained model builds
    it), under the strategy of ``config.distribution`` (``tfvae.distribute``); this worker
    writes into ``write_dir``, the workdir itself for the chief.
    """

    def __init__(self, config, workdir: str, *, restore: bool = True):
        self.config, self.workdir = config, workdir
        experiment_lib.seed(config)
        self.strategy = distribute.make_strategy(config.distribution)
        self.write_dir = distribute.write_dir(workdir, self.strategy)
        self.data = data_lib.load(config.data)
        self.spec = experiment_lib.DataSpec.of(self.data)
        with self.strategy.scope():
            self.model, self.optimizers = experiment_lib.build(config, self.spec)
            self.checkpoint = experiment_lib.checkpoint(self.model, self.optimizers)
        # Every worker resumes from the chief's checkpoints (the newest that restores).
        self.restored_from = experiment_lib.restore(self.checkpoint, workdir) if restore else None
        self.manager = experiment_lib.CheckpointStore(
            self.checkpoint,
            os.path.join(self.write_dir, experiment_lib.CHECKPOINTS_DIR),
            keep=config.train.keep_checkpoints,
            latest=self.restored_from,
        )
        jit_compile = resolve_jit_compile(config.train.jit_compile)
        self.train_fn = self.model.make_step(
            lambda fn: self._replicated(fn, jit_compile), self._train_stream
        )
        self.test_fn = self._replicated(self.model.test_step, False)
        # Called in order after each validation with (experiment, results so far); each returns
        # more results to log.
        self.validation_hooks = []
        if config.train.collapse_metrics:
            self.validation_hooks.append(
                lambda exp, val: collapse.validation_metrics(exp, exp.config.train.val_batches)
            )
        if self.model.training_mode is not None:
            mode = self.model.training_mode
            self.validation_hooks.append(lambda exp, val: mode.end_of_validation(val))

    @property
    def distributed(self) -> bool:
        return self.strategy.num_replicas_in_sync > 1 or isinstance(
            self.strategy, tf.distribute.MultiWorkerMirroredStrategy
        )

    def _replicated(self, step_fn, jit_compile: bool):
        """A compiled step that runs on every replica and returns its outputs' replica means
        (the loss trackers, aggregated over replicas, are read with ``tracked``)."""
        # No autograph: the steps use explicit tf.while_loop / tf.cond, and converting every
        # layer's Python source took half of each trace (1.3-1.6 s of ~3 s for a dp config).
        if not self.distributed:
            return tf.function(step_fn, jit_compile=jit_compile, autograph=False)
        inner = tf.function(step_fn, jit_compile=True, autograph=False) if jit_compile else step_fn

        def replica_fn(batch):
            # Every replica returns the replicas' mean (an all-reduce in replica context:
            # ``strategy.reduce`` of a step's outputs fails inside tf.function under
            # MultiWorkerMirroredStrategy).
            out = inner(batch)
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, out)

        @tf.function(autograph=False)
        def run(batch):
            out = self.strategy.run(replica_fn, args=(batch,))
            return self.strategy.experimental_local_results(out)[0]

        return run

    def _train_stream(self, seed_offset: int, start: int):
        """Training batches as the step takes them (``Autoencoder.make_step``), from the
        training pipeline with seed ``config.seed + seed_offset``, from batch ``start``."""
        config = self.config
        ds = data_lib.train_dataset(
            self.data.train,
            batch_size=config.train.batch_size * self.model.batches_per_step,
            seed=config.seed + seed_offset,
            start_step=start,
            **data_lib.train_transforms(config.data),
        )
        return iter(self.dataset(ds))

    def dataset(self, ds: tf.data.Dataset):
        """Splits the global batches of ``ds`` across this experiment's replicas."""
        return distribute.distribute_dataset(self.strategy, ds)

    def tracked(self) -> dict:
        """The current value of every loss tracker, aggregated over replicas."""
        return {key: float(t.result()) for key, t in self.model.trackers.items()}

    @property
    def step(self) -> int:
        return int(self.model.step.numpy())


def _check_finite(logs: dict, step: int, last_checkpoint: str | None, totals=("loss",)):
    """Raises NonFiniteLossError naming every non-finite term, the root terms first.

    ``totals`` are the terms summed from the others (each phase's loss): when a root term
    such as ``kl`` is inf, the message says ``'kl' is inf (and so is 'loss')``.
    """
    bad = {key: value for key, value in logs.items() if not np.isfinite(value)}
    if not bad:
        return
    roots = [key for key in bad if key not in totals] or list(bad)
    derived = [key for key in bad if key not in roots]
    text = ", ".join(f"{key!r} is {bad[key]}" for key in roots)
    if derived:
        verb = "is" if len(derived) == 1 else "are"
        text += f" (and so {verb} {', '.join(repr(key) for key in derived)})"
    raise NonFiniteLossError(
        f"Non-finite loss at step {step}: {text}. Training stopped; the last good checkpoint "
        f"is {last_checkpoint or '(none yet)'}. Lower the learning rate, add gradient clipping "
        "(config.optimizers.<name>.clipnorm) or check the data scaling."
    )


def _check_finite_weights(exp: "Experiment", step: int):
    """Refuses to checkpoint non-finite weights: an update on a finite loss can still produce
    them (an exploding gradient), and the last good checkpoint must stay the latest."""
    variables = list(exp.model.variables)
    for optimizer in exp.optimizers.values():
        variables += list(optimizer.variables)
    bad = [
        v.path
        for v in variables
        if keras.backend.is_float_dtype(v.dtype)
        and not np.all(np.isfinite(np.asarray(v.numpy(), np.float32)))
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteLossError(
            f"Non-finite weights at step {step} ({shown}), not saved. Training stopped; the last "
            f"good checkpoint is {exp.manager.latest_checkpoint or '(none yet)'}. Lower the "
            "learning rate or add gradient clipping (config.optimizers.<name>.clipnorm)."
        )


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _resumable(field: str) -> bool:
    return any(field == r or (r.endswith(".") and field.startswith(r)) for r in RESUMABLE)


def _check_workdir(config, workdir: str):
    """Refuses a workdir whose checkpoints belong to another run.

    Another objective is refused, and so is a change of any field outside ``RESUMABLE``: the
    restored model and optimizers would not be what the new value says (a new learning rate,
    for one, was ignored by the restored optimizer). A config.json without checkpoints holds
    nothing to resume (a run that failed before its first checkpoint) and does not block the
    workdir.
    """
    if not workdir:
        raise InvalidValue("--workdir is empty: give the folder to train in.")
    path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
    if not os.path.exists(path) or experiment_lib.latest_checkpoint(workdir) is None:
        return
    stored = workdir_lib.load_config(workdir)
    if stored.objective != config.objective:
        raise InvalidValue(
            f"Workdir {workdir} holds a {stored.objective!r} run; this config trains "
            f"{config.objective!r}. Use another --workdir."
        )
    old = _flatten(json.loads(stored.to_json_best_effort()))
    new = _flatten(json.loads(config.to_json_best_effort()))
    missing = "(absent)"
    changed = [
        f"{field} is {old.get(field, missing)!r} in {path}, {new.get(field, missing)!r} here"
        for field in sorted(set(old) | set(new))
        if old.get(field, missing) != new.get(field, missing) and not _resumable(field)
    ]
    if changed:
        raise InvalidValue(
            f"A resumed run cannot change {'; '.join(changed)}. It may change only "
            f"{', '.join(r.rstrip('.') for r in RESUMABLE)}. Drop the override, or train in "
            "another --workdir."
        )


def _write_config(config, workdir: str):
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    # Write and rename: under multi-worker every worker runs this, and a worker reading the
    # file while another rewrites it must see a whole file (it read a truncated one before).
    scratch = f"{path}.{os.getpid()}.tmp"
    with open(scratch, "w") as f:
        json.dump(current, f, indent=2, sort_keys=True)
    os.replace(scratch, path)


def evaluate_validation(exp: Experiment, num_batches: int | None) -> dict:
    """Mean loss terms over the validation split (all of it when num_batches is None)."""
    model, cfg = exp.model, exp.config
    for tracker in model.metrics:
        tracker.reset_state()
    batch = cfg.train.batch_size * model.batches_per_step
    ds = data_lib.eval_dataset(exp.data.val, batch_size=batch, binarize=cfg.data.binarize)
    ds = ds.filter(lambda x: tf.shape(x)[0] == batch)  # multi-batch objectives split evenly
    if num_batches is not None:
        ds = ds.take(num_batches)
    for x in exp.dataset(ds):
        exp.test_fn(x)
    result = exp.tracked()
    for tracker in model.metrics:
        tracker.reset_state()
    return result


def _write_vector_summaries(model):
    """Per-dimension values a model offers as ``vector_summaries() -> {name: [d]}`` (MaskAAE: its
    mask alpha): a histogram for TensorBoard, and the exact values as a tensor summary
    ``train/<name>_values`` that tools read back for plots (``tools.mask_trace``)."""
    if not hasattr(model, "vector_summaries"):
        return
    for key, value in model.vector_summaries().items():
        tf.summary.histogram(f"train/{key}", value)
        tf.summary.write(f"train/{key}_values", value)


def _write_training_summaries(exp: Experiment, steps: int, seconds: float):
    """Per optimizer its learning rate and mean gradient norm before clipping (``train/
    learning_rate/<name>``, ``train/grad_norm/<name>``); ``train/steps_per_second`` and
    ``train/examples_per_second`` over ``steps`` steps that took ``seconds`` (training steps
    and their input only: validation, images and checkpoints are not counted); the KL annealing
    weight when annealing is on. Call inside a writer's ``as_default``."""
    model = exp.model

    def value(v) -> float:  # a Keras variable may wrap a tf.distribute MirroredVariable
        return float(tf.convert_to_tensor(v).numpy())

    for name, optimizer in exp.optimizers.items():
        tf.summary.scalar(f"train/learning_rate/{name}", value(optimizer.learning_rate))
        tracker = model.grad_norms[name]
        if value(tracker.count) > 0:
            tf.summary.scalar(f"train/grad_norm/{name}", value(tracker.result()))
    if steps > 0 and seconds > 0:
        examples = exp.config.train.batch_size * model.batches_per_step
        tf.summary.scalar("train/steps_per_second", steps / seconds)
        tf.summary.scalar("train/examples_per_second", steps * examples / seconds)
    if model.kl_warmup_steps > 0:
        tf.summary.scalar("train/kl_weight", value(model.kl_weight()))


def latent_statistics(exp: Experiment, num_batches: int | None) -> dict:
    """Encodings of the validation split's first ``num_batches`` batches: ``z_mean`` [N, d],
    ``z_log_var`` [N, d] (None for deterministic encoders), ``kl_per_dim`` [d] (the mean
    KL(q(z_j|x) || N(0, 1)), for the standard-normal prior only: the decoupled prior's KL does
    not split over dimensions; else None) and ``active_units`` (activity > 0.01)."""
    cfg, model = exp.config, exp.model
    ds = data_lib.eval_dataset(
        exp.data.val, batch_size=cfg.train.batch_size, binarize=cfg.data.binarize
    )
    if num_batches is not None:
        ds = ds.take(num_batches)
    means, log_vars = [], []
    for x in ds:
        z_mean, z_log_var = model.encode(x)
        means.append(z_mean.numpy())  # [B, d]
        if z_log_var is not None:
            log_vars.append(z_log_var.numpy())  # [B, d]
    z_mean = np.concatenate(means)
    z_log_var = np.concatenate(log_vars) if log_vars else None
    kl = None
    if z_log_var is not None and not model.decoupled:
        kl = np.mean(0.5 * (z_mean**2 + np.exp(z_log_var) - 1.0 - z_log_var), axis=0)  # [d]
    return {
        "z_mean": z_mean,
        "z_log_var": z_log_var,
        "kl_per_dim": kl,
        "active_units": metrics.active_units(z_mean),
    }


def _write_latent_histograms(stats: dict):
    """``val/z_mean``, ``val/z_log_var``, ``val/kl_per_dim`` histograms (those that apply)."""
    for key in ("z_mean", "z_log_var", "kl_per_dim"):
        if stats[key] is not None:
            tf.summary.histogram(f"val/{key}", stats[key])


def hparams_of(config) -> dict:
    """What the HParams dashboard compares runs by: objective, prior, dataset, latent size,
    seed and the objective's hyperparameters (``hparams.<name>``)."""
    out = {
        "objective": config.objective,
        "prior": config.model.prior.name,
        "dataset": config.data.name,
        "latent_dim": int(config.model.latent_dim),
        "seed": int(config.seed),
    }
    for key, value in sorted(dict(config.hparams).items()):
        if value is None or isinstance(value, (bool, int, float, str)):
            out[f"hparams.{key}"] = "None" if value is None else value
        else:
            out[f"hparams.{key}"] = str(value)
    return out


def _write_hparams(config, write_dir: str):
    """The run's HParams session in ``write_dir`` itself, so the dashboard finds its metrics
    in the subfolders: ``val/<term>`` (the last is the final validation) and ``eval/<metric>``
    (``tfvae.evaluate``)."""
    writer = tf.summary.create_file_writer(write_dir)
    with writer.as_default():
        hparams_api.hparams(hparams_of(config), trial_id=os.path.basename(write_dir.rstrip("/")))
    writer.close()


def _write_images(exp: Experiment, writer, step: int):
    if exp.data.kind != "image":
        return
    n = exp.config.train.num_images
    x = tf.convert_to_tensor(data_lib.to_float(exp.data.val[:n]))
    with writer.as_default(step=step):
        # A fixed seed: the same latent points every time, and no draw from the training RNG.
        samples = exp.model.generate(n, seed=exp.config.seed).numpy()
        tf.summary.image("samples", image_grid(samples))
        recon = exp.model.reconstruct(x).numpy()
        tf.summary.image("reconstructions", image_grid(np.concatenate([x.numpy(), recon], 2)))


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains ``config`` in ``workdir``, resuming from its newest checkpoint that restores.

    Returns the final validation loss terms.

    Raises:
      InvalidValue: a config value no run can use, or one a resumed run cannot change; the
        workdir is left as it was.
      UserError: the workdir holds checkpoints and none restores (left as it was).
      NonFiniteLossError: a loss or a weight became NaN or infinite (the last good checkpoint
        stays the newest).
    """
    check_config(config)
    _check_workdir(config, workdir)
    # Everything that can refuse the config runs before anything is written: the model is
    # built, the data loaded, the checkpoint restored and the training pipeline made (which
    # checks the batch size against the data), so a refused run leaves the workdir as it was.
    exp = Experiment(config, workdir)
    model, cfg = exp.model, config.train
    batch = cfg.batch_size * model.batches_per_step
    if batch > len(exp.data.train):
        per_step = (
            f" x {model.batches_per_step} batches per step" if batch != cfg.batch_size else ""
        )
        raise InvalidValue(
            f"--config.train.batch_size={cfg.batch_size} is invalid: it must be at most the "
            f"{len(exp.data.train)} training examples of {config.data.name!r}{per_step}."
        )
    ds = data_lib.train_dataset(
        exp.data.train,
        batch_size=batch,
        seed=config.seed,
        start_step=exp.step,
        **data_lib.train_transforms(config.data),
    )
    _write_config(config, workdir)
    # What tfvae.experiment.load needs to rebuild the model without loading the data set.
    experiment_lib.write_data_spec(workdir, exp.spec)
    for name in experiment_lib.remove_stale_temp(exp.manager.directory):
        logging.info("Removed %s, left by a killed checkpoint write.", name)
    totals = {phase.loss_key for phase in model.phases()}
    if config.train.mixed_precision == "auto":
        why = fast_bfloat16()
        logging.info(
            "train.mixed_precision=auto: %s (%s).",
            resolve_mixed_precision("auto"),
            f"bfloat16 is fast on {why}" if why else "no fast bfloat16 here",
        )
    if exp.restored_from:
        logging.info("Resumed from %s at step %d.", exp.restored_from, exp.step)
    # Non-chief workers write logs into their scratch folder, deleted at the end.
    writers = {
        split: tf.summary.create_file_writer(os.path.join(exp.write_dir, split))
        for split in ("train", "val")
    }
    if exp.restored_from is None:
        _write_hparams(config, exp.write_dir)
    progbar = keras.utils.Progbar(cfg.num_steps, stateful_metrics=list(model.terms))
    step = exp.step
    it = iter(exp.dataset(ds))
    # Time in training steps since the last log (steps/s, examples/s).
    train_seconds, logged_step = 0.0, step
    last_val = None  # the loss terms of the last step's validation
    while step < cfg.num_steps:
        start = time.perf_counter()
        out = exp.train_fn(next(it))
        train_seconds += time.perf_counter() - start
        step += 1
        last = step == cfg.num_steps
        if step % cfg.log_every == 0 or last:
            values = exp.tracked()
            # Step outputs that are not loss trackers (aggressive mode's encoder_steps).
            values.update({k: float(v) for k, v in out.items() if k not in values})
            _check_finite(values, step, exp.manager.latest_checkpoint, totals)
            with writers["train"].as_default(step=step):
                for key, value in values.items():
                    tf.summary.scalar(f"train/{key}", value)
                _write_vector_summaries(model)
                _write_training_summaries(exp, step - logged_step, train_seconds)
            train_seconds, logged_step = 0.0, step
            progbar.update(step, list(values.items()))
            for tracker in model.metrics:
                tracker.reset_state()
        if step % cfg.eval_every == 0 or last:
            val = evaluate_validation(exp, cfg.val_batches)
            if last:
                last_val = dict(val)
            for hook in exp.validation_hooks:
                val.update(hook(exp, val))
            stats = latent_statistics(exp, cfg.val_batches)
            val.setdefault("active_units", float(stats["active_units"]))
            with writers["val"].as_default(step=step):
                for key, value in val.items():
                    tf.summary.scalar(f"val/{key}", value)
                _write_latent_histograms(stats)
        if step % cfg.image_every == 0 or last:
            _write_images(exp, writers["val"], step)
        if step % cfg.checkpoint_every == 0 or last:
            # Trackers hold every step since the last log (empty right after one, which then
            # checked them).
            _check_finite(exp.tracked(), step, exp.manager.latest_checkpoint, totals)
            _check_finite_weights(exp, step)
            exp.manager.save(checkpoint_number=step)
    for writer in writers.values():
        writer.flush()
    # The last step's validation is the final one: the same weights, and validation draws no
    # training randomness (``test_step``). A run resumed at its last step has none yet.
    final = last_val if last_val is not None else evaluate_validation(exp, cfg.val_batches)
    if distribute.is_chief(exp.strategy):
        with open(os.path.join(workdir, "train_metrics.json"), "w") as f:
            json.dump({"step": step, "val": final}, f, indent=2)
    distribute.cleanup(exp.write_dir, workdir)
    return final
