"""The dpVAE authors' own code beside tfvae: train it on tfvae's data, score it with tfvae.

    python -m tools.authors_code --config=configs/dpvae.py --checkout=DIR \
        --torch_python=/path/to/python-with-torch --seeds=0,1,2 --steps=5000 --out=runs/authors
    python -m tfvae.evaluate --workdir=runs/authors/authors_dpvae_s0

For each seed, ``tools/authors_torch.py`` (run by ``--torch_python``, a Python with torch; torch
is not a tfvae dependency) trains the authors' ``BetaVAE_MNIST`` / ``Implicit`` classes from a
checkout of https://github.com/iyerkrithika21/dpVAE with their per-iteration loss and optimizer,
on exactly the training split tfvae uses. The trained weights are then copied into the tfvae
model of the same config (``port_to_keras``) and saved as a tfvae workdir
``<out>/authors_<config>_s<seed>``, so that ``python -m tfvae.evaluate`` scores the authors'
model with the same metrics code, feature network and sample counts as tfvae's own runs.
``train_metrics.json`` holds the authors' validation terms per example (their loss summed over
the batch, divided by its size), comparable with a tfvae run's.

The two codes' layouts differ, and the port accounts for each difference:

- PyTorch convolutions are NCHW with kernels [out, in, kh, kw]; Keras is NHWC with kernels
  [kh, kw, in, out] (transposed convolutions: [in, out, kh, kw] and [kh, kw, out, in]).
- The dense layer after the encoder's last convolution reads a flattened [C, H, W] map in
  PyTorch and [H, W, C] in Keras; so does the decoder's reshape, in reverse.
- The authors' coupling networks read the whole masked code (d inputs) and write d outputs
  of which the unmasked ones are used; tfvae's read the conditioning half and write the other.
- tfvae reverses the code between coupling blocks where the authors alternate their masks; for
  d = 2 with K blocks the two flows are the same function up to the order of z's coordinates,
  which is reversed when K - 1 is odd (``z_order``).

Only the papers' MNIST architecture (``mnist_conv``) with latent size 2 and the "half" masks is
ported; other settings fail with a message.
"""

import json
import os
import subprocess
import sys

import numpy as np
from absl import flags

from tfvae import cli
from tfvae.errors import InvalidValue

# TensorFlow and tfvae's model code are imported by the functions that build a model, so the
# command refuses a bad flag, config or checkout in a fraction of a second.

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "authors_torch.py")


# ----------------------------------------------------------------------------------------------
# Layouts
# ----------------------------------------------------------------------------------------------
def _weighted(net) -> list:
    """The Keras layers of a network that hold weights, in order."""
    return [layer for layer in net.layers if layer.weights]


def z_order(num_blocks: int | None, latent_dim: int) -> np.ndarray:
    """tfvae's z coordinate i is the authors' coordinate ``z_order[i]``."""
    order = np.arange(latent_dim)
    if num_blocks is not None and (num_blocks - 1) % 2 == 1:
        order = order[::-1]
    return order


def _check_supported(config) -> None:
    m = config.model
    if m.encoder.name != "mnist_conv" or m.decoder.name != "mnist_conv" or m.latent_dim != 2:
        raise InvalidValue(
            "tools.authors_code ports the authors' MNIST model only (mnist_conv encoder and "
            f"decoder, latent_dim 2); the config has {m.encoder.name}/{m.decoder.name}, "
            f"latent_dim {m.latent_dim}."
        )
    if m.prior.name == "decoupled" and tuple(m.prior.options.hidden_units) != (64, 64):
        raise InvalidValue("The authors' coupling networks are 64-64; the config differs.")


def _chw_to_hwc_rows(w: np.ndarray, c: int, h: int, wd: int) -> np.ndarray:
    """Rows of a [C*H*W, n] matrix from (c, h, w) order to (h, w, c) order."""
    n = w.shape[1]
    return w.reshape(c, h, wd, n).transpose(1, 2, 0, 3).reshape(c * h * wd, n)


def _chw_to_hwc_cols(w: np.ndarray, c: int, h: int, wd: int) -> np.ndarray:
    return _chw_to_hwc_rows(w.T, c, h, wd).T


def _hwc_to_chw_rows(w: np.ndarray, c: int, h: int, wd: int) -> np.ndarray:
    n = w.shape[1]
    return w.reshape(h, wd, c, n).transpose(2, 0, 1, 3).reshape(c * h * wd, n)


def port_to_keras(params: dict, model, num_blocks: int | None) -> None:
    """Copies the authors' parameters (``state_dict`` names -> arrays) into a tfvae model."""
    d = model.latent_dim
    order = z_order(num_blocks, d)
    enc, dec = _weighted(model.encoder), _weighted(model.decoder)
    for layer, i in zip(enc[:4], (0, 2, 4, 6), strict=True):  # Conv2D
        w = params[f"encoder.{i}.weight"].transpose(2, 3, 1, 0)
        layer.set_weights([w, params[f"encoder.{i}.bias"]])
    w = _chw_to_hwc_rows(params["encoder.9.weight"].T, 32, 4, 4)
    enc[4].set_weights([w, params["encoder.9.bias"]])
    enc[5].set_weights([params["encoder.11.weight"].T, params["encoder.11.bias"]])
    out = np.concatenate([order, d + order])  # (mu, log var), each in tfvae's z order
    enc[6].set_weights([params["encoder.13.weight"].T[:, out], params["encoder.13.bias"][out]])

    dec[0].set_weights([params["decoder.0.weight"].T[order], params["decoder.0.bias"]])
    dec[1].set_weights([params["decoder.2.weight"].T, params["decoder.2.bias"]])
    w = _chw_to_hwc_cols(params["decoder.4.weight"].T, 32, 4, 4)
    b = _chw_to_hwc_rows(params["decoder.4.bias"][:, None], 32, 4, 4)[:, 0]
    dec[2].set_weights([w, b])
    for layer, i in zip(dec[3:], (7, 9, 11, 13), strict=True):  # Conv2DTranspose
        w = params[f"decoder.{i}.weight"].transpose(2, 3, 1, 0)
        layer.set_weights([w, params[f"decoder.{i}.bias"]])

    if num_blocks is not None:
        port_flow_to_keras(params, model.prior)


def port_flow_to_keras(params: dict, prior) -> None:
    """The authors' coupling networks (``s.<k>.*``, ``t.<k>.*``, d = 2) into a DecoupledPrior.

    Block k of the authors keeps coordinate ``k % 2`` (masks [1, 0], [0, 1], ...) and reads the
    whole masked code; tfvae's block k reads its conditioning coordinate only. So the first
    layer keeps the kept coordinate's column and the last layer the transformed one's row.
    """
    for k, net in enumerate(prior.coupling_nets):
        kept = 0 if k % 2 == 0 else 1  # the authors' "half" masks alternate [1, 0], [0, 1]
        for name, mlp in (("s", net.log_scale_net), ("t", net.shift_net)):
            layers = _weighted(mlp)
            w0 = params[f"{name}.{k}.0.weight"][:, [kept]].T  # [1, 64]
            layers[0].set_weights([w0, params[f"{name}.{k}.0.bias"]])
            layers[1].set_weights([params[f"{name}.{k}.2.weight"].T, params[f"{name}.{k}.2.bias"]])
            w2 = params[f"{name}.{k}.4.weight"][[1 - kept]].T  # [64, 1]
            layers[2].set_weights([w2, params[f"{name}.{k}.4.bias"][[1 - kept]]])


def port_to_torch(model, num_blocks: int | None, template: dict) -> dict:
    """The inverse of ``port_to_keras``: a tfvae model's weights as the authors' parameters.

    ``template`` holds the authors' parameters of the same architecture (their unused rows and
    columns, which never reach the output, are kept from it).
    """
    d = model.latent_dim
    order = z_order(num_blocks, d)
    out = {k: np.array(v) for k, v in template.items()}
    enc, dec = _weighted(model.encoder), _weighted(model.decoder)
    for layer, i in zip(enc[:4], (0, 2, 4, 6), strict=True):
        w, b = layer.get_weights()
        out[f"encoder.{i}.weight"], out[f"encoder.{i}.bias"] = w.transpose(3, 2, 0, 1), b
    w, b = enc[4].get_weights()
    out["encoder.9.weight"], out["encoder.9.bias"] = _hwc_to_chw_rows(w, 32, 4, 4).T, b
    w, b = enc[5].get_weights()
    out["encoder.11.weight"], out["encoder.11.bias"] = w.T, b
    w, b = enc[6].get_weights()
    cols = np.concatenate([order, d + order])
    out["encoder.13.weight"][cols] = w.T
    out["encoder.13.bias"][cols] = b

    w, b = dec[0].get_weights()
    out["decoder.0.weight"][:, order] = w.T
    out["decoder.0.bias"] = b
    w, b = dec[1].get_weights()
    out["decoder.2.weight"], out["decoder.2.bias"] = w.T, b
    w, b = dec[2].get_weights()
    out["decoder.4.weight"] = _hwc_to_chw_rows(w.T, 32, 4, 4)
    out["decoder.4.bias"] = _hwc_to_chw_rows(b[:, None], 32, 4, 4)[:, 0]
    for layer, i in zip(dec[3:], (7, 9, 11, 13), strict=True):
        w, b = layer.get_weights()
        out[f"decoder.{i}.weight"], out[f"decoder.{i}.bias"] = w.transpose(3, 2, 0, 1), b

    if num_blocks is None:
        return out
    for k, net in enumerate(model.prior.coupling_nets):
        kept = 0 if k % 2 == 0 else 1
        for name, mlp in (("s", net.log_scale_net), ("t", net.shift_net)):
            layers = _weighted(mlp)
            w, b = layers[0].get_weights()
            out[f"{name}.{k}.0.weight"][:, kept] = w[0]
            out[f"{name}.{k}.0.bias"] = b
            w, b = layers[1].get_weights()
            out[f"{name}.{k}.2.weight"], out[f"{name}.{k}.2.bias"] = w.T, b
            w, b = layers[2].get_weights()
            out[f"{name}.{k}.4.weight"][1 - kept] = w[:, 0]
            out[f"{name}.{k}.4.bias"][1 - kept] = b[0]
    return out


# ----------------------------------------------------------------------------------------------
# Workdirs and runs
# ----------------------------------------------------------------------------------------------
def num_blocks_of(config) -> int | None:
    """K for the decoupled prior, None for the standard normal."""
    if config.model.prior.name != "decoupled":
        return None
    return config.model.prior.options.num_blocks


def write_workdir(
    config, params: dict, workdir: str, step: int, *, num_train: int, val_terms=None
) -> None:
    """A tfvae workdir holding the authors' parameters as the checkpoint of ``step``.

    Args:
      config: the tfvae config of the same model (``_check_supported``).
      params: the authors' parameters, ``state_dict`` names -> arrays.
      workdir: the folder to write (config.json, data_spec.json, checkpoints/).
      step: the checkpoint's training step.
      num_train: training examples (the model's ``dataset_size``).
      val_terms: the authors' validation terms per example, written as train_metrics.json.
    """
    import tensorflow as tf

    from tfvae import experiment as experiment_lib

    _check_supported(config)
    experiment_lib.seed(config)
    spec = experiment_lib.DataSpec(shape=(28, 28, 1), num_train=num_train)
    model, optimizers = experiment_lib.build(config, spec)
    port_to_keras(params, model, num_blocks_of(config))
    model.step.assign(step)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(json.loads(config.to_json_best_effort()), f, indent=2, sort_keys=True)
    experiment_lib.write_data_spec(workdir, spec)
    manager = tf.train.CheckpointManager(
        experiment_lib.checkpoint(model, optimizers),
        os.path.join(workdir, experiment_lib.CHECKPOINTS_DIR),
        max_to_keep=None,
    )
    manager.save(checkpoint_number=step)
    if val_terms is not None:
        with open(os.path.join(workdir, "train_metrics.json"), "w") as f:
            json.dump({"step": step, "val": val_terms}, f, indent=2)  # as tfvae.train writes it


def export_data(config, path: str) -> None:
    """The training and validation images tfvae uses for ``config`` as uint8 arrays."""
    from tfvae import data as data_lib

    if not os.path.exists(path):
        splits = data_lib.load(config.data)
        np.savez(path, x_train=splits.train, x_val=splits.val)


def params_of(result) -> dict:
    """The authors' parameters in a loaded ``tools/authors_torch.py`` output (``np.load``)."""
    return {k[len("param/") :]: result[k] for k in result.files if k.startswith("param/")}


def run_worker(config, *, checkout, torch_python, data, seed, steps, out, init=None, threads=0):
    """Trains the authors' model (``tools/authors_torch.py``) in ``torch_python``."""
    prior = config.model.prior.name
    cmd = [
        torch_python,
        WORKER,
        f"--checkout={checkout}",
        f"--data={data}",
        f"--prior={prior}",
        f"--seed={seed}",
        f"--steps={steps}",
        f"--batch_size={config.train.batch_size}",
        f"--lr={config.optimizers.main.learning_rate}",
        f"--weight={config.model.likelihood.options.weight}",
        f"--latent_dim={config.model.latent_dim}",
        f"--threads={threads}",
        f"--out={out}",
    ]
    if init:
        cmd.append(f"--init={init}")
    subprocess.run(cmd, check=True)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags (defined when run, so importing this module defines none)."""
    flags.DEFINE_string("config", None, "A dpVAE Table-1 config (MNIST architecture).")
    flags.DEFINE_string("checkout", None, "Work tree of github.com/iyerkrithika21/dpVAE.")
    flags.DEFINE_string("torch_python", sys.executable, "A Python interpreter that has torch.")
    flags.DEFINE_list("seeds", ["0"], "Seeds, one run each.")
    flags.DEFINE_integer("steps", 5000, "Training steps of each run.")
    flags.DEFINE_integer("threads", 0, "torch threads per run (0: torch's default).")
    flags.DEFINE_string("out", None, "Folder of the workdirs.")
    flags.DEFINE_enum(
        "start",
        "authors",
        ("authors", "tfvae_init"),
        "authors: train the authors' code; tfvae_init: write a tfvae workdir whose step-0 "
        "checkpoint is the authors' initialization (train it with tfvae.train to compare the "
        "two codes from the same start).",
    )
    for name in ("config", "checkout", "out"):
        flags.mark_flag_as_required(name)


def check_checkout(checkout: str, torch_python: str) -> None:
    """Fails with what to do when the checkout or torch is missing."""
    if not os.path.isfile(os.path.join(checkout, "models", "implicit_model.py")):
        raise FileNotFoundError(
            f"--checkout={checkout} is not a work tree of iyerkrithika21/dpVAE (no "
            "models/implicit_model.py): clone it, e.g. git clone "
            "https://github.com/iyerkrithika21/dpVAE, and pass its folder."
        )
    probe = subprocess.run([torch_python, "-c", "import torch"], capture_output=True)
    if probe.returncode != 0:
        raise FileNotFoundError(
            f"--torch_python={torch_python} cannot import torch: pass a Python that has it "
            "(e.g. a venv made with python -m venv and pip install torch)."
        )


def train_authors(
    config,
    workdir: str,
    *,
    checkout: str,
    torch_python: str,
    data: str,
    threads: int = 0,
    start: str = "authors",
) -> dict | None:
    """Trains the authors' model of ``config`` (its seed and ``train.num_steps``) into a tfvae
    workdir, unless ``workdir`` holds it already; returns the authors' validation terms per
    example (None with ``start="tfvae_init"``, which writes the untrained initialization as
    step 0). The worker's output is kept as ``<workdir>/authors.npz``; ``data`` is an npz of
    tfvae's splits (``export_data``), written when missing."""
    from tfvae import experiment as experiment_lib

    _check_supported(config)
    steps = 0 if start == "tfvae_init" else int(config.train.num_steps)
    latest = experiment_lib.latest_checkpoint(workdir)
    npz = os.path.join(workdir, "authors.npz")
    if latest is not None and int(latest.rsplit("-", 1)[-1]) == steps and os.path.exists(npz):
        result = np.load(npz)
        return {k: float(result[f"val_{k}"]) for k in ("loss", "recon", "kl")} if steps else None
    export_data(config, data)
    os.makedirs(workdir, exist_ok=True)
    run_worker(
        config,
        checkout=checkout,
        torch_python=torch_python,
        data=data,
        seed=int(config.seed),
        steps=steps,
        out=npz + ".tmp.npz",
        threads=threads,
    )
    os.replace(npz + ".tmp.npz", npz)  # a killed worker leaves no npz that looks finished
    result = np.load(npz)
    val = {k: float(result[f"val_{k}"]) for k in ("loss", "recon", "kl")} if steps else None
    write_workdir(
        config,
        params_of(result),
        workdir,
        steps,
        num_train=len(np.load(data)["x_train"]),
        val_terms=val,
    )
    return val


def main(argv):
    from tfvae.config_loader import load_config

    del argv
    config = load_config(FLAGS.config)
    _check_supported(config)
    check_checkout(FLAGS.checkout, FLAGS.torch_python)
    name = os.path.splitext(os.path.basename(FLAGS.config.split(":")[0]))[0]
    os.makedirs(FLAGS.out, exist_ok=True)
    data = os.path.join(FLAGS.out, f"data_{config.data.name}.npz")
    prefix = "authors" if FLAGS.start == "authors" else "authors_init"
    for seed in (int(s) for s in FLAGS.seeds):
        with config.unlocked():
            config.seed = seed
            config.train.num_steps = FLAGS.steps
        workdir = os.path.join(FLAGS.out, f"{prefix}_{name}_s{seed}")
        val = train_authors(
            config,
            workdir,
            checkout=FLAGS.checkout,
            torch_python=FLAGS.torch_python,
            data=data,
            threads=FLAGS.threads,
            start=FLAGS.start,
        )
        step = 0 if FLAGS.start == "tfvae_init" else FLAGS.steps
        print(f"{workdir}: step {step}, the authors' validation terms {val}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
