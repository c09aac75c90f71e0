"""The optimizers and learning-rate schedules a config can name (``OPTIMIZERS``, ``SCHEDULES``),
and a Keras 3 Adam whose per-variable update is one fused TensorFlow kernel.

Keras 3's ``Adam.update_step`` is written with backend ops: about twenty small TF ops per
variable (casts, powers, the two moment updates, the step), executed one by one by TF's graph
executor. For the small conv nets of the papers (about 60 variables) that costs ~7 ms of a
~50 ms CPU training step. ``Adam`` here computes the step's scalars once and updates each
variable with ``ResourceApplyAdam``, TF's fused kernel for exactly the same update:

    m <- m + (g - m) (1 - beta_1)
    v <- v + (g^2 - v) (1 - beta_2)
    var <- var - alpha m / (sqrt(v) + epsilon),  alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)

It is a ``keras.optimizers.Adam`` (same slots, same names, same checkpoints, same config), so
checkpoints written by either load into the other. AMSGrad, non-float32 variables, sparse
gradients and backends other than TensorFlow take Keras' own path.
"""

import keras
import tensorflow as tf

from tfvae.errors import InvalidValue
from tfvae.registry import lookup


class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``ResourceApplyAdam`` as its update (see module doc)."""

    def update_step(self, gradient, variable, learning_rate):
        if (
            self.amsgrad
            or keras.backend.backend() != "tensorflow"
            or variable.dtype != tf.float32
            or isinstance(gradient, tf.IndexedSlices)
        ):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        t = tf.cast(self.iterations + 1, tf.float32)
        if isinstance(variable, keras.Variable):
            variable = variable.value
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.constant(self.beta_1, tf.float32), t),
            beta2_power=tf.pow(tf.constant(self.beta_2, tf.float32), t),
            lr=tf.cast(learning_rate, tf.float32),
            beta1=tf.constant(self.beta_1, tf.float32),
            beta2=tf.constant(self.beta_2, tf.float32),
            epsilon=tf.constant(self.epsilon, tf.float32),
            grad=tf.cast(gradient, tf.float32),
        )


OPTIMIZERS = {
    "adam": Adam,  # keras.optimizers.Adam with a fused update
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def piecewise_constant(learning_rate: float, *, boundaries, multipliers):
    """lr * multipliers[i] while boundaries[i-1] < t <= boundaries[i] (t: 0-based iteration).

    E.g. ``boundaries=(375,), multipliers=(1.0, 0.2)``: the full rate for iterations 0..375,
    a fifth after. The optimizer evaluates it at its checkpointed ``iterations``, so a resumed
    run continues on the same schedule.
    """
    if len(multipliers) != len(boundaries) + 1:
        raise InvalidValue(
            f"piecewise_constant needs len(multipliers) == len(boundaries) + 1; got "
            f"boundaries {list(boundaries)} and multipliers {list(multipliers)}."
        )
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(b) for b in boundaries], [learning_rate * float(m) for m in multipliers]
    )


SCHEDULES = {"piecewise_constant": piecewise_constant}


def build_schedule(learning_rate: float, name: str, **options):
    """The learning-rate schedule ``name`` (``config.optimizers.<opt>.schedule``)."""
    return lookup(SCHEDULES, name, "schedule")(learning_rate, **options)
