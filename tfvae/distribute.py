"""Training across devices and hosts with TensorFlow's own distribution strategies.

``config.distribution.name`` picks a strategy from ``STRATEGIES``:

- ``default``: one device (``tf.distribute.get_strategy()``);
- ``mirrored``: synchronous data parallelism over local devices (GPUs, or logical CPUs in
  tests); ``config.distribution.devices`` lists them (None: every local GPU, else the CPU);
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` across hosts, configured by ``TF_CONFIG``;
- ``tpu``: ``TPUStrategy`` on ``config.distribution.tpu`` (a TPU name or address).

The global batch ``config.train.batch_size`` is split across replicas in order, so replica r
of R sees rows [r B/R, (r+1) B/R) of the batch a single device would see. Each replica averages
its loss over its rows and the gradient is divided by R before the optimizer's all-reduce sum,
so per-example objectives follow the one-device run with the same global batch; the posterior
noise is drawn for the whole global batch and sliced per replica (``tfvae.losses.
reparameterize``), so the draws match too. Batch-level estimators (MMD, minibatch TC, FactorVAE's
permutation, batch normalization statistics) see only their replica's rows, as in any
data-parallel implementation.

Keras 3's ``fit`` breaks under the multi-worker strategy (keras issue 20585); tfvae's trainer is
a custom loop over the same ``train_step`` and never calls ``fit``. The chief writes checkpoints
and TensorBoard logs into the workdir; other workers write theirs into a scratch folder that is
deleted after each save, and every worker restores from the chief's checkpoints.
"""

import json
import os
import shutil

import tensorflow as tf

from tfvae.errors import InvalidValue
from tfvae.registry import lookup


def _default(cfg) -> tf.distribute.Strategy:
    return tf.distribute.get_strategy()


def _mirrored(cfg) -> tf.distribute.Strategy:
    devices = list(cfg.devices) if cfg.devices else None
    return tf.distribute.MirroredStrategy(devices=devices)


def _multi_worker(cfg) -> tf.distribute.Strategy:
    if "TF_CONFIG" not in os.environ:
        raise InvalidValue(
            "distribution 'multi_worker' needs the TF_CONFIG environment variable (cluster and "
            'task, e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": '
            '{"type": "worker", "index": 0}}) on every worker.'
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _tpu(cfg) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as e:
        raise InvalidValue(
            f"No TPU found for distribution 'tpu' (config.distribution.tpu={cfg.tpu!r}): {e}"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


STRATEGIES = {
    "default": _default,
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
    "tpu": _tpu,
}


def make_strategy(cfg) -> tf.distribute.Strategy:
    """The strategy named by ``cfg.name`` (``config.distribution``)."""
    return lookup(STRATEGIES, cfg.name, "distribution strategy")(cfg)


def task() -> tuple[str, int]:
    """(task type, index) from TF_CONFIG; ("chief", 0) without one."""
    spec = json.loads(os.environ.get("TF_CONFIG", "{}"))
    t = spec.get("task", {})
    return t.get("type", "chief"), int(t.get("index", 0))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The chief writes checkpoints and logs: worker 0 when there is no chief task."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    kind, index = task()
    spec = json.loads(os.environ.get("TF_CONFIG", "{}"))
    has_chief = "chief" in spec.get("cluster", {})
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def write_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this worker writes: the workdir for the chief, a scratch folder otherwise."""
    if is_chief(strategy):
        return workdir
    kind, index = task()
    return os.path.join(workdir, ".workers", f"{kind}-{index}")


def cleanup(path: str, workdir: str):
    """Deletes a non-chief worker's scratch folder (never the workdir), and ``.workers`` once
    the last one is gone."""
    if os.path.abspath(path) != os.path.abspath(workdir):
        shutil.rmtree(path, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:  # another worker's folder is still there
            pass


def distribute_dataset(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """Splits each global batch of ``dataset`` across replicas, in order."""
    if strategy.num_replicas_in_sync == 1 and not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ):
        return dataset
    options = tf.data.Options()
    # In-memory data has no files to shard: every worker builds the same global batches and
    # tf.distribute hands each replica its slice.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))
