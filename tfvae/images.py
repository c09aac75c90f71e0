"""Image grids: one tiling function for every figure tfvae writes."""

import math

import numpy as np


def tile_images(images: np.ndarray, cols: int) -> np.ndarray:
    """``[n, H, W, C]`` -> one ``[rows*(H+1)+1, cols*(W+1)+1, C]`` image with 1-pixel gaps."""
    n, h, w, c = images.shape
    rows = int(math.ceil(n / cols))
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, c), np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = 1 + r * (h + 1), 1 + q * (w + 1)
        grid[top : top + h, left : left + w] = images[i]
    return np.clip(grid, 0.0, 1.0)


def save_image_grid(images: np.ndarray, cols: int, path: str, scale: int = 2) -> np.ndarray:
    """Writes a grid of images in [0, 1] as an 8-bit PNG, each pixel ``scale`` x ``scale``."""
    from PIL import Image

    grid = tile_images(np.asarray(images, np.float32), cols)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    pixels = np.round(grid * 255).astype(np.uint8)
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
    return grid
