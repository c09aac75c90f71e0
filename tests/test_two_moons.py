"""tools.two_moons: the dpVAE paper's Figures 1 and 3 on two moons, end to end on smoke models."""

import os

import numpy as np
import pytest
from PIL import Image

from tools import sweep, two_moons


@pytest.mark.slow
def test_smoke_figures_have_the_z0_panel_for_dp_only_and_legends(tmp_path, monkeypatch):
    rows = []  # (title, axes, panels drawn) of every row of every figure
    draw_row = two_moons.draw_row

    def spy(axes, points, title, **kwargs):
        drawn = draw_row(axes, points, title, **kwargs)
        rows.append((title, list(axes), drawn))
        return drawn

    monkeypatch.setattr(two_moons, "draw_row", spy)
    out = str(tmp_path / "moons")
    # smoke without --steps: the smoke preset's 4 steps (not the tool's 20,000).
    figures = two_moons.make_figures(
        ["vae", "dpvae"], seed=0, out=out, num_points=200, lp_fraction=0.1, smoke=True
    )
    assert sweep.checkpoint_step(os.path.join(out, "dpvae")) == 4
    assert set(figures) == {"vae", "dpvae", "figure3"}
    for path in figures.values():
        with Image.open(path) as image:
            assert min(image.size) > 100
    # figure3 (drawn last): the vae row first, then the dpvae row.
    (vae_title, vae_axes, vae_panels), (dp_title, dp_axes, dp_panels) = rows[-2:]
    assert (vae_title, dp_title) == ("vae", "dpvae")
    assert "z0 space" in dp_panels and "z0 space" not in vae_panels
    assert dp_axes[3].axison and not vae_axes[3].axison
    z0 = dp_axes[3].collections  # the posterior mapped by g (one scatter per moon), LP z0
    assert sum(len(c.get_offsets()) for c in z0) > 100

    def legend(ax):
        return [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []

    # Legends on the first row, and on the first z0 panel.
    assert {"data", "samples"} <= set(legend(vae_axes[0]))
    assert {"moon 1", "moon 2", "LP samples"} <= set(legend(vae_axes[1]))
    assert "LP samples decoded" in legend(vae_axes[2])
    assert {"moon 1", "LP samples"} <= set(legend(dp_axes[3]))
    # The LP markers are black, unlike either moon's colour.
    lp = next(c for c in vae_axes[1].collections if c.get_label() == "LP samples")
    moons = [c for c in vae_axes[1].collections if c.get_label().startswith("moon")]
    black = np.array([0.0, 0.0, 0.0])
    assert np.allclose(lp.get_facecolor()[0][:3], black)
    assert all(np.abs(m.get_facecolor()[0][:3] - black).max() > 0.3 for m in moons)
