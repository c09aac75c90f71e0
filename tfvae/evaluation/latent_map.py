"""The latent map of ``python -m tfvae.explore``: codes, projections and density grids of a
workdir, computed once per checkpoint and cached in the workdir.

    workdir/explore/map.json   what the page draws: names, shapes, extents, the projection,
                               density grids, pocket/leak thresholds, and where each array
                               sits in map.bin; ``key`` says which checkpoint it belongs to
    workdir/explore/map.bin    float32 / uint8 arrays: test codes, their 2-D positions, labels,
                               the LP and HP samples

The map shows test examples encoded by their posterior mean (z, and z0 = g(z) for a decoupled
prior). With latent size d > 2 each space is drawn through a 2-D PCA projection of the codes:
p = (c - mean) @ components.T; a point of the plane maps back to the full code
c = mean + p @ components, and the decoder always receives a full d-dimensional code.

Densities use the evaluation's definitions (``tfvae.evaluation.context``): log p(z) is the
prior's density (the full decoupled density for dp models), log q(z) the aggregate posterior
of ``num_aggregate`` training examples. In z0 space, q is the pushforward of q(z) by g:
log q(z0) = log q(z) - log|det dg/dz| = log q(z) - log p(z) + log N(z0; 0, I).

Pockets and leaks are the evaluation's LP and HP selections: LP samples are the prior samples
with the lowest log q(z) (``lp_fraction`` of ``num_lp / lp_fraction`` draws, as FID (LP)); HP
samples the aggregate-posterior samples with the lowest log p(z). A grid cell lies in a pocket
when its log q(z) is at most the largest log q of the LP samples while the prior still puts
mass there (log p(z) above the 1st percentile of the prior samples' log p), and in a leak when
its log p(z) is at most the largest log p of the HP samples while the aggregate posterior puts
mass there (log q(z) above the 1st percentile of the posterior samples' log q).
"""

import dataclasses
import json
import os

import numpy as np

from tfvae import metrics
from tfvae.evaluation.context import EvalContext
from tfvae.evaluation.options import EvalOptions

CACHE_DIR = "explore"
MAP_JSON, MAP_BIN = "map.json", "map.bin"
# Bump when the files' content changes: an older cache is recomputed.
FORMAT_VERSION = 1
SUPPORT_PERCENTILE = 1.0


@dataclasses.dataclass(frozen=True)
class MapOptions:
    """What the map holds.

    Attributes:
      num_points: test examples on the map (the split's first ones).
      grid_size: density grid cells per side.
      num_aggregate: training examples whose posteriors define log q(z).
      num_posterior: aggregate-posterior samples among which HP (leak) samples are chosen.
      num_lp: LP (pocket) samples shown, chosen among ``num_lp / lp_fraction`` prior draws.
      num_hp: HP (leak) samples shown.
      lp_fraction: the evaluation's LP fraction.
      seed: seeds every draw (``EvalOptions.seed``).
    """

    num_points: int = 10_000
    grid_size: int = 64
    # Fewer than evaluation's 10,000: log q(z) costs one density per encoded example and query
    # point, and the map asks for ~12,000 query points (5x the time of the rest at 10,000).
    num_aggregate: int = 2_000
    num_posterior: int = 2_000
    num_lp: int = 200
    num_hp: int = 200
    lp_fraction: float = 0.1
    seed: int = 0


def cache_key(exp, options: MapOptions) -> dict:
    """What the cached map depends on: the checkpoint, the step and the options."""
    return {
        "format": FORMAT_VERSION,
        "checkpoint": os.path.basename(exp.restored_from or ""),
        "step": exp.step,
        "options": dataclasses.asdict(options),
    }


def pca(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(mean [d], components [2, d], explained variance ratio [2]) of ``codes`` [N, d].

    For d = 2 the projection is the identity (mean 0, components I), so the map shows the
    latent space itself.
    """
    codes = np.asarray(codes, np.float64)
    d = codes.shape[1]
    if d <= 2:
        return np.zeros(d), np.eye(2, d), [1.0, 0.0] if d == 1 else [1.0, 1.0]
    mean = codes.mean(0)
    _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
    var = s**2
    return mean, vt[:2], (var[:2] / var.sum()).tolist()


def extent(points: np.ndarray) -> list[float]:
    """[x0, x1, y0, y1]: a square around the middle 99 % of ``points`` [N, 2] and +-3."""
    lo = np.minimum(np.percentile(points, 0.5, axis=0), -3.0)
    hi = np.maximum(np.percentile(points, 99.5, axis=0), 3.0)
    center, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 * 1.05
    return [
        float(v) for v in (center[0] - half, center[0] + half, center[1] - half, center[1] + half)
    ]


def grid_points(box: list[float], n: int) -> np.ndarray:
    """Cell centers [n * n, 2], row-major from the top row (largest y) down, as on screen."""
    xs = box[0] + (np.arange(n) + 0.5) * (box[1] - box[0]) / n
    ys = box[3] - (np.arange(n) + 0.5) * (box[3] - box[2]) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def log_normal(z: np.ndarray) -> np.ndarray:
    return metrics.log_standard_normal(z)


class Densities:
    """log p(z), log q(z) and the maps between z and z0 of one model, as the page needs them."""

    def __init__(self, ctx: EvalContext):
        self.ctx = ctx
        self.stochastic = bool(ctx.model.stochastic)

    def at_z(self, z: np.ndarray) -> dict:
        """{"z", "z0", "log_p", "log_q"} at codes z [M, d] (log_q None without q(z|x))."""
        ctx = self.ctx
        z = np.asarray(z, np.float32)
        z0 = ctx.to_z0(z) if ctx.is_decoupled else z
        log_q = ctx.log_aggregate_posterior(z) if self.stochastic else None
        return {"z": z, "z0": z0, "log_p": ctx.log_prior(z).astype(np.float64), "log_q": log_q}

    def at_z0(self, z0: np.ndarray) -> dict:
        z0 = np.asarray(z0, np.float32)
        z = self.ctx.from_z0(z0) if self.ctx.is_decoupled else z0
        out = self.at_z(z)
        out["z0"] = z0
        return out


def eval_context(exp, options: MapOptions) -> EvalContext:
    """The evaluation context whose definitions (q, LP pool, posterior samples) the map uses."""
    eval_options = EvalOptions(
        split="test",
        num_aggregate=options.num_aggregate,
        num_skl=options.num_posterior,
        num_fid=options.num_lp,
        lp_fraction=options.lp_fraction,
        seed=options.seed,
        verbose=False,
    )
    return EvalContext(exp, eval_options)


def compute(ctx: EvalContext, options: MapOptions) -> tuple[dict, dict[str, np.ndarray]]:
    """The map's description and arrays (see the module docstring)."""
    exp, model = ctx.exp, ctx.model
    dens = Densities(ctx)
    x = ctx.eval_inputs(options.num_points, binarize=True)
    labels = ctx.data.test_labels
    labels = np.zeros(len(x), np.uint8) if labels is None else labels[: len(x)].astype(np.uint8)
    codes = {"z": ctx.encode_mean(x)}  # [N, d]
    if ctx.is_decoupled:
        codes["z0"] = ctx.to_z0(codes["z"])
    arrays: dict[str, np.ndarray] = {"labels": labels}
    spaces = {}
    # Pockets and leaks, the evaluation's LP and HP samples (stochastic encoders only).
    marks = None
    if dens.stochastic:
        pool = ctx.lp_pool()
        lp = ctx.lp_indices(options.num_lp)
        post = ctx.posterior_samples()
        post_log_p = ctx.log_prior(post)
        hp = metrics.high_posterior_indices(post_log_p, min(1.0, options.num_hp / len(post)))
        hp = hp[: options.num_hp]
        marks = {
            "lp_z": pool["z"][lp],
            "hp_z": post[hp],
            "pocket_log_q": float(pool["log_q"][lp].max()),
            "leak_log_p": float(post_log_p[hp].max()),
            "prior_support_log_p": float(
                np.percentile(ctx.log_prior(pool["z"]), SUPPORT_PERCENTILE)
            ),
            "posterior_support_log_q": float(
                np.percentile(ctx.log_aggregate_posterior(post), SUPPORT_PERCENTILE)
            ),
        }
        if ctx.is_decoupled:
            marks["lp_z0"], marks["hp_z0"] = pool["z0"][lp], ctx.to_z0(post[hp])
        else:
            marks["lp_z0"], marks["hp_z0"] = marks["lp_z"], marks["hp_z"]
    for space, c in codes.items():
        mean, components, explained = pca(c)
        positions = (c - mean) @ components.T  # [N, 2]
        box = extent(positions)
        cells = grid_points(box, options.grid_size) @ components + mean  # [G*G, d]
        at = dens.at_z(cells) if space == "z" else dens.at_z0(cells)
        log_p, log_q = at["log_p"], at["log_q"]
        if space == "z0":
            # Densities of z0 itself: N(0, I) and the pushforward of q (module docstring).
            base = log_normal(cells)
            log_q_space = None if log_q is None else log_q - log_p + base
            log_p_space = base
        else:
            log_q_space, log_p_space = log_q, log_p
        info = {
            "mean": mean.tolist(),
            "components": components.tolist(),
            "explained_variance": explained,
            "extent": box,
            "log_p": np.round(log_p_space, 4).tolist(),
            "log_q": None if log_q_space is None else np.round(log_q_space, 4).tolist(),
        }
        arrays[f"{space}_codes"] = c.astype(np.float32)
        arrays[f"{space}_positions"] = positions.astype(np.float32)
        if marks is not None:
            # Regions are judged in z (where q and p are defined), for either space's grid.
            pocket = (log_q <= marks["pocket_log_q"]) & (log_p >= marks["prior_support_log_p"])
            leak = (log_p <= marks["leak_log_p"]) & (log_q >= marks["posterior_support_log_q"])
            info["pocket"] = pocket.astype(int).tolist()
            info["leak"] = leak.astype(int).tolist()
            for kind in ("lp", "hp"):
                arrays[f"{space}_{kind}_positions"] = (
                    (marks[f"{kind}_{space}"] - mean) @ components.T
                ).astype(np.float32)
        spaces[space] = info
    description = {
        "latent_dim": int(model.latent_dim),
        "decoupled": bool(ctx.is_decoupled),
        "stochastic": dens.stochastic,
        "autoregressive": bool(model.autoregressive),
        "image_shape": list(exp.spec.shape),
        "num_points": len(x),
        "grid_size": options.grid_size,
        "spaces": spaces,
        "objective": exp.config.objective,
        "prior": exp.config.model.prior.name,
        "dataset": exp.config.data.name,
        "step": exp.step,
        "labels": sorted(int(v) for v in np.unique(labels)),
    }
    if marks is not None:
        description["thresholds"] = {
            k: marks[k]
            for k in (
                "pocket_log_q",
                "leak_log_p",
                "prior_support_log_p",
                "posterior_support_log_q",
            )
        }
    return description, arrays


def _write(folder: str, description: dict, arrays: dict[str, np.ndarray]) -> None:
    """map.bin (arrays back to back, 4-byte aligned) and map.json naming their places."""
    os.makedirs(folder, exist_ok=True)
    layout, offset, chunks = {}, 0, []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        data = array.tobytes()
        layout[name] = {"offset": offset, "shape": list(array.shape), "dtype": array.dtype.name}
        pad = (-len(data)) % 4
        chunks.append(data + b"\0" * pad)
        offset += len(data) + pad
    description = dict(description, arrays=layout)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}")
    with open(tmp + MAP_BIN, "wb") as f:
        f.write(b"".join(chunks))
    with open(tmp + MAP_JSON, "w") as f:
        json.dump(description, f)
    # The bin first: a reader that sees the new map.json also finds its arrays.
    os.replace(tmp + MAP_BIN, os.path.join(folder, MAP_BIN))
    os.replace(tmp + MAP_JSON, os.path.join(folder, MAP_JSON))


def read_arrays(folder: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(map.json, its arrays) from a map folder."""
    with open(os.path.join(folder, MAP_JSON)) as f:
        description = json.load(f)
    with open(os.path.join(folder, MAP_BIN), "rb") as f:
        blob = f.read()
    arrays = {}
    for name, place in description["arrays"].items():
        count = int(np.prod(place["shape"]))
        arrays[name] = np.frombuffer(
            blob, dtype=place["dtype"], count=count, offset=place["offset"]
        ).reshape(place["shape"])
    return description, arrays


def cached(folder: str, key: dict) -> bool:
    """Whether ``folder`` holds a map for ``key`` (same checkpoint, step, options, format)."""
    path = os.path.join(folder, MAP_JSON)
    if not os.path.exists(path) or not os.path.exists(os.path.join(folder, MAP_BIN)):
        return False
    try:
        with open(path) as f:
            return json.load(f).get("key") == key
    except (OSError, ValueError):
        return False


def load_or_compute(exp, options: MapOptions = MapOptions()) -> tuple[str, EvalContext, bool]:
    """The workdir's map folder, computed unless cached for this checkpoint.

    Returns:
      (folder, the ``EvalContext`` the map was computed with, whether it was recomputed).
    """
    folder = os.path.join(exp.workdir, CACHE_DIR)
    key = cache_key(exp, options)
    ctx = eval_context(exp, options)
    if cached(folder, key):
        return folder, ctx, False
    description, arrays = compute(ctx, options)
    _write(folder, dict(description, key=key), arrays)
    return folder, ctx, True
