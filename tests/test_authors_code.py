"""tools.authors_code: the authors' PyTorch parameters ported into tfvae's model compute the
authors' functions (their layers written here in numpy, with PyTorch's layouts)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvae import build
from tfvae.config_loader import load_config
from tools import authors_code

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# PyTorch's layers in numpy (NCHW; cross-correlation; weights [out, in, kh, kw], transposed
# convolutions [in, out, kh, kw]).
def conv2d(x, w, b, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    _, _, kh, kw = w.shape
    ho, wo = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for a in range(kh):
        for c in range(kw):
            patch = x[:, :, a : a + stride * ho : stride, c : c + stride * wo : stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, a, c])
    return out + b[None, :, None, None]


def conv_transpose2d(x, w, b, stride, pad):
    n, _, h, wd = x.shape
    _, o, kh, kw = w.shape
    full = np.zeros((n, o, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for a in range(kh):
        for c in range(kw):
            full[:, :, a : a + stride * h : stride, c : c + stride * wd : stride] += np.einsum(
                "nihw,io->nohw", x, w[:, :, a, c]
            )
    out = full[:, :, pad : full.shape[2] - pad, pad : full.shape[3] - pad]
    return out + b[None, :, None, None]


def relu(x):
    return np.maximum(x, 0.0)


def authors_encoder(p, x):  # BetaVAE_MNIST.encoder, x [N, 1, 28, 28]
    h = relu(conv2d(x, p["encoder.0.weight"], p["encoder.0.bias"], 2, 1))
    h = relu(conv2d(h, p["encoder.2.weight"], p["encoder.2.bias"], 1, 0))
    h = relu(conv2d(h, p["encoder.4.weight"], p["encoder.4.bias"], 2, 1))
    h = relu(conv2d(h, p["encoder.6.weight"], p["encoder.6.bias"], 1, 0))
    h = h.reshape(len(h), -1)  # View((-1, 32*4*4)): [C, H, W] order
    h = relu(h @ p["encoder.9.weight"].T + p["encoder.9.bias"])
    h = relu(h @ p["encoder.11.weight"].T + p["encoder.11.bias"])
    return h @ p["encoder.13.weight"].T + p["encoder.13.bias"]


def authors_decoder(p, z):  # BetaVAE_MNIST.decoder -> [N, 1, 28, 28]
    h = relu(z @ p["decoder.0.weight"].T + p["decoder.0.bias"])
    h = relu(h @ p["decoder.2.weight"].T + p["decoder.2.bias"])
    h = relu(h @ p["decoder.4.weight"].T + p["decoder.4.bias"]).reshape(-1, 32, 4, 4)
    h = relu(conv_transpose2d(h, p["decoder.7.weight"], p["decoder.7.bias"], 1, 0))
    h = relu(conv_transpose2d(h, p["decoder.9.weight"], p["decoder.9.bias"], 2, 1))
    h = relu(conv_transpose2d(h, p["decoder.11.weight"], p["decoder.11.bias"], 1, 0))
    return conv_transpose2d(h, p["decoder.13.weight"], p["decoder.13.bias"], 2, 1)


SHAPES = {
    "encoder.0": (32, 1, 4, 4),
    "encoder.2": (32, 32, 3, 3),
    "encoder.4": (32, 32, 4, 4),
    "encoder.6": (32, 32, 3, 3),
    "encoder.9": (256, 512),
    "encoder.11": (256, 256),
    "encoder.13": (4, 256),
    "decoder.0": (256, 2),
    "decoder.2": (256, 256),
    "decoder.4": (512, 256),
    "decoder.7": (32, 32, 3, 3),
    "decoder.9": (32, 32, 4, 4),
    "decoder.11": (32, 32, 3, 3),
    "decoder.13": (32, 1, 4, 4),
}


def random_params(rng, decoupled: bool) -> dict:
    """The authors' parameter names and shapes, PyTorch-like scales."""
    params = {}
    shapes = dict(SHAPES)
    if decoupled:
        for name in ("s", "t"):
            for k in range(6):
                shapes.update({f"{name}.{k}.0": (64, 2), f"{name}.{k}.2": (64, 64)})
                shapes[f"{name}.{k}.4"] = (2, 64)
    for key, shape in shapes.items():
        out_units = shape[1] if key.startswith("decoder.") and len(shape) == 4 else shape[0]
        fan_in = int(np.prod(shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)
        params[f"{key}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        params[f"{key}.bias"] = rng.uniform(-bound, bound, out_units).astype(np.float32)
    return params


def tfvae_model(config_name: str):
    config = load_config(os.path.join(REPO, "configs", f"{config_name}.py:smoke"))
    model = build.build_model(config, (28, 28, 1), 1000)
    model(tf.zeros([1, 28, 28, 1]))  # creates the networks' weights
    model.prior.build(None)
    return config, model


@pytest.mark.parametrize("config_name", ["vae", "dpvae"])
def test_ported_model_computes_the_authors_encoder_decoder_and_flow(config_name):
    config, model = tfvae_model(config_name)
    blocks = authors_code.num_blocks_of(config)
    rng = np.random.default_rng(0)
    params = random_params(rng, decoupled=blocks is not None)
    authors_code.port_to_keras(params, model, blocks)
    order = authors_code.z_order(blocks, 2)

    x = rng.uniform(0, 1, (5, 28, 28, 1)).astype(np.float32)
    stats = authors_encoder(params, x.transpose(0, 3, 1, 2))  # [N, 4]: mu, log var
    z_mean, z_log_var = model.encode(tf.constant(x))
    np.testing.assert_allclose(z_mean, stats[:, :2][:, order], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z_log_var, stats[:, 2:][:, order], rtol=1e-4, atol=1e-5)

    z = rng.normal(0, 1.5, (5, 2)).astype(np.float32)  # the authors' coordinates
    images = authors_decoder(params, z).transpose(0, 2, 3, 1)
    decoded = model.decoder_params(tf.constant(z[:, order]))
    np.testing.assert_allclose(decoded, images, rtol=1e-4, atol=1e-5)

    # And back: the authors' layout again, bit for bit.
    back = authors_code.port_to_torch(model, blocks, params)
    for key, value in params.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


def test_z_order_reverses_after_an_odd_number_of_reversals():
    np.testing.assert_array_equal(authors_code.z_order(6, 2), [1, 0])
    np.testing.assert_array_equal(authors_code.z_order(5, 2), [0, 1])
    np.testing.assert_array_equal(authors_code.z_order(None, 2), [0, 1])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=configs/dpvae.py:svhn", "--checkout=.", "--out=OUT"], "MNIST model only"),
        # The README's command, with its placeholders DIR and PYTHON_WITH_TORCH filled in.
        (
            [
                "--config=configs/dpvae.py",
                "--checkout=OUT",
                "--torch_python=" + sys.executable,
                "--seeds=0,1,2",
                "--steps=5000",
                "--out=OUT",
            ],
            "not a work tree",
        ),
    ],
    ids=["architecture", "checkout"],
)
@pytest.mark.slow
def test_cli_refuses_what_it_cannot_run_in_one_line(tmp_path, args, message):
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "tools.authors_code", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
