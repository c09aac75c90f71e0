"""Locatello et al.'s 64x64 convolutional encoder and decoder (listed in ``tfvae.networks``).

The architecture of disentanglement_lib (``architectures.conv_encoder`` / ``deconv_decoder``),
which its study trained every method with [1, Table 1 of App. H]; it is also Higgins et al.'s
dSprites network [2] and Kim and Mnih's [3]:

  encoder  Conv 32 k4 s2 -> Conv 32 k4 s2 -> Conv 64 k4 s2 -> Conv 64 k4 s2 (ReLU, "same")
           -> FC 256 ReLU -> FC out_dim                          64 -> 32 -> 16 -> 8 -> 4
  decoder  FC 256 ReLU -> FC 4*4*64 ReLU -> ConvT 64 k4 s2 -> ConvT 32 k4 s2 -> ConvT 32 k4 s2
           (ReLU) -> ConvT C k4 s2 (logits)                       4 -> 8 -> 16 -> 32 -> 64

References:
  [1] Locatello et al. Challenging Common Assumptions in the Unsupervised Learning of
      Disentangled Representations. ICML 2019.
  [2] Higgins et al. beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
      Framework. ICLR 2017.
  [3] Kim and Mnih. Disentangling by Factorising. ICML 2018.
"""

import keras

from tfvae.errors import InvalidValue


def _check_64(shape, what: str) -> tuple:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[:2] != (64, 64):
        raise InvalidValue(f"The {what} takes 64x64xC images; got shape {shape}.")
    return shape


def locatello_conv_encoder(*, input_shape: tuple, out_dim: int) -> keras.Model:
    """x [B, 64, 64, C] -> [B, out_dim] (module docstring)."""
    x = keras.Input(_check_64(input_shape, "locatello_conv encoder"))
    h = x
    for filters in (32, 32, 64, 64):
        h = keras.layers.Conv2D(filters, 4, 2, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)  # [B, 4 * 4 * 64]
    h = keras.layers.Dense(256, activation="relu")(h)
    model = keras.Model(x, keras.layers.Dense(out_dim)(h), name="locatello_conv_encoder")
    model.autoregressive = False
    return model


def locatello_conv_decoder(*, latent_dim: int, output_shape: tuple) -> keras.Model:
    """z [B, latent_dim] -> logits [B, 64, 64, C] (module docstring)."""
    output_shape = _check_64(output_shape, "locatello_conv decoder")
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(256, activation="relu")(z)
    h = keras.layers.Dense(4 * 4 * 64, activation="relu")(h)
    h = keras.layers.Reshape((4, 4, 64))(h)  # [B, 4, 4, 64]
    for filters in (64, 32, 32):
        h = keras.layers.Conv2DTranspose(filters, 4, 2, padding="same", activation="relu")(h)
    out = keras.layers.Conv2DTranspose(output_shape[-1], 4, 2, padding="same")(h)  # [B, 64, 64, C]
    model = keras.Model(z, out, name="locatello_conv_decoder")
    model.autoregressive = False
    return model
