"""Training-time data augmentation, as batched stateless TensorFlow ops (deterministic by step).

``AUGMENTATIONS`` (the ``data.augment`` config field):

  none    no augmentation (the default of every config and dataset but ``:mnist``).
  dpvae   the dpVAE authors' MNIST augmentation (their ``dataset.py``, used by every
          ``config/*/mnist.json`` and ``dp_mnist.json`` of theirs, ``"augment": true``):
            RandomApply(ColorJitter(0.5, 0.5, 0.5, 0.25), p=0.5), then
            RandomApply(RandomAffine(5, translate=(0.1, 0.1), scale=(0.9, 1.1)), p=0.5),
          on 8-bit grayscale PIL images. For one-channel images ColorJitter's saturation and
          hue are the identity (PIL's ``adjust_hue`` returns gray images unchanged, and a gray
          image is its own grayscale), so the jitter is brightness b and contrast c, each
          ~ U(0.5, 1.5), applied in a random order (torchvision permutes the four): brightness
          x -> b x, contrast x -> m + c (x - m) with m the image's mean rounded to an 8-bit
          level, each clipped to [0, 1] and rounded to 8 bits as PIL does. The affine map
          rotates by U(-5, 5) degrees and scales by U(0.9, 1.1) about the image center, and
          translates by a whole number of pixels, round(U(-0.1, 0.1) * size) per axis;
          nearest-neighbour sampling, zero fill (torchvision's defaults).

Every draw is a stateless function of (seed, step) (``tfvae.data.train_dataset`` folds in the
step), so a resumed run sees the augmented batches an uninterrupted run sees.
"""

import math

import tensorflow as tf

# Stream tags folded into the step's seed, one per kind of draw.
_APPLY_JITTER, _BRIGHTNESS, _CONTRAST, _ORDER, _APPLY_AFFINE, _AFFINE = range(6)


def _uniform(seed, tag: int, shape, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    s = tf.random.experimental.stateless_fold_in(seed, tag)
    return tf.random.stateless_uniform(shape, s, minval=low, maxval=high)


def _to_8bit(x: tf.Tensor) -> tf.Tensor:
    """Clips to [0, 1] and rounds to the 256 levels of an 8-bit image (PIL's uint8 result)."""
    return tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0


def brightness(x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageEnhance.Brightness``: blend with black. x [B, H, W, C], factor [B]."""
    return _to_8bit(x * factor[:, None, None, None])


def contrast(x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL ``ImageEnhance.Contrast``: blend with the image's mean gray level (an 8-bit level,
    ``int(mean + 0.5)``). x [B, H, W, C] gray, factor [B]."""
    mean = tf.floor(tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True) * 255.0 + 0.5) / 255.0
    return _to_8bit(mean + factor[:, None, None, None] * (x - mean))


def affine_transforms(angle_deg, scale, tx, ty, height: int, width: int) -> tf.Tensor:
    """``ImageProjectiveTransformV3`` rows [B, 8] mapping each output pixel to its input pixel:
    the inverse of (rotate by ``angle`` and scale by ``scale`` about the center, then translate
    by (tx, ty) pixels). Pixel indices; the center is ((W - 1) / 2, (H - 1) / 2), PIL's
    (W / 2, H / 2) in its pixel-edge coordinates."""
    a = angle_deg * (math.pi / 180.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = tf.cos(a) / scale, tf.sin(a) / scale
    # input = C + R(-a) (output - C - t) / s
    ox, oy = -cx - tx, -cy - ty
    a0, a1, a2 = cos, sin, cx + cos * ox + sin * oy
    b0, b1, b2 = -sin, cos, cy - sin * ox + cos * oy
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def affine(x: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    """Applies ``affine_transforms`` rows with nearest sampling and zero fill."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x,
        transforms=transforms,
        output_shape=tf.shape(x)[1:3],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )


def dpvae(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The dpVAE authors' MNIST augmentation (module doc) of a batch x [B, H, W, C] in [0, 1]."""
    b = tf.shape(x)[0]
    height, width = x.shape[1], x.shape[2]

    jitter = _uniform(seed, _APPLY_JITTER, [b]) < 0.5
    bright = _uniform(seed, _BRIGHTNESS, [b], 0.5, 1.5)
    contr = _uniform(seed, _CONTRAST, [b], 0.5, 1.5)
    bright_first = (_uniform(seed, _ORDER, [b]) < 0.5)[:, None, None, None]
    bc = contrast(brightness(x, bright), contr)
    cb = brightness(contrast(x, contr), bright)
    jittered = tf.where(bright_first, bc, cb)
    x = tf.where(jitter[:, None, None, None], jittered, x)

    apply_affine = _uniform(seed, _APPLY_AFFINE, [b]) < 0.5
    u = _uniform(seed, _AFFINE, [b, 4])
    angle = -5.0 + 10.0 * u[:, 0]
    tx = tf.round((-0.1 + 0.2 * u[:, 1]) * width)
    ty = tf.round((-0.1 + 0.2 * u[:, 2]) * height)
    scale = 0.9 + 0.2 * u[:, 3]
    moved = affine(x, affine_transforms(angle, scale, tx, ty, height, width))
    return tf.where(apply_affine[:, None, None, None], moved, x)


AUGMENTATIONS = {"none": None, "dpvae": dpvae}
