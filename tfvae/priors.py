"""Latent priors: the standard normal and the decoupled prior of dpVAE.

Both are Keras 3 layers that own their variables and expose the same interface:

- ``log_prob(z)``: log p(z) in the representation space, ``[..., d] -> [...]``;
- ``sample(n, seed)``: z ~ p(z), ``[n, d]``;
- ``to_z0(z)`` / ``from_z0(z0)``: the maps between representation space z and generation space
  z0 (the identity for the standard normal);
- ``kl(z, z_mean, z_log_var)``: the per-example KL(q(z|x) || p(z)) used by every objective,
  ``[B]``;
- ``distribution()``: the prior as a TFP distribution.

References:
  [1] Bhalodia, Lee, Elhabian. dpVAEs: Fixing Sample Generation for Regularized VAEs. ACCV 2020.
      https://arxiv.org/abs/1911.10506
  [2] Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP. ICLR 2017.
"""

import inspect
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.registry import lookup

tfb = tfp.bijectors
tfd = tfp.distributions


class StandardNormalPrior(keras.layers.Layer):
    """p(z) = N(0, I); z0 = z. The KL term is the closed form."""

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    def distribution(self) -> tfd.Distribution:
        return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))

    def log_prob(self, z: tf.Tensor, include_log_det: bool = True) -> tf.Tensor:
        del include_log_det  # no bijection, nothing to drop
        return losses.log_standard_normal(z)

    def sample(self, n: int, seed) -> tf.Tensor:
        return keras.random.normal([n, self.latent_dim], seed=seed)

    def to_z0(self, z: tf.Tensor) -> tf.Tensor:
        return z

    def from_z0(self, z0: tf.Tensor) -> tf.Tensor:
        return z0

    def kl(self, z: tf.Tensor, z_mean: tf.Tensor, z_log_var: tf.Tensor) -> tf.Tensor:
        del z  # analytic
        return losses.kl_standard_normal(z_mean, z_log_var)

    def call(self, z):
        return self.log_prob(z)


def torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default initialization of ``nn.Linear`` weights and biases: U(-b, b) with
    b = 1 / sqrt(fan_in) (``kaiming_uniform_(a=sqrt(5))`` reduces to this bound)."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


SHIFT_ACTIVATIONS = ("tanh", "linear")
INITIALIZERS = ("torch", "glorot")


class CouplingNet(keras.layers.Layer):
    """The s and t networks of one affine coupling block, as separate MLPs.

    Each is Dense(h)-LeakyReLU-...-Dense(h)-LeakyReLU-Dense(n)-tanh, the dpVAE authors' 64-64
    (``models/implicit_model.py``). The log-scale s goes through tanh so that exp(s) stays in
    [1/e, e] per block; the shift t goes through tanh too (``shift_activation="tanh"``, as the
    authors' code does), so |t| <= 1 per block. With a linear shift the flow can shear z without
    bound at no cost in log-determinant; see ``DecoupledPrior``.

    Args:
      output_units: n, the transformed dimensions.
      hidden_units: hidden layer sizes.
      shift_activation: "tanh" (authors) or "linear".
      initializer: "torch" (PyTorch's ``nn.Linear`` default, the authors' framework: weights and
        biases U(+-1/sqrt(fan_in))) or "glorot" (Keras' default: Glorot-uniform weights, zero
        biases).
      input_fan_in: the fan-in the "torch" initializer uses for the first layer. The authors'
        networks read the whole masked code (d inputs, the masked-out ones zero), so their first
        layer's bound is 1/sqrt(d) although only the conditioning half reaches it.
    """

    def __init__(
        self,
        output_units: int,
        hidden_units=(64, 64),
        *,
        shift_activation: str = "tanh",
        initializer: str = "torch",
        input_fan_in: int,
        **kwargs,
    ):
        super().__init__(**kwargs)

        def dense(units, fan_in, activation=None):
            if initializer == "glorot":
                return keras.layers.Dense(units, activation=activation)
            # Two initializers: one instance holds one seed, so sharing it would make each
            # bias a copy of its kernel's first row (h = W^T (x + e_0) at initialization).
            return keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=torch_uniform(fan_in),
                bias_initializer=torch_uniform(fan_in),
            )

        def mlp(final_activation, name):
            layers, fan_in = [], input_fan_in
            for units in hidden_units:
                layers += [dense(units, fan_in), keras.layers.LeakyReLU(negative_slope=0.01)]
                fan_in = units
            layers.append(dense(output_units, fan_in, final_activation))
            return keras.Sequential(layers, name=name)

        self.log_scale_net = mlp("tanh", "s")
        self.shift_net = mlp("tanh" if shift_activation == "tanh" else None, "t")

    def call(self, x):
        return self.shift_net(x), self.log_scale_net(x)


class DecoupledPrior(keras.layers.Layer):
    """The decoupled prior p(z) of dpVAE [1]: a RealNVP bijection between z and z0 ~ N(0, I).

    The bijector ``B = g^-1`` maps generation space to representation space, z = B(z0), and is a
    chain of K affine coupling blocks [2] (``tfb.RealNVP``, half of the dimensions masked) with a
    reversal permutation between blocks so that every dimension is transformed. In the
    generation direction a block computes y = m*x + (1-m)*(x*exp(s(m*x)) + t(m*x)), with
    log-determinant sum((1-m)*s(m*x)).

    Density by change of variables, with g = B^-1:

        log p(z) = log N(g(z); 0, I) + log |det dg/dz|.

    KL term (single-sample Monte Carlo, entropy in closed form), [1] eq. 5:

        KL(q(z|x) || p(z)) = -H[q(z|x)] - E_q[log N(g(z); 0, I)] - E_q[log |det dg/dz|].

    Args:
      latent_dim: d, at least 2 (a coupling block needs something to condition on).
      num_blocks: K, the number of coupling blocks (authors: 6).
      hidden_units: hidden layer sizes of each s and t network (authors: (64, 64)).
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        num_blocks: int = 6,
        hidden_units=(64, 64),
        shift_activation: str = "tanh",
        initializer: str = "torch",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if latent_dim < 2:
            raise ValueError(
                f"The decoupled prior needs latent_dim >= 2 (got {latent_dim}): an affine "
                "coupling block conditions half of the dimensions on the other half. Use "
                "prior 'standard_normal' for a 1-d latent."
            )
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}.")
        if shift_activation not in SHIFT_ACTIVATIONS:
            raise InvalidValue(
                f"Unknown shift_activation {shift_activation!r}; valid: {list(SHIFT_ACTIVATIONS)}."
            )
        if initializer not in INITIALIZERS:
            raise InvalidValue(f"Unknown initializer {initializer!r}; valid: {list(INITIALIZERS)}.")
        self.latent_dim = latent_dim
        num_masked = latent_dim // 2
        self.coupling_nets = [
            CouplingNet(
                latent_dim - num_masked,
                tuple(hidden_units),
                shift_activation=shift_activation,
                initializer=initializer,
                input_fan_in=latent_dim,
                name=f"coupling_{k}",
            )
            for k in range(num_blocks)
        ]
        reverse = tfb.Permute(permutation=list(reversed(range(latent_dim))))
        blocks = []  # in generation order z0 -> z
        for k, net in enumerate(self.coupling_nets):
            if k > 0:
                blocks.append(reverse)
            blocks.append(
                tfb.RealNVP(
                    num_masked=num_masked,
                    # TFP calls fn(x, output_units); the Keras layer takes only x.
                    shift_and_log_scale_fn=lambda x, n, _net=net, **kw: _net(x),
                    name=f"real_nvp_{k}",
                )
            )
        # tfb.Chain applies its list last-to-first.
        self.bijector = tfb.Chain(list(reversed(blocks)), name="g_inverse")

    def build(self, input_shape=None):
        # Create the coupling networks' weights eagerly so checkpoints can be restored.
        self.bijector.forward(tf.zeros([1, self.latent_dim]))
        self.built = True

    def distribution(self) -> tfd.Distribution:
        base = tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_dim]))
        return tfd.TransformedDistribution(base, self.bijector)

    def to_z0(self, z: tf.Tensor) -> tf.Tensor:
        """g(z): representation space to generation space, [..., d]."""
        return self.bijector.inverse(z)

    def from_z0(self, z0: tf.Tensor) -> tf.Tensor:
        """g^-1(z0): generation space to representation space, [..., d]."""
        return self.bijector.forward(z0)

    def log_prob(self, z: tf.Tensor, include_log_det: bool = True) -> tf.Tensor:
        """log N(g(z); 0, I) + log|det dg/dz|; ``include_log_det=False`` drops the second term
        (the dpVAE reference code's beta-TCVAE, kept only as a reproduction option)."""
        z0, log_det = self._inverse_and_log_det(z)
        log_p = losses.log_standard_normal(z0)
        if include_log_det:
            log_p += log_det
        return log_p

    def _inverse_and_log_det(self, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """g(z) and log|det dg/dz| in one pass over ``self.bijector``'s blocks, [..., d] and
        [...].

        The same arithmetic as ``self.bijector.inverse(z)`` and ``.inverse_log_det_jacobian(z,
        event_ndims=1)`` (log_prob is bit-identical), but each coupling net runs once per block:
        ``tfb.RealNVP`` runs it once for the inverse and again for its log-determinant, which
        doubled the flow's cost in every training step. Each block inverts y1 -> (y1 - t) *
        exp(-s) with (t, s) = net(y0) and contributes -sum(s); the reversal between blocks is its
        own inverse.
        """
        num_masked = self.latent_dim // 2
        y, log_det = z, tf.zeros([], z.dtype)
        for k in reversed(range(len(self.coupling_nets))):
            y0, y1 = y[..., :num_masked], y[..., num_masked:]
            shift, log_scale = self.coupling_nets[k](y0)
            y = tf.concat([y0, (y1 - shift) * tf.exp(-log_scale)], axis=-1)
            log_det += tf.reduce_sum(-log_scale, axis=-1)
            if k > 0:
                y = tf.reverse(y, axis=[-1])
        return y, log_det

    def sample(self, n: int, seed) -> tf.Tensor:
        return self.from_z0(keras.random.normal([n, self.latent_dim], seed=seed))

    def kl(self, z: tf.Tensor, z_mean: tf.Tensor, z_log_var: tf.Tensor) -> tf.Tensor:
        del z_mean
        return -losses.gaussian_entropy(z_log_var) - self.log_prob(z)

    def call(self, z):
        return self.log_prob(z)


PRIORS = {
    "standard_normal": StandardNormalPrior,
    "decoupled": DecoupledPrior,
}


def build_prior(name: str, latent_dim: int, **options) -> keras.layers.Layer:
    """Builds a prior from the registry; unknown names and options fail clearly."""
    cls = lookup(PRIORS, name, "prior")
    valid = set(inspect.signature(cls.__init__).parameters) - {"self", "latent_dim", "kwargs"}
    unknown = set(options) - valid
    if unknown:
        raise TypeError(
            f"Unknown options {sorted(unknown)} for prior {name!r}; valid: {sorted(valid)}."
        )
    return cls(latent_dim, **options)
