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

``epsilon_hat=False`` puts epsilon where Kingma & Ba's Algorithm 1 and PyTorch put it, next to
the bias-corrected second moment: var <- var - lr / (1 - beta_1^t) m / (sqrt(v / (1 - beta_2^t))
+ epsilon). That is the update above with epsilon * sqrt(1 - beta_2^t) in place of epsilon.
Keras' form (the default, the paper's "epsilon hat") makes the effective epsilon
epsilon / sqrt(1 - beta_2^t): 32x larger at the first step, 1.26x at step 1,000. With gradients
of ~1e-6 (a third of a small conv VAE's at initialization) Keras' first step is 4x shorter than
PyTorch's. Configs that reproduce PyTorch code set it (issue 17).
"""

import keras
import tensorflow as tf

from tfvae.errors import InvalidValue
from tfvae.registry import lookup


class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``ResourceApplyAdam`` as its update (see module doc).

    Args:
      epsilon_hat: True (Keras' and TensorFlow's Adam): epsilon is added to sqrt(v) before the
        bias correction; False: to the bias-corrected sqrt(v_hat), as in PyTorch's Adam and the
        paper's Algorithm 1.
      **kwargs: ``keras.optimizers.Adam``'s arguments.
    """

    def __init__(self, *, epsilon_hat: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon_hat = bool(epsilon_hat)
        if not self.epsilon_hat and self.amsgrad:
            raise ValueError("Adam: epsilon_hat=False is not implemented with amsgrad=True.")

    def get_config(self):
        return {**super().get_config(), "epsilon_hat": self.epsilon_hat}

    def update_step(self, gradient, variable, learning_rate):
        if (
            self.amsgrad
            or keras.backend.backend() != "tensorflow"
            or variable.dtype != tf.float32
            or isinstance(gradient, tf.IndexedSlices)
        ):
            if not self.epsilon_hat:
                raise ValueError(
                    f"Adam(epsilon_hat=False) needs the fused float32 TensorFlow update; variable "
                    f"{variable.path} is {variable.dtype} (gradient {type(gradient).__name__})."
                )
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        t = tf.cast(self.iterations + 1, tf.float32)
        beta_2_power = tf.pow(tf.constant(self.beta_2, tf.float32), t)
        epsilon = tf.constant(self.epsilon, tf.float32)
        if not self.epsilon_hat:
            # Algorithm 1's epsilon, written in the fused kernel's epsilon-hat form.
            epsilon *= tf.sqrt(1.0 - beta_2_power)
        if isinstance(variable, keras.Variable):
            variable = variable.value
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.constant(self.beta_1, tf.float32), t),
            beta2_power=beta_2_power,
            lr=tf.cast(learning_rate, tf.float32),
            beta1=tf.constant(self.beta_1, tf.float32),
            beta2=tf.constant(self.beta_2, tf.float32),
            epsilon=epsilon,
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
