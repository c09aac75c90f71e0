"""Every network architecture of tfvae, as Keras 3 builders in plain registries.

Three registries map names to builders:

* ``ENCODERS``: ``builder(*, input_shape, out_dim, **options) -> keras.Model``, x [B, *input_shape]
  -> [B, out_dim]. A VAE asks for ``out_dim = 2 * latent_dim`` and splits the output into
  ``z_mean, z_log_var``; a deterministic autoencoder asks for ``latent_dim``.
* ``DECODERS``: ``builder(*, latent_dim, output_shape, **options) -> keras.Model``, z [B, d] ->
  unbounded per-pixel parameters [B, *output_shape] (Bernoulli logits or Gaussian means; the
  likelihood applies any squashing). The autoregressive ``pixelcnn`` decoder is called as
  ``decoder([z, x])`` (teacher forcing) and has ``decoder.sample(z, seed)``.
* ``ADVERSARIES``: ``builder(*, input_dim, **options) -> keras.Model``, [B, input_dim] -> [B, out].

Every returned model has a boolean ``autoregressive`` attribute. Use ``build_encoder``,
``build_decoder`` and ``build_adversary``: they look the name up (an unknown name fails listing
the valid ones) and reject unknown options with a TypeError naming them.

Where the papers' figures were lost, the architectures were read from the authors' public code
(dpVAE: ``iyerkrithika21/dpVAE``, ``models/beta_model.py`` and ``models/factor_model.py``;
MaskAAE: ``arnabkmondal/MaskAAE``; He et al. 2019: ``jxhe/vae-lagging-encoder``); each builder's
docstring says what it follows and where it departs from that source.

Example:
  >>> enc = build_encoder("mnist_conv", input_shape=(28, 28, 1), out_dim=2 * 2)
  >>> dec = build_decoder("mnist_conv", latent_dim=2, output_shape=(28, 28, 1))
  >>> logits = dec(enc(x)[:, :2])  # [B, 28, 28, 1]

References:
  [1] Bhalodia, Lee, Elhabian. dpVAEs: Fixing Sample Generation for Regularized VAEs. ACCV 2020,
      Appendix C.
  [2] He, Spokoyny, Neubig, Berg-Kirkpatrick. Lagging Inference Networks and Posterior Collapse
      in Variational Autoencoders. ICLR 2019.
  [3] van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. ICML 2016.
  [4] Mondal et al. MaskAAE: Latent space optimization for Adversarial Auto-Encoders. UAI 2020.
  [5] Kim, Mnih. Disentangling by Factorising. ICML 2018.
  [6] Burgess et al. Understanding disentangling in beta-VAE. arXiv:1804.03599, 2018.
"""

import inspect
import math
from collections.abc import Callable, Sequence

import keras
import numpy as np

from tfvae.conv64 import locatello_conv_decoder, locatello_conv_encoder
from tfvae.errors import InvalidValue
from tfvae.pixelcnn import (  # noqa: F401 (public names of the PixelCNN decoder)
    HE_PIXELCNN_KERNEL_SIZES,
    MaskedConv2D,
    PixelCNNBlock,
    PixelCNNDecoder,
    pixelcnn_decoder,
)
from tfvae.registry import lookup

# PyTorch BatchNorm2d defaults (momentum 0.1 of the new statistic, eps 1e-5), the authors'
# framework; Keras' own defaults (0.99, 1e-3) would change the running averages.
_TORCH_BN = {"momentum": 0.9, "epsilon": 1e-5}


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _finish(model: keras.Model, autoregressive: bool = False) -> keras.Model:
    """Tags a model with the ``autoregressive`` flag every tfvae network carries."""
    model.autoregressive = autoregressive
    return model


def _check_image_shape(shape: Sequence[int], hw: tuple[int, int], what: str) -> tuple:
    """Returns ``shape`` as a tuple after checking it is (H, W, C) with (H, W) == hw."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[:2] != hw:
        raise InvalidValue(f"{what} expects images of shape ({hw[0]}, {hw[1]}, C); got {shape}.")
    return shape


def _activation(name: str, negative_slope: float = 0.2) -> keras.layers.Layer:
    """A fresh activation layer: ``"leaky_relu"`` uses ``negative_slope``, others by name."""
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=negative_slope)
    return keras.layers.Activation(name)


def _dense_stack(
    h,
    sizes: Sequence[int],
    activation: str,
    kernel_initializer="glorot_uniform",
):
    for units in sizes:
        h = keras.layers.Dense(units, kernel_initializer=kernel_initializer)(h)
        h = _activation(activation)(h)
    return h


def _mlp_encoder_model(input_shape, out_dim, hidden_sizes, activation, name, init="glorot_uniform"):
    x = keras.Input(tuple(input_shape))
    h = keras.layers.Flatten()(x)  # [B, prod(input_shape)]
    h = _dense_stack(h, hidden_sizes, activation, init)
    out = keras.layers.Dense(out_dim, kernel_initializer=init)(h)  # [B, out_dim]
    return _finish(keras.Model(x, out, name=name))


def _mlp_decoder_model(
    latent_dim, output_shape, hidden_sizes, activation, name, init="glorot_uniform"
):
    output_shape = tuple(int(s) for s in output_shape)
    z = keras.Input((latent_dim,))
    h = _dense_stack(z, hidden_sizes, activation, init)
    h = keras.layers.Dense(math.prod(output_shape), kernel_initializer=init)(h)
    out = keras.layers.Reshape(output_shape)(h)  # [B, *output_shape]
    return _finish(keras.Model(z, out, name=name))


# ----------------------------------------------------------------------------------------------
# MLPs
# ----------------------------------------------------------------------------------------------
def mlp_encoder(
    *,
    input_shape: tuple,
    out_dim: int,
    hidden_sizes: Sequence[int] = (512, 512),
    activation: str = "relu",
) -> keras.Model:
    """Flatten -> [Dense(h) -> activation for h in hidden_sizes] -> Dense(out_dim).

    Works for vectors and images alike (the input is flattened).
    """
    return _mlp_encoder_model(input_shape, out_dim, hidden_sizes, activation, "mlp_encoder")


def mlp_decoder(
    *,
    latent_dim: int,
    output_shape: tuple,
    hidden_sizes: Sequence[int] = (512, 512),
    activation: str = "relu",
) -> keras.Model:
    """Mirror of ``mlp_encoder``: Dense stack in reversed order -> Dense(prod) -> Reshape."""
    sizes = tuple(reversed(tuple(hidden_sizes)))
    return _mlp_decoder_model(latent_dim, output_shape, sizes, activation, "mlp_decoder")


def two_moons_encoder(
    *, input_shape: tuple = (2,), out_dim: int, activation: str = "leaky_relu"
) -> keras.Model:
    """dpVAE two-moons encoder [1, App. C]: FC 100 -> FC 50 -> FC out_dim.

    The paper does not name the toy's activation. The authors' code writes
    ``nn.LeakyReLU(True)``, which sets the negative slope to 1.0 and so makes the network linear;
    tfvae takes the evident intent, a leaky ReLU with the common slope 0.2.
    """
    return _mlp_encoder_model(input_shape, out_dim, (100, 50), activation, "two_moons_encoder")


def two_moons_decoder(
    *, latent_dim: int, output_shape: tuple = (2,), activation: str = "leaky_relu"
) -> keras.Model:
    """dpVAE two-moons decoder, the mirrored encoder: FC 50 -> FC 100 -> FC prod(output_shape)."""
    return _mlp_decoder_model(latent_dim, output_shape, (50, 100), activation, "two_moons_decoder")


def mask_aae_mlp_encoder(
    *, input_shape: tuple, out_dim: int, hidden_sizes: Sequence[int] = (1024,) * 4
) -> keras.Model:
    """MaskAAE MNIST encoder [4]: Flatten -> 4 x (Dense 1024, ReLU) -> Dense(out_dim).

    Glorot-normal kernels and zero biases, as in the authors' TF1 code.
    """
    return _mlp_encoder_model(
        input_shape, out_dim, hidden_sizes, "relu", "mask_aae_mlp_encoder", "glorot_normal"
    )


def mask_aae_mlp_decoder(
    *, latent_dim: int, output_shape: tuple, hidden_sizes: Sequence[int] = (1024,) * 4
) -> keras.Model:
    """MaskAAE MNIST decoder [4]: 4 x (Dense 1024, ReLU) -> Dense(prod(output_shape)).

    The authors end with a sigmoid; here the output stays as logits and the Bernoulli
    likelihood applies the sigmoid (numerically stabler, same model).
    """
    return _mlp_decoder_model(
        latent_dim, output_shape, hidden_sizes, "relu", "mask_aae_mlp_decoder", "glorot_normal"
    )


# ----------------------------------------------------------------------------------------------
# dpVAE convolutional networks (paper Fig. 10, read from the authors' models/beta_model.py)
# ----------------------------------------------------------------------------------------------
def mnist_conv_encoder(*, input_shape: tuple, out_dim: int, padding: str = "valid") -> keras.Model:
    """dpVAE MNIST encoder [1, Fig. 10] for 28x28xC images, ReLU throughout.

    Conv 32 k4 s2 -> Conv 32 k3 s1 -> Conv 32 k4 s2 -> Conv 32 k3 s1 -> FC 256 -> FC 256 -> out.
    The k4 s2 convolutions halve the size (PyTorch padding 1 == "same"). The authors' code
    (``BetaVAE_MNIST``) leaves the k3 s1 convolutions unpadded: 28 -> 14 -> 12 -> 6 -> 4, so the
    FC input is 4*4*32 = 512. ``padding="same"`` keeps their size instead
    (28 -> 14 -> 14 -> 7 -> 7, FC input 7*7*32 = 1568).

    Args:
      input_shape: (28, 28, C).
      out_dim: output width (2 * latent_dim for a VAE).
      padding: "valid" (authors' code) or "same", for the k3 s1 convolutions.
    """
    input_shape = _check_image_shape(input_shape, (28, 28), "mnist_conv encoder")
    if padding not in ("valid", "same"):
        raise InvalidValue(f"padding must be 'valid' or 'same'; got {padding!r}.")
    x = keras.Input(input_shape)
    h = keras.layers.Conv2D(32, 4, 2, padding="same", activation="relu")(x)  # [B, 14, 14, 32]
    h = keras.layers.Conv2D(32, 3, 1, padding=padding, activation="relu")(h)  # [B, 12|14, ., 32]
    h = keras.layers.Conv2D(32, 4, 2, padding="same", activation="relu")(h)  # [B, 6|7, ., 32]
    h = keras.layers.Conv2D(32, 3, 1, padding=padding, activation="relu")(h)  # [B, 4|7, ., 32]
    h = keras.layers.Flatten()(h)
    h = _dense_stack(h, (256, 256), "relu")
    out = keras.layers.Dense(out_dim)(h)  # [B, out_dim]
    return _finish(keras.Model(x, out, name="mnist_conv_encoder"))


def mnist_conv_decoder(
    *, latent_dim: int, output_shape: tuple, padding: str = "valid"
) -> keras.Model:
    """Mirror of ``mnist_conv_encoder``: FC 256 -> FC 256 -> FC s*s*32 -> transposed convs.

    With ``padding="valid"`` (authors' code, s = 4): ConvT 32 k3 s1 (6) -> ConvT 32 k4 s2 (12)
    -> ConvT 32 k3 s1 (14) -> ConvT C k4 s2 (28). With ``"same"`` (s = 7): 7 -> 14 -> 14 -> 28.
    ReLU everywhere except the output, which is left unbounded.
    """
    output_shape = _check_image_shape(output_shape, (28, 28), "mnist_conv decoder")
    if padding not in ("valid", "same"):
        raise InvalidValue(f"padding must be 'valid' or 'same'; got {padding!r}.")
    side = 4 if padding == "valid" else 7
    z = keras.Input((latent_dim,))
    h = _dense_stack(z, (256, 256, side * side * 32), "relu")
    h = keras.layers.Reshape((side, side, 32))(h)  # [B, s, s, 32]
    h = keras.layers.Conv2DTranspose(32, 3, 1, padding=padding, activation="relu")(h)
    h = keras.layers.Conv2DTranspose(32, 4, 2, padding="same", activation="relu")(h)
    h = keras.layers.Conv2DTranspose(32, 3, 1, padding=padding, activation="relu")(h)
    out = keras.layers.Conv2DTranspose(output_shape[-1], 4, 2, padding="same")(h)  # [B, 28, 28, C]
    return _finish(keras.Model(z, out, name="mnist_conv_decoder"))


def _conv_bn_act(h, filters, kernel, stride, padding, act: keras.layers.Layer, **bn):
    h = keras.layers.Conv2D(filters, kernel, stride, padding=padding)(h)
    h = keras.layers.BatchNormalization(**(bn or _TORCH_BN))(h)
    return act(h)


def svhn_conv_encoder(*, input_shape: tuple, out_dim: int, filters: int = 32) -> keras.Model:
    """dpVAE SVHN encoder [1, App. C] for 32x32xC images: 8 convs with batch norm and ReLU.

    The paper only says "batch normalization, ReLU"; the layer list is the authors'
    ``BetaVAE_SVHN`` (all ``filters`` channels, each conv followed by BN and ReLU):
    k4 s2 (16) -> k3 s1 same (16) -> k4 s2 (8) -> k3 s1 same (8) -> k3 s1 valid (6)
    -> k3 s1 same (6) -> k3 s1 valid (4) -> k3 s1 same (4) -> flatten 4*4*filters -> FC out_dim.
    This replaces the Burgess-style [6] 32/32/64/64 stack first planned, since the authors' code
    fixes the details the paper figure lost.
    """
    input_shape = _check_image_shape(input_shape, (32, 32), "svhn_conv encoder")
    x = keras.Input(input_shape)
    h = x
    for kernel, stride, padding in [
        (4, 2, "same"),  # [B, 16, 16, f]
        (3, 1, "same"),
        (4, 2, "same"),  # [B, 8, 8, f]
        (3, 1, "same"),
        (3, 1, "valid"),  # [B, 6, 6, f]
        (3, 1, "same"),
        (3, 1, "valid"),  # [B, 4, 4, f]
        (3, 1, "same"),
    ]:
        h = _conv_bn_act(h, filters, kernel, stride, padding, keras.layers.ReLU())
    h = keras.layers.Flatten()(h)  # [B, 16 * f]
    out = keras.layers.Dense(out_dim)(h)
    return _finish(keras.Model(x, out, name="svhn_conv_encoder"))


def svhn_conv_decoder(*, latent_dim: int, output_shape: tuple, filters: int = 32) -> keras.Model:
    """dpVAE SVHN decoder (authors' ``BetaVAE_SVHN``), ReLU, no batch norm (as in their code).

    FC 4*4*filters -> ConvT k3 s1 valid (6) -> Conv k3 same -> ConvT k3 s1 valid (8) -> Conv k3
    -> ConvT k4 s2 (16) -> Conv k3 -> ConvT k4 s2 (32) -> Conv C k3 (unbounded output).
    """
    output_shape = _check_image_shape(output_shape, (32, 32), "svhn_conv decoder")
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(4 * 4 * filters, activation="relu")(z)
    h = keras.layers.Reshape((4, 4, filters))(h)  # [B, 4, 4, f]
    for kernel, stride, padding in [(3, 1, "valid"), (3, 1, "valid"), (4, 2, "same")]:
        h = keras.layers.Conv2DTranspose(filters, kernel, stride, padding, activation="relu")(h)
        h = keras.layers.Conv2D(filters, 3, 1, padding="same", activation="relu")(h)
    h = keras.layers.Conv2DTranspose(filters, 4, 2, "same", activation="relu")(h)  # [B, 32, 32, f]
    out = keras.layers.Conv2D(output_shape[-1], 3, 1, padding="same")(h)  # [B, 32, 32, C]
    return _finish(keras.Model(z, out, name="svhn_conv_decoder"))


@keras.saving.register_keras_serializable(package="tfvae")
class ReplicationPad2D(keras.layers.Layer):
    """Pads H and W by one pixel repeating the border (PyTorch ``ReplicationPad2d(1)``).

    A width-1 "symmetric" pad repeats the edge value, which is exactly replication padding.
    """

    def call(self, x):
        return keras.ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="symmetric")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h + 2, None if w is None else w + 2, c)


def celeba_conv_encoder(
    *, input_shape: tuple, out_dim: int, filters: int = 32, negative_slope: float = 0.2
) -> keras.Model:
    """dpVAE CelebA encoder [1, App. C] for 64x64xC images: batch norm and leaky ReLU.

    Authors' ``BetaVAE_CelebA``: 5 convs k4 s2 "same" with filters*(1, 2, 4, 8, 8) channels,
    each followed by BN and leaky ReLU (64 -> 32 -> 16 -> 8 -> 4 -> 2), flatten 2*2*8*filters,
    FC out_dim. Their code writes ``nn.LeakyReLU(True)``, i.e. slope 1.0 (a linear network);
    tfvae uses the paper's stated leaky ReLU with the common slope 0.2 (``negative_slope``).
    """
    input_shape = _check_image_shape(input_shape, (64, 64), "celeba_conv encoder")
    x = keras.Input(input_shape)
    h = x
    for mult in (1, 2, 4, 8, 8):
        act = keras.layers.LeakyReLU(negative_slope=negative_slope)
        h = _conv_bn_act(h, filters * mult, 4, 2, "same", act)
    h = keras.layers.Flatten()(h)  # [B, 2 * 2 * 8 * f]
    out = keras.layers.Dense(out_dim)(h)
    return _finish(keras.Model(x, out, name="celeba_conv_encoder"))


def celeba_conv_decoder(
    *, latent_dim: int, output_shape: tuple, filters: int = 32, negative_slope: float = 0.2
) -> keras.Model:
    """dpVAE CelebA decoder (authors' ``BetaVAE_CelebA``): upsample-convolutions.

    FC 2*2*8f, leaky ReLU -> 4 x [nearest upsample x2, replication pad 1, Conv k3 valid,
    BN (eps 1e-3), leaky ReLU] with 8f, 4f, 2f, f channels (2 -> 32) -> nearest upsample x2,
    replication pad, Conv C k3 (64x64xC, unbounded output).
    """
    output_shape = _check_image_shape(output_shape, (64, 64), "celeba_conv decoder")
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(2 * 2 * 8 * filters)(z)
    h = keras.layers.LeakyReLU(negative_slope=negative_slope)(h)
    h = keras.layers.Reshape((2, 2, 8 * filters))(h)  # [B, 2, 2, 8f]
    for mult in (8, 4, 2, 1):
        h = keras.layers.UpSampling2D(2, interpolation="nearest")(h)
        h = ReplicationPad2D()(h)
        act = keras.layers.LeakyReLU(negative_slope=negative_slope)
        h = _conv_bn_act(h, filters * mult, 3, 1, "valid", act, momentum=0.9, epsilon=1e-3)
    h = keras.layers.UpSampling2D(2, interpolation="nearest")(h)  # [B, 64, 64, f]
    h = ReplicationPad2D()(h)
    out = keras.layers.Conv2D(output_shape[-1], 3, 1, padding="valid")(h)  # [B, 64, 64, C]
    return _finish(keras.Model(z, out, name="celeba_conv_decoder"))


# ----------------------------------------------------------------------------------------------
# He et al. 2019 ResNet encoder (Omniglot)
# ----------------------------------------------------------------------------------------------
def _resnet_block(h, filters: int, stride: int):
    """Residual block: ELU(BN(conv3(ELU(BN(conv3_s(h))))) + shortcut(h)).

    The shortcut is a 1x1 strided conv + BN when the shape changes, else the identity.
    """
    shortcut = h
    if stride != 1 or h.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, stride, use_bias=False)(h)
        shortcut = keras.layers.BatchNormalization(**_TORCH_BN)(shortcut)
    y = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(h)
    y = keras.layers.BatchNormalization(**_TORCH_BN)(y)
    y = keras.layers.ELU()(y)
    y = keras.layers.Conv2D(filters, 3, 1, padding="same", use_bias=False)(y)
    y = keras.layers.BatchNormalization(**_TORCH_BN)(y)
    return keras.layers.ELU()(keras.layers.Add()([y, shortcut]))


def resnet_encoder(
    *,
    input_shape: tuple = (28, 28, 1),
    out_dim: int,
    filters: Sequence[int] = (64, 64, 64),
    hidden_units: int = 512,
) -> keras.Model:
    """He et al. 2019 [2] Omniglot ResNet encoder (their ``ResNetEncoderV2``).

    Plain (not gated) residual blocks with batch norm and ELU, one per entry of ``filters``,
    each of stride 2 (28 -> 14 -> 7 -> 4), then a valid conv covering the whole remaining map
    (4x4 for 28x28 inputs) to ``hidden_units`` channels, BN, ELU, and FC out_dim. Convs have no
    bias (BN follows each); the FC is Glorot-uniform with zero bias, as in their code.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise InvalidValue(f"resnet encoder expects (H, W, C) images; got {input_shape}.")
    x = keras.Input(input_shape)
    h = x
    for f in filters:
        h = _resnet_block(h, f, stride=2)  # [B, ceil(H/2), ceil(W/2), f]
    h = keras.layers.Conv2D(hidden_units, tuple(h.shape[1:3]), 1, "valid", use_bias=False)(h)
    h = keras.layers.BatchNormalization(**_TORCH_BN)(h)
    h = keras.layers.ELU()(h)
    h = keras.layers.Flatten()(h)  # [B, hidden_units]
    out = keras.layers.Dense(out_dim)(h)
    return _finish(keras.Model(x, out, name="resnet_encoder"))


# ----------------------------------------------------------------------------------------------
# Adversaries on the latent space
# ----------------------------------------------------------------------------------------------
def factor_vae_adversary(
    *,
    input_dim: int,
    hidden_sizes: Sequence[int] = (1000,) * 5,
    negative_slope: float = 0.2,
) -> keras.Model:
    """FactorVAE discriminator [5]: Dense(1000) + LeakyReLU(0.2) layers, then 2 logits.

    Kim & Mnih's "6 layers, 1000 hidden units each" counts the output layer: five hidden
    layers of 1000 and a 2-logit output, as the dpVAE paper (App. C, "five fully connected
    layers each with 1000 hidden units") and the authors' code both have. Logit 0 stands for
    "sample of q(z)", logit 1 for "sample of prod_j q(z_j)".
    """
    z = keras.Input((input_dim,))
    h = z
    for units in hidden_sizes:
        h = keras.layers.Dense(units)(h)
        h = keras.layers.LeakyReLU(negative_slope=negative_slope)(h)
    out = keras.layers.Dense(2)(h)  # [B, 2]
    return _finish(keras.Model(z, out, name="factor_vae_adversary"))


def mlp_critic_adversary(
    *, input_dim: int, hidden_sizes: Sequence[int] = (1024,) * 4
) -> keras.Model:
    """MaskAAE WGAN-GP critic / AAE adversary [4]: 4 x (Dense 1024, ReLU) -> Dense(1).

    Glorot-normal kernels, as in the MaskAAE code. The output is an unbounded score
    (a critic value, or a logit for a GAN-style adversary).
    """
    z = keras.Input((input_dim,))
    h = _dense_stack(z, hidden_sizes, "relu", "glorot_normal")
    out = keras.layers.Dense(1, kernel_initializer="glorot_normal")(h)  # [B, 1]
    return _finish(keras.Model(z, out, name="mlp_critic_adversary"))


# ----------------------------------------------------------------------------------------------
# Registries and entry points
# ----------------------------------------------------------------------------------------------
ENCODERS: dict[str, Callable[..., keras.Model]] = {
    "mlp": mlp_encoder,
    "two_moons": two_moons_encoder,
    "mnist_conv": mnist_conv_encoder,
    "svhn_conv": svhn_conv_encoder,
    "celeba_conv": celeba_conv_encoder,
    "mask_aae_mlp": mask_aae_mlp_encoder,
    "resnet": resnet_encoder,
    "locatello_conv": locatello_conv_encoder,
}

DECODERS: dict[str, Callable[..., keras.Model]] = {
    "mlp": mlp_decoder,
    "two_moons": two_moons_decoder,
    "mnist_conv": mnist_conv_decoder,
    "svhn_conv": svhn_conv_decoder,
    "celeba_conv": celeba_conv_decoder,
    "mask_aae_mlp": mask_aae_mlp_decoder,
    "pixelcnn": pixelcnn_decoder,
    "locatello_conv": locatello_conv_decoder,
}

ADVERSARIES: dict[str, Callable[..., keras.Model]] = {
    "factor_vae": factor_vae_adversary,
    "mlp_critic": mlp_critic_adversary,
}


def _call(builder: Callable[..., keras.Model], kind: str, name: str, fixed: dict, options: dict):
    """Calls ``builder(**fixed, **options)`` after rejecting options it does not take."""
    params = inspect.signature(builder).parameters
    valid = sorted(p for p in params if p not in fixed)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"Unknown options for {kind} {name!r}: {unknown}. Valid options: {valid or 'none'}."
        )
    return builder(**fixed, **options)


def torch_fan_in(layer: keras.layers.Layer) -> int:
    """The fan-in PyTorch's default initialization uses for the equivalent torch layer.

    Dense [in, out]: in. Conv2D [kh, kw, in, out]: kh * kw * in. Conv2DTranspose
    [kh, kw, out, in]: kh * kw * out, because torch stores a transposed convolution's weight as
    [in, out, kh, kw] and takes its fan-in from dimension 1.
    """
    shape = layer.kernel.shape
    if isinstance(layer, keras.layers.Dense):
        return int(shape[0])
    return int(shape[0] * shape[1] * shape[2])


def torch_initialize(model: keras.Model, seed) -> None:
    """Re-draws every Dense, Conv2D and Conv2DTranspose layer of ``model`` as PyTorch's
    ``nn.Linear`` / ``nn.Conv2d`` / ``nn.ConvTranspose2d`` initialize by default: kernel and
    bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (``kaiming_uniform_(a=sqrt(5))`` reduces to this
    bound), with ``torch_fan_in``. Other layers (batch norm, masked PixelCNN convolutions'
    masks) keep their Keras initialization. ``seed``: anything ``np.random.default_rng`` takes,
    e.g. ``(config.seed, 0)``."""
    rng = np.random.default_rng(seed)
    kinds = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, kinds) or not layer.built:
            continue
        bound = 1.0 / math.sqrt(torch_fan_in(layer))
        for variable in (layer.kernel, layer.bias if layer.use_bias else None):
            if variable is not None:
                value = rng.uniform(-bound, bound, tuple(variable.shape))
                variable.assign(value.astype(variable.dtype))


# model.initializer: how the encoder and decoder are (re-)drawn after Keras builds them.
INITIALIZERS = {"glorot": None, "torch": torch_initialize}


def build_encoder(name: str, *, input_shape: tuple, out_dim: int, **options) -> keras.Model:
    """Builds encoder ``name``: x [B, *input_shape] -> [B, out_dim]."""
    builder = lookup(ENCODERS, name, "encoder")
    fixed = {"input_shape": tuple(input_shape), "out_dim": int(out_dim)}
    return _call(builder, "encoder", name, fixed, options)


def build_decoder(name: str, *, latent_dim: int, output_shape: tuple, **options) -> keras.Model:
    """Builds decoder ``name``: z [B, latent_dim] -> parameters [B, *output_shape].

    Autoregressive decoders (``model.autoregressive``) take ``[z, x]`` instead of z.
    """
    builder = lookup(DECODERS, name, "decoder")
    fixed = {"latent_dim": int(latent_dim), "output_shape": tuple(output_shape)}
    return _call(builder, "decoder", name, fixed, options)


def build_adversary(name: str, *, input_dim: int, **options) -> keras.Model:
    """Builds adversary ``name``: [B, input_dim] -> [B, out] (2 logits or 1 score)."""
    builder = lookup(ADVERSARIES, name, "adversary")
    return _call(builder, "adversary", name, {"input_dim": int(input_dim)}, options)
