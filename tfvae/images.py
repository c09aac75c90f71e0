"""Image grids: one tiling function for every image grid tfvae writes (figures, TensorBoard
summaries, the Embedding Projector's sprite, ``tools.client``'s PNG)."""

import math

import numpy as np


def tile_images(
    images: np.ndarray,
    cols: int,
    *,
    rows: int | None = None,
    gap: int = 1,
    background: float = 1.0,
) -> np.ndarray:
    """``[n, H, W, C]`` -> one ``[rows*(H+gap)+gap, cols*(W+gap)+gap, C]`` image in [0, 1].

    Row-major: image i sits in row ``i // cols``, column ``i % cols``. ``rows`` defaults to as
    many as the images need; ``gap`` pixels of ``background`` separate and frame the cells
    (figures: 1 pixel, white; TensorBoard and the projector's sprite: none, black).
    """
    n, h, w, c = images.shape
    rows = int(math.ceil(n / cols)) if rows is None else rows
    if rows * cols < n:
        raise ValueError(f"{n} images do not fit {rows} x {cols} cells.")
    grid = np.full(
        (rows * (h + gap) + gap, cols * (w + gap) + gap, c), background, dtype=np.float32
    )
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = gap + r * (h + gap), gap + q * (w + gap)
        grid[top : top + h, left : left + w] = images[i]
    return np.clip(grid, 0.0, 1.0)


def to_uint8(grid: np.ndarray) -> np.ndarray:
    """A tiled ``[H, W, C]`` image in [0, 1] as 8-bit pixels (``[H, W]`` for one channel)."""
    pixels = np.round(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def save_image_grid(
    images: np.ndarray,
    cols: int,
    path: str,
    scale: int = 2,
    *,
    gap: int = 1,
    background: float = 1.0,
) -> np.ndarray:
    """Writes a grid of images in [0, 1] (``tile_images``) as an 8-bit PNG, each pixel
    ``scale`` x ``scale``."""
    from PIL import Image

    grid = tile_images(np.asarray(images, np.float32), cols, gap=gap, background=background)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    Image.fromarray(to_uint8(grid)).save(path)
    return grid
