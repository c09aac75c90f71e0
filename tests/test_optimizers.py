"""tfvae.optimizers.Adam: Keras' Adam update, computed by one fused TF kernel per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import build, optimizers
from tfvae.config_loader import load_config
from tfvae.optimizers import OPTIMIZERS
from tools.reproduce import TABLE1_CONFIGS


def _train(optimizer, steps=25):
    """A small two-layer regression trained by ``optimizer``; returns the step function too."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7), keras.layers.Dense(3)])
    x = tf.random.stateless_normal([16, 5], seed=[1, 2])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - 1.0))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    for _ in range(steps):
        step()
    return model, step


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(learning_rate=1e-2),
        dict(learning_rate=1e-2, clipnorm=0.1, beta_1=0.5, beta_2=0.9, epsilon=1e-4),
        dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-2, 5, 0.5)),
        dict(learning_rate=1e-2, amsgrad=True),
    ],
)
def test_fused_adam_matches_keras_adam(kwargs):
    ours = optimizers.Adam(**kwargs)
    theirs = keras.optimizers.Adam(**kwargs)
    model_a, _ = _train(ours)
    model_b, _ = _train(theirs)
    # Equal up to float rounding (the fused kernel may contract to FMAs): 25 steps of size
    # ~1e-2 move the weights by ~0.1; a wrong update rule would differ by ~1e-2.
    for a, b in zip(
        model_a.weights + ours.variables, model_b.weights + theirs.variables, strict=True
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)
    # The weights moved (a no-op update would also "match" an untrained copy).
    assert int(ours.iterations.numpy()) == 25
    assert np.abs(model_a.weights[0].numpy() - _train(ours, steps=0)[0].weights[0].numpy()).max()


def test_fused_adam_runs_the_fused_kernel_and_is_the_registered_adam():
    _, step = _train(optimizers.Adam(learning_rate=1e-3), steps=1)
    ops = {op.type for op in step.get_concrete_function().graph.get_operations()}
    # Inside the step the update is ResourceApplyAdam (fast path), not Keras' op-by-op update.
    assert "ResourceApplyAdam" in ops
    assert OPTIMIZERS["adam"] is optimizers.Adam


def test_checkpoints_of_keras_adam_restore_into_fused_adam(tmp_path):
    theirs = keras.optimizers.Adam(learning_rate=1e-2)
    model_b, _ = _train(theirs, steps=3)
    path = tf.train.Checkpoint(model=model_b, optimizer=theirs).write(str(tmp_path / "ckpt"))
    ours = optimizers.Adam(learning_rate=1e-2)
    model_a, _ = _train(ours, steps=1)  # builds the slots, with different values
    tf.train.Checkpoint(model=model_a, optimizer=ours).read(path).assert_consumed()
    assert len(ours.variables) == len(theirs.variables)
    for a, b in zip(ours.variables, theirs.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _torch_adam(params, grads_fn, *, learning_rate, beta_1, beta_2, epsilon, steps):
    """PyTorch's Adam (Kingma & Ba's Algorithm 1) in numpy: epsilon beside sqrt(v_hat)."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        for p, g, m_, v_ in zip(params, grads_fn(params), m, v, strict=True):
            m_[:] = beta_1 * m_ + (1 - beta_1) * g
            v_[:] = beta_2 * v_ + (1 - beta_2) * g * g
            v_hat = v_ / (1 - beta_2**t)
            p -= learning_rate / (1 - beta_1**t) * m_ / (np.sqrt(v_hat) + epsilon)
    return params


def test_adam_with_algorithm_1_epsilon_is_pytorchs_adam():
    # Gradients of ~1e-3 against epsilon 1e-3: the two placements of epsilon differ by ~30% at
    # the first steps, so a kernel that ignored epsilon_hat would fail the comparison below.
    target = np.array([1.0, -2.0, 3.0], np.float32)
    scale = np.array([1e-3, 3e-3, 1e-4], np.float32)

    def grads(params):
        return [scale * (params[0] - target)]

    kwargs = dict(learning_rate=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-3)
    expected = _torch_adam([np.zeros(3)], grads, steps=20, **kwargs)[0]
    finals = {}
    for hat in (False, True):
        var = keras.Variable(np.zeros(3, np.float32))
        opt = optimizers.Adam(epsilon_hat=hat, **kwargs)

        for _ in range(20):
            opt.apply_gradients([(scale * (var - target), var)])
        finals[hat] = var.numpy()
    np.testing.assert_allclose(finals[False], expected, rtol=1e-5)
    # Keras' epsilon-hat form takes shorter steps here (its effective epsilon is larger).
    assert np.all(np.abs(finals[True]) < np.abs(finals[False]) * 0.9)
    assert optimizers.Adam(epsilon_hat=False).get_config()["epsilon_hat"] is False


class _Needs:
    """What ``build.build_optimizers`` reads of a model: the optimizer names."""

    def __init__(self, names):
        self.optimizer_names = names


@pytest.mark.parametrize("preset", ["", ":two_moons", ":svhn"])
@pytest.mark.parametrize("name", TABLE1_CONFIGS)
def test_table1_configs_take_the_authors_pytorch_adam_steps(name, preset):
    # The dpVAE authors run torch.optim.Adam (epsilon 1e-8) on a loss summed over the batch;
    # tfvae averages. Three steps of the config's optimizer on mean-loss gradients g / B must
    # move a weight as their Adam on the summed gradients g does, for small gradients too
    # (where Keras' default epsilon 1e-7 in its epsilon-hat form takes steps 4x shorter).
    config = load_config(f"configs/{name}.py{preset}")
    batch = config.train.batch_size  # 100, or 50 (svhn); the summed loss scales with it
    optimizer = build.build_optimizers(config, _Needs(("main",)))["main"]
    g = np.array([3e-7, 1e-6, 1e-4, -2e-2], np.float32) * batch  # summed-loss gradients

    def grads(params):
        return [g.astype(np.float64)]

    expected = _torch_adam(
        [np.zeros(4)],
        grads,
        learning_rate=config.optimizers.main.learning_rate,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        steps=3,
    )[0]
    var = keras.Variable(np.zeros(4, np.float32))
    for _ in range(3):
        optimizer.apply_gradients([(tf.constant(g / batch), var)])
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-4)


def test_the_dsprites_preset_keeps_the_tensorflow_adam_of_locatello_et_al():
    # disentanglement_lib trains with TensorFlow's Adam (epsilon-hat form) on batch means.
    config = load_config("configs/beta_vae_h.py:dsprites")
    assert "epsilon_hat" not in config.optimizers.main
