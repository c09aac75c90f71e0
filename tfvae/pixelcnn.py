"""The PixelCNN decoder of NE-VAE (He et al. [2], van den Oord et al. [3]) and its samplers.

``decoder([z, x])`` gives the logits of every pixel at once (teacher forcing); sampling is
autoregressive, one pixel at a time in raster order. Two samplers give the same images for the
same (z, u): ``sample_with_uniforms`` computes, for each pixel, only the image row being
sampled, reusing the rows above from a cache (``RowCache``); ``sample_with_uniforms_reference``
runs the whole network over the whole image for every pixel (H*W full passes), as the
definition reads, and is kept as the reference the fast one is tested against.

References:
  [2] He, Spokoyny, Neubig, Berg-Kirkpatrick. Lagging Inference Networks and Posterior Collapse
      in Variational Autoencoders. ICLR 2019.
  [3] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
"""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvae.errors import InvalidValue

# He et al. 2019 "large" PixelCNN: 13 masked layers (their dec_pixelcnn_v2.py).
HE_PIXELCNN_KERNEL_SIZES = (7, 7, 7, 7, 7, 5, 5, 5, 5, 3, 3, 3, 3)


@keras.saving.register_keras_serializable(package="tfvae")
class MaskedConv2D(keras.layers.Conv2D):
    """A "same"-padded Conv2D whose kernel only sees pixels before the centre in raster order.

    For a k x k kernel (centre c = k // 2), mask type A zeroes the weights at rows > c and at
    row c, columns >= c; type B keeps the centre (columns > c zeroed). Only the first
    ``masked_channels`` input channels are masked (all when None); the rest (e.g. feature maps
    of z, which carry no pixel information) are seen in full. The mask multiplies the kernel in
    every call, so masked weights get zero gradient and never leak.

    Args:
      filters: output channels.
      kernel_size: odd int.
      mask_type: "A" (first layer: excludes the current pixel) or "B" (later layers).
      masked_channels: how many leading input channels to mask; None masks all.
    """

    def __init__(self, filters, kernel_size, *, mask_type: str, masked_channels=None, **kwargs):
        if mask_type not in ("A", "B"):
            raise InvalidValue(f"mask_type must be 'A' or 'B'; got {mask_type!r}.")
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        if self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
            raise InvalidValue(f"MaskedConv2D needs odd kernel sizes; got {self.kernel_size}.")
        self.mask_type = mask_type
        self.masked_channels = masked_channels
        self.mask = None

    def build(self, input_shape):
        super().build(input_shape)
        kh, kw, c_in, c_out = self.kernel.shape
        n = c_in if self.masked_channels is None else self.masked_channels
        mask = np.ones((kh, kw, c_in, c_out), np.float32)  # [kh, kw, C_in, C_out]
        mask[kh // 2, kw // 2 + (self.mask_type == "B") :, :n, :] = 0.0
        mask[kh // 2 + 1 :, :, :n, :] = 0.0
        self.mask = mask

    def convolution_op(self, inputs, kernel):
        # The kernel arrives in the compute dtype (bfloat16 under mixed precision).
        return super().convolution_op(inputs, kernel * keras.ops.cast(self.mask, kernel.dtype))

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        config.update(mask_type=self.mask_type, masked_channels=self.masked_channels)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class PixelCNNBlock(keras.layers.Layer):
    """Residual mask-B block (He et al. ``PixelCNNBlock`` without batch norm).

    h -> ELU(h + Conv1x1_c(ELU(MaskedConvB_k(ELU(Conv1x1_{c/2}(h)))))).
    """

    def __init__(self, channels: int, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.kernel_size = kernel_size
        half = max(channels // 2, 1)
        self.reduce = keras.layers.Conv2D(half, 1)
        self.masked = MaskedConv2D(half, kernel_size, mask_type="B")
        self.expand = keras.layers.Conv2D(channels, 1)

    def build(self, input_shape):
        self.reduce.build(input_shape)
        mid = tuple(input_shape[:-1]) + (self.reduce.filters,)
        self.masked.build(mid)
        self.expand.build(mid)

    def call(self, h):
        y = keras.activations.elu(self.reduce(h))
        y = keras.activations.elu(self.masked(y))
        return keras.activations.elu(h + self.expand(y))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, kernel_size=self.kernel_size)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class PixelCNNDecoder(keras.Model):
    """PixelCNN [3] decoder p(x|z) = prod_i Bernoulli(x_i | sigmoid(l_i(z, x_<i))), He et al. [2].

    Follows He et al.'s ``PixelCNNDecoderV2`` ("large", the NE-VAE setting):
    z -> Dense(H*W*z_feature_maps) reshaped to feature maps and concatenated to x as extra
    channels; a mask-A conv (masking only the image channels) and len(kernel_sizes) - 1
    residual mask-B blocks (13 layers in all by default); like theirs, the output of layer
    i - 3 feeds the input of layer i (and the output) through an extra residual block; head
    Conv1x1(channels) -> ELU -> Conv1x1(C) giving logits. Raster order is over pixels; the C
    channels of one pixel are conditionally independent given earlier pixels and z.

    Departures from He et al.: no batch normalization (in training mode its batch statistics
    pool all pixels, so logit i would depend on pixels >= i), and logits instead of a sigmoid.
    ``channels=64`` is theirs; smaller values (32) keep CPU tests fast.

    Call: ``decoder([z, x])`` with z [B, latent_dim], x [B, H, W, C] -> logits [B, H, W, C]
    (teacher forcing). ``sample(z, seed)`` draws x pixel by pixel.
    """

    autoregressive = True

    def __init__(
        self,
        latent_dim: int,
        output_shape: Sequence[int],
        channels: int = 64,
        kernel_sizes: Sequence[int] = HE_PIXELCNN_KERNEL_SIZES,
        z_feature_maps: int = 4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        output_shape = tuple(int(s) for s in output_shape)
        if len(output_shape) != 3:
            raise InvalidValue(f"pixelcnn decoder expects (H, W, C) images; got {output_shape}.")
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if len(kernel_sizes) < 3:
            raise InvalidValue(
                f"pixelcnn needs at least 3 layers; got kernel_sizes={kernel_sizes}."
            )
        self.latent_dim = int(latent_dim)
        self.image_shape = output_shape
        self.channels = int(channels)
        self.kernel_sizes = kernel_sizes
        self.z_feature_maps = int(z_feature_maps)
        height, width, depth = output_shape
        self.z_projection = keras.layers.Dense(height * width * self.z_feature_maps)
        self.first = MaskedConv2D(channels, kernel_sizes[0], mask_type="A", masked_channels=depth)
        self.blocks = [PixelCNNBlock(channels, k) for k in kernel_sizes[1:]]
        self.direct = [PixelCNNBlock(channels, k) for k in kernel_sizes[1:-1]]
        self.head_hidden = keras.layers.Conv2D(channels, 1)
        self.head_out = keras.layers.Conv2D(depth, 1)

    def _z_maps(self, z):
        height, width, _ = self.image_shape
        maps = self.z_projection(z)  # [B, H*W*F]
        return keras.ops.reshape(maps, (-1, height, width, self.z_feature_maps))  # [B, H, W, F]

    def _logits(self, z_maps, x):
        h = keras.ops.concatenate([x, z_maps], axis=-1)  # [B, H, W, C + F]: image channels first
        h = keras.activations.elu(self.first(h))  # [B, H, W, channels]
        outputs = [h]  # outputs[i] = output of layer i
        for i, block in enumerate(self.blocks, start=1):
            if i >= 3:
                h = h + self.direct[i - 3](outputs[i - 3])
            h = block(h)
            outputs.append(h)
        h = h + self.direct[-1](outputs[-3])
        h = keras.activations.elu(self.head_hidden(h))
        return self.head_out(h)  # [B, H, W, C]

    def call(self, inputs):
        z, x = inputs
        return self._logits(self._z_maps(z), x)

    def build(self, input_shape):
        z_shape, x_shape = input_shape
        self.z_projection.build(z_shape)
        h_shape = tuple(x_shape[:-1]) + (self.channels,)
        self.first.build(tuple(x_shape[:-1]) + (x_shape[-1] + self.z_feature_maps,))
        for layer in self.blocks + self.direct:
            layer.build(h_shape)
        self.head_hidden.build(h_shape)
        self.head_out.build(h_shape)
        self.built = True

    def sample(self, z, seed) -> tf.Tensor:
        """Draws x ~ p(x|z) one pixel at a time in raster order (H*W network passes).

        u = keras.random.uniform([B, H, W, C], seed=seed), then ``sample_with_uniforms(z, u)``,
        so the same seed gives the same images.

        Args:
          z: [B, latent_dim] latent codes.
          seed: an int or a ``keras.random.SeedGenerator``.

        Returns:
          Binary float32 images [B, H, W, C].
        """
        z = tf.convert_to_tensor(z, tf.float32)
        u = keras.random.uniform((tf.shape(z)[0], *self.image_shape), seed=seed)  # [B, H, W, C]
        return self.sample_with_uniforms(z, u)

    @tf.function
    def sample_with_uniforms(self, z, u) -> tf.Tensor:
        """Pixel-by-pixel sampling with given uniform noise: x_i = 1[u_i < sigmoid(l_i(z, x_<i))].

        The sample is a deterministic function of (z, u): callers that need their own noise
        (stateless per-row seeds in an export, one shared noise image across a traversal) pass
        it here. The same images as ``sample_with_uniforms_reference``, computed row by row:

        Every layer's activation at pixel p depends only on pixels before p in raster order (the
        masks; z's feature maps are seen whole but are fixed). So once row i - 1 is sampled,
        every activation of rows < i is final, and the logits of row i need, per masked
        convolution with kernel centre row c, only its input's c rows above (cached) and row i
        (recomputed while row i is sampled); 1x1 convolutions and element-wise ops need row i
        alone. One pass per pixel computes one image row instead of the whole image (about H
        times fewer FLOPs); the rows above enter each masked convolution through its c + 1
        kernel rows (the rows below are masked to zero). z's part of the first layer is
        convolved once for the whole image.

        Args:
          z: [B, latent_dim] latent codes.
          u: [B, H, W, C] uniforms in [0, 1).

        Returns:
          Binary images [B, H, W, C] of u's dtype.
        """
        height, width, depth = self.image_shape
        compute = self.first.compute_dtype
        convs = self._masked_convs()  # [(layer, image channels or None)], one per cache slot
        pads = [layer.kernel_size[0] // 2 for layer, _ in convs]
        z_maps = keras.ops.cast(self._z_maps(z), compute)  # [B, H, W, F]
        z_kernel = keras.ops.cast(self.first.kernel, compute)[:, :, depth:]  # seen unmasked
        z_first = tf.nn.conv2d(z_maps, z_kernel, 1, "SAME")  # [B, H, W, channels]
        batch = tf.shape(z)[0]
        caches = []  # slot k: [B, pads[k] zero rows + H, W, C_in], the rows above row 0 = 0
        for (layer, channels), pad in zip(convs, pads, strict=True):
            c_in = channels or int(layer.kernel.shape[2])
            dtype = u.dtype if channels else compute
            caches.append(tf.zeros([batch, pad + height, width, c_in], dtype))

        def row(i, x, caches):
            above = [
                tf.slice(c, [0, i, 0, 0], [-1, p, -1, -1])
                for c, p in zip(caches, pads, strict=True)
            ]
            # Slices and masked updates of static size, so that XLA can compile the loop too.
            z_row = tf.slice(z_first, [0, i, 0, 0], [-1, 1, -1, -1])  # [B, 1, W, channels]
            u_row = tf.gather(u, i, axis=1)  # [B, W, C]

            def pixel(j, x_row):
                logits, _ = self._row_pass(x_row, z_row, above, convs)  # [B, 1, W, C]
                p = tf.sigmoid(tf.cast(tf.gather(logits[:, 0], j, axis=1), u.dtype))  # [B, C]
                bits = tf.cast(tf.gather(u_row, j, axis=1) < p, x_row.dtype)  # [B, C]
                where = tf.reshape(tf.one_hot(j, width, dtype=x_row.dtype), (1, 1, width, 1))
                return j + 1, x_row + where * bits[:, None, None, :]

            x_row = tf.zeros([batch, 1, width, depth], u.dtype)
            _, x_row = tf.while_loop(lambda j, _: j < width, pixel, (tf.constant(0), x_row))
            # Row i is final: its activations (which never see x_row's own pixel) go to cache.
            _, rows = self._row_pass(x_row, z_row, above, convs)
            caches = [
                _put_row(c, tf.cast(r, c.dtype), i + p)
                for c, r, p in zip(caches, rows, pads, strict=True)
            ]
            return i + 1, _put_row(x, x_row, i), caches

        _, x, _ = tf.while_loop(
            lambda i, *_: i < height, row, (tf.constant(0), tf.zeros_like(u), caches)
        )
        return x

    def _masked_convs(self):
        """The masked convolutions in cache-slot order: the first layer (its image channels),
        then each block's, then each direct block's."""
        depth = self.image_shape[-1]
        return [(self.first, depth)] + [(b.masked, None) for b in self.blocks + self.direct]

    def _row_pass(self, x_row, z_row, above, convs):
        """``_logits`` restricted to one image row i (see ``sample_with_uniforms``).

        Args:
          x_row: [B, 1, W, C] row i of the image.
          z_row: [B, 1, W, channels] row i of z's part of the first layer.
          above: per masked convolution, its input's c rows above row i, [B, c, W, C_in].
          convs: ``_masked_convs()``.

        Returns:
          (logits [B, 1, W, C] of row i, [row i of each masked convolution's input]).
        """
        rows = {}  # slot -> row i of that masked convolution's input

        def masked(k, row_in):
            rows[k] = row_in
            layer, channels = convs[k]
            return _row_conv(layer, tf.concat([above[k], row_in], 1), channels)

        def block(k, b, h):
            y = keras.activations.elu(b.reduce(h))
            y = keras.activations.elu(masked(k, y))
            return keras.activations.elu(h + b.expand(y))

        h = keras.activations.elu(masked(0, x_row) + z_row)
        outputs = [h]
        n = len(self.blocks)
        for i, b in enumerate(self.blocks, start=1):
            if i >= 3:
                h = h + block(n + i - 2, self.direct[i - 3], outputs[i - 3])
            h = block(i, b, h)
            outputs.append(h)
        h = h + block(n + len(self.direct), self.direct[-1], outputs[-3])
        h = keras.activations.elu(self.head_hidden(h))
        return self.head_out(h), [rows[k] for k in range(len(convs))]

    @tf.function
    def sample_with_uniforms_reference(self, z, u) -> tf.Tensor:
        """``sample_with_uniforms`` as the definition reads: for each pixel, the whole network
        over the whole image (H*W full passes), of which one pixel's logits are used. The
        reference the row-cached sampler is tested against (same images for the same z, u).

        Args:
          z: [B, latent_dim] latent codes.
          u: [B, H, W, C] uniforms in [0, 1).

        Returns:
          Binary images [B, H, W, C] of u's dtype.
        """
        height, width, _ = self.image_shape
        z_maps = self._z_maps(z)  # z is fixed: project once

        def body(t, x):
            i, j = t // width, t % width
            logits = self._logits(z_maps, x)  # [B, H, W, C]; only pixel t is used
            p = tf.sigmoid(tf.cast(logits[:, i, j, :], u.dtype))  # float32 under mixed precision
            bits = tf.cast(u[:, i, j, :] < p, x.dtype)  # [B, C]
            where = tf.reshape(tf.one_hot(t, height * width, dtype=x.dtype), (1, height, width, 1))
            return t + 1, x + where * bits[:, None, None, :]

        _, x = tf.while_loop(
            lambda t, x: t < height * width, body, (tf.constant(0), tf.zeros_like(u))
        )
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            output_shape=self.image_shape,
            channels=self.channels,
            kernel_sizes=self.kernel_sizes,
            z_feature_maps=self.z_feature_maps,
        )
        return config


def pixelcnn_decoder(
    *,
    latent_dim: int,
    output_shape: tuple = (28, 28, 1),
    channels: int = 64,
    kernel_sizes: Sequence[int] = HE_PIXELCNN_KERNEL_SIZES,
    z_feature_maps: int = 4,
) -> keras.Model:
    """Builds a ``PixelCNNDecoder`` (13 layers, 64 channels as in He et al. by default)."""
    model = PixelCNNDecoder(
        latent_dim,
        output_shape,
        channels=channels,
        kernel_sizes=kernel_sizes,
        z_feature_maps=z_feature_maps,
        name="pixelcnn_decoder",
    )
    model([keras.ops.zeros((1, latent_dim)), keras.ops.zeros((1, *model.image_shape))])
    return model


def _row_conv(layer: MaskedConv2D, slab, channels: int | None = None):
    """Row i of ``layer`` ("same" padding) from its input's rows i - c .. i, ``slab``
    [B, c + 1, W, C_in], c the kernel's centre row: only kernel rows 0..c are unmasked (for
    the first ``channels`` input channels, the image's; all when None). Returns [B, 1, W, C_out].
    """
    kh, kw = layer.kernel_size
    compute = layer.compute_dtype
    kernel = keras.ops.cast(layer.kernel, compute) * keras.ops.cast(layer.mask, compute)
    kernel = kernel[: kh // 2 + 1]  # [c + 1, kw, C_in, C_out]
    if channels is not None:
        kernel = kernel[:, :, :channels]
    slab = tf.pad(tf.cast(slab, compute), [[0, 0], [0, 0], [kw // 2, kw // 2], [0, 0]])
    out = tf.nn.conv2d(slab, kernel, 1, "VALID")  # [B, 1, W, C_out]
    if layer.use_bias:
        out = out + keras.ops.cast(layer.bias, compute)
    return out


def _put_row(buffer, row, index):
    """``buffer`` [B, N, W, C] with row ``index`` replaced by ``row`` [B, 1, W, C]."""
    at = tf.reshape(tf.one_hot(index, tf.shape(buffer)[1], dtype=buffer.dtype), (1, -1, 1, 1))
    return buffer * (1 - at) + row * at
