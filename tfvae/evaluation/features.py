"""FID feature networks: Inception-v3 pool3 from a weights file, raw vectors for vector data, or
a classifier trained on the data set's labels and cached under a key of data set and shape."""

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfvae import data as data_lib
from tfvae.errors import InvalidValue
from tfvae.evaluation.options import EvalOptions, MetricUndefined

# Bumped whenever the classifier's architecture or training changes, so old caches are not
# silently mixed with new ones.
CLASSIFIER_VERSION = 1


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class FeatureNetwork:
    """Images ``[N, H, W, C]`` in [0, 1] (or vectors) -> features ``[N, F]``.

    Attributes:
      identity: JSON-serializable description written into every report (name, file, hash).
      fn: the feature function on one batch.
    """

    identity: dict
    fn: Callable[[np.ndarray], np.ndarray]

    def features(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        return np.concatenate(
            [self.fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)], axis=0
        )


def feature_cache_key(dataset: str, shape: Sequence[int]) -> str:
    """``fashion_mnist_28x28x1``: one cached classifier per data set and image shape."""
    return f"{dataset}_{'x'.join(str(int(s)) for s in shape)}"


def classifier_model(shape: Sequence[int], num_classes: int) -> keras.Model:
    """The FID feature classifier: 4 ReLU convs (32-32-64-64, two of stride 2), Dense(128)
    named ``features`` (the FID features), Dense(num_classes) logits."""
    return keras.Sequential(
        [
            keras.Input(tuple(shape)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu", name="features"),
            keras.layers.Dense(num_classes, name="logits"),
        ],
        name="fid_classifier",
    )


def _scale_images(x, y):
    return data_lib.to_float(x), y


def train_feature_classifier(
    splits: data_lib.DataSplits, *, steps: int, seed: int, batch_size: int = 64
) -> tuple[keras.Model, float]:
    """Trains ``classifier_model`` on the training labels; returns it and its test accuracy."""
    if splits.train_labels is None:
        raise MetricUndefined(
            "the data set has no labels to train a FID classifier on; pass inception_weights."
        )
    keras.utils.set_random_seed(seed)
    num_classes = int(max(splits.train_labels.max(), splits.test_labels.max())) + 1
    model = classifier_model(splits.shape, num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    if splits.factors is not None:  # a lazy split (tfvae.factors): rendered per batch
        n, labels = len(splits.train), tf.constant(splits.train_labels)
        ds = tf.data.Dataset.random(seed=seed).map(lambda r: r % n).batch(batch_size)
        ds = ds.map(lambda i: (splits.factors.gather(i), tf.gather(labels, i)))
    else:
        ds = tf.data.Dataset.from_tensor_slices((splits.train, splits.train_labels))
        ds = ds.shuffle(len(splits.train), seed=seed).repeat().batch(batch_size)
    ds = data_lib.without_autotune_model(ds.map(_scale_images).prefetch(tf.data.AUTOTUNE))
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    test = tf.data.Dataset.from_tensor_slices((splits.test, splits.test_labels)).batch(500)
    test = data_lib.without_autotune_model(test.map(_scale_images))
    _, accuracy = model.evaluate(test, verbose=0)
    return model, float(accuracy)


def _classifier_features(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    extractor = keras.Model(model.inputs, model.get_layer("features").output)

    @tf.function(reduce_retracing=True, autograph=False)
    def call(x):
        return extractor(x, training=False)

    def features(x: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(x, tf.float32)).numpy()

    return features


def cached_classifier(
    splits: data_lib.DataSplits, dataset: str, *, cache_dir: str, steps: int, seed: int = 0
) -> FeatureNetwork:
    """The data set's FID classifier from ``cache_dir``, trained and stored on first use.

    The file is written to a temporary name and renamed, so concurrent evaluations never read
    a half-written classifier; whichever finishes first wins and later ones reuse it.
    """
    key = feature_cache_key(dataset, splits.shape)
    folder = os.path.join(cache_dir, f"{key}_v{CLASSIFIER_VERSION}")
    path = os.path.join(folder, "classifier.keras")
    info_path = os.path.join(folder, "identity.json")
    if not (os.path.exists(path) and os.path.exists(info_path)):
        logging.info("Training the FID feature classifier for %s (%d steps).", key, steps)
        model, accuracy = train_feature_classifier(splits, steps=steps, seed=seed)
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".keras", delete=False) as tmp:
            tmp_path = tmp.name
        model.save(tmp_path)
        info = {
            "name": "classifier",
            "description": "dataset-label classifier (tfvae.evaluation.classifier_model), "
            "Dense(128) features",
            "key": key,
            "version": CLASSIFIER_VERSION,
            "train_steps": steps,
            "test_accuracy": accuracy,
            "sha256": _sha256(tmp_path),
        }
        info_tmp = tmp_path + ".json"
        with open(info_tmp, "w") as f:
            json.dump(info, f, indent=2)
        os.replace(tmp_path, path)
        os.replace(info_tmp, info_path)
    with open(info_path) as f:
        identity = dict(json.load(f), path=path)
    model = keras.models.load_model(path)
    return FeatureNetwork(identity, _classifier_features(model))


def inception_features(weights_path: str, *, size: int = 299) -> FeatureNetwork:
    """Inception-v3 pool3 (2048-d global average pool) from a Keras weights file.

    Images in [0, 1] are resized to ``size`` x ``size`` (bilinear), grayscale is repeated to
    RGB, and values are scaled to [-1, 1] as InceptionV3 expects.
    """
    if not os.path.exists(weights_path):
        raise FileNotFoundError(f"Inception weights file {weights_path!r} does not exist.")
    shape = (size, size, 3)
    try:
        net = keras.applications.InceptionV3(
            include_top=False, weights=weights_path, input_shape=shape, pooling="avg"
        )
    except ValueError:
        # A full (with-top) weights file: build the full model, take its pool3 layer.
        if size != 299:
            raise InvalidValue(
                f"{weights_path} holds the classifier top, which needs inception_size=299."
            ) from None
        full = keras.applications.InceptionV3(include_top=True, weights=weights_path)
        net = keras.Model(full.inputs, full.get_layer("avg_pool").output)

    @tf.function(reduce_retracing=True, autograph=False)
    def call(x):
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        x = tf.image.resize(x, [size, size], method="bilinear")
        return net(2.0 * tf.clip_by_value(x, 0.0, 1.0) - 1.0, training=False)

    identity = {
        "name": "inception_v3_pool3",
        "path": os.path.abspath(weights_path),
        "sha256": _sha256(weights_path),
        "input_size": size,
    }

    def features(x: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(x, tf.float32)).numpy()

    return FeatureNetwork(identity, features)


def identity_features() -> FeatureNetwork:
    """Raw data as features, for vector data (two moons, the manifold set)."""
    return FeatureNetwork(
        {"name": "identity", "description": "raw data vectors (vector data set)"},
        lambda x: np.asarray(x, np.float32).reshape(len(x), -1),
    )


def feature_network(splits: data_lib.DataSplits, dataset: str, options: EvalOptions):
    """Inception when weights are given, raw vectors for vector data, else the classifier."""
    if options.inception_weights:
        if splits.kind != "image":
            raise MetricUndefined("Inception features need image data.")
        return inception_features(options.inception_weights, size=options.inception_size)
    if splits.kind != "image":
        return identity_features()
    return cached_classifier(
        splits,
        dataset,
        cache_dir=options.feature_cache,
        steps=options.classifier_steps,
        seed=options.seed,
    )
