"""The factor API and dSprites: counts per factor value, every value changes the image, rendering
is deterministic, the training pipeline is step-deterministic, and the original npz loads."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae import data as data_lib
from tfvae import factors
from tfvae.errors import InvalidValue


@pytest.fixture(scope="module")
def dsprites():
    return factors.DSprites()


def test_grid_counts_per_factor_value(dsprites):
    assert len(dsprites) == 737_280 == np.prod(factors.DSPRITES_SIZES)
    # Every training example's factors: each value of factor k appears N / size_k times.
    all_factors = dsprites.factors_of(np.arange(len(dsprites)))  # [N, 5]
    for k, size in enumerate(factors.DSPRITES_SIZES):
        counts = np.bincount(all_factors[:, k], minlength=size)
        np.testing.assert_array_equal(counts, len(dsprites) // size)
    np.testing.assert_array_equal(dsprites.index_of(all_factors[::997]), np.arange(0, 737_280, 997))


def test_every_factor_value_changes_the_image(dsprites):
    rng = np.random.default_rng(0)
    base = dsprites.sample_factors(20, rng)
    base[:, 0] = 2  # the heart has no rotational symmetry, so every orientation is distinct
    for k, size in enumerate(factors.DSPRITES_SIZES):
        for row in base:
            variants = np.repeat(row[None], size, axis=0)
            variants[:, k] = np.arange(size)
            images = dsprites.images(variants).reshape(size, -1)
            distinct = len(np.unique(images, axis=0))
            assert distinct == size, (factors.DSPRITES_FACTORS[k], row, distinct)


def test_same_factors_render_the_same_binary_image(dsprites):
    f = dsprites.sample_factors(300, np.random.default_rng(1))
    a, b = dsprites.images(f), dsprites.images(f[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0, 255}
    assert a.shape == (300, 64, 64, 1) and a.dtype == np.uint8
    # Indexing the split equals rendering the factors of the same rows.
    np.testing.assert_array_equal(dsprites[5:8], dsprites.images(dsprites.factors_of([5, 6, 7])))


def test_bad_factors_are_refused(dsprites):
    with pytest.raises(InvalidValue, match="out of range"):
        dsprites.images([[3, 0, 0, 0, 0]])
    with pytest.raises(TypeError, match="index it"):
        np.asarray(dsprites)


def _dsprites_config(**overrides):
    from configs.common import base_config

    cfg = base_config().data
    cfg.name = "dsprites"
    cfg.val_size = 100
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def test_train_dataset_is_step_deterministic_and_resumable():
    splits = data_lib.load(_dsprites_config())
    assert splits.factors is splits.train and splits.val.shape == (100, 64, 64, 1)
    full = [b.numpy() for b in data_lib.train_dataset(splits.train, batch_size=8, seed=3).take(4)]
    resumed = data_lib.train_dataset(splits.train, batch_size=8, seed=3, start_step=2)
    for a, b in zip(full[2:], resumed.take(2), strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    assert set(np.unique(full[0])) <= {0.0, 1.0}
    # test_size renders only a prefix of the same 10,000-cell test split.
    small = data_lib.load(_dsprites_config(test_size=50))
    assert splits.test.shape == (10_000, 64, 64, 1) and small.test.shape == (50, 64, 64, 1)
    np.testing.assert_array_equal(small.test, splits.test[:50])
    np.testing.assert_array_equal(small.test_labels, splits.test_labels[:50])
    with pytest.raises(InvalidValue, match="image_size"):
        data_lib.load(_dsprites_config(image_size=32))


def test_original_npz_loads_bit_packed_in_grid_order(tmp_path, dsprites):
    # A made-up npz of the original layout on a small grid (3x2x2x2x2), in shuffled order, with
    # our renderer's images in {0, 1} as in DeepMind's file.
    sizes = (3, 2, 2, 2, 2)
    cells = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), -1)  # [48, 5]
    cells = cells[np.random.default_rng(2).permutation(len(cells))]
    classes = np.concatenate([np.zeros((len(cells), 1), np.int64), cells], 1)
    imgs = dsprites.images(cells)[..., 0] // 255
    path = str(tmp_path / factors.DSPRITES_NPZ)
    np.savez_compressed(path, imgs=imgs, latents_classes=classes)
    stored = factors.load_dsprites_npz(path, sizes=sizes)
    assert stored.rows.shape == (48, 512) and stored.factor_sizes == sizes
    np.testing.assert_array_equal(stored.images(cells), dsprites.images(cells))
    np.testing.assert_array_equal(stored[:], dsprites.images(stored.factors_of(np.arange(48))))
    with pytest.raises(InvalidValue, match="cover the grid"):
        factors.load_dsprites_npz(path)  # the full grid: 737,232 cells missing
    with pytest.raises(InvalidValue, match="Cannot read"):
        data_lib.load(_dsprites_config(path=str(tmp_path / "missing.npz")))


def test_stored_gather_unpacks_bits():
    images = (np.random.default_rng(0).random((6, 8, 8, 1)) < 0.5).astype(np.uint8) * 255
    packed = np.packbits(images.reshape(6, -1) > 0, axis=1)
    stored = factors.StoredFactorData(("a", "b"), (2, 3), (8, 8, 1), packed, bits=True)
    np.testing.assert_array_equal(stored.gather(tf.constant([4, 1], tf.int64)), images[[4, 1]])


def test_shapes3d_loads_through_tfds_behind_the_factor_api(tmp_path):
    import tensorflow_datasets as tfds

    # A tiny made-up shapes3d of the TFDS layout: a 2x1x1x2x3x1 grid, shuffled, each image
    # filled with its own grid index so that the order can be checked.
    sizes = (2, 1, 1, 2, 3, 1)
    cells = np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), -1)  # [12, 6]
    cells = cells[np.random.default_rng(0).permutation(len(cells))]
    index = np.ravel_multi_index(tuple(cells.T), sizes)

    def as_dataset(self, split, **kwargs):
        assert split == "train"
        example = {f"label_{n}": cells[:, k] for k, n in enumerate(factors.SHAPES3D_FACTORS)}
        example["image"] = np.broadcast_to(
            index[:, None, None, None].astype(np.uint8), (len(cells), 64, 64, 3)
        ).copy()
        return tf.data.Dataset.from_tensor_slices(example)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        data = factors.load_shapes3d(str(tmp_path), download=True, sizes=sizes)
    assert data.shape == (12, 64, 64, 3) and data.factor_names[0] == "floor_hue"
    np.testing.assert_array_equal(data[:][:, 0, 0, 0], np.arange(12))
    f = data.sample_factors(5, np.random.default_rng(1))
    np.testing.assert_array_equal(data.images(f)[:, 0, 0, 0], data.index_of(f))
    with pytest.raises(FileNotFoundError, match="tfds build shapes3d"):
        factors.load_shapes3d(str(tmp_path / "empty"))
