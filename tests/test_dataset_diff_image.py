"""The absolute-difference heatmap of two images (what the pair view overlays)."""

from __future__ import annotations

import numpy as np

from difflora_gui.dataset.diff_image import abs_difference, diff_heatmap


def _texture(seed: int = 1, size=(180, 320)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    import cv2

    noise = rng.integers(0, 255, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
    return cv2.resize(noise, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def test_identical_images_give_an_all_zero_difference():
    a = _texture()
    result = diff_heatmap(a, a.copy())
    assert result.diff.shape == (180, 320)
    assert result.max == 0 and result.mean == 0.0 and result.changed_fraction() == 0.0
    # the heatmap is the colormap's zero colour everywhere
    assert (result.heatmap == result.heatmap[0, 0]).all()


def test_a_shifted_image_differs():
    a = _texture()
    b = np.roll(a, 12, axis=1)
    result = diff_heatmap(a, b)
    assert result.mean > 10 and result.changed_fraction() > 0.5
    assert result.heatmap.shape == (180, 320, 3) and result.heatmap.dtype == np.uint8


def test_a_tint_shows_in_one_channel_and_sizes_are_matched():
    a = np.full((100, 200, 3), 100, np.uint8)
    b = a.copy()
    b[..., 1] += 30  # greener
    assert int(abs_difference(a, b).max()) == 30
    # B at another size is brought to A's (or to the size asked for)
    big_b = np.full((200, 400, 3), 100, np.uint8)
    assert abs_difference(a, big_b).shape == (100, 200)
    assert abs_difference(a, big_b, (50, 25)).shape == (25, 50)
