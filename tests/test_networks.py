"""Tests for tfvae.networks: every registry entry builds, PixelCNN is autoregressive."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import networks

# The shape each architecture is meant for; a new registry entry must be added here.
INTENDED_SHAPE = {
    "mlp": (28, 28, 1),
    "two_moons": (2,),
    "mnist_conv": (28, 28, 1),
    "svhn_conv": (32, 32, 3),
    "celeba_conv": (64, 64, 3),
    "mask_aae_mlp": (28, 28, 1),
    "resnet": (28, 28, 1),
    "pixelcnn": (28, 28, 1),
    "locatello_conv": (64, 64, 1),
}
# Options that keep the CPU tests fast (the defaults are the papers' sizes).
TEST_OPTIONS = {"pixelcnn": {"channels": 32}}
LATENT_DIM = 3
BATCH = 2


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


def test_registries_cover_intended_shapes():
    assert set(networks.ENCODERS) | set(networks.DECODERS) == set(INTENDED_SHAPE)


@pytest.mark.parametrize("name", sorted(networks.ENCODERS))
def test_encoder_builds_with_right_output(name):
    shape = INTENDED_SHAPE[name]
    model = networks.build_encoder(name, input_shape=shape, out_dim=2 * LATENT_DIM)
    x = np.random.default_rng(0).uniform(size=(BATCH, *shape)).astype("float32")
    out = keras.ops.convert_to_numpy(model(x))
    assert isinstance(model, keras.Model)
    assert model.autoregressive is False
    assert model.count_params() > 0
    assert out.shape == (BATCH, 2 * LATENT_DIM)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(networks.DECODERS))
def test_decoder_builds_with_right_output(name):
    shape = INTENDED_SHAPE[name]
    model = networks.build_decoder(
        name, latent_dim=LATENT_DIM, output_shape=shape, **TEST_OPTIONS.get(name, {})
    )
    z = np.random.default_rng(0).normal(size=(BATCH, LATENT_DIM)).astype("float32")
    if model.autoregressive:
        x = np.zeros((BATCH, *shape), "float32")
        out = model([z, x])
    else:
        out = model(z)
    out = keras.ops.convert_to_numpy(out)
    assert isinstance(model, keras.Model)
    assert model.autoregressive is (name == "pixelcnn")
    assert model.count_params() > 0
    assert out.shape == (BATCH, *shape)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("shape", [(5,), (28, 28, 1)])
def test_mlp_handles_vectors_and_images(shape):
    enc = networks.build_encoder("mlp", input_shape=shape, out_dim=4, hidden_sizes=(8,))
    dec = networks.build_decoder("mlp", latent_dim=4, output_shape=shape, hidden_sizes=(8,))
    x = np.ones((BATCH, *shape), "float32")
    assert dec(enc(x)).shape == (BATCH, *shape)
    # Flatten -> Dense(8) -> Dense(4) and its mirror Dense(8) -> Dense(prod(shape)).
    d = int(np.prod(shape))
    assert enc.count_params() == _dense(d, 8) + _dense(8, 4)
    assert dec.count_params() == _dense(4, 8) + _dense(8, d)


def test_two_moons_parameter_count():
    # dpVAE App. C: FC 100 -> FC 50 -> out, mirrored decoder 50 -> 100 -> 2.
    enc = networks.build_encoder("two_moons", input_shape=(2,), out_dim=4)
    dec = networks.build_decoder("two_moons", latent_dim=2, output_shape=(2,))
    assert enc.count_params() == _dense(2, 100) + _dense(100, 50) + _dense(50, 4)
    assert dec.count_params() == _dense(2, 50) + _dense(50, 100) + _dense(100, 2)


def test_mnist_conv_matches_authors_parameter_count():
    # The authors' BetaVAE_MNIST (PyTorch) with z_dims = 2, counted by hand.
    enc = networks.build_encoder("mnist_conv", input_shape=(28, 28, 1), out_dim=4)
    dec = networks.build_decoder("mnist_conv", latent_dim=2, output_shape=(28, 28, 1))
    convs = _conv(4, 1, 32) + _conv(3, 32, 32) + _conv(4, 32, 32) + _conv(3, 32, 32)
    assert enc.count_params() == convs + _dense(512, 256) + _dense(256, 256) + _dense(256, 4)
    deconvs = _conv(3, 32, 32) + _conv(4, 32, 32) + _conv(3, 32, 32) + _conv(4, 32, 1)
    fcs = _dense(2, 256) + _dense(256, 256) + _dense(256, 512)
    assert dec.count_params() == fcs + deconvs


def test_mnist_conv_same_padding_variant():
    enc = networks.build_encoder("mnist_conv", input_shape=(28, 28, 2), out_dim=4, padding="same")
    dec = networks.build_decoder(
        "mnist_conv", latent_dim=2, output_shape=(28, 28, 2), padding="same"
    )
    assert enc(np.zeros((1, 28, 28, 2), "float32")).shape == (1, 4)
    assert dec(np.zeros((1, 2), "float32")).shape == (1, 28, 28, 2)
    # The first FC now sees a 7x7x32 map instead of 4x4x32.
    assert any(
        layer.input.shape[-1] == 7 * 7 * 32 for layer in enc.layers[1:] if hasattr(layer, "units")
    )


def test_conv_stacks_use_batch_norm_and_leaky_relu_where_the_paper_says():
    def count(model, cls):
        return sum(isinstance(layer, cls) for layer in model.layers)

    svhn = networks.build_encoder("svhn_conv", input_shape=(32, 32, 3), out_dim=4)
    celeba = networks.build_encoder("celeba_conv", input_shape=(64, 64, 3), out_dim=4)
    assert count(svhn, keras.layers.BatchNormalization) == 8
    assert count(svhn, keras.layers.LeakyReLU) == 0
    assert count(celeba, keras.layers.BatchNormalization) == 5
    assert count(celeba, keras.layers.LeakyReLU) == 5


def test_resnet_reduces_28x28_to_one_hidden_vector():
    model = networks.build_encoder("resnet", input_shape=(28, 28, 1), out_dim=8)
    flat = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    assert tuple(flat.input.shape[1:]) == (1, 1, 512)  # 28 -> 14 -> 7 -> 4, then a 4x4 conv
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 3


def test_masked_conv_masks():
    a = networks.MaskedConv2D(1, 3, mask_type="A", masked_channels=1)
    b = networks.MaskedConv2D(1, 3, mask_type="B")
    a.build((None, 5, 5, 2))
    b.build((None, 5, 5, 1))
    np.testing.assert_array_equal(a.mask[..., 0, 0], [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(a.mask[..., 1, 0], np.ones((3, 3)))  # unmasked channel
    np.testing.assert_array_equal(b.mask[..., 0, 0], [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def _pixelcnn(shape, **options):
    options = {"channels": 16, **options}
    return networks.build_decoder("pixelcnn", latent_dim=LATENT_DIM, output_shape=shape, **options)


@pytest.mark.slow
def test_pixelcnn_full_jacobian_is_strictly_causal():
    # Every output pixel t (all channels) may depend only on input pixels t' < t in raster order.
    height, width, depth = 7, 7, 2
    model = _pixelcnn((height, width, depth))
    rng = np.random.default_rng(1)
    z = tf.constant(rng.normal(size=(1, LATENT_DIM)), tf.float32)
    x = tf.constant(rng.uniform(size=(1, height, width, depth)), tf.float32)

    @tf.function
    def jacobian(z, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model([z, x])  # [1, H, W, C]
        return tape.jacobian(logits, x)  # [1, H, W, C, 1, H, W, C]

    n = height * width
    jac = jacobian(z, x).numpy().reshape(n, depth, n, depth)
    depends = np.abs(jac).sum(axis=(1, 3)) > 0  # [n, n]: output pixel t depends on input t'
    assert not np.any(np.triu(depends)), "output depends on the current or a later pixel"
    for t in range(1, n):
        assert depends[t, :t].any(), f"pixel {t} ignores all earlier pixels"
        if t % width:
            assert depends[t, t - 1], f"pixel {t} ignores its left neighbour"


def test_pixelcnn_gradient_at_one_pixel_of_a_28x28_image():
    model = _pixelcnn((28, 28, 1), channels=32)
    rng = np.random.default_rng(2)
    z = tf.constant(rng.normal(size=(1, LATENT_DIM)), tf.float32)
    x = tf.constant(rng.uniform(size=(1, 28, 28, 1)) < 0.5, tf.float32)
    i, j = 13, 17

    @tf.function
    def grads(z, x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([z, x])
            logit = model([z, x])[0, i, j, 0]
        return tape.gradient(logit, x), tape.gradient(logit, z)

    grad_x, grad_z = grads(z, x)
    grad_x = np.abs(grad_x.numpy().reshape(-1))  # raster order
    t = i * 28 + j
    assert np.all(grad_x[t:] == 0.0)
    assert grad_x[t - 1] > 0 and grad_x[t - 28] > 0  # left and upper neighbours
    assert np.abs(grad_z.numpy()).sum() > 0  # the decoder is conditioned on z


def test_pixelcnn_sample_is_binary_deterministic_and_matches_teacher_forcing():
    shape = (6, 5, 1)
    model = _pixelcnn(shape)
    z = tf.constant(np.random.default_rng(3).normal(size=(3, LATENT_DIM)), tf.float32)
    x = model.sample(z, seed=7).numpy()
    assert x.shape == (3, *shape)
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x, model.sample(z, seed=7).numpy())
    assert not np.array_equal(x, model.sample(z, seed=8).numpy())
    # Documented rule: x_i = 1[u_i < sigmoid(l_i(z, x_<i))], u drawn with the same seed.
    # Causality makes the teacher-forced logits on the sample equal the ones used while sampling.
    u = keras.ops.convert_to_numpy(keras.random.uniform((3, *shape), seed=7))
    p = keras.ops.convert_to_numpy(keras.ops.sigmoid(model([z, x])))
    clear = np.abs(u - p) > 1e-5  # ignore float ties
    np.testing.assert_array_equal(x[clear], (u < p)[clear].astype("float32"))


@pytest.mark.parametrize(
    "shape, options",
    [
        ((6, 5, 1), {"kernel_sizes": (3, 3, 3)}),
        ((5, 4, 2), {"kernel_sizes": (5, 3, 7, 3, 5), "z_feature_maps": 2}),
        # He et al.'s 13 layers: receptive field and kernels wider than the image.
        ((6, 4, 1), {"channels": 8}),
    ],
)
def test_row_cached_pixelcnn_sampler_gives_the_reference_samples(shape, options):
    model = _pixelcnn(shape, **options)
    rng = np.random.default_rng(0)
    for v in model.weights:  # non-zero biases too, so every term of every layer counts
        scale = 0.5 / np.sqrt(np.prod(v.shape[:-1])) if len(v.shape) > 1 else 0.1
        v.assign(rng.normal(0.0, scale, v.shape).astype("float32"))
    z = tf.constant(rng.normal(size=(5, LATENT_DIM)), tf.float32)
    u = tf.constant(rng.uniform(size=(5, *shape)), tf.float32)
    fast = model.sample_with_uniforms(z, u).numpy()
    np.testing.assert_array_equal(fast, model.sample_with_uniforms_reference(z, u).numpy())
    # Neither a constant image nor the uniforms' coin flips at 1/2: the logits matter.
    assert 0.05 < fast.mean() < 0.95
    assert not np.array_equal(fast, (u.numpy() < 0.5).astype("float32"))
    # The autoregressive rule on the whole sample: x_i = 1[u_i < sigmoid(l_i(z, x_<i))] with
    # the teacher-forced logits of the sample itself.
    p = keras.ops.convert_to_numpy(keras.ops.sigmoid(model([z, fast])))
    clear = np.abs(u.numpy() - p) > 1e-5
    np.testing.assert_array_equal(fast[clear], (u.numpy() < p)[clear].astype("float32"))


def test_adversaries_output_shapes_and_sizes():
    d = 10
    factor = networks.build_adversary("factor_vae", input_dim=d)
    critic = networks.build_adversary("mlp_critic", input_dim=d)
    z = np.zeros((4, d), "float32")
    assert factor(z).shape == (4, 2)
    assert critic(z).shape == (4, 1)
    # FactorVAE: five hidden layers of 1000 and 2 logits; MaskAAE critic: 4 x 1024 and 1 output.
    assert factor.count_params() == _dense(d, 1000) + 4 * _dense(1000, 1000) + _dense(1000, 2)
    assert critic.count_params() == _dense(d, 1024) + 3 * _dense(1024, 1024) + _dense(1024, 1)
    small = networks.build_adversary("mlp_critic", input_dim=d, hidden_sizes=(7, 5))
    assert small.count_params() == _dense(d, 7) + _dense(7, 5) + _dense(5, 1)
    assert factor.autoregressive is False and critic.autoregressive is False


@pytest.mark.parametrize(
    "build, registry, kwargs",
    [
        (networks.build_encoder, networks.ENCODERS, {"input_shape": (2,), "out_dim": 2}),
        (networks.build_decoder, networks.DECODERS, {"latent_dim": 2, "output_shape": (2,)}),
        (networks.build_adversary, networks.ADVERSARIES, {"input_dim": 2}),
    ],
)
def test_unknown_name_lists_valid_names(build, registry, kwargs):
    with pytest.raises(ValueError, match="Unknown") as info:
        build("no_such_net", **kwargs)
    for name in registry:
        assert name in str(info.value)


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="hiden_sizes") as info:
        networks.build_encoder("mlp", input_shape=(2,), out_dim=2, hiden_sizes=(3,))
    assert "hidden_sizes" in str(info.value)  # the valid options are listed
    with pytest.raises(TypeError, match="dropout"):
        networks.build_adversary("factor_vae", input_dim=2, dropout=0.1)
    with pytest.raises(TypeError, match="padding"):
        networks.build_decoder("pixelcnn", latent_dim=2, output_shape=(4, 4, 1), padding="same")


def test_wrong_image_shape_fails_early():
    with pytest.raises(ValueError, match=r"\(28, 28, C\)"):
        networks.build_encoder("mnist_conv", input_shape=(32, 32, 3), out_dim=4)
    with pytest.raises(ValueError, match=r"\(64, 64, C\)"):
        networks.build_decoder("celeba_conv", latent_dim=2, output_shape=(32, 32, 3))


def test_torch_initialize_draws_pytorchs_default_per_layer():
    # PyTorch: U(+-1/sqrt(fan_in)) for weights and biases; a ConvTranspose2d weight is stored
    # [in, out, kh, kw] and its fan-in is out * kh * kw (dimension 1), e.g. the authors' last
    # decoder layer ConvTranspose2d(32, 1, 4): fan-in 16, not 512.
    from tfvae.networks import build_decoder, build_encoder, torch_fan_in, torch_initialize

    enc = build_encoder("mnist_conv", input_shape=(28, 28, 1), out_dim=4)
    dec = build_decoder("mnist_conv", latent_dim=2, output_shape=(28, 28, 1))
    torch_initialize(enc, seed=0)
    torch_initialize(dec, seed=1)
    expected = {  # torch fan-ins of BetaVAE_MNIST, layer by layer
        "encoder": [16, 288, 512, 288, 512, 256, 256],
        "decoder": [2, 256, 256, 288, 512, 288, 16],
    }
    for name, net in (("encoder", enc), ("decoder", dec)):
        layers = [layer for layer in net.layers if layer.weights]
        assert [torch_fan_in(layer) for layer in layers] == expected[name]
        for layer in layers:
            bound = 1 / np.sqrt(torch_fan_in(layer))
            kernel, bias = (np.asarray(w) for w in layer.get_weights())
            assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
            assert np.abs(bias).max() > 0  # Keras' zero bias replaced
            if kernel.size > 1000:  # a uniform on [-b, b] has standard deviation b / sqrt(3)
                np.testing.assert_allclose(kernel.std(), bound / np.sqrt(3), rtol=0.05)
