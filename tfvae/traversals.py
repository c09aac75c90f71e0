"""Codes along lines in a latent space: the one source of traversal and interpolation codes.

Every figure that walks a latent space takes its codes here: the dpVAE evaluation's traversals
and interpolations (``tfvae.evaluation.dpvae``), disentanglement_lib's traversals around an
encoded image (``tfvae.evaluation.disentanglement``) and the NE-VAE collapse figures
(``tfvae.collapse``). The codes are in whatever space the caller walks (z0 for decoupled
priors); mapping them to z and decoding is the caller's.
"""

import numpy as np


def single_dimension_codes(
    latent_dim: int,
    dims=None,
    *,
    low: float = -10.0,
    high: float = 10.0,
    steps: int = 100,
    center=None,
) -> np.ndarray:
    """Row r moves dimension ``dims[r]`` through ``steps`` evenly spaced values from ``low`` to
    ``high``; every other dimension stays at ``center`` ([d]; default the origin).

    Returns ``[len(dims), steps, d]`` float32 (all dimensions when ``dims`` is None).
    """
    dims = np.arange(latent_dim) if dims is None else np.asarray(dims, int)
    values = np.linspace(low, high, steps)  # [steps]
    base = np.zeros(latent_dim) if center is None else np.asarray(center, np.float64)
    codes = np.tile(base, (len(dims), steps, 1))  # [rows, steps, d]
    for row, j in enumerate(dims):
        codes[row, :, j] = values
    return codes.astype(np.float32)


def line_codes(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """Straight lines from ``start`` to ``end`` (each ``[P, d]``): point k of line p is
    ``start_p + (k / (steps - 1)) (end_p - start_p)``. Returns ``[P, steps, d]``."""
    t = np.linspace(0.0, 1.0, steps)[None, :, None]  # [1, steps, 1]
    start, end = np.asarray(start)[:, None], np.asarray(end)[:, None]  # [P, 1, d] each
    return (1.0 - t) * start + t * end
