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

import keras
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import workdir as workdir_lib
from tfvae.build import build_model, build_optimizers

DATA_SPEC_FILE = "data_spec.json"
CHECKPOINTS_DIR = "checkpoints"


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
    with open(path) as f:
        saved = json.load(f)
    return DataSpec(tuple(saved["shape"]), int(saved["num_train"]), saved["kind"])


def seed(config) -> None:
    """The random state every build starts from: ``config.seed``, and op determinism when
    ``config.train.deterministic``."""
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)


def build(config, spec: DataSpec):
    """The model of ``config`` with every variable created, and its optimizers.

    Call it inside a strategy's scope to place the variables there. Returns
    ``(model, optimizers)``; ``model.compile(optimizers)`` has run.
    """
    model = build_model(config, spec.shape, spec.num_train)
    optimizers = build_optimizers(config, model)
    model.compile(optimizers)
    model.build_all(tf.zeros((1, *spec.shape), tf.float32))
    return model, optimizers


def checkpoint(model, optimizers: dict) -> tf.train.Checkpoint:
    """What a checkpoint holds: the model (weights, step, random state) and every optimizer."""
    return tf.train.Checkpoint(model=model, **{f"optimizer_{k}": v for k, v in optimizers.items()})


def latest_checkpoint(workdir: str) -> str | None:
    return tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINTS_DIR))


def restore(ckpt: tf.train.Checkpoint, workdir: str) -> str | None:
    """Restores the workdir's latest checkpoint into ``ckpt``; its path, or None if none."""
    latest = latest_checkpoint(workdir)
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
    return latest


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
    return Experiment(config, workdir, read_data_spec(workdir, config))
