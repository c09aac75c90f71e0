"""Tests for tfvae.data: file formats, splits, every registry entry, pipeline determinism."""

import contextlib
import gzip
import os
import struct
import time

import ml_collections
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds

from tfvae import data

# IDX element-type codes by (numpy kind, itemsize), the inverse of data._IDX_DTYPES.
_IDX_CODES = {("u", 1): 0x08, ("i", 1): 0x09, ("i", 2): 0x0B, ("i", 4): 0x0C, ("f", 4): 0x0D}
_IDX_CODES[("f", 8)] = 0x0E


def make_cfg(**overrides) -> ml_collections.ConfigDict:
    """A complete ``data`` config: every field the loaders read is present."""
    fields = dict(
        name="two_moons",
        data_dir=None,
        download=False,
        path=None,
        val_size=0,
        test_size=0,
        binarize="none",
        dequantize=False,
        image_size=None,
        num_examples=100,
        noise=0.05,
        manifold_latent_dim=3,
        manifold_dim=16,
        manifold_seed=0,
    )
    unknown = set(overrides) - set(fields)
    assert not unknown, f"unknown config fields {unknown}"
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def write_idx(path: str, array: np.ndarray) -> None:
    """Writes ``array`` in the IDX format (gzipped when ``path`` ends in .gz)."""
    array = np.asarray(array)
    code = _IDX_CODES[(array.dtype.kind, array.dtype.itemsize)]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def id_images(ids: np.ndarray, size: int = 28) -> np.ndarray:
    """``[N, size, size]`` uint8 images whose pixel (0, 0) is the example id (< 256)."""
    images = np.zeros((len(ids), size, size), np.uint8)
    images[:, 0, 0] = ids
    return images


def write_mnist_folder(folder, n_train: int = 30, n_test: int = 7, gz: bool = True) -> None:
    """An MNIST-format folder: train ids 0..n_train-1, test ids 100.., labels id % 10."""
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, ids in (("train", np.arange(n_train)), ("t10k", 100 + np.arange(n_test))):
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), id_images(ids))
        labels = (ids % 10).astype(np.uint8)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)


def write_chardata(path, n_train: int = 12, n_test: int = 4) -> None:
    """A tiny chardata.mat: column-major images with pixel (0, 0) = id / 100 and pixel (2, 5) lit,
    and one-hot alphabets id % 50."""

    def part(ids):
        images = np.zeros((len(ids), 28, 28))
        images[:, 0, 0] = ids / 100
        images[:, 2, 5] = 1.0
        flat = images.reshape(len(ids), -1, order="F").T  # [784, N], each image column-major
        target = np.zeros((50, len(ids)))
        target[ids % 50, np.arange(len(ids))] = 1.0
        return flat, target

    data_, target = part(np.arange(n_train))
    test, test_target = part(60 + np.arange(n_test))
    scipy.io.savemat(
        path, {"data": data_, "target": target, "testdata": test, "testtarget": test_target}
    )


def take(ds: tf.data.Dataset, n: int) -> list[np.ndarray]:
    return [b.numpy() for b in ds.take(n)]


# ----------------------------------------------------------------------------- IDX


def test_read_idx_hand_built_bytes(tmp_path):
    # Magic 00 00 08 02, sizes 2 and 3, then six unsigned bytes.
    path = tmp_path / "a-idx2-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5]))
    np.testing.assert_array_equal(data.read_idx(str(path)), [[0, 1, 2], [3, 4, 5]])
    # Big-endian int32: 00 00 01 02 is 258, not 0x02010000.
    path = tmp_path / "b-idx1"
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 2]))
    assert data.read_idx(str(path)).tolist() == [258]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7 - 11).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = str(tmp_path / ("x.idx" + (".gz" if gz else "")))
    write_idx(path, array)
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


def test_read_idx_rejects_malformed_files(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(bytes([0x1F, 0x8B, 0x08, 0x00]) + bytes(20))  # a gzip header, not IDX
    with pytest.raises(ValueError, match="bad IDX magic number 0x1f8b0800"):
        data.read_idx(str(path))
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 0]))  # type 0x07 does not exist
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(str(path))
    path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]))  # says 5 bytes, has 2
    with pytest.raises(ValueError, match="5 bytes of data"):
        data.read_idx(str(path))


def test_idx_folder_splits_and_labels(tmp_path):
    write_mnist_folder(tmp_path / "m", n_train=30, n_test=7)
    splits = data.load(make_cfg(name="idx", path=str(tmp_path / "m"), val_size=5))
    assert splits.kind == "image" and splits.shape == (28, 28, 1)
    assert splits.train.dtype == np.uint8
    # The validation split is the last val_size training examples, in order.
    assert splits.train[:, 0, 0, 0].tolist() == list(range(25))
    assert splits.val[:, 0, 0, 0].tolist() == list(range(25, 30))
    assert splits.test[:, 0, 0, 0].tolist() == list(range(100, 107))
    for x, y in ((splits.train, splits.train_labels), (splits.val, splits.val_labels)):
        np.testing.assert_array_equal(y, x[:, 0, 0, 0] % 10)
    assert splits.test_labels.dtype == np.int32


def test_test_size_keeps_a_prefix_of_the_test_split(tmp_path):
    write_mnist_folder(tmp_path / "m", n_train=30, n_test=7)
    cfg = make_cfg(name="idx", path=str(tmp_path / "m"), val_size=5, test_size=3)
    splits = data.load(cfg)
    assert splits.test[:, 0, 0, 0].tolist() == [100, 101, 102]
    np.testing.assert_array_equal(splits.test_labels, [0, 1, 2])
    assert len(splits.train) == 25 and len(splits.val) == 5  # the other splits are untouched
    cfg.test_size = 70  # more than there are: the whole split
    assert len(data.load(cfg).test) == 7
    with pytest.raises(ValueError, match="test_size=-1 must be >= 0"):
        data.load(make_cfg(name="idx", path=str(tmp_path / "m"), test_size=-1))


def test_idx_plain_files_and_mnist_path_give_the_same_data(tmp_path):
    write_mnist_folder(tmp_path / "gz", gz=True)
    write_mnist_folder(tmp_path / "plain", gz=False)
    a = data.load(make_cfg(name="idx", path=str(tmp_path / "gz"), val_size=3))
    b = data.load(make_cfg(name="mnist", path=str(tmp_path / "plain"), val_size=3))
    for field in ("train", "val", "test", "train_labels", "val_labels", "test_labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_idx_missing_files_and_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load(make_cfg(name="idx", path=str(tmp_path)))
    with pytest.raises(ValueError, match="data.path"):
        data.load(make_cfg(name="idx"))


def test_image_size_resizes_and_keeps_constant_images_constant(tmp_path):
    folder = tmp_path / "m"
    os.makedirs(folder)
    for prefix in ("train", "t10k"):
        images = np.full((4, 28, 28), 200, np.uint8)
        write_idx(str(folder / f"{prefix}-images-idx3-ubyte"), images)
    splits = data.load(make_cfg(name="idx", path=str(folder), image_size=14, val_size=1))
    assert splits.shape == (14, 14, 1) and splits.train.dtype == np.uint8
    assert splits.train_labels is None  # no label files
    assert np.all(splits.train == 200) and np.all(splits.test == 200)


def test_val_size_must_leave_training_examples(tmp_path):
    write_mnist_folder(tmp_path / "m", n_train=10)
    with pytest.raises(ValueError, match="val_size=10"):
        data.load(make_cfg(name="idx", path=str(tmp_path / "m"), val_size=10))
    with pytest.raises(ValueError, match="val_size=-1"):
        data.load(make_cfg(name="idx", path=str(tmp_path / "m"), val_size=-1))


def test_fashion_mnist_from_debian_folder():
    if not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR):
        pytest.fail(
            f"{data.DEBIAN_FASHION_MNIST_DIR} is missing: the README setup installs it with "
            "`apt-get install dataset-fashion-mnist`."
        )
    splits = data.load(make_cfg(name="fashion_mnist", val_size=10_000))
    assert splits.train.shape == (50_000, 28, 28, 1) and splits.val.shape == (10_000, 28, 28, 1)
    assert splits.test.shape == (10_000, 28, 28, 1) and splits.train.dtype == np.uint8
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    train_labels = np.concatenate([splits.train_labels, splits.val_labels])
    assert np.bincount(train_labels).tolist() == [6000] * 10
    assert np.bincount(splits.test_labels).tolist() == [1000] * 10
    assert train_labels[:5].tolist() == [9, 0, 0, 3, 0]  # ankle boot, T-shirt, T-shirt, dress
    assert splits.test_labels[:5].tolist() == [9, 2, 1, 1, 6]
    assert splits.train.max() == 255 and splits.train.min() == 0


# ----------------------------------------------------------------------------- npz


def test_npz_images_and_vectors(tmp_path):
    path = str(tmp_path / "images.npz")
    x_train = np.arange(6 * 4 * 4, dtype=np.uint8).reshape(6, 4, 4)  # [N, H, W]
    np.savez(path, x_train=x_train, x_test=x_train[:2], y_train=np.arange(6), y_test=[0, 1])
    splits = data.load(make_cfg(name="npz", path=path, val_size=2))
    assert splits.kind == "image" and splits.shape == (4, 4, 1)
    np.testing.assert_array_equal(splits.val[..., 0], x_train[4:])
    assert splits.val_labels.tolist() == [4, 5] and splits.train.dtype == np.uint8

    path = str(tmp_path / "vectors.npz")
    np.savez(path, x_train=np.ones((5, 3), np.float64), x_test=np.zeros((2, 3)))
    splits = data.load(make_cfg(name="npz", path=path, val_size=1))
    assert splits.kind == "vector" and splits.shape == (3,) and splits.train.dtype == np.float32
    assert splits.train_labels is None and splits.test_labels is None
    assert len(splits.train) == 4 and len(splits.val) == 1

    np.savez(path, x_train=np.ones((5, 3)))
    with pytest.raises(ValueError, match="x_test"):
        data.load(make_cfg(name="npz", path=path))


# ----------------------------------------------------------------------------- Omniglot, CelebA


def test_chardata_column_major_images_and_shuffled_validation(tmp_path):
    path = str(tmp_path / "chardata.mat")
    write_chardata(path, n_train=12, n_test=4)
    splits = data.load(make_cfg(name="omniglot", path=path, val_size=3))
    assert splits.shape == (28, 28, 1) and splits.train.dtype == np.float32
    # Fortran-order images come back upright: the lit pixel is row 2, column 5, not (5, 2).
    assert np.all(splits.train[:, 2, 5, 0] == 1.0) and np.all(splits.train[:, 5, 2, 0] == 0.0)
    ids = np.round(np.concatenate([splits.train, splits.val])[:, 0, 0, 0] * 100).astype(int)
    assert sorted(ids) == list(range(12)) and len(splits.val) == 3
    assert ids.tolist() != list(range(12))  # shuffled before the validation hold-out
    labels = np.concatenate([splits.train_labels, splits.val_labels])
    np.testing.assert_array_equal(labels, ids % 50)
    np.testing.assert_array_equal(splits.test_labels, (60 + np.arange(4)) % 50)


def test_celeba_crop_is_centered():
    # Only the central 140x140 box is bright; an off-center crop would average in the zeros.
    image = np.zeros((218, 178, 3), np.uint8)
    image[39:179, 19:159] = 200
    for size, expected in ((64, (64, 64, 3)), (None, (140, 140, 3))):
        out = data.celeba_preprocess(tf.constant(image), size).numpy()
        assert out.shape == expected and out.dtype == np.uint8
        assert np.all(out == 200)


def test_tfds_offline_fails_fast_with_a_fix(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        data.load(make_cfg(name="mnist", data_dir=str(tmp_path), download=False))
    assert time.perf_counter() - start < 10
    message = str(info.value)
    # The folder it looked in, and the fixes as command-line flags.
    assert f"not prepared in {tmp_path / 'mnist'}" in message
    assert "tfds build mnist" in message and "--config.data.download=True" in message
    assert "--config.data.data_dir=DIR" in message
    assert "--config.data.path=DIR" in message  # MNIST can also be read from local IDX files


# ----------------------------------------------------------------------------- every dataset

# How each registry entry is loaded offline in the tests; a new DATASETS key must be added here.
TFDS_SHAPES = {
    "mnist": (28, 28, 1),
    "svhn": (32, 32, 3),
    "cifar10": (32, 32, 3),
    "celeba": (64, 64, 3),
    "omniglot": (28, 28, 1),
}
LOCAL = ("fashion_mnist", "idx", "npz", "two_moons", "manifold", "dsprites")


def test_every_dataset_has_an_offline_case():
    assert set(TFDS_SHAPES) | set(LOCAL) == set(data.DATASETS)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown dataset 'mnits'.*fashion_mnist.*two_moons"):
        data.load(make_cfg(name="mnits"))


@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_every_dataset_loads(name, tmp_path):
    write_mnist_folder(tmp_path / "idx")
    np.savez(
        tmp_path / "d.npz",
        x_train=np.ones((9, 5, 5, 3), np.uint8),
        x_test=np.ones((2, 5, 5, 3), np.uint8),
    )
    paths = {"fashion_mnist": tmp_path / "idx", "idx": tmp_path / "idx", "npz": tmp_path / "d.npz"}
    cfg = make_cfg(name=name, val_size=2, data_dir=str(tmp_path / "tfds"))
    with contextlib.ExitStack() as stack:
        if name in TFDS_SHAPES:
            # TFDS's mock serves random examples from the builder's own feature spec.
            stack.enter_context(tfds.testing.mock_data(num_examples=6))
            cfg.download = True  # a no-op under the mock, as the data are "prepared" by it
            cfg.image_size = TFDS_SHAPES[name][0]
        if name in paths:
            cfg.path = str(paths[name])
        splits = data.load(cfg)
    assert splits.shape == splits.train.shape[1:] == splits.val.shape[1:] == splits.test.shape[1:]
    assert len(splits.val) == 2
    if name in TFDS_SHAPES:
        assert splits.shape == TFDS_SHAPES[name] and splits.train.dtype == np.uint8
        assert len(splits.train) == 4 and len(splits.test) == 6
    assert splits.kind == ("vector" if name in ("two_moons", "manifold") else "image")
    assert splits.train.dtype in (np.uint8, np.float32)
    for x, y in ((splits.train, splits.train_labels), (splits.test, splits.test_labels)):
        assert y is None or (len(y) == len(x) and y.dtype == np.int32)
    if name == "omniglot":
        assert splits.train_labels.max() < 50  # alphabets


# ----------------------------------------------------------------------------- synthetic


def test_two_moons_closed_form():
    x, y = data.two_moons(1001, noise=0.0, seed=0)
    assert x.shape == (1001, 2) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [501, 500]
    upper, lower = x[y == 0], x[y == 1]
    # Without noise each moon is half a unit circle: centers (0, 0) and (1, 0.5).
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-6)
    assert upper[:, 1].min() >= -1e-6 and lower[:, 1].max() <= 0.5 + 1e-6
    # Two clusters: with t ~ U(0, pi), E[cos t] = 0 and E[sin t] = 2/pi.
    x, y = data.two_moons(20_000, noise=0.1, seed=1)
    np.testing.assert_allclose(x[y == 0].mean(0), [0.0, 2 / np.pi], atol=0.02)
    np.testing.assert_allclose(x[y == 1].mean(0), [1.0, 0.5 - 2 / np.pi], atol=0.02)


def test_manifold_jacobian_has_rank_n():
    n, dim = 4, 32
    f = data.manifold_map(n, dim, seed=3)
    z = tf.random.stateless_normal([5, n], seed=[0, 1], dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = f(z)  # [5, dim]
    jacobian = tape.batch_jacobian(x, z).numpy()  # [5, dim, n]
    assert jacobian.shape == (5, dim, n)
    for j in jacobian:
        assert np.linalg.matrix_rank(j) == n
    # Locally the data span n directions of R^dim, not more: x(z + d) - x(z) for 3n small d.
    z0 = np.random.default_rng(0).standard_normal((1, n))
    dz = 1e-3 * np.random.default_rng(1).standard_normal((3 * n, n))
    dx = (f(z0 + dz) - f(z0)).numpy()  # [3n, dim]
    singular = np.linalg.svd(dx, compute_uv=False)
    assert singular[n - 1] > 1e-2 * singular[0] and singular[n] < 1e-3 * singular[0]


def test_manifold_map_depends_only_on_its_seed():
    z = np.random.default_rng(0).standard_normal((7, 3))
    a = data.manifold_map(3, 16, seed=5)(z).numpy()
    np.testing.assert_array_equal(a, data.manifold_map(3, 16, seed=5)(z).numpy())
    assert not np.allclose(a, data.manifold_map(3, 16, seed=6)(z).numpy())
    with pytest.raises(ValueError, match="n=17"):
        data.manifold_map(17, 16, seed=0)


def test_manifold_splits():
    cfg = make_cfg(name="manifold", num_examples=50, val_size=10, manifold_latent_dim=2)
    splits = data.load(cfg)
    assert splits.train.shape == (50, 16) and splits.val.shape == (10, 16)
    assert splits.test.shape == (50, 16) and splits.train.dtype == np.float32
    np.testing.assert_array_equal(splits.train, data.load(cfg).train)  # repeatable
    # The test set comes from another seed: no test point is a training point.
    distances = np.linalg.norm(splits.test[:, None] - splits.train[None], axis=-1)
    assert distances.min() > 1e-3


# ----------------------------------------------------------------------------- pipelines


def test_to_float():
    out = data.to_float(np.array([0, 51, 255], np.uint8))
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), [0.0, 0.2, 1.0], rtol=1e-7)
    np.testing.assert_array_equal(data.to_float(np.array([0.25, 2.0])).numpy(), [0.25, 2.0])


def ids_dataset(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)[:, None]  # [N, 1] vectors holding their own index


def test_train_dataset_is_deterministic_by_step():
    x = ids_dataset(20)
    run = take(data.train_dataset(x, batch_size=4, seed=7), 15)
    resumed = take(data.train_dataset(x, batch_size=4, seed=7, start_step=7), 8)
    for a, b in zip(run[7:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(b.shape == (4, 1) and b.dtype == np.float32 for b in run)
    # Every example exactly once per epoch (5 steps), in a different order each epoch.
    epochs = [np.concatenate(run[i : i + 5])[:, 0] for i in (0, 5, 10)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(20))
    assert not np.array_equal(epochs[0], epochs[1])
    other = np.concatenate(take(data.train_dataset(x, batch_size=4, seed=8), 5))[:, 0]
    assert not np.array_equal(epochs[0], other)


def test_pipelines_run_without_the_autotuning_model():
    # TF 2.21's iterator destructor waits for that model's thread, up to 60 s (see
    # data.without_autotune_model); every pipeline tfvae iterates must leave it off.
    x = ids_dataset(20)
    for ds in (
        data.train_dataset(x, batch_size=4, seed=0),
        data.eval_dataset(x, batch_size=4),
        data.without_autotune_model(tf.data.Dataset.range(3).prefetch(tf.data.AUTOTUNE)),
    ):
        assert ds.options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is not False  # TF's default


def test_train_dataset_drops_the_remainder_without_repeats():
    x = ids_dataset(22)
    batches = take(data.train_dataset(x, batch_size=4, seed=0), 10)  # 2 epochs of 5 steps
    assert all(len(b) == 4 for b in batches)
    for i in (0, 5):
        epoch = np.concatenate(batches[i : i + 5])[:, 0]
        assert len(set(epoch)) == 20  # no example twice within an epoch


def test_dynamic_binarization_mean_and_values():
    p = 77 / 255
    # Two steps per epoch, so a noise seed that ignored the step would repeat within an epoch.
    x = np.full((128, 28, 28, 1), 77, np.uint8)
    x[:, 0, 0] = 0  # probability 0: always 0
    x[:, 0, 1] = 255  # probability 1: always 1
    batches = np.stack(take(data.train_dataset(x, batch_size=64, seed=1, binarize="dynamic"), 20))
    assert set(np.unique(batches)) == {0.0, 1.0}
    assert np.all(batches[..., 0, 0, 0] == 0) and np.all(batches[..., 0, 1, 0] == 1)
    # 20 * 64 * 782 draws: the standard error of the mean is about 0.0006.
    assert abs(batches[..., 2:, :, 0].mean() - p) < 0.004
    assert not np.array_equal(batches[0], batches[1])  # fresh draws at every step
    resumed = take(
        data.train_dataset(x, batch_size=64, seed=1, binarize="dynamic", start_step=5), 1
    )
    np.testing.assert_array_equal(resumed[0], batches[5])


def test_static_binarization_is_fixed():
    x = np.random.default_rng(0).integers(0, 256, (8, 6, 6, 1)).astype(np.uint8)
    # Batch = whole set: each step is a permutation of the same 8 binary images.
    steps = take(data.train_dataset(x, batch_size=8, seed=0, binarize="static"), 3)
    as_sets = [sorted(map(bytes, (b > 0.5).astype(np.uint8))) for b in steps]
    assert as_sets[0] == as_sets[1] == as_sets[2]
    first, second = (
        np.concatenate(take(data.eval_dataset(x, batch_size=3, binarize=b), 3))
        for b in ("static", "dynamic")
    )
    np.testing.assert_array_equal(first, second)  # evaluation always binarizes statically
    assert set(np.unique(first)) <= {0.0, 1.0}
    big = np.full((200, 28, 28, 1), 128, np.uint8)
    assert abs(data.to_float(data.static_binarize(big)).numpy().mean() - 128 / 255) < 0.005


def test_dequantization_range():
    pixels = np.array([[0, 255], [128, 3]], np.uint8)[..., None]  # [2, 2, 1]
    x = np.broadcast_to(pixels, (16, 2, 2, 1)).copy()
    batch = take(data.train_dataset(x, batch_size=16, seed=0, dequantize=True), 1)[0]
    noise = batch - data.to_float(pixels).numpy()
    assert noise.min() >= 0.0 and noise.max() < 1 / 256 and noise.std() > 0
    assert batch.max() < 1 + 1 / 256


def test_pipeline_argument_errors():
    x = np.zeros((10, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match="dequantize=True conflicts with binarize='dynamic'"):
        data.train_dataset(x, batch_size=2, seed=0, binarize="dynamic", dequantize=True)
    with pytest.raises(ValueError, match="uint8"):
        data.train_dataset(x.astype(np.float32), batch_size=2, seed=0, dequantize=True)
    with pytest.raises(ValueError, match="Unknown binarize 'yes'"):
        data.eval_dataset(x, batch_size=2, binarize="yes")
    with pytest.raises(ValueError, match="batch_size=11"):
        data.train_dataset(x, batch_size=11, seed=0)


def test_eval_dataset_is_ordered_and_keeps_the_last_batch():
    batches = take(data.eval_dataset(ids_dataset(10), batch_size=4), 10)
    assert [b[:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert take(data.eval_dataset(ids_dataset(0), batch_size=4), 10) == []
