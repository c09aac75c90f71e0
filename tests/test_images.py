"""tfvae.images.tile_images, the one tiling function, and the grids its callers write."""

import numpy as np
import pytest
from PIL import Image

from tfvae import trainer
from tfvae.evaluation import projector
from tfvae.images import save_image_grid, tile_images
from tools import client


def _cells(n, h=2, w=3):
    """n constant images [n, h, w, 1]; image i has value (i + 1) / 10."""
    return np.stack([np.full((h, w, 1), (i + 1) / 10, np.float32) for i in range(n)])


def test_tiles_row_major_with_gaps_of_background():
    grid = tile_images(_cells(5), 2)  # 3 rows x 2 columns, 1-pixel white gaps
    assert grid.shape == (3 * 3 + 1, 2 * 4 + 1, 1)
    for i in range(5):
        r, q = divmod(i, 2)
        top, left = 1 + 3 * r, 1 + 4 * q
        np.testing.assert_allclose(grid[top : top + 2, left : left + 3], (i + 1) / 10)
    gaps = np.ones(grid.shape[:2], bool)
    for r in range(3):
        for q in range(2):
            gaps[1 + 3 * r : 3 + 3 * r, 1 + 4 * q : 4 + 4 * q] = False
    assert np.all(grid[gaps] == 1.0)  # the frame, the gaps and the empty sixth cell
    bare = tile_images(_cells(5), 3, rows=3, gap=0, background=0.0)
    assert bare.shape == (6, 9, 1)
    np.testing.assert_allclose(bare[2:4, 3:6], 0.5)  # image 4: row 1, column 1
    assert np.all(bare[2:, 6:] == 0) and np.all(bare[4:] == 0)  # empty cells stay black
    np.testing.assert_array_equal(tile_images(_cells(1) * 20, 1, gap=0), 1.0)  # clipped to [0, 1]
    with pytest.raises(ValueError, match="do not fit"):
        tile_images(_cells(5), 2, rows=2)


def test_every_grid_writer_uses_its_layout(tmp_path):
    images = _cells(6)
    # TensorBoard: floor(sqrt(6)) = 2 rows, 3 columns, no gaps.
    summary = trainer.image_grid(images)
    assert summary.shape == (1, 4, 9, 1)
    np.testing.assert_allclose(summary[0, 2:, 6:], 0.6)
    # The projector's sprite: ceil(sqrt(6)) = 3 cells per side, uint8, no gaps.
    sprite = projector.sprite(images)
    assert sprite.shape == (6, 9) and sprite.dtype == np.uint8
    assert np.all(sprite[2:4, 6:9] == round(0.6 * 255)) and np.all(sprite[4:] == 0)
    # tools.client: ceil(sqrt(6)) = 3 columns, 2 rows, no gaps, 8-bit PNG.
    client.save_grid(images, str(tmp_path / "client.png"))
    png = np.asarray(Image.open(tmp_path / "client.png"))
    assert png.shape == (4, 9)
    assert np.all(png[2:4, 6:9] == round(0.6 * 255))
    # Figures: 1-pixel gaps, each pixel 2 x 2.
    grid = save_image_grid(images, 3, str(tmp_path / "figure.png"))
    assert grid.shape == (2 * (2 * 3 + 1), 2 * (3 * 4 + 1), 1)
    assert np.asarray(Image.open(tmp_path / "figure.png")).shape == grid.shape[:2]
