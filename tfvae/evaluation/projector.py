"""TensorBoard's Embedding Projector for an evaluated workdir: the evaluation split's codes, their
labels and a sprite of the inputs, so the latent space opens in the projector tab.

    workdir/eval/projector_config.pbtxt    names the embeddings (the projector plugin reads it
                                           in the ``eval`` run)
    workdir/eval/projector/z.tsv           posterior means z, one example per line
    workdir/eval/projector/z0.tsv          g(z), for a decoupled prior
    workdir/eval/projector/metadata.tsv    labels (or indices), one per line
    workdir/eval/projector/sprite.png      the inputs tiled row-major, one cell per example

Tensors are TSV files (``tensor_path``), so the projector needs no TensorFlow checkpoint.
"""

import math
import os

import numpy as np
from PIL import Image
from tensorboard.plugins import projector

from tfvae.evaluation.context import EvalContext
from tfvae.images import tile_images, to_uint8

FOLDER = "projector"
# The projector's largest sprite side.
MAX_SPRITE_PIXELS = 8192
EMBEDDINGS_MAX = 10_000


def num_examples(ctx: EvalContext) -> int:
    """As many as FID uses (``num_fid``), at most 10,000 and as many as fit the sprite."""
    h, w = ctx.data.shape[:2]
    per_side = MAX_SPRITE_PIXELS // max(h, w)
    return int(min(ctx.options.num_fid, EMBEDDINGS_MAX, per_side**2, len(ctx.split_array())))


def sprite(images: np.ndarray) -> np.ndarray:
    """[n, H, W, C] in [0, 1] -> one uint8 image, ceil(sqrt(n)) cells per side, row-major."""
    side = int(math.ceil(math.sqrt(len(images))))
    return to_uint8(tile_images(images, side, rows=side, gap=0, background=0.0))


def write_projector(ctx: EvalContext, log_dir: str) -> dict | None:
    """Writes the projector files into ``log_dir`` (``workdir/eval``); returns what it wrote,
    or None for vector data (no sprite to draw)."""
    if not ctx.is_image:
        return None
    n = num_examples(ctx)
    x = ctx.eval_inputs(n, binarize=True)  # [n, H, W, C]
    codes = {"z": ctx.encode_mean(x)}
    if ctx.is_decoupled:
        codes["z0"] = ctx.to_z0(codes["z"])
    labels = getattr(ctx.data, f"{ctx.options.split}_labels")
    labels = np.arange(n) if labels is None else labels[:n]
    folder = os.path.join(log_dir, FOLDER)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metadata.tsv"), "w") as f:
        f.writelines(f"{int(v)}\n" for v in labels)
    Image.fromarray(sprite(x)).save(os.path.join(folder, "sprite.png"))
    config = projector.ProjectorConfig()
    for space, values in codes.items():
        np.savetxt(os.path.join(folder, f"{space}.tsv"), values, delimiter="\t", fmt="%.6g")
        embedding = config.embeddings.add()
        embedding.tensor_name = f"{space} ({ctx.config.objective}, {n} examples)"
        embedding.tensor_path = os.path.join(FOLDER, f"{space}.tsv")
        embedding.metadata_path = os.path.join(FOLDER, "metadata.tsv")
        embedding.sprite.image_path = os.path.join(FOLDER, "sprite.png")
        embedding.sprite.single_image_dim.extend([int(x.shape[2]), int(x.shape[1])])
    projector.visualize_embeddings(log_dir, config)
    return {"examples": n, "spaces": sorted(codes)}
