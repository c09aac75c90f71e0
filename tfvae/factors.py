"""Data with known factors of variation: the ground-truth factor API and dSprites.

The disentanglement metrics (``tfvae.evaluation.disentanglement``) see a dataset only through
``FactorData``, as disentanglement_lib's ``GroundTruthData``:

  ``factor_names``, ``factor_sizes``   K factors, factor k takes values 0 .. size_k - 1;
  ``sample_factors(n, rng)``           ``[n, K]`` factor indices drawn uniformly;
  ``images(factors)``                  ``[n, H, W, C]`` uint8 observations for given factors;
  ``factors_of(index)``                ``[n, K]`` factors of training examples ``index``.

A ``FactorData`` is also the training split itself: it has ``len``, ``shape``, ``dtype`` and
numpy indexing (``data[i:j]``, ``data[index_array]``), and ``gather(index)`` gives a batch as a
tensor, which ``tfvae.data.train_dataset`` calls inside its step-deterministic pipeline. The
training set is the whole factor grid in row-major (C) order, index = ravel(factors), as in
Locatello et al. (2019), who train on every image.

dSprites (``DSprites``) is rendered here, from the factor values, on the fly for every batch:
the data take no memory at all, and rendering a batch of 64 costs well under a millisecond.
The grid is DeepMind's (Matthey et al. 2017): shape (square, ellipse, heart) x scale
(6 values, 0.5 to 1) x orientation (40 values, 2 pi k / 40) x position x (32) x position y
(32) = 737,280 binary 64x64 images. Drawing (pixel (i, j) is on when its center
(j + 1/2, i + 1/2) lies inside the shape, no antialiasing, so images are exactly binary):

  centre   c = 15.5 + 33 p / 31 pixels for position index p (x: column, y: row), so a shape
           at scale 1 in any orientation stays inside the image;
  frame    (u, v) = R(-theta) (x - c) / (10 scale): one unit is 10 pixels at scale 1;
  square   max(|u|, |v|) <= 1 (20 x 20 pixels at scale 1);
  ellipse  (u / 1.2)^2 + (v / 0.6)^2 <= 1;
  heart    (a^2 + b^2 - 1)^3 - a^2 b^3 <= 0 with a = 0.9 u, b = 0.125 - 0.9 v, the classic
           implicit heart curve (lobes up at theta = 0), centred on its bounding box. The
           original heart's vertex list was never published, so this heart is ours.

Orientations are 2 pi k / 40, k = 0 .. 39, over [0, 2 pi) (the original npz repeats 0 as
2 pi); a square repeats every 10 steps and an ellipse every 20, as in the original.

The original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (``StoredFactorData``,
``load_dsprites_npz``) is read in chunks and kept bit-packed: 737,280 x 512 bytes = 377 MB.

References:
  [1] Matthey, Higgins, Hassabis, Lerchner. dSprites: Disentanglement testing Sprites dataset.
      https://github.com/deepmind/dsprites-dataset, 2017.
  [2] Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
      Disentangled Representations. ICML 2019.
"""

import math
import zipfile

import numpy as np
import tensorflow as tf

from tfvae.errors import InvalidValue

DSPRITES_FACTORS = ("shape", "scale", "orientation", "position_x", "position_y")
DSPRITES_SIZES = (3, 6, 40, 32, 32)
DSPRITES_SIZE = 64
DSPRITES_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_UNIT = 10.0  # pixels per shape unit at scale 1
_MARGIN = 15.5  # centre of position 0, in pixels
_SPAN = 33.0  # pixels between the first and the last position


class FactorData:
    """A dataset whose training examples are the cells of a factor grid (see module doc).

    Subclasses implement ``gather``; everything else follows from the grid.
    """

    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    dtype = np.dtype(np.uint8)

    def __init__(self, factor_names, factor_sizes, shape):
        self.factor_names = tuple(factor_names)
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        self.shape = (int(np.prod(self.factor_sizes)), *shape)
        self._compiled_gather = None
        self._strides = tf.constant(
            np.cumprod((self.factor_sizes[1:] + (1,))[::-1])[::-1].copy(), tf.int64
        )  # [K]

    # -- the factor API ------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``[n, K]`` int64 factors, each uniform over its values."""
        return np.stack([rng.integers(0, s, n) for s in self.factor_sizes], axis=1)

    def factors_of(self, index) -> np.ndarray:
        """``[n, K]`` int64 factors of training examples ``index``."""
        return np.stack(np.unravel_index(np.asarray(index), self.factor_sizes), -1).astype(np.int64)

    def index_of(self, factors) -> np.ndarray:
        """``[n]`` training-example indices of ``[n, K]`` factors."""
        factors = np.asarray(factors, np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise InvalidValue(f"factors must be [n, {self.num_factors}], got {factors.shape}.")
        if (factors < 0).any() or (factors >= np.array(self.factor_sizes)).any():
            raise InvalidValue(f"factors out of range: sizes are {self.factor_sizes}.")
        return np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)

    def images(self, factors) -> np.ndarray:
        """``[n, H, W, C]`` uint8 observations of ``[n, K]`` factors."""
        return self[self.index_of(factors)]

    def gather(self, index: tf.Tensor) -> tf.Tensor:
        """``[B, H, W, C]`` uint8 training examples ``index [B]`` (int64), inside tf.data."""
        raise NotImplementedError

    # -- numpy-array behaviour of the training split --------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        if self._compiled_gather is None:  # eager rendering is 10x slower
            self._compiled_gather = tf.function(
                self.gather, input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False
            )
        index = np.arange(len(self))[key]
        if np.ndim(index) == 0:
            return self._compiled_gather(tf.constant([index], tf.int64)).numpy()[0]
        out = [
            self._compiled_gather(tf.constant(index[i : i + 4096], tf.int64)).numpy()
            for i in range(0, len(index), 4096)
        ]
        return np.concatenate(out) if out else np.zeros((0, *self.shape[1:]), np.uint8)

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"{type(self).__name__} is the lazy training split ({self.shape}); index it "
            "(data[i:j]) instead of converting all of it to an array."
        )

    def _unravel_tf(self, index: tf.Tensor) -> tf.Tensor:
        index = tf.cast(index, tf.int64)[:, None]  # [B, 1]
        return (index // self._strides) % tf.constant(self.factor_sizes, tf.int64)  # [B, K]


def render_dsprites(factors: tf.Tensor) -> tf.Tensor:
    """Renders ``[B, 5]`` dSprites factor indices as ``[B, 64, 64, 1]`` uint8 in {0, 255}
    (drawing in the module docstring)."""
    f = tf.cast(factors, tf.float32)  # [B, 5]
    shape, scale_i, orient_i, px, py = (f[:, k, None, None] for k in range(5))  # [B, 1, 1]
    scale = 0.5 + 0.1 * scale_i
    theta = 2.0 * math.pi * orient_i / DSPRITES_SIZES[2]
    step = _SPAN / (DSPRITES_SIZES[3] - 1)
    grid = tf.range(DSPRITES_SIZE, dtype=tf.float32) + 0.5  # pixel centres
    dx = grid[None, None, :] - (_MARGIN + step * px)  # [B, 1, W]
    dy = grid[None, :, None] - (_MARGIN + step * py)  # [B, H, 1]
    cos, sin = tf.cos(theta), tf.sin(theta)
    u = (cos * dx + sin * dy) / (_UNIT * scale)  # [B, H, W]
    v = (-sin * dx + cos * dy) / (_UNIT * scale)  # [B, H, W]
    square = tf.maximum(tf.abs(u), tf.abs(v)) <= 1.0
    ellipse = (u / 1.2) ** 2 + (v / 0.6) ** 2 <= 1.0
    a, b = 0.9 * u, 0.125 - 0.9 * v  # image rows grow downwards: b points up
    heart = (a**2 + b**2 - 1.0) ** 3 - a**2 * b**3 <= 0.0
    inside = tf.where(shape == 0, square, tf.where(shape == 1, ellipse, heart))
    return tf.cast(inside, tf.uint8)[..., None] * 255  # [B, H, W, 1]


class DSprites(FactorData):
    """dSprites rendered on the fly (module docstring): 737,280 images, no memory."""

    def __init__(self):
        super().__init__(DSPRITES_FACTORS, DSPRITES_SIZES, (DSPRITES_SIZE, DSPRITES_SIZE, 1))

    def gather(self, index: tf.Tensor) -> tf.Tensor:
        return render_dsprites(self._unravel_tf(index))


class StoredFactorData(FactorData):
    """A full factor grid held in memory, rows in grid order.

    Binary images (``bits=True``) are kept bit-packed (one bit per pixel, ``[N, H*W*C/8]``
    bytes) and unpacked per batch; others are kept as uint8 ``[N, H, W, C]``.
    """

    def __init__(self, factor_names, factor_sizes, shape, rows: np.ndarray, *, bits: bool):
        super().__init__(factor_names, factor_sizes, shape)
        if len(rows) != len(self):
            raise InvalidValue(
                f"{len(rows)} examples for a factor grid of {len(self)} ({self.factor_sizes})."
            )
        self.bits = bits
        self.rows = tf.constant(rows)  # [N, bytes] packed or [N, H, W, C]
        self._shifts = tf.constant(np.arange(7, -1, -1), tf.uint8)

    def gather(self, index: tf.Tensor) -> tf.Tensor:
        rows = tf.gather(self.rows, index)
        if not self.bits:
            return rows
        bits = tf.bitwise.bitwise_and(
            tf.bitwise.right_shift(rows[..., None], self._shifts), 1
        )  # [B, bytes, 8]
        return tf.reshape(bits * 255, (-1, *self.shape[1:]))


def grid_order(factors: np.ndarray, sizes) -> np.ndarray:
    """The permutation that sorts examples with ``[N, K]`` ``factors`` into grid order.

    Raises:
      InvalidValue: when the examples are not exactly one of each grid cell.
    """
    index = np.ravel_multi_index(tuple(np.asarray(factors, np.int64).T), sizes)
    counts = np.bincount(index, minlength=int(np.prod(sizes)))
    if len(index) != counts.size or (counts != 1).any():
        raise InvalidValue(
            f"The factors do not cover the grid {tuple(sizes)} once each: "
            f"{int((counts == 0).sum())} cells missing, {int((counts > 1).sum())} repeated."
        )
    return np.argsort(index)


def _read_npz_rows(path: str, key: str, chunk: int, transform):
    """Yields ``transform(rows)`` for chunks of an array in an ``.npz`` without loading it
    whole (np.load would hold all 3 GB of the dSprites images)."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran, dtype = read_header(f)
        if fortran:
            raise InvalidValue(f"{path}: {key} is stored in Fortran order; expected C order.")
        row = int(np.prod(shape[1:])) * dtype.itemsize
        for start in range(0, shape[0], chunk):
            n = min(chunk, shape[0] - start)
            rows = np.frombuffer(f.read(n * row), dtype).reshape(n, *shape[1:])
            yield transform(rows)


def load_dsprites_npz(path: str, sizes=DSPRITES_SIZES) -> StoredFactorData:
    """DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``: ``imgs [737280, 64, 64]``
    in {0, 1} and ``latents_classes [737280, 6]`` (color, shape, scale, orientation, x, y).

    ``sizes``: the factor grid the file must cover (a smaller one only in tests)."""
    try:
        with np.load(path) as f:
            if "latents_classes" not in f.files or "imgs" not in f.files:
                raise InvalidValue(
                    f"{path}: not the dSprites npz ({DSPRITES_NPZ}): it needs imgs and "
                    f"latents_classes, it has {sorted(f.files)}."
                )
            factors = f["latents_classes"][:, 1:]
    except (OSError, zipfile.BadZipFile) as e:
        raise InvalidValue(
            f"Cannot read --config.data.path={path!r} as {DSPRITES_NPZ}: {e}"
        ) from None
    packed = np.concatenate(
        list(
            _read_npz_rows(path, "imgs", 8192, lambda x: np.packbits(x.reshape(len(x), -1) > 0, 1))
        )
    )
    order = grid_order(factors, sizes)
    return StoredFactorData(
        DSPRITES_FACTORS, sizes, (DSPRITES_SIZE, DSPRITES_SIZE, 1), packed[order], bits=True
    )


# ----------------------------------------------------------------------------- shapes3d

SHAPES3D_FACTORS = (
    "floor_hue",
    "wall_hue",
    "object_hue",
    "scale",
    "shape",
    "orientation",
)
SHAPES3D_SIZES = (10, 10, 10, 8, 4, 15)


def load_shapes3d(
    data_dir: str | None = None, *, download: bool = False, sizes=SHAPES3D_SIZES
) -> StoredFactorData:
    """TFDS ``shapes3d`` (Burgess and Kim 2018): 480,000 RGB 64x64 images on the grid
    floor hue (10) x wall hue (10) x object hue (10) x scale (8) x shape (4) x orientation (15),
    held as uint8 in grid order (5.9 GB: unlike dSprites it is neither binary nor rendered here).

    Args:
      data_dir: the TFDS data folder (None: TFDS's default).
      download: let TFDS download and prepare it when it is not prepared.
      sizes: the grid the examples must cover (a smaller one only in tests).
    """
    import tensorflow_datasets as tfds  # heavy import, only for TFDS-backed data

    builder = tfds.builder("shapes3d", data_dir=data_dir)
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(
                f"TFDS dataset 'shapes3d' is not prepared in {builder.data_dir}. On a machine "
                "with internet run `tfds build shapes3d --data_dir=DIR` and pass "
                "data_dir=DIR, or pass download=True."
            )
        builder.download_and_prepare()
    keys = [f"label_{name}" for name in SHAPES3D_FACTORS]

    def split(example):
        return example["image"], tf.stack([tf.cast(example[k], tf.int64) for k in keys])

    ds = builder.as_dataset(split="train", shuffle_files=False).map(split).batch(4096)
    images, labels = zip(*ds.as_numpy_iterator(), strict=True)
    images, labels = np.concatenate(images), np.concatenate(labels)
    order = grid_order(labels, sizes)
    return StoredFactorData(SHAPES3D_FACTORS, sizes, images.shape[1:], images[order], bits=False)
