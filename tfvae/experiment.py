"""A model and its optimizers from a config and the data's shape; a workdir's checkpoint into them.

Below the trainer, evaluation, export and the tools: everything that needs a trained model loads
it here, without the dataset (unless it asks for ``exp.data``), a distribution strategy or a
compiled train function.

    exp = load("runs/dpvae")          # latest checkpoint of a workdir
    exp.model, exp.optimizers, exp.step, exp.config, exp.spec.shape
    exp.data                          # the dataset, loaded on first use (evaluation needs it)

    model, optimizers = build(config, DataSpec(shape=(28, 28, 1), num_train=55_000))

The data's shape and size are recorded in the workdir (``data_spec.json``, written by the
trainer next to ``config.json``), so export and every other reader build the model without
loading the data set.
"""

import dataclasses
import json
import os
import re
import shutil
import sys

import keras
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import workdir as workdir_lib
from tfvae.aggressive import AggressiveTraining
from tfvae.build import build_model, build_optimizers
from tfvae.errors import UserError

DATA_SPEC_FILE = "data_spec.json"
CHECKPOINTS_DIR = "checkpoints"
# ``ckpt-N.index`` and ``ckpt-N.data-K-of-M``: a checkpoint is found by its files, never only by
# the ``checkpoint`` state file, which a kill or an editor can lose or damage.
_CHECKPOINT_FILE = re.compile(r"^ckpt-(\d+)\.(?:index|data-\d+-of-\d+)$")
# What a checkpoint write killed half-way leaves behind (TensorFlow's sharded-save scratch).
_TEMP_DIR = re.compile(r"^ckpt-(\d+)_temp$")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What building a model needs to know of its data.

    Attributes:
      shape: one example, e.g. ``(28, 28, 1)`` or ``(2,)``.
      num_train: training examples (the model's ``dataset_size``, for minibatch estimators).
      kind: ``"image"`` or ``"vector"``.
    """

    shape: tuple[int, ...]
    num_train: int
    kind: str = "image"

    @classmethod
    def of(cls, splits: data_lib.DataSplits) -> "DataSpec":
        return cls(tuple(int(s) for s in splits.shape), len(splits.train), splits.kind)


def write_data_spec(workdir: str, spec: DataSpec) -> None:
    """Records ``spec`` in ``<workdir>/data_spec.json`` (write and rename: workers may race)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, DATA_SPEC_FILE)
    scratch = f"{path}.{os.getpid()}.tmp"
    with open(scratch, "w") as f:
        json.dump(dataclasses.asdict(spec), f, indent=2)
    os.replace(scratch, path)


def read_data_spec(workdir: str, config) -> DataSpec:
    """The data spec the trainer recorded in ``workdir``.

    A workdir trained before the trainer recorded it has none: the data set is loaded once to
    measure it and the spec written, so later loads skip the data set.
    """
    path = os.path.join(workdir, DATA_SPEC_FILE)
    if not os.path.exists(path):
        spec = DataSpec.of(data_lib.load(config.data))
        write_data_spec(workdir, spec)
        return spec
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return DataSpec(tuple(saved["shape"]), int(saved["num_train"]), saved["kind"])
    except (ValueError, TypeError, LookupError) as error:
        raise UserError(
            f"{path} is damaged ({_reason(error)}): delete it, and the next load measures the "
            "data set again and rewrites it."
        ) from None


def seed(config) -> None:
    """The random state every build starts from: ``config.seed``, and op determinism when
    ``config.train.deterministic``."""
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)


def build(config, spec: DataSpec):
    """The model of ``config`` with every variable created, and its optimizers.

    Call it inside a strategy's scope to place the variables there. Returns
    ``(model, optimizers)``; ``model.compile(optimizers)`` has run. With
    ``config.train.aggressive`` the model trains in He et al.'s aggressive mode
    (``tfvae.aggressive``), whose state and two optimizers are part of the model and of
    ``optimizers``.
    """
    model = build_model(config, spec.shape, spec.num_train)
    model.compile(build_optimizers(config, model))
    if config.train.aggressive:
        AggressiveTraining.attach(model, config)
    model.build_all(tf.zeros((1, *spec.shape), tf.float32))
    return model, dict(model.optimizers)


def checkpoint(model, optimizers: dict) -> tf.train.Checkpoint:
    """What a checkpoint holds: the model (weights, step, random state) and every optimizer."""
    return tf.train.Checkpoint(model=model, **{f"optimizer_{k}": v for k, v in optimizers.items()})


def checkpoint_numbers(directory: str) -> list[int]:
    """The steps N of every ``ckpt-N`` with a file in ``directory``, newest first.

    Read from the files themselves: a missing or garbled ``checkpoint`` state file hides no
    checkpoint, and a checkpoint missing a file is still listed (restoring it then fails and
    says why). Not listed: a write that was killed before its ``.index`` (``_incomplete``).
    """
    if not os.path.isdir(directory):
        return []
    found = {int(m[1]) for m in map(_CHECKPOINT_FILE.match, os.listdir(directory)) if m}
    return sorted(found - _incomplete(directory), reverse=True)


def _incomplete(directory: str) -> set[int]:
    """The N of writes killed half-way: their ``ckpt-N_temp/`` is still there and ``ckpt-N.index``
    was never written (TensorFlow renames the data files, then writes the index, then deletes
    the scratch folder). Not a checkpoint that was damaged: one that never was."""
    names = os.listdir(directory)
    temps = {int(m[1]) for m in map(_TEMP_DIR.match, names) if m}
    return {n for n in temps if f"ckpt-{n}.index" not in names}


def checkpoint_path(directory: str, number: int) -> str:
    return os.path.join(directory, f"ckpt-{number}")


def latest_checkpoint(workdir: str) -> str | None:
    """The newest ``ckpt-N`` of a workdir by its files (readable or not), or None."""
    directory = os.path.join(workdir, CHECKPOINTS_DIR)
    numbers = checkpoint_numbers(directory)
    return checkpoint_path(directory, numbers[0]) if numbers else None


def verify(path: str) -> None:
    """Reads every tensor of checkpoint ``path``: raises if a file is missing, short or fails
    its checksum (TensorFlow checks each tensor's CRC32C as it reads it)."""
    reader = tf.train.load_checkpoint(path)
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)


def _reason(error: BaseException) -> str:
    """The first line of an error, short enough for a one-line message."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else type(error).__name__
    return text if len(text) <= 160 else text[:160] + "..."


# What a damaged or foreign checkpoint raises on reading or restoring: TensorFlow's I/O and
# format errors, and the object-graph mismatches of ``assert_existing_objects_matched``.
_UNREADABLE = (tf.errors.OpError, ValueError, AssertionError, LookupError, TypeError, OSError)


def restore(ckpt: tf.train.Checkpoint, workdir: str) -> str | None:
    """Restores the workdir's newest checkpoint that reads back whole into ``ckpt``.

    A checkpoint that fails (a missing ``.index`` or data file, a truncated, emptied or
    bit-flipped file) is skipped and the next older one tried; one line on stderr names those
    skipped, why, and the one restored. Nothing is written or deleted.

    Returns:
      The restored checkpoint's path, or None when the workdir has no checkpoint file at all.

    Raises:
      UserError: the workdir holds checkpoints and none of them restores.
    """
    directory = os.path.join(workdir, CHECKPOINTS_DIR)
    skipped = []
    for number in checkpoint_numbers(directory):
        path = checkpoint_path(directory, number)
        try:
            verify(path)
            ckpt.restore(path).assert_existing_objects_matched()
        except _UNREADABLE as error:
            skipped.append(f"ckpt-{number} ({_reason(error)})")
            continue
        if skipped:
            print(
                f"warning: skipped {'; '.join(skipped)} in {directory}; restored {path}",
                file=sys.stderr,
                flush=True,
            )
        return path
    if skipped:
        raise UserError(
            f"No checkpoint in {directory} restores: {'; '.join(skipped)}. Nothing was changed; "
            "move the damaged files out of the folder, or train in another --workdir."
        )
    return None


def remove_stale_temp(directory: str) -> list[str]:
    """Deletes what killed checkpoint writes left: ``ckpt-N_temp/`` folders and the data files
    of a write that never got its index (``_incomplete``). Returns the names deleted."""
    if not os.path.isdir(directory):
        return []
    incomplete = _incomplete(directory)
    stale = [
        name
        for name in sorted(os.listdir(directory))
        if _TEMP_DIR.match(name)
        or ((m := _CHECKPOINT_FILE.match(name)) and int(m[1]) in incomplete)
    ]
    for name in stale:
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
    return stale


def _write_state(directory: str, latest: int, kept: list[int]) -> None:
    """The ``checkpoint`` state file as CheckpointManager writes it (names relative to the
    folder, so a copied workdir stays readable), written and renamed: never half a file."""
    lines = [f'model_checkpoint_path: "ckpt-{latest}"']
    lines += [f'all_model_checkpoint_paths: "ckpt-{n}"' for n in sorted(kept)]
    path = os.path.join(directory, "checkpoint")
    scratch = f"{path}.{os.getpid()}.tmp"
    with open(scratch, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(scratch, path)


class CheckpointStore:
    """Writes checkpoints ``ckpt-N`` and prunes old ones only once a new one is verified.

    ``tf.train.CheckpointManager`` trusts its ``checkpoint`` state file: deleted or garbled, the
    manager forgot every checkpoint, and a fresh run then pruned the intact ones. Here the
    files are the record: ``save`` writes ``ckpt-N``, reads every tensor back, then rewrites the
    state file (for ``tf.train.latest_checkpoint`` and TensorBoard) and only then deletes what
    is beyond the newest ``keep``.

    Args:
      ckpt: what to save (``checkpoint(model, optimizers)``).
      directory: this worker's checkpoint folder.
      keep: how many checkpoints to keep (the newest).
      latest: the checkpoint the run started from (``restore``'s result), or None.
    """

    def __init__(self, ckpt: tf.train.Checkpoint, directory: str, *, keep: int, latest=None):
        self.checkpoint, self.directory, self.keep = ckpt, directory, keep
        self.latest_checkpoint = latest

    def save(self, checkpoint_number: int) -> str:
        # Counted as CheckpointManager counts: restoring creates the counter, so every
        # checkpoint holds it (an older one written by the manager does too).
        self.checkpoint.save_counter.assign_add(1)
        path = self.checkpoint.write(checkpoint_path(self.directory, checkpoint_number))
        verify(path)
        numbers = checkpoint_numbers(self.directory)
        kept = [n for n in numbers if n <= checkpoint_number][: self.keep]
        _write_state(self.directory, checkpoint_number, kept)
        self.latest_checkpoint = path
        # Newer numbers than this save are checkpoints the run could not restore (it resumed
        # below them); they are replaced now that a verified one is written.
        for number in numbers:
            if number not in kept:
                self._delete(number)
        return path

    def _delete(self, number: int) -> None:
        prefix = f"ckpt-{number}."
        for name in os.listdir(self.directory):
            if name.startswith(prefix) and _CHECKPOINT_FILE.match(name):
                os.remove(os.path.join(self.directory, name))


class Experiment:
    """A workdir's model and optimizers, restored from its latest checkpoint.

    Attributes:
      config, workdir, spec: the workdir's config, folder and ``DataSpec``.
      model, optimizers: built as the trainer builds them, weights restored.
      restored_from: the checkpoint path, or None for an untrained model.
      step: the training step of the restored weights.
      data: the dataset (``tfvae.data.DataSplits``), loaded on first access.
    """

    def __init__(self, config, workdir: str, spec: DataSpec):
        self.config, self.workdir, self.spec = config, workdir, spec
        seed(config)
        self.model, self.optimizers = build(config, spec)
        self.checkpoint = checkpoint(self.model, self.optimizers)
        self.restored_from = restore(self.checkpoint, workdir)
        self._data = None

    @property
    def step(self) -> int:
        return int(self.model.step.numpy())

    @property
    def data(self) -> data_lib.DataSplits:
        if self._data is None:
            self._data = data_lib.load(self.config.data)
        return self._data


def load(workdir: str, *, require_checkpoint: bool = True) -> Experiment:
    """The workdir's trained model: its config, data spec and latest checkpoint.

    Args:
      workdir: a training workdir.
      require_checkpoint: fail when the workdir has no checkpoint yet (an untrained model is
        almost never what the caller wants).

    Raises:
      FileNotFoundError: no config.json, or no checkpoint while ``require_checkpoint``.
      UserError: config.json lacks a field this version of tfvae builds from (a workdir
        written by an older version: config.json is read as written, never filled in).
    """
    config = workdir_lib.load_config(workdir)
    if require_checkpoint and latest_checkpoint(workdir) is None:
        # Said for the command line (every command loads workdirs through here); Python
        # callers wanting the untrained model pass require_checkpoint=False.
        raise FileNotFoundError(
            f"No checkpoint in {os.path.join(workdir, CHECKPOINTS_DIR)}: there is no trained "
            "model. Train it first: python -m tfvae.train "
            f"--config=configs/<name>.py --workdir={workdir} (rerunning the command that "
            "created the workdir resumes its training)."
        )
    try:
        return Experiment(config, workdir, read_data_spec(workdir, config))
    except AttributeError as error:
        # ml_collections reports a missing field as AttributeError(KeyError(name)).
        missing = error.args[0] if error.args else None
        if not isinstance(missing, KeyError):
            raise
        raise UserError(
            f"{os.path.join(workdir, workdir_lib.CONFIG_FILE)} has no field {missing.args[0]}, "
            "which this version of tfvae builds the model from: the workdir was written by an "
            "older version. Train it again with this one (python -m tfvae.train "
            "--config=configs/<name>.py --workdir=<new folder>)."
        ) from error
