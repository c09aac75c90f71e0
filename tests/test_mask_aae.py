"""MaskAAE and its family (WAE-MMD, AAE): the mask, the losses, the phases, the schedules.

Closed forms and invariants: alpha = 1 - exp(-m) in [0, 1); the polynomial regularizer's
gradient (1 - 2 alpha) e^-m pushes alpha to the nearer of 0 and 1; the WGAN-GP penalty of a
linear critic u -> w.u is (||w|| - 1)^2 and finite at w = 0; the variance penalty weights each
dimension's spread by exp(-10 alpha^2); each of the four optimizers moves only its own
variables; c and the learning rates follow the authors' schedules and survive a checkpoint.
Each phase's loss (MaskAAE's four, AAE's under both adversarial losses, WAE-MMD's) equals its
METHODS.md formula computed in numpy for a known linear critic and fixed prior samples, and the
IMQ MMD equals a closed form worked out by hand.
The manifold data's Jacobian rank is tested in tests/test_data.py; every config's Fashion-MNIST
smoke run in tests/test_training.py.
"""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.mask_aae import authors_interval
from tfvae import evaluation, losses, metrics, networks, trainer
from tfvae.config_loader import load_config
from tfvae.evaluation.mask_aae import active_dimensions, active_dims_metric, nac_metric
from tfvae.likelihoods import build_likelihood
from tfvae.objectives import OBJECTIVES
from tfvae.objectives.aae import AAE
from tfvae.objectives.mask_aae import LatentMask, MaskAAE, poly_weight_at
from tfvae.objectives.wae_mmd import WAEMMD
from tfvae.priors import build_prior
from tools import mask_trace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D, SHAPE = 4, (6,)


def _config(name: str, arg: str):
    return load_config(os.path.join(REPO, "configs", f"{name}.py") + ":" + arg)


def _model(cls=MaskAAE, adversary_outputs=None, shape=SHAPE, network="mlp", **hparams):
    """A small model on binary ``shape`` data (6-d vectors; ``network`` builds the encoder and
    decoder), with one RMSProp optimizer per phase."""
    adversary = networks.build_adversary("mlp_critic", input_dim=D, hidden_sizes=(16, 16))
    if adversary_outputs is not None:  # a FactorVAE-style 2-logit adversary
        adversary = networks.build_adversary("factor_vae", input_dim=D, hidden_sizes=(16,))
    sizes = {"hidden_sizes": (16,)} if network == "mlp" else {}
    if cls is MaskAAE:
        hparams.setdefault("schedule_interval", authors_interval(D))
    model = cls(
        encoder=networks.build_encoder(network, input_shape=shape, out_dim=D, **sizes),
        decoder=networks.build_decoder(network, latent_dim=D, output_shape=shape, **sizes),
        adversary=adversary,
        prior=build_prior("standard_normal", D),
        likelihood=build_likelihood("bernoulli"),
        latent_dim=D,
        dataset_size=100,
        seed=1,
        **hparams,
    )
    model.compile({name: keras.optimizers.RMSprop(1e-3) for name in model.optimizer_names})
    x = tf.cast(keras.random.uniform((8 * model.batches_per_step, *shape), seed=0) > 0.5, "float32")
    model.build_all(x)
    return model, x


# ----------------------------------------------------------------------------------------------
# The mask
# ----------------------------------------------------------------------------------------------
def test_alpha_in_unit_interval_increasing_with_threshold_at_minus_log_0_9():
    mask = LatentMask(50, seed=0)
    m0 = mask.m.numpy()
    assert np.all((m0 >= 0) & (m0 <= 5)) and m0.std() > 0.5  # m ~ U(0, 5)
    m = np.linspace(0.0, 16.0, 50).astype("float32")
    mask.m.assign(m)
    alpha = mask.alpha().numpy()
    assert alpha[0] == 0.0 and np.all(alpha >= 0) and np.all(alpha < 1)
    assert np.all(np.diff(alpha) > 0)
    np.testing.assert_allclose(alpha, 1 - np.exp(-m.astype("float64")), rtol=1e-6, atol=1e-7)
    z = np.ones([3, 50], "float32")
    np.testing.assert_allclose(mask(z).numpy(), np.broadcast_to(alpha, (3, 50)))
    # Active iff alpha >= 0.1, i.e. m >= -log(0.9) = 0.10536.
    edge = -math.log(0.9)
    mask.m.assign(np.r_[[edge - 1e-4, edge + 1e-4], np.zeros(48)].astype("float32"))
    assert mask.active().numpy()[:2].tolist() == [False, True]
    assert float(mask.num_active()) == 1.0


def test_optimizer_keeps_m_nonnegative():
    mask = LatentMask(3, seed=0)
    mask.m.assign([0.01, 1.0, 3.0])
    opt = keras.optimizers.RMSprop(0.5)
    for _ in range(5):
        opt.apply_gradients([(tf.ones([3]), mask.m)])  # descent pushes every m down
    assert np.all(mask.m.numpy() >= 0) and mask.m.numpy()[0] == 0.0
    assert np.all(mask.alpha().numpy() >= 0)


def test_polynomial_regularizer_gradient_pushes_alpha_to_nearer_end():
    mask = LatentMask(6, seed=0)
    m = np.array([0.05, 0.3, 0.6, 0.8, 1.5, 4.0], "float32")  # alpha from 0.05 to 0.98
    mask.m.assign(m)
    with tf.GradientTape() as tape:
        reg = losses.mask_polynomial_regularizer(mask.alpha())
    grad = tape.gradient(reg, mask.m).numpy()
    alpha = 1 - np.exp(-m)
    np.testing.assert_allclose(float(reg), np.sum(alpha * (1 - alpha)), rtol=1e-6)
    np.testing.assert_allclose(grad, (1 - 2 * alpha) * np.exp(-m), rtol=1e-5)
    # Gradient descent lowers alpha below 1/2 and raises it above.
    assert np.all(np.sign(-grad) == np.sign(alpha - 0.5))
    opt = keras.optimizers.RMSprop(0.05)

    @tf.function
    def descend():
        for _ in tf.range(300):
            with tf.GradientTape() as tape:
                reg = losses.mask_polynomial_regularizer(mask.alpha())
            opt.apply_gradients([(tape.gradient(reg, mask.m), mask.m)])

    descend()
    final = mask.alpha().numpy()
    np.testing.assert_allclose(final, np.where(alpha > 0.5, 1.0, 0.0), atol=1e-3)


# ----------------------------------------------------------------------------------------------
# Gradient penalty and variance penalty
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [1.0, 2.0, 0.5])
def test_gradient_penalty_of_linear_critic_is_norm_minus_one_squared(norm):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5)
    w = tf.constant(norm * w / np.linalg.norm(w), tf.float32)
    real = tf.constant(rng.standard_normal((32, 5)), tf.float32)
    fake = tf.constant(rng.standard_normal((32, 5)), tf.float32)
    gp = losses.gradient_penalty(lambda u: tf.linalg.matvec(u, w), real, fake, seed=0).numpy()
    assert gp.shape == (32,)
    np.testing.assert_allclose(gp, (norm - 1.0) ** 2, atol=1e-6)  # 1-Lipschitz: exactly 0


def test_gradient_penalty_finite_at_zero_gradient():
    critic = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer="ones")
    real = tf.random.stateless_normal([16, 3], seed=[0, 1])
    fake = tf.random.stateless_normal([16, 3], seed=[0, 2])
    critic(real)
    with tf.GradientTape() as tape:
        gp = tf.reduce_mean(losses.gradient_penalty(critic, real, fake, seed=0))
    grad = tape.gradient(gp, critic.kernel).numpy()
    np.testing.assert_allclose(float(gp), (math.sqrt(1e-12) - 1) ** 2, rtol=1e-6)
    # d GP / d w = 2 (norm - 1) w / sqrt(||w||^2 + eps): finite, and 0 at w = 0.
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)
    # Without eps the norm's derivative at 0 is 0/0: the case the eps exists for.
    with tf.GradientTape() as tape:
        u = tf.Variable(tf.zeros([3]))
        naive = tf.norm(u)
    assert np.isnan(tape.gradient(naive, u).numpy()).all()


def test_gradient_penalty_interpolates_uniformly_on_the_segment():
    seen = []

    def critic(u):
        seen.append(u)
        return tf.reduce_sum(u, axis=-1)

    n = 4000
    losses.gradient_penalty(critic, tf.ones([n, 2]), tf.zeros([n, 2]), seed=3)
    t = seen[0].numpy()  # u = t * real + (1 - t) * fake = t * (1, 1)
    np.testing.assert_array_equal(t[:, 0], t[:, 1])
    assert t.min() >= 0 and t.max() <= 1
    assert abs(t.mean() - 0.5) < 0.02 and abs(t.var() - 1 / 12) < 0.01  # U(0, 1)


def test_variance_penalty_closed_forms():
    rng = np.random.default_rng(0)
    alpha = tf.constant([0.0, 0.0, 1.0, 1.0])
    spread = rng.standard_normal((64, 2)).astype("float32")
    # Constant codes on the masked-out dimensions: only exp(-10) times the open ones' spread.
    z = np.concatenate([np.full((64, 2), 3.0, "float32"), spread], axis=1)
    v = losses.masked_variance_penalty(tf.constant(z), alpha).numpy()  # [B]
    assert v.shape == (64,)
    expected = math.exp(-10) * np.var(spread, axis=0).sum() / 4
    np.testing.assert_allclose(v.mean(), expected, rtol=1e-5)
    assert v.mean() < 1e-4
    # Constant codes everywhere: exactly zero. Spread on a closed dimension: weight 1.
    assert np.all(losses.masked_variance_penalty(tf.fill([8, 4], 2.0), alpha).numpy() == 0)
    z = np.zeros((64, 4), "float32")
    z[:, 0] = spread[:, 0]
    v = losses.masked_variance_penalty(tf.constant(z), alpha).numpy().mean()
    np.testing.assert_allclose(v, np.var(spread[:, 0]) / 4, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------
def test_each_optimizer_of_the_train_step_moves_only_its_variables():
    model, x = _model()
    groups = {
        "main": model.encoder.trainable_variables + model.decoder.trainable_variables,
        # Not its output bias: mean D(z) - mean D(eps) cancels it and the penalty sees only
        # gradients, so the critic's loss does not depend on it.
        "adversary": model.adversary.trainable_variables[:-1],
        "generator": model.encoder.trainable_variables,
        "mask": [model.latent_mask.m],
    }
    everything = model.trainable_variables
    assert len(everything) == len({id(v) for g in groups.values() for v in g}) + 1
    step = tf.function(model.train_step, autograph=False)
    for active in model.optimizer_names:
        for name, opt in model.optimizers.items():
            opt.learning_rate = 1e-3 if name == active else 0.0  # no retrace: a variable
        before = [v.numpy().copy() for v in everything]
        logs = step(x)
        assert all(np.isfinite(float(v)) for v in logs.values())
        moved = {
            id(v)
            for b, v in zip(before, everything, strict=True)
            if not np.array_equal(b, v.numpy())
        }
        assert moved == {id(v) for v in groups[active]}, active
    assert int(model.step.numpy()) == len(model.optimizer_names)
    assert model.batches_per_step == 8  # autoencoder, 5 critic updates, generator, mask
    assert model.optimizers["adversary"].iterations.numpy() == 5 * 4


def test_each_phase_moves_only_its_own_networks_batch_norm_statistics():
    # With batch-norm networks (svhn_conv) the critic and mask phases run the encoder and
    # decoder in training mode too, but must leave their moving statistics alone.
    model, x = _model(shape=(32, 32, 3), network="svhn_conv")
    statistics = model.encoder.non_trainable_variables + model.decoder.non_trainable_variables
    assert statistics and all("moving" in v.path for v in statistics)
    batches = tf.split(x[: 4 * model.batches_per_step], model.batches_per_step)
    for phase in model.phases():
        before = [v.numpy().copy() for v in statistics]
        phase.loss_fn(batches, True)
        moved = [
            v.path
            for b, v in zip(before, statistics, strict=True)
            if not np.array_equal(b, v.numpy())
        ]
        # The autoencoder's phase moves them all, the generator's (encoder only) the encoder's.
        own = {
            "main": statistics,
            "generator": model.encoder.non_trainable_variables,
        }.get(phase.optimizer, [])
        assert moved == [v.path for v in own], phase.optimizer


def test_variance_term_of_the_model_is_the_penalty_on_unmasked_codes():
    model, x = _model()
    model.latent_mask.m.assign([0.0, 0.0, 30.0, 30.0])
    terms = model.autoencoder_terms(x[:8], training=False)
    z, _ = model.encode(x[:8])
    expected = losses.masked_variance_penalty(z, model.alpha()).numpy()
    np.testing.assert_allclose(terms["variance"].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(
        terms["loss"].numpy(), terms["recon"].numpy() + 100.0 * expected, rtol=1e-6
    )
    # Per-pixel mean BCE (the authors' reduction): at most log 2 + |logit| scale, never a sum.
    assert terms["recon"].numpy().max() < 5.0


def test_generation_decodes_masked_prior_samples_and_closed_dims_are_ignored():
    model, x = _model()
    model.latent_mask.m.assign([2.0, 0.0, 1.0, 0.0])
    eps = keras.random.normal([5, D], seed=7)
    expected = tf.sigmoid(model.decoder(eps * model.alpha()))
    np.testing.assert_allclose(model.generate(5, seed=7).numpy(), expected.numpy(), rtol=1e-6)
    z = np.random.default_rng(0).standard_normal((5, D)).astype("float32")
    z2 = z.copy()
    z2[:, [1, 3]] += 10.0  # closed dimensions
    np.testing.assert_allclose(model.decode(z).numpy(), model.decode(z2).numpy(), rtol=1e-6)
    assert not np.allclose(model.decode(z).numpy(), model.decode(z + 1.0).numpy())
    # Reconstructions see the masked codes too.
    code, _ = model.encode(x[:5])
    np.testing.assert_allclose(
        model.reconstruct(x[:5]).numpy(),
        tf.sigmoid(model.decoder(code * model.alpha())).numpy(),
        rtol=1e-6,
    )
    assert active_dimensions(model).tolist() == [True, False, True, False]


def test_adversary_with_two_logits_is_refused_by_name():
    with pytest.raises(ValueError, match="mlp_critic"):
        _model(AAE, adversary_outputs=2)


def test_gan_variant_of_aae_trains_one_step():
    model, x = _model(AAE, adversarial_loss="gan", adversary_steps=1)
    assert model.batches_per_step == 3
    logs = tf.function(model.train_step, autograph=False)(x)
    assert set(logs) == set(model.terms)
    assert all(np.isfinite(float(v)) for v in logs.values())


# ----------------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------------
def test_schedule_interval_and_poly_weight_closed_forms():
    assert [authors_interval(d) for d in (2, 20, 21, 48, 89, 200)] == [
        75,
        75,
        2362,
        5400,
        10_000,
        10_000,
    ]
    model, _ = _model()  # d = 4: R = 75, c starts at 1/2
    assert model.schedule_interval == 75 and model.poly_weight_start == 0.5
    for step, c in [(0, 0.5), (299, 0.5), (300, 1.0), (599, 1.0), (600, 2.0), (3000, 512.0)]:
        model.step.assign(step)
        assert (
            float(model.poly_weight())
            == c
            == poly_weight_at(step, start=0.5, interval=75, maximum=2048.0)
        )
    model.step.assign(10**9)
    assert float(model.poly_weight()) == 2048.0


def _lr(opt) -> float:
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


@pytest.mark.slow
def test_schedules_follow_closed_forms_and_survive_checkpoint(tmp_path):
    # d = 4: R = 75, drop after 375 (the image presets drop; manifold defaults to lr_drop=1)
    config = _config("mask_aae", "manifold,smoke,m=4,n=2,lr_drop=0.2")
    assert config.hparams.schedule_interval == 75
    config.train.jit_compile = False  # XLA compiles longer than 4 steps run (tested elsewhere)
    final = trainer.train_and_evaluate(config, str(tmp_path))
    assert all(np.isfinite(v) for v in final.values())
    exp = trainer.Experiment(config, str(tmp_path))
    opts = exp.optimizers
    assert exp.step == 4
    its = {k: int(o.iterations.numpy()) for k, o in opts.items()}
    assert its == {"main": 4, "adversary": 20, "generator": 4, "mask": 4}
    for t, main in [(0, 5e-4), (375, 5e-4), (376, 1e-4), (10_000, 1e-4)]:
        for name in ("main", "mask"):
            opts[name].iterations.assign(t)
            assert _lr(opts[name]) == pytest.approx(main, rel=1e-6)
    assert _lr(opts["adversary"]) == _lr(opts["generator"]) == pytest.approx(1e-4)
    # Past the drop and the first doubling of c: save, rebuild from scratch, restore.
    exp.model.step.assign(400)
    for o in opts.values():
        o.iterations.assign(400)
    exp.manager.save(checkpoint_number=400)
    resumed = trainer.Experiment(config, str(tmp_path))
    assert resumed.step == 400
    assert _lr(resumed.optimizers["main"]) == pytest.approx(1e-4, rel=1e-6)
    assert _lr(resumed.optimizers["mask"]) == pytest.approx(1e-4, rel=1e-6)
    assert float(resumed.model.poly_weight()) == 1.0  # 0.5 * 2^floor(400 / 300)
    np.testing.assert_array_equal(resumed.model.latent_mask.m.numpy(), exp.model.latent_mask.m)
    # The mask was logged: active dimensions as a scalar, alpha as an exact vector.
    steps, alpha = mask_trace.read_trace(str(tmp_path))
    assert steps.tolist() == [2, 4] and alpha.shape == (2, 4)
    assert np.all((alpha >= 0) & (alpha < 1))


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["wae_mmd", "aae"])
def test_config_runs_smoke_on_manifold(name, tmp_path):
    config = _config(name, "manifold,smoke,n=2,m=3")
    assert config.model.latent_dim == 3 and config.data.manifold_latent_dim == 2
    # XLA, every config's setting on GPU/TPU, trained once here (on the one-phase WAE-MMD).
    config.train.jit_compile = name == "wae_mmd"
    final = trainer.train_and_evaluate(config, str(tmp_path))
    assert set(final) == set(OBJECTIVES[name].terms)
    assert all(np.isfinite(v) for v in final.values())


def test_config_arguments_set_sizes_and_schedules():
    c = _config("mask_aae", "m=32")
    assert c.model.latent_dim == 32 and c.hparams.schedule_interval == 3600
    assert c.hparams.poly_weight_start == 2 / 32
    assert list(c.optimizers.main.schedule.boundaries) == [5 * 3600]
    assert tuple(c.optimizers.mask.schedule.multipliers) == (1.0, 0.2)
    # The authors' code scales the loss instead, which RMSProp cancels: no effective drop.
    assert tuple(_config("mask_aae", "lr_drop=1").optimizers.mask.schedule.multipliers) == (1, 1)
    assert c.model.encoder.options.hidden_sizes == (1024,) * 4 and c.train.batch_size == 64
    # R= replaces the authors' interval everywhere it is used: c, the drop, the step budget.
    slow = _config("mask_aae", "manifold,n=4,m=16,R=300")
    assert slow.hparams.schedule_interval == 300
    assert list(slow.optimizers.mask.schedule.boundaries) == [5 * 300]
    # c: 2/16 doubles 14 times to 2048, every 4R steps, then 4R more.
    assert slow.train.num_steps == 4 * 300 * 14 + 4 * 300
    assert _config("wae_mmd", "manifold,n=4,m=16,R=300").train.num_steps == slow.train.num_steps
    assert _config("mask_aae", "manifold,n=4,m=16").train.num_steps == 4 * 75 * 15
    # The synthetic presets: R = 75 for every m, m ~ U(0, 1), no drop; images keep the authors'.
    wide = _config("mask_aae", "manifold,n=8,m=32")
    assert wide.hparams.schedule_interval == 75 and wide.hparams.mask_init_max == 1.0
    assert tuple(wide.optimizers.mask.schedule.multipliers) == (1, 1)
    assert wide.train.num_steps == 4 * 75 * 15 + 4 * 75  # c: 2/32 doubles 15 times to 2048
    assert _config("wae_mmd", "manifold,n=8,m=32").train.num_steps == wide.train.num_steps
    assert c.hparams.mask_init_max == 5.0
    paper_drop = _config("mask_aae", "manifold,lr_drop=0.2").optimizers.mask.schedule
    assert tuple(paper_drop.multipliers) == (1, 0.2)
    with pytest.raises(ValueError, match="R= .* must be >= 1"):
        _config("mask_aae", "manifold,R=0")
    with pytest.raises(ValueError, match="manifold data only"):
        _config("aae", "n=4")
    with pytest.raises(ValueError, match="supports datasets"):
        _config("wae_mmd", "svhn")


def test_evaluation_metrics_count_active_dims_and_ignore_masked_ones_in_nac():
    model, _ = _model()
    model.latent_mask.m.assign([2.0, 0.0, 1.0, 0.0])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5000))
    codes = np.stack([a, 3 * a, b, -a], axis=1)  # masked dims 1, 3 copy the active dim 0

    class Ctx:  # the part of tfvae.evaluation.EvalContext the metrics use
        def aggregate_encoding(self):
            return codes, None

    ctx = Ctx()
    ctx.model = model
    found = active_dims_metric(ctx)
    assert found.scalars == {"active_dims": 2.0}
    np.testing.assert_allclose(found.details["alpha"], 1 - np.exp([-2.0, 0.0, -1.0, 0.0]))
    nac = nac_metric(ctx)
    assert nac.details["num_active"] == 2 and nac.scalars["nac"] < 0.05  # independent a, b
    assert metrics.nac(codes, np.ones(4, bool)) > 0.5  # the copies, had they been counted
    assert evaluation.METRICS["active_dims"].fn is active_dims_metric
    assert evaluation.METRICS["nac"].fn is nac_metric


# ----------------------------------------------------------------------------------------------
# Each phase's loss against METHODS.md section 6, computed in numpy
# ----------------------------------------------------------------------------------------------
# A known linear critic D(u) = u.w + b: its gradient penalty is (||w|| - 1)^2 whatever the
# interpolation weights, so every loss is a closed form of the encoder's and decoder's outputs.
W = np.array([1.5, -2.0, 0.5, 1.0])  # ||w|| = 2.78: GP = 3.19
B_CRITIC = 0.3
M_VALUES = np.array([0.2, 0.7, 1.5, 3.0], "float32")  # alpha 0.18, 0.50, 0.78, 0.95
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _fixed_model(monkeypatch, cls=MaskAAE, **hparams):
    """A model with the linear critic and prior samples fixed to ``eps`` (returned)."""
    critic = keras.Sequential([keras.Input((D,)), keras.layers.Dense(1)], name="mlp_critic")
    critic.layers[-1].set_weights([W[:, None].astype("float32"), np.array([B_CRITIC], "float32")])
    if cls is MaskAAE:
        hparams.setdefault("schedule_interval", authors_interval(D))
    model = cls(
        encoder=networks.build_encoder("mlp", input_shape=SHAPE, out_dim=D, hidden_sizes=(16,)),
        decoder=networks.build_decoder("mlp", latent_dim=D, output_shape=SHAPE, hidden_sizes=(16,)),
        **({"adversary": critic} if cls is not WAEMMD else {}),
        prior=build_prior("standard_normal", D),
        likelihood=build_likelihood("bernoulli"),
        latent_dim=D,
        dataset_size=100,
        seed=1,
        **hparams,
    )
    rng = np.random.default_rng(5)
    batches = [
        tf.constant((rng.random((8, *SHAPE)) > 0.5).astype("float32"))
        for _ in range(model.batches_per_step)
    ]
    model.compile({name: keras.optimizers.RMSprop(1e-3) for name in model.optimizer_names})
    model.build_all(batches[0])
    for v in model.encoder.weights + model.decoder.weights:  # fixed, not the global RNG's
        v.assign(0.5 * rng.standard_normal(v.shape).astype("float32"))
    # Prior samples away from the codes, so that the critic's gap is far from 0.
    eps = (rng.standard_normal((8, D)) + np.array([1.0, -1.0, 0.5, 2.0])).astype("float32")
    monkeypatch.setattr(model.prior, "sample", lambda n, seed: tf.constant(eps[:n]))
    if cls is MaskAAE:
        model.latent_mask.m.assign(M_VALUES)
    return model, batches, eps.astype("float64")


def _np(t) -> np.ndarray:
    return np.asarray(t, "float64")


def _bce(x, logits) -> np.ndarray:
    """Per-example BCE of Bernoulli logits, summed over the data dimensions: [B]."""
    x, logits = _np(x), _np(logits)
    return (np.logaddexp(0.0, logits) - x * logits).sum(axis=-1)


def _critic(u) -> np.ndarray:
    return _np(u) @ W + B_CRITIC


def _softplus(v):
    return np.logaddexp(0.0, v)


def _phase_losses(model, batches) -> dict:
    """{phase name: its minimized term [B]} (the first of the repeated critic phases)."""
    out = {}
    for phase in model.phases():
        out.setdefault(phase.optimizer, (phase, phase.loss_fn(batches, False)[phase.loss_key]))
    return out


def test_mask_aae_phase_losses_equal_the_methods_formulas(monkeypatch):
    model, batches, eps = _fixed_model(monkeypatch)
    model.step.assign(600)  # d = 4, R = 75: c = (2 / 4) * 2^floor(600 / 300) = 2
    alpha = 1.0 - np.exp(-_np(M_VALUES))
    assert np.all((alpha > 0.1) & (alpha < 0.99))  # the mask matters in every dimension
    gp = (np.linalg.norm(W) - 1.0) ** 2
    pixels = math.prod(SHAPE)
    phases = _phase_losses(model, batches)
    assert [p.optimizer for p in model.phases()] == ["main"] + ["adversary"] * 5 + [
        "generator",
        "mask",
    ]

    def codes(i):  # the encoder's codes of minibatch i: [B, d]
        return _np(model.encoder(batches[i]))

    def bce(i):  # per-pixel mean BCE of the decoder on the masked codes: [B]
        logits = model.decoder(tf.constant((codes(i) * alpha).astype("float32")))
        return _bce(batches[i], logits) / pixels

    # 1. autoencoder: BCE + 100 * mean_j (mean_b z_j - z_bj)^2 exp(-10 alpha_j^2).
    z = codes(0)
    variance = ((z.mean(0) - z) ** 2 * np.exp(-10 * alpha**2)).mean(axis=1)
    expected = bce(0) + 100.0 * variance
    np.testing.assert_allclose(_np(phases["main"][1]), expected, rtol=1e-5)
    # 2. critic: D(z alpha) - D(eps alpha) + 10 GP, on minibatch 1.
    d_codes, d_prior = _critic(codes(1) * alpha), _critic(eps * alpha)
    assert abs(d_codes.mean() - d_prior.mean()) > 0.5
    expected = d_codes - d_prior + 10.0 * gp
    np.testing.assert_allclose(_np(phases["adversary"][1]), expected, rtol=1e-5)
    # 3. generator (encoder only): -D(z alpha), on minibatch 6.
    expected = -_critic(codes(6) * alpha)
    np.testing.assert_allclose(_np(phases["generator"][1]), expected, rtol=1e-5)
    # 4. mask: 1000 BCE + (1 - (mean D(z alpha) - mean D(eps alpha)))^2
    #    + c sum_j |(1 - alpha_j) alpha_j|, on minibatch 7.
    gap = _critic(codes(7) * alpha).mean() - d_prior.mean()
    poly = np.sum(np.abs((1 - alpha) * alpha))
    assert abs(gap) > 0.5 and poly > 0.5
    expected = 1000.0 * bce(7) + (1.0 - gap) ** 2 + 2.0 * poly
    np.testing.assert_allclose(_np(phases["mask"][1]), expected, rtol=1e-5)


@pytest.mark.parametrize("adversarial_loss", ["wgan_gp", "gan"])
def test_aae_phase_losses_equal_their_formulas(monkeypatch, adversarial_loss):
    model, batches, eps = _fixed_model(
        monkeypatch, AAE, adversarial_loss=adversarial_loss, adversary_steps=2
    )
    gp = (np.linalg.norm(W) - 1.0) ** 2
    phases = _phase_losses(model, batches)
    z = [_np(model.encoder(x)) for x in batches]  # no mask: the critic sees z and eps
    logits = model.decoder(tf.constant(z[0].astype("float32")))
    recon = _bce(batches[0], logits) / math.prod(SHAPE)
    np.testing.assert_allclose(_np(phases["main"][1]), recon, rtol=1e-5)
    d_codes, d_prior = _critic(z[1]), _critic(eps)
    d_gen = _critic(z[3])
    assert np.abs(d_codes).mean() > 0.5 and np.abs(d_gen).mean() > 0.5
    if adversarial_loss == "wgan_gp":
        adversary = d_codes - d_prior  # mean D(z) - mean D(eps)
        generator = -d_gen  # -mean D(z)
    else:  # BCE over prior samples labelled 1 and codes labelled 0, D on logits
        adversary = 0.5 * (_softplus(-d_prior) + _softplus(d_codes))
        generator = _softplus(-d_gen)  # BCE(D(z), 1)
    np.testing.assert_allclose(_np(phases["adversary"][1]), adversary + 10.0 * gp, rtol=1e-5)
    np.testing.assert_allclose(_np(phases["generator"][1]), generator, rtol=1e-5)
    terms = model.adversary_terms(batches[1], False)
    np.testing.assert_allclose(_np(terms["wasserstein"]), d_prior - d_codes, rtol=1e-5)
    np.testing.assert_allclose(_np(terms["gradient_penalty"]), gp, rtol=1e-5)


def _mmd_np(a, b, scales=IMQ_SCALES) -> float:
    """Unbiased MMD^2 by its definition: sum_s [mean_{i != j} k(a_i, a_j) + mean_{i != j}
    k(b_i, b_j) - 2 mean_{i, j} k(a_i, b_j)], k = C / (C + ||u - v||^2), C = 2 d s."""
    a, b = _np(a), _np(b)
    n, m, d = len(a), len(b), a.shape[1]
    total = 0.0
    for s in scales:
        c = 2.0 * d * s

        def k(u, v, c=c):
            return c / (c + np.sum((u - v) ** 2))

        total += sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        total += sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        total -= 2.0 * sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return total


def test_mmd_imq_equals_the_closed_form_with_seven_scales():
    # Unit square corners: within-sample distances 1, across 1, 2, 2, 1; d = 2, C = 4 s, so
    # MMD = sum_s [k(1) + k(1) - 2 (2 k(1) + 2 k(2)) / 4] = sum_s [4s/(4s + 1) - 4s/(4s + 2)].
    a = tf.constant([[0.0, 0.0], [1.0, 0.0]])
    b = tf.constant([[0.0, 1.0], [1.0, 1.0]])
    by_hand = sum(4 * s / (4 * s + 1) - 4 * s / (4 * s + 2) for s in IMQ_SCALES)
    # .1190 + .1587 + .1667 + .1333 + .0889 + .0433 + .0232
    assert by_hand == pytest.approx(0.7332, abs=1e-4)
    assert float(losses.mmd_imq(a, b)) == pytest.approx(by_hand, rel=1e-6)
    assert losses.WAE_IMQ_SCALES == IMQ_SCALES
    # Unequal sizes (3 against 2 points, d = 3): the unbiased within-sample normalizations.
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((2, 3)) + 1.0
    value = float(losses.mmd_imq(tf.constant(a, tf.float32), tf.constant(b, tf.float32)))
    np.testing.assert_allclose(value, _mmd_np(a, b), rtol=1e-5)
    # Identical samples: the U-statistic is below 0 (diagonals excluded), not exactly 0.
    assert float(losses.mmd_imq(tf.constant(a, tf.float32), tf.constant(a, tf.float32))) < 0


def test_wae_mmd_loss_is_recon_plus_lambda_mmd(monkeypatch):
    model, batches, eps = _fixed_model(monkeypatch, WAEMMD, lambda_=3.0)
    assert model.kernel_scales == IMQ_SCALES
    x = batches[0]
    terms = model.phases()[0].loss_fn(batches, False)
    z = _np(model.encoder(x))
    recon = _bce(x, model.decoder(tf.constant(z.astype("float32"))))  # summed over pixels
    mmd = _mmd_np(z, eps)
    assert abs(mmd) > 0.05
    np.testing.assert_allclose(_np(terms["recon"]), recon, rtol=1e-5)
    np.testing.assert_allclose(float(terms["mmd"]), mmd, rtol=1e-4)
    np.testing.assert_allclose(_np(terms["loss"]), recon + 3.0 * mmd, rtol=1e-5)
