"""Datasets in memory and the tf.data pipelines that feed training and evaluation.

``load(cfg)`` turns the ``data`` sub-config into a ``DataSplits`` of numpy arrays; 8-bit images
stay ``uint8`` (a quarter of the float32 memory: CelebA 64x64 is 2 GB instead of 8 GB) and are
scaled to [0, 1] by ``to_float`` only once a batch has been gathered.

Sources (``DATASETS`` keys):
  mnist, fashion_mnist  local IDX files from ``cfg.path``; fashion_mnist next tries Debian's
                        ``dataset-fashion-mnist`` folder; otherwise TFDS.
  svhn, cifar10         TFDS ``svhn_cropped`` / ``cifar10``.
  celeba                TFDS ``celeb_a``: center crop 140x140, resized to ``cfg.image_size``.
  omniglot              ``cfg.path`` = Burda et al.'s 28x28 ``chardata.mat`` (the set He et al.
                        2019 and NE-VAE use), else TFDS ``omniglot`` (gray, inverted so strokes
                        are 1, resized to ``cfg.image_size``). Labels are alphabets (50).
  idx, npz              any local IDX folder / ``.npz`` file (``x_train``, ``x_test``, optional
                        ``y_train``, ``y_test``).
  two_moons             dpVAE's toy set, ``two_moons``.
  manifold              MaskAAE's synthetic set with a known latent size, ``manifold_map``.
  dsprites              64x64 binary sprites with 5 known factors (``tfvae.factors``): rendered
                        on the fly, or ``cfg.path`` = DeepMind's original npz. The training
                        split is the whole grid (737,280, lazily: ``DataSplits.factors``); val
                        and test are fixed random cells of it (``val_size``, 10,000). Labels
                        (for the FID classifier) are the shape.

Splits: the last ``cfg.val_size`` training examples are the validation split, the test split is
the dataset's own (synthetic sets: the same number of examples as train, drawn with another seed);
``cfg.test_size`` > 0 keeps only its first ``test_size`` examples (smoke configs: a quick check).
TFDS never downloads unless ``cfg.download`` is true: offline, a missing dataset fails at once
with the command that prepares it.

Pipelines:
  ``train_dataset`` is deterministic by step: the batch at global step s is a function of
  (x, seed, batch_size, s) only, so a run resumed at ``start_step=s`` sees the batches an
  uninterrupted run sees. Epoch e is the permutation ``index_shuffle(., seed=(seed, e))``; step s
  takes positions ``(s mod S) * B + [0, B)`` of it, S = floor(N / B) (the last N mod B examples
  of each permutation are dropped, different ones every epoch). Indices are computed, then
  gathered from the in-memory tensor and transformed as whole batches (vectorized map, prefetch).
  ``eval_dataset`` is finite, ordered, keeps the last partial batch and binarizes statically.

Binarization (Bernoulli sample with the pixel intensity as probability): "dynamic" draws afresh
at every step (Salakhutdinov & Murray 2008; He et al. 2019 on Omniglot), "static" draws once
with ``STATIC_BINARIZE_SEED``. Dequantization adds u ~ U(0, 1/256) to the 8-bit intensity
k/255, so values lie in [0, 1 + 1/256).
"""

import dataclasses
import gzip
import os
import struct
from collections.abc import Callable

import ml_collections
import numpy as np
import scipy.io
import tensorflow as tf

from tfvae import augment as augment_lib
from tfvae import factors as factors_lib
from tfvae import registry
from tfvae.config_checks import BINARIZE_MODES
from tfvae.errors import InvalidValue

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# One fixed seed for static binarization, so evaluation numbers are repeatable across runs.
STATIC_BINARIZE_SEED = 0
# Center crop of the 218x178 aligned CelebA images before resizing (the WAE / MaskAAE choice).
CELEBA_CROP = 140
# Synthetic sets: train (+ val) and test are drawn from these streams of the data seed.
_TRAIN_STREAM, _TEST_STREAM = 1, 2
# chardata.mat is ordered by alphabet: a fixed shuffle keeps the validation split from being
# the last alphabets only (He et al. shuffle before holding out validation images too).
_OMNIGLOT_SHUFFLE_SEED = 0
_LEAKY_SLOPE = 0.2
_CHUNK = 4096  # examples per chunk when resizing or binarizing arrays, to bound temporaries
# tf.random.experimental.stateless_fold_in tags that separate the per-step noise streams.
_BINARIZE_TAG, _DEQUANTIZE_TAG, _AUGMENT_TAG = 1, 2, 3


@dataclasses.dataclass(frozen=True)
class DataSplits:
    """A dataset in memory.

    Attributes:
      train, val, test: ``[N, H, W, C]`` images (uint8 for 8-bit data) or ``[N, D]`` float32
        vectors.
      shape: the per-example shape, ``train.shape[1:]``.
      kind: "image" or "vector".
      train_labels, val_labels, test_labels: ``[N]`` int32 class labels, or None.
      factors: for data with known factors of variation, the ``tfvae.factors.FactorData``
        (which is also ``train``), else None.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    shape: tuple[int, ...]
    kind: str
    train_labels: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    factors: factors_lib.FactorData | None = None


def _make_splits(
    x_train: np.ndarray,
    y_train: np.ndarray | None,
    x_test: np.ndarray,
    y_test: np.ndarray | None,
    *,
    val_size: int,
    kind: str,
) -> DataSplits:
    """Holds out the last ``val_size`` training examples as the validation split."""
    n = len(x_train)
    if not 0 <= val_size < n:
        raise InvalidValue(f"val_size={val_size} must be in [0, {n}) for {n} training examples.")
    cut = n - val_size

    def labels(y: np.ndarray | None, part: slice) -> np.ndarray | None:
        return None if y is None else np.asarray(y[part], np.int32)

    return DataSplits(
        train=x_train[:cut],
        val=x_train[cut:],
        test=x_test,
        shape=tuple(x_train.shape[1:]),
        kind=kind,
        train_labels=labels(y_train, slice(None, cut)),
        val_labels=labels(y_train, slice(cut, None)),
        test_labels=labels(y_test, slice(None)),
    )


def _image_array(x: np.ndarray) -> np.ndarray:
    """NHWC images: 8-bit data stays uint8, anything else becomes float32."""
    if x.ndim == 3:  # [N, H, W] grayscale
        x = x[..., None]
    return x if x.dtype == np.uint8 else x.astype(np.float32)


def _resize(images: tf.Tensor, size: int | None) -> tf.Tensor:
    """Resizes ``[..., H, W, C]`` images to ``[..., size, size, C]``, keeping their dtype.

    Bilinear with antialiasing, so shrinking averages (like "area") and enlarging interpolates.
    """
    if size is None or tuple(images.shape[-3:-1]) == (size, size):
        return images
    out = tf.image.resize(tf.cast(images, tf.float32), [size, size], antialias=True)
    if images.dtype == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
    return tf.cast(out, images.dtype)


def _resize_array(x: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or x.shape[1:3] == (size, size):
        return x
    return np.concatenate(
        [_resize(tf.constant(x[i : i + _CHUNK]), size).numpy() for i in range(0, len(x), _CHUNK)]
    )


# ----------------------------------------------------------------------------- IDX files

# Third byte of an IDX magic number -> element type (data are big-endian).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzipped when the name ends in ``.gz``.

    Layout: magic ``00 00 <type> <ndim>``, then ndim big-endian uint32 sizes, then the data,
    big-endian, C order.

    Raises:
      ValueError: when the magic number or the size does not match the format.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InvalidValue(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}: expected 00 00 <type> <ndim> "
            f"with type in {{{', '.join(f'0x{t:02x}' for t in _IDX_DTYPES)}}}."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InvalidValue(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data), "
            f"file has {len(raw) - header}."
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def _find_idx(folder: str, prefix: str, kind: str, ndim: int) -> str | None:
    # Both the original names (train-images-idx3-ubyte) and the dotted mirror ones.
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            candidate = os.path.join(folder, f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}")
            if os.path.isfile(candidate):
                return candidate
    return None


def load_idx_folder(
    folder: str,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Reads ``train-images-idx3-ubyte`` & co. (gzipped or not) from ``folder``.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: images ``[N, H, W, 1]``, labels ``[N]`` or None
      when the label files are absent.
    """
    images = {p: _find_idx(folder, p, "images", 3) for p in ("train", "t10k")}
    missing = [f"{p}-images-idx3-ubyte[.gz]" for p, f in images.items() if f is None]
    if missing:
        raise FileNotFoundError(f"No {' and no '.join(missing)} in {folder!r}.")
    out = []
    for prefix in ("train", "t10k"):
        x = read_idx(images[prefix])
        label_file = _find_idx(folder, prefix, "labels", 1)
        y = None if label_file is None else read_idx(label_file)
        if y is not None and len(y) != len(x):
            raise InvalidValue(f"{label_file}: {len(y)} labels for {len(x)} images.")
        out += [_image_array(x), y]
    return tuple(out)


def _splits_from_idx(cfg: ml_collections.ConfigDict, folder: str) -> DataSplits:
    x_train, y_train, x_test, y_test = load_idx_folder(folder)
    size = cfg.image_size
    return _make_splits(
        _resize_array(x_train, size),
        y_train,
        _resize_array(x_test, size),
        y_test,
        val_size=cfg.val_size,
        kind="image",
    )


# ----------------------------------------------------------------------------- TFDS


def _tfds_arrays(
    cfg: ml_collections.ConfigDict,
    tfds_name: str,
    preprocess: Callable[[dict], tuple[tf.Tensor, tf.Tensor]],
    *,
    local_hint: str = "",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loads the TFDS train and test splits through ``preprocess`` into arrays.

    Args:
      cfg: the data config (``data_dir``, ``download``).
      tfds_name: the TFDS builder name.
      preprocess: example dict -> (image uint8 [H, W, C], label int32).
      local_hint: how to use local files instead, appended to the error message.

    Returns:
      ``(x_train, y_train, x_test, y_test)``.
    """
    import tensorflow_datasets as tfds  # heavy import, only for TFDS-backed datasets

    builder = tfds.builder(tfds_name, data_dir=cfg.data_dir)
    # Checked before any loading: offline, tfds.load would otherwise try (and retry) a download.
    if not builder.is_prepared():
        if not cfg.download:
            raise FileNotFoundError(
                f"TFDS dataset {tfds_name!r} is not prepared in {builder.data_dir} and "
                f"--config.data.download is False. On a machine with internet run `tfds build "
                f"{tfds_name} --data_dir=DIR`, copy DIR here and pass "
                f"--config.data.data_dir=DIR, or pass --config.data.download=True to download "
                f"it.{local_hint}"
            )
        builder.download_and_prepare()
    arrays = []
    for split in ("train", "test"):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).batch(_CHUNK)
        parts = list(without_autotune_model(ds.prefetch(tf.data.AUTOTUNE)).as_numpy_iterator())
        arrays.append(np.concatenate([images for images, _ in parts]))
        arrays.append(np.concatenate([labels for _, labels in parts]))
    return tuple(arrays)


def _tfds_splits(
    cfg: ml_collections.ConfigDict, tfds_name: str, *, local_hint: str = ""
) -> DataSplits:
    """A labelled TFDS image dataset, resized to ``cfg.image_size``."""
    arrays = _tfds_arrays(cfg, tfds_name, _labelled(cfg.image_size), local_hint=local_hint)
    return _make_splits(*arrays, val_size=cfg.val_size, kind="image")


def _labelled(size: int | None) -> Callable[[dict], tuple[tf.Tensor, tf.Tensor]]:
    def preprocess(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
        return _resize(example["image"], size), tf.cast(example["label"], tf.int32)

    return preprocess


def celeba_preprocess(image: tf.Tensor, size: int | None) -> tf.Tensor:
    """Center-crops a ``[218, 178, 3]`` CelebA image to 140x140, then resizes it to ``size``."""
    height, width = image.shape[0], image.shape[1]
    crop = tf.image.crop_to_bounding_box(
        image, (height - CELEBA_CROP) // 2, (width - CELEBA_CROP) // 2, CELEBA_CROP, CELEBA_CROP
    )
    return _resize(crop, size)


# ----------------------------------------------------------------------------- loaders

_IDX_HINT = " Or pass --config.data.path=DIR, a folder of MNIST-format IDX files."


def _load_mnist(cfg: ml_collections.ConfigDict) -> DataSplits:
    if cfg.path is not None:
        return _splits_from_idx(cfg, cfg.path)
    return _tfds_splits(cfg, "mnist", local_hint=_IDX_HINT)


def _load_fashion_mnist(cfg: ml_collections.ConfigDict) -> DataSplits:
    if cfg.path is not None:
        return _splits_from_idx(cfg, cfg.path)
    if os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
        return _splits_from_idx(cfg, DEBIAN_FASHION_MNIST_DIR)
    hint = _IDX_HINT + " Or `apt-get install dataset-fashion-mnist`."
    return _tfds_splits(cfg, "fashion_mnist", local_hint=hint)


def _load_idx(cfg: ml_collections.ConfigDict) -> DataSplits:
    if cfg.path is None:
        raise InvalidValue("Dataset 'idx' needs data.path: a folder of MNIST-format IDX files.")
    return _splits_from_idx(cfg, cfg.path)


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load_npz(cfg: ml_collections.ConfigDict) -> DataSplits:
    if cfg.path is None:
        raise InvalidValue("Dataset 'npz' needs data.path: a .npz file with x_train and x_test.")
    with np.load(cfg.path) as f:
        missing = {"x_train", "x_test"} - set(f.files)
        if missing:
            raise InvalidValue(f"{cfg.path}: missing {sorted(missing)}; it has {sorted(f.files)}.")
        arrays = {key: f[key] if key in f.files else None for key in _NPZ_KEYS}
    if arrays["x_train"].ndim == 2:  # [N, D] vectors
        kind = "vector"
        x_train, x_test = (arrays[k].astype(np.float32) for k in ("x_train", "x_test"))
    else:
        kind = "image"
        x_train, x_test = (
            _resize_array(_image_array(arrays[k]), cfg.image_size) for k in ("x_train", "x_test")
        )
    return _make_splits(
        x_train, arrays["y_train"], x_test, arrays["y_test"], val_size=cfg.val_size, kind=kind
    )


def _load_svhn(cfg: ml_collections.ConfigDict) -> DataSplits:
    return _tfds_splits(cfg, "svhn_cropped")


def _load_cifar10(cfg: ml_collections.ConfigDict) -> DataSplits:
    return _tfds_splits(cfg, "cifar10")


def _load_celeba(cfg: ml_collections.ConfigDict) -> DataSplits:
    def preprocess(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
        # CelebA has attributes, not classes: the placeholder label is dropped below.
        return celeba_preprocess(example["image"], cfg.image_size), tf.constant(-1, tf.int32)

    x_train, _, x_test, _ = _tfds_arrays(cfg, "celeb_a", preprocess)
    return _make_splits(x_train, None, x_test, None, val_size=cfg.val_size, kind="image")


def load_chardata(path: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Reads Burda et al.'s ``chardata.mat`` (28x28 Omniglot, 24,345 train / 8,070 test).

    ``data`` / ``testdata`` are ``[784, N]`` in [0, 1] with each image flattened in column-major
    (Fortran) order; ``target`` / ``testtarget`` are ``[50, N]`` one-hot alphabets.

    Returns:
      ``(x_train, y_train, x_test, y_test)``, images ``[N, 28, 28, 1]`` float32.
    """
    mat = scipy.io.loadmat(path)

    def images(key: str) -> np.ndarray:
        flat = np.asarray(mat[key], np.float32)  # [784, N]
        return np.moveaxis(flat.reshape(28, 28, -1, order="F"), -1, 0)[..., None]

    def labels(key: str) -> np.ndarray | None:
        return np.argmax(mat[key], axis=0).astype(np.int32) if key in mat else None

    return images("data"), labels("target"), images("testdata"), labels("testtarget")


def _load_omniglot(cfg: ml_collections.ConfigDict) -> DataSplits:
    if cfg.path is not None:
        x_train, y_train, x_test, y_test = load_chardata(cfg.path)
        x_train, x_test = (_resize_array(x, cfg.image_size) for x in (x_train, x_test))
    else:

        def preprocess(example: dict) -> tuple[tf.Tensor, tf.Tensor]:
            # TFDS images are black strokes on white RGB: invert so that strokes are 1.
            gray = 255 - tf.image.rgb_to_grayscale(example["image"])
            return _resize(gray, cfg.image_size), tf.cast(example["alphabet"], tf.int32)

        hint = " Or pass --config.data.path=FILE, Burda et al.'s chardata.mat."
        x_train, y_train, x_test, y_test = _tfds_arrays(
            cfg, "omniglot", preprocess, local_hint=hint
        )
    order = np.random.default_rng(_OMNIGLOT_SHUFFLE_SEED).permutation(len(x_train))
    y_train = None if y_train is None else y_train[order]
    return _make_splits(
        x_train[order], y_train, x_test, y_test, val_size=cfg.val_size, kind="image"
    )


# ----------------------------------------------------------------------------- synthetic


def two_moons(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two-moons toy set of the dpVAE paper (as in scikit-learn's ``make_moons``).

    Moon 0: (cos t, sin t); moon 1: (1 - cos t, 1/2 - sin t); t ~ U(0, pi); then isotropic
    Gaussian noise of standard deviation ``noise``. Moon 0 gets ceil(n/2) points.

    Returns:
      ``x [n, 2]`` float32 and the moon index ``y [n]`` int32, in random order.
    """
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) >= (n + 1) // 2).astype(np.int32)
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(
        y[:, None] == 0,
        np.stack([np.cos(t), np.sin(t)], axis=1),
        np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1),
    )
    x = x + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


def manifold_map(n: int, dim: int, seed: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """The fixed random map f: R^n -> R^dim of MaskAAE's synthetic data, x = f(z).

    f(z) = leaky_relu(leaky_relu(z W1 + b1) W2 + b2), slope 0.2, hidden width ``dim``,
    W1 ~ N(0, 1/n), W2 ~ N(0, 1/dim), b ~ N(0, 1); the weights depend only on ``seed``.
    Leaky ReLU is a bijection and W1 (rank n for n <= dim) and W2 are full rank almost surely,
    so the data lie on an n-dimensional manifold: the Jacobian of f has rank n everywhere.

    Returns:
      A function taking ``z [N, n]`` and returning ``x [N, dim]`` float32 (differentiable).
    """
    if not 1 <= n <= dim:
        raise InvalidValue(f"manifold latent size n={n} must be in [1, dim={dim}].")
    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.standard_normal((n, dim)) / np.sqrt(n), tf.float32)
    b1 = tf.constant(rng.standard_normal(dim), tf.float32)
    w2 = tf.constant(rng.standard_normal((dim, dim)) / np.sqrt(dim), tf.float32)
    b2 = tf.constant(rng.standard_normal(dim), tf.float32)

    def f(z: tf.Tensor) -> tf.Tensor:
        z = tf.cast(z, tf.float32)  # [N, n]
        h = tf.nn.leaky_relu(z @ w1 + b1, _LEAKY_SLOPE)  # [N, dim]
        return tf.nn.leaky_relu(h @ w2 + b2, _LEAKY_SLOPE)  # [N, dim]

    return f


def _load_two_moons(cfg: ml_collections.ConfigDict) -> DataSplits:
    x_train, y_train = two_moons(cfg.num_examples + cfg.val_size, cfg.noise, _TRAIN_STREAM)
    x_test, y_test = two_moons(cfg.num_examples, cfg.noise, _TEST_STREAM)
    return _make_splits(x_train, y_train, x_test, y_test, val_size=cfg.val_size, kind="vector")


def _load_manifold(cfg: ml_collections.ConfigDict) -> DataSplits:
    n, seed = cfg.manifold_latent_dim, cfg.manifold_seed
    f = manifold_map(n, cfg.manifold_dim, seed)

    def sample(num: int, stream: int) -> np.ndarray:
        z = np.random.default_rng([seed, stream]).standard_normal((num, n))  # [num, n]
        return f(z).numpy()  # [num, D]

    x_train = sample(cfg.num_examples + cfg.val_size, _TRAIN_STREAM)
    x_test = sample(cfg.num_examples, _TEST_STREAM)
    return _make_splits(x_train, None, x_test, None, val_size=cfg.val_size, kind="vector")


# dSprites' val and test splits: fixed random cells of the grid, drawn from these streams.
DSPRITES_TEST_SIZE = 10_000


def _load_dsprites(cfg: ml_collections.ConfigDict) -> DataSplits:
    if cfg.image_size not in (None, factors_lib.DSPRITES_SIZE):
        raise InvalidValue(
            f"dsprites images are 64x64; got --config.data.image_size={cfg.image_size}: "
            "leave it None."
        )
    if cfg.path is not None:
        data = factors_lib.load_dsprites_npz(cfg.path)
    else:
        data = factors_lib.DSprites()

    def cells(n: int, stream: int) -> np.ndarray:  # sorted for rendering, hence the order
        return np.sort(np.random.default_rng([0, stream]).choice(len(data), n, False))

    def shape_labels(index) -> np.ndarray:  # the FID classifier's classes
        return data.factors_of(index)[:, 0].astype(np.int32)

    val, test = cells(cfg.val_size, _TRAIN_STREAM), cells(DSPRITES_TEST_SIZE, _TEST_STREAM)
    if cfg.test_size:  # a prefix of the same draw, rendered alone (rendering dominates loading)
        test = test[: cfg.test_size]
    return DataSplits(
        train=data,
        val=data[val],
        test=data[test],
        shape=data.shape[1:],
        kind="image",
        train_labels=shape_labels(np.arange(len(data))),
        val_labels=shape_labels(val),
        test_labels=shape_labels(test),
        factors=data,
    )


DATASETS: dict[str, Callable[[ml_collections.ConfigDict], DataSplits]] = {
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "svhn": _load_svhn,
    "celeba": _load_celeba,
    "cifar10": _load_cifar10,
    "omniglot": _load_omniglot,
    "two_moons": _load_two_moons,
    "manifold": _load_manifold,
    "idx": _load_idx,
    "npz": _load_npz,
    "dsprites": _load_dsprites,
}


def load(cfg: ml_collections.ConfigDict) -> DataSplits:
    """Loads the dataset named by ``cfg.name`` (the ``data`` sub-config) into memory.

    ``cfg.test_size`` > 0 keeps the first ``test_size`` examples of the test split.
    """
    if cfg.test_size < 0:
        raise InvalidValue(
            f"--config.data.test_size={cfg.test_size} must be >= 0 (0 keeps the whole test split)."
        )
    splits = registry.lookup(DATASETS, cfg.name, "dataset")(cfg)
    if not cfg.test_size or cfg.test_size >= len(splits.test):
        return splits
    labels = splits.test_labels
    return dataclasses.replace(
        splits,
        test=splits.test[: cfg.test_size],
        test_labels=None if labels is None else labels[: cfg.test_size],
    )


# ----------------------------------------------------------------------------- pipelines


def without_autotune_model(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with tf.data's autotuning model switched off (``AUTOTUNE`` values still apply).

    In TF 2.21, deleting an iterator waits for the autotuning thread's next wake-up, and that
    thread's period doubles while the iterator lives, up to a minute: the end of training, every
    finished validation pass and every garbage-collected iterator stalled for up to 60 s, with
    the process idle. Measured on a map + prefetch pipeline: deletion took up to 4.2 s after 6 s
    of use with the model, 0.00 s without it, at the same batches per second.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def to_float(x) -> tf.Tensor:
    """Scales a batch to float32: uint8 k -> k / 255 in [0, 1]; other dtypes are only cast."""
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    return tf.cast(x, tf.float32)


def static_binarize(x: np.ndarray, seed: int = STATIC_BINARIZE_SEED) -> np.ndarray:
    """One Bernoulli draw per pixel with probability ``to_float(x)``, fixed by ``seed``.

    Returns:
      uint8 images with values {0, 255}, so that ``to_float`` maps them to {0, 1} and the array
      stays as small as the 8-bit input.
    """
    rng = np.random.default_rng(seed)
    out = np.empty(x.shape, np.uint8)
    for i in range(0, len(x), _CHUNK):
        p = to_float(x[i : i + _CHUNK]).numpy()
        out[i : i + _CHUNK] = np.where(rng.random(p.shape, np.float32) < p, 255, 0)
    return out


def _check_transforms(x: np.ndarray, binarize: str, dequantize: bool) -> None:
    if binarize not in BINARIZE_MODES:
        raise InvalidValue(f"Unknown binarize {binarize!r}. Valid: {', '.join(BINARIZE_MODES)}.")
    if dequantize and binarize != "none":
        raise ValueError(
            f"dequantize=True conflicts with binarize={binarize!r}: binary pixels are not "
            "8-bit intensities."
        )
    if dequantize and x.dtype != np.uint8:
        raise ValueError(f"dequantize=True needs 8-bit (uint8) images, got dtype {x.dtype}.")


def train_transforms(cfg: ml_collections.ConfigDict) -> dict:
    """The ``train_dataset`` transforms a ``data`` sub-config asks for: binarize, dequantize and
    augment, as keyword arguments."""
    return {"binarize": cfg.binarize, "dequantize": cfg.dequantize, "augment": cfg.augment}


def train_dataset(
    x: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    binarize: str = "none",
    dequantize: bool = False,
    augment: str = "none",
) -> tf.data.Dataset:
    """An infinite stream of float32 training batches ``[B, ...]``, deterministic by step.

    Step s (counted from 0 over the whole run) yields the examples at positions
    ``(s mod S) * B + [0, B)`` of epoch ``e = s // S``'s permutation ``index_shuffle(., (seed,
    e))``, S = floor(N / B). Dynamic binarization and dequantization noise are stateless
    draws seeded by (seed, s). So the batch at step s depends only on (x, seed, B, s).

    Args:
      x: ``[N, ...]`` training examples (uint8 images are scaled by ``to_float``).
      batch_size: B, at most N; incomplete batches are never produced.
      seed: the run's seed.
      start_step: the global step of the first batch (resume point).
      binarize: "none", "dynamic" (fresh Bernoulli draw at every step) or "static" (one draw
        with ``STATIC_BINARIZE_SEED``).
      dequantize: add U(0, 1/256) to 8-bit images.
      augment: a key of ``tfvae.augment.AUGMENTATIONS`` ("none", or "dpvae": the dpVAE
        authors' MNIST augmentation), applied before binarization and dequantization, with
        draws seeded by (seed, s) like the noise.
    """
    _check_transforms(x, binarize, dequantize)
    augment_fn = registry.lookup(augment_lib.AUGMENTATIONS, augment, "augmentation")
    n = len(x)
    if not 1 <= batch_size <= n:
        raise InvalidValue(f"batch_size={batch_size} must be in [1, {n}] for {n} examples.")
    if start_step < 0:
        raise ValueError(f"start_step={start_step} must be >= 0.")
    if isinstance(x, factors_lib.FactorData):  # rendered or bit-packed per batch
        if binarize == "static":
            raise ValueError("binarize='static' needs the images in memory; use 'none'.")
        gather = x.gather
    else:
        if binarize == "static":
            x = static_binarize(x)
        images = tf.constant(x)  # [N, ...], captured once and gathered from per batch
        gather = lambda index: tf.gather(images, index)  # noqa: E731
    steps_per_epoch = n // batch_size
    positions = tf.range(batch_size, dtype=tf.int64)  # [B]
    seed = tf.constant(seed, tf.int64)

    def batch_at(step: tf.Tensor) -> tf.Tensor:
        epoch = step // steps_per_epoch
        first = (step % steps_per_epoch) * batch_size
        index = tf.random.experimental.index_shuffle(
            first + positions, seed=tf.stack([seed, epoch]), max_index=tf.constant(n - 1, tf.int64)
        )  # [B]
        batch = to_float(gather(index))  # [B, ...]
        step_seed = tf.stack([seed, step])
        if augment_fn is not None:
            batch = augment_fn(
                batch, tf.random.experimental.stateless_fold_in(step_seed, _AUGMENT_TAG)
            )
        if binarize == "dynamic":
            noise_seed = tf.random.experimental.stateless_fold_in(step_seed, _BINARIZE_TAG)
            u = tf.random.stateless_uniform(tf.shape(batch), noise_seed)
            batch = tf.cast(u < batch, tf.float32)
        if dequantize:
            noise_seed = tf.random.experimental.stateless_fold_in(step_seed, _DEQUANTIZE_TAG)
            batch += tf.random.stateless_uniform(tf.shape(batch), noise_seed, maxval=1.0 / 256)
        return batch

    steps = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
    batches = steps.map(batch_at, num_parallel_calls=tf.data.AUTOTUNE)
    return without_autotune_model(batches.prefetch(tf.data.AUTOTUNE))


def eval_dataset(x: np.ndarray, *, batch_size: int, binarize: str = "none") -> tf.data.Dataset:
    """Finite, ordered float32 batches ``[B, ...]`` of ``x``; the last one may be smaller.

    Any binarization other than "none" is static with ``STATIC_BINARIZE_SEED``, so evaluating
    twice gives the same numbers.
    """
    _check_transforms(x, binarize, dequantize=False)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    if binarize != "none":
        x = static_binarize(x)
    images = tf.constant(x)  # [N, ...]
    starts = tf.data.Dataset.range(0, len(x), batch_size)
    batches = starts.map(lambda start: to_float(images[start : start + batch_size]))
    return without_autotune_model(batches.prefetch(tf.data.AUTOTUNE))


# ----------------------------------------------------------------------------------------------
# Shapes and sizes without loading (tools.benchmark builds models on synthetic data)
# ----------------------------------------------------------------------------------------------
# Per-example shapes of the data sets whose shape does not depend on the config.
IMAGE_SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "omniglot": (28, 28, 1),
    "svhn": (32, 32, 3),
    "cifar10": (32, 32, 3),
    "dsprites": (64, 64, 1),
}
# Training-set sizes before the validation split (only minibatch estimators read N).
TRAIN_SIZES = {
    "mnist": 60_000,
    "fashion_mnist": 60_000,
    "omniglot": 24_345,
    "svhn": 73_257,
    "cifar10": 50_000,
    "celeba": 162_770,
    "dsprites": 737_280,
}


def example_shape(cfg: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The per-example shape ``load(cfg)`` gives, without loading the data set."""
    if cfg.name in IMAGE_SHAPES:
        shape = IMAGE_SHAPES[cfg.name]
        if cfg.image_size:
            shape = (cfg.image_size, cfg.image_size, shape[-1])
        return shape
    if cfg.name == "celeba":
        size = cfg.image_size or 64
        return (size, size, 3)
    if cfg.name == "two_moons":
        return (2,)
    if cfg.name == "manifold":
        return (int(cfg.manifold_dim),)
    raise InvalidValue(
        f"The shape of data set {cfg.name!r} is known only once it is loaded; it is known "
        f"beforehand for {sorted([*IMAGE_SHAPES, 'celeba', 'two_moons'])} and 'manifold'."
    )


def num_train_examples(cfg: ml_collections.ConfigDict) -> int:
    """N as a model built on ``load(cfg)`` sees it: the training split less the validation
    split (60,000 for a data set of unknown size)."""
    n = cfg.num_examples or TRAIN_SIZES.get(cfg.name, 60_000)
    return max(n - cfg.val_size, 1)
