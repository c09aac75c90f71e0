"""Decoder likelihoods p(x|z).

A decoder outputs unbounded per-pixel parameters. A likelihood turns them into

- ``reconstruction_loss(x, params)``: what training minimizes, per example ``[B]``;
- ``log_prob(x, params)``: the normalized log p(x|z) used by NLL estimates, ``[B]``;
- ``mean(params)``: the image shown and served, E[x|z].

Reduction convention: sums over the data dimensions of one example; objectives average over the
minibatch (see ``tfvae.losses``).
"""

import tensorflow as tf

from tfvae import losses
from tfvae.errors import InvalidValue
from tfvae.registry import lookup


class Bernoulli:
    """Bernoulli on logits, for binary or [0, 1] data. reconstruction_loss = -log p(x|z)."""

    def reconstruction_loss(self, x, logits):
        return -losses.bernoulli_log_likelihood(x, logits)

    def log_prob(self, x, logits):
        return losses.bernoulli_log_likelihood(x, logits)

    def mean(self, logits):
        return tf.sigmoid(logits)


class Gaussian:
    """Fixed-scale Gaussian: reconstruction_loss = w * sum (x - x_hat)^2 (``mse_weight`` w).

    This is -log N(x; x_hat, 1/(2w) I) without its constant; ``log_prob`` includes it.

    Args:
      weight: w > 0.
    """

    def __init__(self, *, weight: float = 1.0):
        if weight <= 0:
            raise InvalidValue(f"Gaussian likelihood weight must be > 0, got {weight}.")
        self.weight = weight

    def reconstruction_loss(self, x, mean):
        return losses.weighted_squared_error(x, mean, self.weight)

    def log_prob(self, x, mean):
        return losses.gaussian_log_likelihood(x, mean, self.weight)

    def mean(self, mean):
        return mean


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian}


def build_likelihood(name: str, **options):
    cls = lookup(LIKELIHOODS, name, "likelihood")
    try:
        return cls(**options)
    except TypeError as e:
        raise TypeError(f"Bad options {sorted(options)} for likelihood {name!r}: {e}") from None
