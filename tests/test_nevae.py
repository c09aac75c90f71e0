"""NE-VAE and the posterior-collapse toolkit: re-encoding losses, aggressive training, analysis.

The MI / AU estimators themselves are tested in test_metrics.py, every objective x prior step in
test_objectives.py and every config's ``:smoke`` run in test_training.py (the collapse configs
included); this file tests what is specific to issue 4.
"""

import glob
import math
import os
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import aggressive, collapse, evaluation, losses, networks, trainer, traversals
from tfvae import data as data_lib
from tfvae.build import build_model
from tfvae.config_loader import load_config
from tfvae.likelihoods import Gaussian
from tfvae.objectives.ne_vae import NEVAE, log_prob_reencoding, squared_error_reencoding
from tfvae.objectives.vae import VAE
from tfvae.priors import StandardNormalPrior
from tools import collapse_table, lso

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLAPSE_CONFIGS = ("nevae_se", "nevae_lp", "vae_anneal", "vae_aggressive", "beta_vae_collapse")
D = 4


def _config_path(name: str) -> str:
    return os.path.join(REPO, "configs", f"{name}.py")


# ----------------------------------------------------------------------------------------------
# Hand-built networks with known posteriors
# ----------------------------------------------------------------------------------------------
class MaskedIdentityEncoder(keras.Model):
    """q(z|x) = N(mask * x, exp(log_var) I): dimensions with mask 0 ignore x (collapsed)."""

    def __init__(self, mask, log_var: float):
        super().__init__()
        self.mask = tf.constant(mask, tf.float32)
        self.log_var = log_var

    def call(self, x):
        mean = x * self.mask
        return tf.concat([mean, tf.zeros_like(mean) + self.log_var], axis=-1)


class ShiftDecoder(keras.Model):
    """x_hat = z + shift (Gaussian likelihood mean)."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift

    def call(self, z):
        return z + self.shift


def _model(cls=NEVAE, *, mask=(1.0,) * D, log_var=0.0, shift=0.0, encoder=None, decoder=None, **kw):
    return cls(
        encoder=encoder or MaskedIdentityEncoder(mask, log_var),
        decoder=decoder or ShiftDecoder(shift),
        prior=StandardNormalPrior(D),
        likelihood=Gaussian(weight=1.0),
        latent_dim=D,
        dataset_size=1000,
        **kw,
    )


def _mlp_model(cls=NEVAE, **kw):
    encoder = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(8, "tanh"), keras.layers.Dense(2 * D)]
    )
    decoder = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(8, "tanh"), keras.layers.Dense(D)]
    )
    return _model(cls, encoder=encoder, decoder=decoder, **kw)


def _x(n=16, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(n, D)), tf.float32)


# ----------------------------------------------------------------------------------------------
# Re-encoding losses
# ----------------------------------------------------------------------------------------------
def test_se_is_zero_when_the_reencoding_is_exact_and_shift_squared_otherwise():
    exact = _model(reencoding="se", log_var=-60.0)  # sigma ~ 1e-13: z = x, x_hat = z, z' = z
    terms = exact.loss_terms([_x()], training=False)
    np.testing.assert_array_less(terms["reencode"].numpy(), 1e-20)
    shifted = _model(reencoding="se", log_var=-60.0, shift=0.5)  # z' = z + 0.5 in every dim
    terms = shifted.loss_terms([_x()], training=False)
    np.testing.assert_allclose(terms["reencode"].numpy(), 0.25, rtol=1e-5)
    assert squared_error_reencoding(tf.ones([2, 3]), tf.ones([2, 3])).numpy().tolist() == [0, 0]


@pytest.mark.parametrize("c", [None, -math.inf, 0.0, 10.0])
def test_lp_matches_the_closed_form(c):
    # q(z|x_hat) = N(z + a, e^lv): every dimension has nll = 0.5 (log 2pi + lv + a^2 e^-lv),
    # whatever z was drawn.
    lv, a = 0.5, 0.7
    model = _model(reencoding="lp", c=c, log_var=lv, shift=a)
    nll = 0.5 * (math.log(2 * math.pi) + lv + a * a * math.exp(-lv))
    expected = D * (nll if c is None or c < nll else c)
    terms = model.loss_terms([_x()], training=False)
    np.testing.assert_allclose(terms["reencode"].numpy(), expected, rtol=1e-5)


def test_lp_direct_formula_and_cap():
    z, mu, lv = tf.constant([[0.0, 2.0]]), tf.constant([[0.0, 0.0]]), tf.constant([[0.0, 0.0]])
    half_log_2pi = 0.5 * losses.LOG_2PI
    uncapped = log_prob_reencoding(z, mu, lv, None).numpy()
    np.testing.assert_allclose(uncapped, [2 * half_log_2pi + 2.0], rtol=1e-6)
    capped = log_prob_reencoding(z, mu, lv, 1.5).numpy()  # dim 0 (0.919) is lifted to 1.5
    np.testing.assert_allclose(capped, [1.5 + half_log_2pi + 2.0], rtol=1e-6)


def _reencode_grads(model, x):
    variables = model.autoencoder_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.loss_terms([x], training=True)["reencode"])
    return [g for g in tape.gradient(loss, variables) if g is not None]


def test_lp_with_a_large_cap_contributes_no_gradient():
    x = _x()
    capped = _mlp_model(reencoding="lp", c=1e6)
    grads = _reencode_grads(capped, x)
    assert all(float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)
    # The same network uncapped does get a gradient, so the check above can fail.
    uncapped = _model(reencoding="lp", c=None, encoder=capped.encoder, decoder=capped.decoder)
    grads = _reencode_grads(uncapped, x)
    assert max(float(tf.reduce_max(tf.abs(g))) for g in grads) > 1e-4


def test_ne_vae_loss_adds_lambda_times_reencode():
    model = _model(reencoding="se", lambda_=3.0, shift=0.5, log_var=-60.0)
    t = model.loss_terms([_x()], training=False)
    np.testing.assert_allclose(t["loss"], t["recon"] + t["kl"] + 3.0 * t["reencode"], rtol=1e-6)


def test_ne_vae_rejects_bad_arguments():
    with pytest.raises(ValueError, match="se.*lp"):
        _model(reencoding="l2")
    with pytest.raises(ValueError, match="lambda_"):
        _model(lambda_=-1.0)
    with pytest.raises(ValueError, match="lambda_ = 0"):
        _model(reencoding="lp", c=math.inf)


def test_kl_annealing_weights_only_the_kl_term_of_ne_vae():
    # z_log_var = -60: z = x exactly, so recon, kl and reencode do not depend on the draw.
    model = _model(
        reencoding="se", shift=0.5, log_var=-60.0, kl_warmup_start=0.1, kl_warmup_steps=10
    )
    for step, w in ((0, 0.1), (5, 0.55), (10, 1.0), (40, 1.0)):
        model.step.assign(step)
        t = model.loss_terms([_x()], training=False)
        np.testing.assert_allclose(
            t["loss"], t["recon"] + w * t["kl"] + t["reencode"], rtol=1e-5, err_msg=f"step {step}"
        )


# ----------------------------------------------------------------------------------------------
# Aggressive training
# ----------------------------------------------------------------------------------------------
def _aggressive(patience=5, seed=0, optimizer=None):
    """A small VAE in aggressive mode and its step as the trainer runs it (one device)."""
    keras.utils.set_random_seed(seed)
    model = _mlp_model(VAE)
    model.compile({"main": keras.optimizers.Adam(1e-2)})
    data = np.random.default_rng(seed).normal(size=(256, D)).astype(np.float32)
    spec = optimizer or {"name": "adam", "learning_rate": 1e-2, "clipnorm": None}
    mode = aggressive.AggressiveTraining(model, optimizer=spec, patience=patience)
    model.build_all(tf.constant(data[:8]))

    def stream(seed_offset, start):
        return iter(
            data_lib.train_dataset(data, batch_size=16, seed=seed + seed_offset, start_step=start)
        )

    return model, mode, stream, tf.constant(data[:16])


def _snap(variables):
    return [v.numpy().copy() for v in variables]


def _same(before, variables):
    return all(np.array_equal(b, v.numpy()) for b, v in zip(before, variables, strict=True))


def _moved(before, variables) -> set:
    return {
        id(v) for b, v in zip(before, variables, strict=True) if not np.array_equal(b, v.numpy())
    }


def _iterations(optimizer) -> int:
    return int(optimizer.iterations.numpy())


def test_aggressive_step_runs_encoder_only_updates_then_one_decoder_only_update():
    model, mode, stream, batch = _aggressive()
    enc, dec = mode.encoder_variables(), mode.decoder_variables()
    assert {id(v) for v in enc + dec} == {id(v) for v in model.autoencoder_variables}
    assert not {id(v) for v in enc} & {id(v) for v in dec}
    everything = model.autoencoder_variables
    calls = []  # per compiled call: (variables it moved, whether it was the step's end)

    def spying_compile(fn):
        compiled = tf.function(fn)

        def run(data):
            before = _snap(everything)
            out = compiled(data)
            calls.append((_moved(before, everything), isinstance(out, dict)))
            return out

        return run

    logs = model.make_step(spying_compile, stream)(batch)
    *encoder_calls, (decoder_moved, last_is_end) = calls
    assert last_is_end and not any(end for _, end in encoder_calls)
    assert logs["encoder_steps"] == len(encoder_calls) >= mode.window
    for moved, _ in encoder_calls:
        assert moved and moved <= {id(v) for v in enc}, "an encoder update moved the decoder"
    assert decoder_moved and decoder_moved <= {id(v) for v in dec}, "decoder update moved enc"
    assert int(model.step.numpy()) == 1
    # The first encoder update used the step's batch, every later one a fresh batch.
    assert int(mode.state.fresh_batches.numpy()) == len(encoder_calls) - 1
    assert _iterations(model.optimizers["decoder"]) == 1
    assert _iterations(model.optimizers["encoder"]) == len(encoder_calls)
    assert _iterations(model.optimizers["main"]) == 0
    # The trackers hold the decoder update's terms only (one update per step).
    assert float(model.trackers["loss"].count.numpy()) == 1
    with pytest.raises(ValueError, match="make_step"):
        model.train_step(batch)  # data-dependent repeats cannot run as one graph


@pytest.mark.parametrize(
    "window_means,expected_steps",
    [
        ([5.0, 4.0, 3.0, 3.5], 40),  # the 4th window's running loss did not improve
        ([5.0, 5.0], 20),  # equal is not an improvement
        ([10.0 - k for k in range(10)], 100),  # always improving: the cap
        ([5.0, float("nan"), 4.0, 4.0], 40),  # a NaN window never stops the loop by itself
    ],
)
def test_aggressive_inner_loop_stops_when_the_running_loss_stops_improving(
    window_means, expected_steps
):
    model, mode, stream, batch = _aggressive()
    script = iter(np.repeat(window_means, mode.window).tolist() + [0.0] * 100)

    def scripted_compile(fn):  # real updates, scripted losses
        compiled = tf.function(fn)
        return lambda data: out if isinstance(out := compiled(data), dict) else next(script)

    assert model.make_step(scripted_compile, stream)(batch)["encoder_steps"] == expected_steps
    assert _iterations(model.optimizers["encoder"]) == expected_steps


def test_aggressive_mode_switches_off_after_patience_failures_and_trains_jointly():
    model, mode, stream, batch = _aggressive(patience=3)
    actives = [
        mode.end_of_validation({"mutual_information": mi})["aggressive_active"]
        for mi in (1.0, 2.0, 1.5, 2.5)
    ]
    assert actives == [1.0] * 4  # one failure (1.5), then a new best
    assert float(mode.state.best_mi.numpy()) == 2.5
    off = [
        mode.end_of_validation({"mutual_information": mi})["aggressive_active"]
        for mi in (2.4, float("nan"), 9.0)
    ]
    assert off == [1.0, 0.0, 0.0]  # failure 2 (not in a row), failure 3 (NaN), off for good
    (joint,) = model.step_phases()
    assert joint.until is None and joint.optimizer == ("encoder", "decoder")
    enc, dec = _snap(mode.encoder_variables()), _snap(mode.decoder_variables())
    logs = model.make_step(tf.function, stream)(batch)
    assert "encoder_steps" not in logs
    assert not _same(enc, mode.encoder_variables()) and not _same(dec, mode.decoder_variables())
    # One gradient, split between the two optimizers: their state carries on.
    assert _iterations(model.optimizers["encoder"]) == _iterations(model.optimizers["decoder"]) == 1
    assert _iterations(model.optimizers["main"]) == 0


def test_aggressive_joint_update_clips_the_whole_gradient_once():
    clip = 1e-3  # far below the gradient's norm
    spec = {"name": "sgd", "learning_rate": 1.0, "global_clipnorm": clip}
    model, mode, stream, batch = _aggressive(patience=1, optimizer=spec)
    mode.end_of_validation({"mutual_information": float("nan")})  # the mode ends
    variables = mode.encoder_variables() + mode.decoder_variables()
    before = _snap(variables)
    model.make_step(tf.function, stream)(batch)
    step = np.sqrt(
        sum(np.sum((v.numpy() - b) ** 2) for b, v in zip(before, variables, strict=True))
    )
    # SGD with rate 1 moves by the clipped gradient: norm `clip` over both halves together
    # (clipping each half on its own would give up to sqrt(2) * clip).
    np.testing.assert_allclose(step, clip, rtol=1e-4)


def test_aggressive_state_is_part_of_the_model_checkpoint(tmp_path):
    model, mode, stream, batch = _aggressive(patience=2)
    model.make_step(tf.function, stream)(batch)
    mode.end_of_validation({"mutual_information": 1.0})
    mode.end_of_validation({"mutual_information": 0.5})
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    other_model, other, _, _ = _aggressive(patience=2, seed=1)
    tf.train.Checkpoint(model=other_model).restore(path).assert_existing_objects_matched()
    for name in ("active", "best_mi", "failures", "fresh_batches"):
        assert getattr(other.state, name).numpy() == getattr(mode.state, name).numpy(), name
    for a, b in zip(
        mode.state.encoder_optimizer.variables, other.state.encoder_optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _moons_aggressive(**train):
    """vae_aggressive's settings on the tiny two-moons set with MLPs (fast)."""
    config = load_config(_config_path("vae_aggressive") + ":smoke")
    with config.unlocked():
        config.data.update(
            name="two_moons", binarize="none", num_examples=512, noise=0.05, val_size=64
        )
        config.model.latent_dim = 2
        config.model.encoder = {"name": "mlp", "options": {"hidden_sizes": (16,)}}
        config.model.decoder = {"name": "mlp", "options": {"hidden_sizes": (16,)}}
        config.model.likelihood = {"name": "gaussian", "options": {"weight": 1.0}}
        config.train.deterministic = True
        config.train.update(train)
    return config


@pytest.mark.slow
def test_trainer_resumes_aggressive_mode_exactly_and_logs_collapse_metrics(tmp_path):
    steps = dict(num_steps=4, checkpoint_every=2, eval_every=2, log_every=2)
    trainer.train_and_evaluate(_moons_aggressive(**steps), str(tmp_path / "a"))
    trainer.train_and_evaluate(_moons_aggressive(**{**steps, "num_steps": 2}), str(tmp_path / "b"))
    trainer.train_and_evaluate(_moons_aggressive(**steps), str(tmp_path / "b"))
    a = trainer.Experiment(_moons_aggressive(**steps), str(tmp_path / "a"))
    b = trainer.Experiment(_moons_aggressive(**steps), str(tmp_path / "b"))
    assert a.step == b.step == 4
    sa, sb = a.model.aggressive_state, b.model.aggressive_state
    assert int(sa.fresh_batches.numpy()) > 0
    for name in ("active", "best_mi", "failures", "fresh_batches"):
        assert getattr(sa, name).numpy() == getattr(sb, name).numpy()
    for wa, wb in zip(a.model.weights, b.model.weights, strict=True):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    tags = set()
    for split in ("train", "val"):
        for path in glob.glob(str(tmp_path / "a" / split / "events*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                tags |= {v.tag for v in event.summary.value}
    assert {
        "train/encoder_steps",
        "val/mutual_information",
        "val/active_units",
        "val/reencode_error",
        "val/aggressive_active",
    } <= tags


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_aggressive_mode_trains_in_mixed_precision(tmp_path, policy):
    config = _moons_aggressive(mixed_precision=policy, num_steps=2)
    final = trainer.train_and_evaluate(config, str(tmp_path / policy))
    assert np.isfinite(final["loss"])
    exp = trainer.Experiment(config, str(tmp_path / policy))
    encoder = exp.model.optimizers["encoder"]
    # float16 gradients are loss-scaled in the encoder and decoder updates too.
    assert (type(encoder).__name__ == "LossScaleOptimizer") == (policy == "mixed_float16")
    assert int(encoder.iterations.numpy()) >= 2 * exp.model.training_mode.window
    assert int(exp.model.optimizers["decoder"].iterations.numpy()) == 2


def test_aggressive_mode_needs_the_validation_mutual_information(tmp_path):
    config = _moons_aggressive(collapse_metrics=False)
    with pytest.raises(ValueError, match="collapse_metrics=True"):
        trainer.Experiment(config, str(tmp_path / "a"))


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", COLLAPSE_CONFIGS)
def test_collapse_config_setting_and_latent_argument(name):
    c = load_config(_config_path(name))
    assert (c.data.name, c.data.binarize, c.model.likelihood.name) == (
        "fashion_mnist",
        "dynamic",
        "bernoulli",
    )
    assert (c.model.encoder.name, c.model.decoder.name, c.model.latent_dim) == (
        "resnet",
        "pixelcnn",
        32,
    )
    assert c.train.batch_size == 50 and c.train.collapse_metrics
    assert c.optimizers.main.learning_rate == 1e-3 and c.optimizers.main.global_clipnorm == 5.0
    assert c.train.aggressive == (name == "vae_aggressive")
    if name != "beta_vae_collapse":  # beta < 1 stops the same line at beta (tested below)
        # KL annealing: 0.1 -> 1 over the first 10 epochs (55,000 / 50 steps per epoch).
        assert (c.hparams.kl_warmup_start, c.hparams.kl_warmup_steps) == (0.1, 10 * 1100)
    for latent in (8, 16, 64):
        assert load_config(_config_path(name) + f":latent={latent}").model.latent_dim == latent
    omniglot = load_config(_config_path(name) + ":omniglot,latent=8")
    assert (omniglot.data.name, omniglot.data.val_size, omniglot.model.latent_dim) == (
        "omniglot",
        1345,
        8,
    )
    assert load_config(_config_path(name) + ":anneal=0").hparams.kl_warmup_steps == 0
    with pytest.raises(ValueError, match="latent"):
        load_config(_config_path(name) + ":latent=0")
    with pytest.raises(ValueError, match="svhn"):
        load_config(_config_path(name) + ":svhn")
    small = load_config(_config_path(name) + ":decoder=small")
    assert dict(small.model.decoder.options) == {"channels": 32, "kernel_sizes": (7, 5, 5, 3, 3)}
    assert dict(small.model.encoder.options) == {"filters": (32, 32, 32), "hidden_units": 256}
    with pytest.raises(ValueError, match=r"decoder='large'; valid: \['he', 'small'\]"):
        load_config(_config_path(name) + ":decoder=large")


def test_latent_argument_builds_that_latent_size():
    config = load_config(_config_path("nevae_se") + ":latent=16,smoke")
    model = build_model(config, (28, 28, 1), dataset_size=100)
    assert model.latent_dim == 16 and model.encoder.output_shape[-1] == 32
    assert model.decoder.channels == 8  # smoke shrinks the PixelCNN


def test_nevae_lp_cap_argument_and_beta_schedule():
    lp = _config_path("nevae_lp")
    assert load_config(lp).hparams.c == 0.1
    assert load_config(lp + ":c=-inf").hparams.c is None
    assert load_config(lp + ":c=none").hparams.c is None
    assert load_config(lp + ":c=-1").hparams.c == -1.0
    assert load_config(_config_path("nevae_se") + ":lambda=2.5").hparams.lambda_ == 2.5
    # beta-VAE(0.9): beta * w_t = min(beta, 0.1 + 0.9 t / T), the others' line stopped at beta.
    base = load_config(_config_path("vae_anneal")).hparams
    h = load_config(_config_path("beta_vae_collapse")).hparams
    for t in (0, 1000, 5000, base.kl_warmup_steps, 3 * base.kl_warmup_steps):
        w = min(1.0, h.kl_warmup_start + (1 - h.kl_warmup_start) * t / h.kl_warmup_steps)
        line = 0.1 + 0.9 * t / base.kl_warmup_steps
        assert h.beta * w == pytest.approx(min(h.beta, line), abs=1e-3)


# ----------------------------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------------------------
def test_analyze_on_a_constructed_encoder_counts_units_and_reencoding_exactly():
    # Dims 0, 1 copy x (variance 1, 0.25); dim 2 copies x with variance 0.0025 (< 0.01); dim 3
    # ignores x. With sigma = 1 and x_hat = z: E(z - z')^2 = 1 where the encoder copies x and 2
    # where it ignores it (z and z' then are independent N(0, 1)).
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2000, D)) * [1.0, 0.5, 0.05, 1.0]).astype(np.float32)
    model = _model(VAE, mask=(1.0, 1.0, 1.0, 0.0), log_var=0.0)
    r = collapse.analyze(model, x, batch_size=50)
    np.testing.assert_allclose(r["activity"], np.var(x * [1, 1, 1, 0], axis=0, ddof=1), rtol=1e-5)
    assert r["active_units"] == 2
    np.testing.assert_allclose(r["reencode_error_per_dim"], [1, 1, 1, 2], atol=0.25)
    # KL(N(mu, 1) || N(0, 1)) = 0.5 * ||mu||^2, exactly.
    expected_kl = 0.5 * np.mean(np.sum((x * [1, 1, 1, 0]) ** 2, axis=1))
    assert r["kl"] == pytest.approx(expected_kl, rel=1e-5)
    assert r["neg_elbo"] == pytest.approx(r["recon"] + r["kl"])
    assert 0.0 < r["mutual_information"] < math.log(50)
    again = collapse.analyze(model, x, batch_size=50)  # repeatable: stateless draws
    for key in r:
        np.testing.assert_array_equal(again[key], r[key])
    assert {"collapse", "collapse_traversals"} <= set(evaluation.METRICS)


def test_mutual_information_is_zero_for_an_encoder_that_ignores_x_and_log_b_when_deterministic():
    x = np.random.default_rng(1).normal(size=(1000, D)).astype(np.float32)
    ignores = _model(VAE, mask=(0.0,) * D, log_var=0.0)  # q(z|x) = N(0, I) for every x
    mi = collapse.analyze(ignores, x, batch_size=50)["mutual_information"]
    assert abs(mi) < 0.1
    # sigma = e^-10: the codes of a batch are far apart in sigma units, q(z_i) is dominated by
    # q(z_i | x_i) / B, so the estimate reaches its ceiling log B.
    deterministic = _model(VAE, log_var=-20.0)
    mi = collapse.analyze(deterministic, x, batch_size=50)["mutual_information"]
    assert mi == pytest.approx(math.log(50), abs=0.05)


class FirstDimImageDecoder(keras.Model):
    """4x4 images of constant brightness sigmoid(z_0): only dimension 0 reaches the image."""

    def call(self, z):
        return tf.sigmoid(z[:, :1, None, None]) * tf.ones([1, 4, 4, 1])  # [B, 4, 4, 1]


def _tiles(path, rows, cols):
    """Pixel (0, 0) of every 4x4 tile of a ``tile_images`` PNG (1-pixel gaps): [rows, cols]."""
    from PIL import Image

    grid = np.asarray(Image.open(path), np.float64) / 255.0
    assert grid.shape == (rows * 5 + 1, cols * 5 + 1)
    return grid[1::5, 1::5][:rows, :cols]


def test_traversal_figures_draw_both_ends_and_hold_the_active_units_at_zero(tmp_path, monkeypatch):
    model = _model(VAE, decoder=FirstDimImageDecoder())
    decoded = []
    real_decode = collapse.decode_codes

    def spy(model, z, **kw):
        decoded.append(z)
        return real_decode(model, z, **kw)

    monkeypatch.setattr(collapse, "decode_codes", spy)
    activity = [0.5, 0.0, 0.02, 0.001]  # dims 0 and 2 active
    names = collapse.traversal_figures(model, str(tmp_path), num_directions=3, activity=activity)
    assert list(names) == ["traversal_dims", "traversal_random", "traversal_random_inactive"]
    dims, rand, inactive = decoded
    columns = collapse.shown_steps(100, 4)
    assert len(columns) == 26 and columns[0] == 0 and columns[-1] == 99
    assert dims.shape == (D, 26, D) and rand.shape == inactive.shape == (3, 26, D)
    for j in range(D):
        np.testing.assert_allclose(dims[j, [0, -1], j], [-10.0, 10.0])
        np.testing.assert_allclose(dims[j, 1, j], -10.0 + 4 * 20.0 / 99, rtol=1e-5)
        assert np.all(np.delete(dims[j], j, axis=1) == 0)
    np.testing.assert_allclose(np.linalg.norm(rand[:, -1], axis=1), 10.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(inactive[:, -1], axis=1), 10.0, rtol=1e-5)
    assert np.all(inactive[..., [0, 2]] == 0) and np.all(inactive[:, 1:, [1, 3]] != 0)
    # The PNGs: only the row of dimension 0 changes (dark to bright); with the active units
    # held at 0 every image is sigmoid(0) = 0.5.
    grid = _tiles(tmp_path / "traversal_dims.png", D, 26)
    assert grid[0, 0] == 0.0 and grid[0, -1] == 1.0 and np.all(np.diff(grid[0]) >= 0)
    np.testing.assert_allclose(grid[1:], 128 / 255)
    np.testing.assert_allclose(_tiles(tmp_path / "traversal_random_inactive.png", 3, 26), 128 / 255)
    # No held figure when every unit (or none) is active.
    decoded.clear()
    names = collapse.traversal_figures(model, str(tmp_path / "all"), activity=[1.0] * D)
    assert list(names) == ["traversal_dims", "traversal_random"]


def test_pixelcnn_public_sampler_follows_its_uniforms():
    decoder = networks.build_decoder(
        "pixelcnn", latent_dim=2, output_shape=(4, 3, 1), channels=8, kernel_sizes=(3, 3, 3)
    )
    z = tf.constant(np.random.default_rng(0).normal(size=(2, 2)), tf.float32)
    shape = (2, 4, 3, 1)
    # x_i = 1[u_i < p_i] and 0 < p_i < 1: u = 0 gives all ones, u = 1 all zeros.
    np.testing.assert_array_equal(decoder.sample_with_uniforms(z, tf.zeros(shape)), np.ones(shape))
    np.testing.assert_array_equal(decoder.sample_with_uniforms(z, tf.ones(shape)), np.zeros(shape))
    u = keras.random.uniform(shape, seed=5)
    np.testing.assert_array_equal(decoder.sample(z, seed=5), decoder.sample_with_uniforms(z, u))


def test_traversal_codes_lines_and_distances():
    single = traversals.single_dimension_codes(3)
    assert single.shape == (3, 100, 3)
    np.testing.assert_allclose(single[1, :, 1], np.linspace(-10, 10, 100), rtol=1e-6)
    assert np.all(single[1, :, [0, 2]] == 0)
    # Around a center (disentanglement_lib's traversals of an encoded image), chosen rows.
    around = traversals.single_dimension_codes(3, [2, 0], low=-1, high=1, steps=5, center=[7, 8, 9])
    assert around.shape == (2, 5, 3) and around.dtype == np.float32
    np.testing.assert_allclose(around[0], [[7, 8, v] for v in np.linspace(-1, 1, 5)])
    np.testing.assert_allclose(around[1], [[v, 8, 9] for v in np.linspace(-1, 1, 5)])
    line = traversals.line_codes(np.array([[1.0, 2.0]]), np.array([[3.0, -2.0]]), 3)
    np.testing.assert_allclose(line, [[[1, 2], [2, 0], [3, -2]]])  # both ends and the middle
    rand = collapse.random_direction_codes(5, 4, zero_dims=(0, 3), seed=1)
    assert rand.shape == (4, 100, 5)
    np.testing.assert_allclose(np.linalg.norm(rand[:, -1], axis=1), 10.0, rtol=1e-5)
    np.testing.assert_allclose(rand[:, 0], 0.0)
    assert np.all(rand[:, :, [0, 3]] == 0)
    # Straight lines: every point is a multiple of the end point.
    np.testing.assert_allclose(rand[:, 50], rand[:, -1] * 50 / 99, rtol=1e-5, atol=1e-6)


def test_pixelcnn_traversal_images_share_their_noise(tmp_path):
    decoder = networks.build_decoder(
        "pixelcnn", latent_dim=2, output_shape=(4, 4, 1), channels=8, kernel_sizes=(3, 3, 3)
    )
    fake = types.SimpleNamespace(decoder=decoder, autoregressive=True)
    z = np.zeros((2, 3, 2), np.float32)  # six identical codes
    images = collapse.decode_codes(fake, z, seed=3)
    assert images.shape == (2, 3, 4, 4, 1)
    assert np.all(images == images[0, 0])
    collapse.save_traversal_grid(images, str(tmp_path / "grid.png"))
    collapse.plot_activity([1.0, 0.001, 0.5], str(tmp_path / "activity.png"))
    assert os.path.getsize(tmp_path / "grid.png") > 0 and os.path.getsize(tmp_path / "activity.png")


# ----------------------------------------------------------------------------------------------
# Tools
# ----------------------------------------------------------------------------------------------
def test_lso_recovers_the_unique_optimum_of_an_invertible_frozen_decoder():
    decoder = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(D, kernel_initializer="identity")]
    )
    decoder.layers[0].kernel.assign(np.diag([2.0, 1.0, 0.5, 1.5]).astype(np.float32))
    model = _model(VAE, decoder=decoder, log_var=-2.0)
    targets = _x(3, seed=5)
    frozen = _snap(decoder.weights)
    result = lso.optimize_codes(
        model,
        targets,
        num_random=2,
        num_encoder=2,
        steps=600,
        learning_rate=0.05,
        thresholds=(1e-2, 1e-4, 0.0),
    )
    assert _same(frozen, decoder.weights)
    assert result["stop_code"].shape == (3, 3, 4, D)
    # With threshold 0 every trial runs to the end and lands on z* = W^-1 x for its target.
    optimum = targets.numpy() / np.array([2.0, 1.0, 0.5, 1.5])
    np.testing.assert_allclose(
        result["stop_code"][-1], np.repeat(optimum[:, None], 4, 1), atol=2e-2
    )
    summary = lso.summarize(result)
    assert set(summary) == {"0.01", "0.0001", "0"}
    assert summary["0.01"]["all"]["iterations"] <= summary["0.0001"]["all"]["iterations"]
    assert summary["0"]["all"]["pairwise_sq_distance"] < 1e-3
    assert summary["0.01"]["random"]["converged_fraction"] == 1.0
    assert "| 0 | encoder |" in lso.format_summary("toy", summary)


def test_collapse_table_rows_configs_and_budget_scaling():
    for name, (config, arg, paper) in collapse_table.TABLE1.items():
        c = collapse_table.build_config(
            config, arg, dataset="mnist", steps=None, seed=0, smoke=False
        )
        assert len(paper) == 4, name
        assert c.data.name == "mnist"
    scaled = collapse_table.build_config(
        "vae_anneal", "", dataset="fashion_mnist", steps=1100, seed=3, smoke=False
    )
    # 100 epochs of 1100 steps squeezed into 1100 steps: annealing 10%, validation every 1%.
    assert (scaled.train.num_steps, scaled.hparams.kl_warmup_steps, scaled.train.eval_every) == (
        1100,
        110,
        11,
    )
    assert scaled.seed == 3
    assert collapse_table.slug("nevae_lp", "c=-0.1") == "nevae_lp_c-0.1"
    fake = {
        "result": {
            "neg_elbo": 90.0,
            "kl": 2.0,
            "mutual_information": 1.5,
            "active_units": 7,
            "reencode_error": 0.5,
        }
    }
    table = collapse_table.format_table1({"VAE": fake, "NE-VAE se": None}, dataset="mnist", steps=5)
    assert "| VAE | 90.00 | 2.00 | 1.50 | 7 | 0.500 | 88.91 | 2.12 | 1.83 | 6 |" in table
    assert "(not finished)" in table
    table2 = collapse_table.format_table2({"NE-VAE se": {8: fake}}, dataset="mnist", steps=5)
    assert "| NE-VAE se | 7 | – | – | 8 | 12 | 55 |" in table2


def test_collapse_table_small_decoder_from_the_command_line(tmp_path):
    # As docs/reproduction.md shows it, in smoke size: the setting names the workdirs (so the
    # two decoders never share a run) and the table's heading.
    out = tmp_path / "collapse_small"
    cmd = [sys.executable, "-m", "tools.collapse_table", f"--out={out}", "--decoder=small"]
    cmd += ["--smoke", "--rows=VAE", "--tables=1", "--steps=4", "--max_examples=20"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "vae_anneal_decodersmall" / "collapse_table.json").exists()
    assert "(d = 32, 4 steps each, decoder=small)" in (out / "table1.md").read_text()
