"""tfvae.optimizers.Adam: Keras' Adam update, computed by one fused TF kernel per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import optimizers
from tfvae.optimizers import OPTIMIZERS


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
