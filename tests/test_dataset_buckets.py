"""Musubi-style aspect buckets: the bucket list, the bucket an image falls in, the resize and centre crop.

The expected values are worked out by hand from Musubi Tuner's rules (``BucketSelector`` in
``src/musubi_tuner/dataset/bucket.py`` and ``resize_image_to_bucket`` in ``media_utils.py``, summarised
in shared/reference/musubi-tuner.md §4: 16 px steps for Wan, bucket area = the resolution's W × H).
"""

from __future__ import annotations

import numpy as np
import pytest

from difflora_gui.dataset.buckets import (
    bucket_for,
    bucket_resolutions,
    divisible_by,
    fit_to_bucket,
    plan_bucket,
    resize_to_bucket,
)


def test_the_buckets_at_256_are_musubis_list():
    # area 65536, sqrt 256, widths 128 … 256 in 16 px steps, height = floor16(65536 // w), and both ways round
    expected = set()
    for w in range(128, 256 + 16, 16):
        h = (65536 // w) - (65536 // w) % 16
        expected |= {(w, h), (h, w)}
    assert set(bucket_resolutions(256)) == expected
    assert (336, 192) in expected and (256, 256) in expected
    assert all(w % 16 == 0 and h % 16 == 0 and w * h <= 65536 for w, h in expected)


def test_a_1080p_frame_at_256_goes_to_336x192_scaled_to_341x192_and_cropped_2px_left():
    # 1920/1080 = 1.778: the nearest aspect is 336/192 = 1.75 (the next, 304/208 = 1.46 and 368/176 = 2.09)
    fit = plan_bucket(1920, 1080, 256)
    assert fit.bucket == (336, 192)
    # scale = max(336/1920, 192/1080) = 0.1778; int(1920 * 0.1778 + 0.5) = 341, int(1080 * 0.1778 + 0.5) = 192
    assert fit.scaled == (341, 192)
    assert fit.crop == (2, 0, 336, 192)  # (341 - 336) // 2 = 2
    assert fit.describe() == "bucket 336×192 · 1920×1080 scaled to 341×192, 5 px cropped across"


def test_portrait_square_and_other_resolutions():
    assert bucket_for(1080, 1920, 256) == (192, 336)
    assert bucket_for(1000, 1000, 256) == (256, 256)
    assert bucket_for(1920, 1080, 192) == (256, 144)  # area 36864: 256/144 = 1.778 exactly
    assert bucket_for(1920, 1080, 512) == (672, 384)  # area 262144: 672/384 = 1.75
    assert bucket_for(1920, 1080, (960, 544)) == (960, 544)  # Musubi's default resolution (960, 544)


def test_no_upscale_and_no_bucketing():
    # no_upscale: an image no larger than the area keeps its size, floored to 16
    assert bucket_for(200, 100, 256, no_upscale=True) == (192, 96)
    assert bucket_for(1920, 1080, 256, no_upscale=True) == (336, 192)
    # without buckets there is one: the resolution, the image covers it and is centre-cropped
    fit = plan_bucket(1920, 1080, 256, enable_bucket=False)
    assert fit.bucket == (256, 256)
    assert fit.scaled == (455, 256)  # int(1920 * 256/1080 + 0.5)
    assert fit.crop == (99, 0, 256, 256)


def test_an_image_already_at_its_bucket_is_kept():
    fit = fit_to_bucket(336, 192, (336, 192))
    assert fit.scaled == (336, 192) and fit.crop == (0, 0, 336, 192) and fit.lost_fraction == 0


def test_resize_to_bucket_crops_the_centre():
    # a 1920×1080 image with a 2-column marker at its horizontal centre: after the cut it is still central
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[:, 950:970] = 255
    fit = plan_bucket(1920, 1080, 256)
    out = resize_to_bucket(image, fit)
    assert out.shape == (192, 336, 3)
    bright = np.flatnonzero(out[96, :, 0] > 127)
    assert abs(bright.mean() - 336 / 2) <= 2
    # the crop in source pixels covers the middle of the frame
    left, top, width, height = fit.source_crop
    assert left == pytest.approx(2 * 1920 / 341) and width == pytest.approx(336 * 1920 / 341)
    assert top == 0 and height == pytest.approx(1080)


def test_upscaling_a_small_image():
    image = np.full((90, 160, 3), 77, np.uint8)
    fit = plan_bucket(160, 90, 256)
    out = resize_to_bucket(image, fit)
    assert out.shape == (192, 336, 3) and int(out.mean()) == 77


def test_divisible_by_rounds_down():
    assert divisible_by(455, 16) == 448 and divisible_by(448, 16) == 448
    with pytest.raises(ValueError):
        bucket_for(0, 10, 256)
