"""The dpVAE authors' MNIST augmentation (tfvae.augment): closed forms, draws, determinism."""

import os

import numpy as np
import pytest
import tensorflow as tf

import configs
from tfvae import augment, data
from tfvae.config_loader import load_config
from tools.reproduce import TABLE1_CONFIGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)


def take(ds, n):
    return [b.numpy() for b in ds.take(n)]


def test_brightness_and_contrast_are_pils_blends_on_8_bit_levels():
    x = tf.constant(_images(3) / 255.0, tf.float32)
    f = tf.constant([0.5, 1.0, 1.5])
    np.testing.assert_allclose(
        augment.brightness(x, f), np.round(np.clip(x * f[:, None, None, None], 0, 1) * 255) / 255
    )
    # Contrast: blend with the mean gray level, int(mean + 0.5) on the 8-bit scale.
    two_level = np.zeros((1, 28, 28, 1), np.float32)
    two_level[0, :14] = 200 / 255  # mean 100 exactly
    out = augment.contrast(tf.constant(two_level), tf.constant([0.5])).numpy()
    np.testing.assert_allclose(np.unique(np.round(out * 255)), [50, 150])


def test_affine_translation_moves_a_pixel_by_whole_pixels():
    img = np.zeros((1, 28, 28, 1), np.float32)
    img[0, 10, 12, 0] = 1.0
    t = augment.affine_transforms(
        tf.constant([0.0]), tf.constant([1.0]), tf.constant([3.0]), tf.constant([-2.0]), 28, 28
    )
    out = augment.affine(tf.constant(img), t).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(np.argwhere(out == 1.0), [[8, 15]])  # row - 2, column + 3


def test_affine_rotation_by_90_degrees_about_the_center_is_rot90():
    x = _images(1, seed=3)[:, :27, :27].astype(np.float32)  # odd size: the center is a pixel
    t = augment.affine_transforms(
        tf.constant([90.0]), tf.constant([1.0]), tf.constant([0.0]), tf.constant([0.0]), 27, 27
    )
    out = augment.affine(tf.constant(x), t).numpy()[0, :, :, 0]
    rotated = [np.rot90(x[0, :, :, 0], k) for k in (1, -1)]  # either sense of rotation
    assert any(np.array_equal(out, r) for r in rotated)


def test_dpvae_augmentation_applies_each_transform_to_half_of_the_images():
    # Unchanged images are those drawn for neither transform: 1/4 of them.
    x = tf.constant(_images(4000) / 255.0, tf.float32)
    out = augment.dpvae(x, tf.constant([1, 2], tf.int64)).numpy()
    unchanged = np.all(out == x.numpy(), axis=(1, 2, 3)).mean()
    assert 0.22 < unchanged < 0.29, unchanged
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_augmented_training_batches_are_deterministic_by_step():
    x = _images(40)
    run = take(data.train_dataset(x, batch_size=4, seed=7, augment="dpvae"), 12)
    resumed = take(data.train_dataset(x, batch_size=4, seed=7, augment="dpvae", start_step=5), 7)
    for a, b in zip(run[5:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    plain = take(data.train_dataset(x, batch_size=4, seed=7), 12)
    changed = [not np.array_equal(a, b) for a, b in zip(run, plain, strict=True)]
    assert any(changed)
    # "none" is exactly the unaugmented pipeline.
    none = take(data.train_dataset(x, batch_size=4, seed=7, augment="none"), 12)
    for a, b in zip(none, plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unknown_augmentation_names_the_valid_ones():
    with pytest.raises(ValueError, match="dpvae"):
        data.train_dataset(_images(8), batch_size=4, seed=0, augment="flip")


@pytest.mark.parametrize("name", configs.NAMES)
def test_only_the_mnist_preset_of_the_dpvae_configs_augments(name):
    # The authors' MNIST configs all set "augment": true; nothing else of tfvae's augments.
    default = load_config(os.path.join(REPO, "configs", f"{name}.py"))
    assert default.data.augment == "none"
    try:
        mnist = load_config(os.path.join(REPO, "configs", f"{name}.py:mnist"))
    except ValueError:
        return  # a config without an MNIST preset
    assert mnist.data.augment == ("dpvae" if name in TABLE1_CONFIGS else "none"), name
