"""The NE-VAE paper's toy latent-space optimization (LSO) task (section 5.4; METHODS.md 5).

    python -m tools.lso --workdir=runs/nevae_se --workdir=runs/vae_anneal --out=runs/lso.json
    python -m tools.lso --workdir=runs/nevae_se --num_targets=10 --steps=500   (quicker)

For each trained model the decoder is frozen and only codes are optimized. Targets are
``num_targets`` images drawn (with ``seed``) from the test split, binarized statically when the
model was trained on binarized data. Each target gets ``num_random`` random initializations
z ~ p(z) (z = g^-1(z0) for dp models) and ``num_encoder`` encoder initializations z ~ q(z|x).
Adam (``learning_rate``) minimizes, per trial,

    L(z) = sum_i (x_i - x_hat_i(z))^2,   x_hat = decoder mean for z,

where for a PixelCNN x_hat is the one-pass teacher-forced mean given the target's pixels (the
same x_hat the re-encoding loss uses). The error is summed over pixels: the paper says
"squared error" without a reduction, and on a per-pixel mean its thresholds (0.01 to 0.005)
would stop almost at once. Trials are independent: L sums over them and Adam is elementwise,
so optimizing all trials in one batch is the same as optimizing them one at a time.

A trial stops at a threshold t at the first iteration whose loss changed by at most t from the
previous iteration (t = 0: only an exactly unchanged loss; trials that never stop count
``steps`` iterations and keep their last loss and code). For every threshold and init group
(random, encoder, all) the report gives: the mean final loss; its spread (the standard deviation
over a target's initializations, averaged over targets); the mean pairwise squared Euclidean
distance between a target's converged codes; the mean iterations to converge and the fraction
that converged. The paper (Omniglot, 50 targets): NE-VAE se's final losses and codes agree most
across initializations, and it converges fastest at threshold 0 (16,200 iterations against
26,900 for the VAE, 35,900 aggressive, 21,600 beta-VAE(0.9)).
"""

import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from tfvae import cli
from tfvae.errors import InvalidValue

DEFAULT_THRESHOLDS = (0.01, 0.005, 0.001, 0.0)
GROUPS = ("random", "encoder", "all")


def _decoder_mean(model, z: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """x_hat(z): the likelihood mean, teacher-forced on x for autoregressive decoders."""
    return model.likelihood.mean(model.decoder_params(z, x))


def initial_codes(model, targets: tf.Tensor, *, num_random: int, num_encoder: int, seed: int):
    """Initial codes ``[T, I, d]`` (I = num_random + num_encoder, random ones first)."""
    t, d = int(targets.shape[0]), int(model.latent_dim)
    z0 = tf.random.stateless_normal([t * num_random, d], seed=[seed, 1])
    random = tf.reshape(model.prior.from_z0(z0), [t, num_random, d])
    z_mean, z_log_var = model.encode(targets)  # [T, d] each
    eps = tf.random.stateless_normal([t, num_encoder, d], seed=[seed, 2])
    encoder = z_mean[:, None] + tf.exp(0.5 * z_log_var)[:, None] * eps  # [T, E, d]
    return tf.concat([random, encoder], axis=1)


def optimize_codes(
    model,
    targets,
    *,
    num_random: int = 5,
    num_encoder: int = 5,
    steps: int = 2000,
    learning_rate: float = 0.01,
    thresholds=DEFAULT_THRESHOLDS,
    seed: int = 0,
) -> dict:
    """Runs the LSO task for one model; the decoder (and everything else) stays frozen.

    Args:
      model: a trained tfvae model with a stochastic encoder.
      targets: ``[T, ...]`` float images in the data range.
      num_random, num_encoder: initializations per target from p(z) and from q(z|x).
      steps: Adam iterations.
      learning_rate: Adam's step size.
      thresholds: stopping thresholds on |L_k - L_{k-1}|.
      seed: seeds the initializations.

    Returns:
      ``stop_iter`` [K, T, I] (iterations until the stop, ``steps`` if never), ``stop_loss``
      [K, T, I], ``stop_code`` [K, T, I, d], ``losses`` [steps, T, I] (loss before each
      update), ``init_group`` [I] ("random" / "encoder"), ``thresholds`` [K].
    """
    if not model.stochastic:
        raise InvalidValue("LSO's encoder initialization needs a stochastic encoder.")
    targets = tf.convert_to_tensor(targets, tf.float32)
    t = int(targets.shape[0])
    n_init = num_random + num_encoder
    thr = tf.constant(thresholds, tf.float32)  # [K]
    k = len(thresholds)
    init = initial_codes(model, targets, num_random=num_random, num_encoder=num_encoder, seed=seed)
    d = int(init.shape[-1])
    m = t * n_init
    z = tf.Variable(tf.reshape(init, [m, d]), name="codes")  # [M, d], trial = (target, init)
    x = tf.repeat(targets, n_init, axis=0)  # [M, ...] in the same order
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build([z])
    prev = tf.Variable(tf.fill([m], np.inf), dtype=tf.float32)  # loss at the previous step
    stop_iter = tf.Variable(tf.fill([k, m], steps))
    stop_loss = tf.Variable(tf.zeros([k, m]))
    stop_code = tf.Variable(tf.zeros([k, m, d]))
    stopped = tf.Variable(tf.zeros([k, m], tf.bool))

    @tf.function
    def step(it):
        with tf.GradientTape() as tape:
            diff = x - _decoder_mean(model, z, x)
            loss = tf.reduce_sum(tf.reshape(tf.square(diff), [m, -1]), axis=1)  # [M]
            total = tf.reduce_sum(loss)  # trials do not interact: one gradient per code
        grad = tape.gradient(total, z)
        # Record stops with the code the loss was measured at, before this update.
        newly = ~stopped & (tf.abs(loss - prev)[None, :] <= thr[:, None])  # [K, M]
        stop_iter.assign(tf.where(newly, it, stop_iter))
        stop_loss.assign(tf.where(newly, loss[None, :], stop_loss))
        stop_code.assign(tf.where(newly[..., None], z[None], stop_code))
        stopped.assign(stopped | newly)
        prev.assign(loss)
        optimizer.apply_gradients([(grad, z)])
        return loss

    losses = np.empty((steps, m), np.float32)
    for i in range(steps):
        losses[i] = step(tf.constant(i, tf.int32)).numpy()
    # Trials that never stopped keep their last measured loss and code.
    never = ~stopped.numpy()
    final_loss = np.broadcast_to(losses[-1], (k, m))
    stop_loss_np = np.where(never, final_loss, stop_loss.numpy())
    last_code = np.broadcast_to(z.numpy()[None], (k, m, d))
    stop_code_np = np.where(never[..., None], last_code, stop_code.numpy())
    return {
        "thresholds": np.asarray(thresholds, np.float64),
        "stop_iter": stop_iter.numpy().reshape(k, t, n_init),
        "stop_loss": stop_loss_np.reshape(k, t, n_init),
        "stop_code": stop_code_np.reshape(k, t, n_init, d),
        "losses": losses.reshape(steps, t, n_init),
        "init_group": np.array(["random"] * num_random + ["encoder"] * num_encoder),
        "steps": steps,
    }


def _mean_pairwise_sq_distance(codes: np.ndarray) -> float:
    """Mean over targets of the mean ||z_a - z_b||^2 over pairs a < b: [T, I, d] -> float."""
    n = codes.shape[1]
    if n < 2:
        return float("nan")
    diff = codes[:, :, None, :] - codes[:, None, :, :]  # [T, I, I, d]
    sq = np.sum(diff**2, axis=-1)  # [T, I, I]
    upper = np.triu_indices(n, 1)
    return float(np.mean(sq[:, upper[0], upper[1]]))


def summarize(result: dict) -> dict:
    """Per threshold and init group: final loss mean and spread, pairwise code distance,
    iterations to converge and the fraction converged (see the module docstring)."""
    out = {}
    groups = result["init_group"]
    for ki, thr in enumerate(result["thresholds"]):
        row = {}
        for group in GROUPS:
            sel = np.ones(len(groups), bool) if group == "all" else groups == group
            if not sel.any():
                continue
            loss = result["stop_loss"][ki][:, sel]  # [T, n]
            iters = result["stop_iter"][ki][:, sel]
            row[group] = {
                "final_loss": float(np.mean(loss)),
                "loss_spread": float(np.mean(np.std(loss, axis=1))),
                "pairwise_sq_distance": _mean_pairwise_sq_distance(result["stop_code"][ki][:, sel]),
                "iterations": float(np.mean(iters)),
                "converged_fraction": float(np.mean(iters < result["steps"])),
            }
        out[f"{thr:g}"] = row
    return out


def format_summary(name: str, summary: dict) -> str:
    lines = [
        f"## {name}",
        "",
        "| threshold | init | final loss | spread | pairwise dist^2 | iterations | converged |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for thr, row in summary.items():
        for group, s in row.items():
            lines.append(
                f"| {thr} | {group} | {s['final_loss']:.5f} | {s['loss_spread']:.5f} | "
                f"{s['pairwise_sq_distance']:.4f} | {s['iterations']:.0f} | "
                f"{s['converged_fraction']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def select_targets(exp, num_targets: int, seed: int) -> np.ndarray:
    """``num_targets`` test images drawn with ``seed``, binarized statically like validation."""
    from tfvae import data as data_lib

    x = exp.data.test
    idx = np.sort(np.random.default_rng(seed).choice(len(x), num_targets, replace=False))
    x = x[idx]
    if exp.config.data.binarize != "none":
        x = data_lib.static_binarize(x)
    return data_lib.to_float(x).numpy()


def _define_flags():
    # Defined only when run as a script, so importing this module defines no global flags.
    flags.DEFINE_multi_string("workdir", None, "Trained workdirs (repeat the flag).")
    flags.DEFINE_integer("num_targets", 50, "Target images (paper: 50).")
    flags.DEFINE_integer("num_random", 5, "Random initializations per target.")
    flags.DEFINE_integer("num_encoder", 5, "Encoder initializations per target.")
    flags.DEFINE_integer("steps", 2000, "Adam iterations.")
    flags.DEFINE_float("learning_rate", 0.01, "Adam step size.")
    flags.DEFINE_list("thresholds", [f"{t:g}" for t in DEFAULT_THRESHOLDS], "Stop thresholds.")
    flags.DEFINE_integer("seed", 0, "Seed of targets and initializations.")
    flags.DEFINE_string("out", None, "JSON report path (default: print only).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f.workdir:
        raise app.UsageError("Give at least one --workdir.")
    sys.path.insert(0, ".")
    from tfvae import experiment

    thresholds = tuple(float(t) for t in f.thresholds)
    report = {}
    for workdir in f.workdir:
        exp = experiment.load(workdir)
        targets = select_targets(exp, f.num_targets, f.seed)
        result = optimize_codes(
            exp.model,
            targets,
            num_random=f.num_random,
            num_encoder=f.num_encoder,
            steps=f.steps,
            learning_rate=f.learning_rate,
            thresholds=thresholds,
            seed=f.seed,
        )
        summary = summarize(result)
        report[workdir] = {"step": exp.step, "objective": exp.config.objective, "lso": summary}
        print(format_summary(workdir, summary), flush=True)
        keras.backend.clear_session()
    if f.out:
        os.makedirs(os.path.dirname(os.path.abspath(f.out)), exist_ok=True)
        with open(f.out, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
