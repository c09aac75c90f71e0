"""Keras 3 optimizers whose per-variable update is one fused TensorFlow kernel.

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
