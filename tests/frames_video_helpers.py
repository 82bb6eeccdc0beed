"""Videos with known cuts for the frame-extraction tests (PyAV-encoded H.264, real files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scene_texture(seed: int, width: int, height: int) -> np.ndarray:
    """A smooth colourful texture (a few octaves of value noise) unique to ``seed``, BGR uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((4, 1.0), (9, 0.5), (20, 0.25)):
        coarse = rng.uniform(0, 255, (cells, cells * 2, 3)).astype(np.float32)
        image += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image /= 1.75
    return np.clip(image, 0, 255).astype(np.uint8)


def write_video(path: Path, scenes, *, width=160, height=90, fps=24, noise=4.0, seed=0) -> list[int]:
    """Encode ``scenes`` — (image or "black", frames) — as H.264; return the cut frame numbers."""
    import av

    rng = np.random.default_rng(seed)
    cuts, frame_no = [], 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for image, count in scenes:
            if frame_no:
                cuts.append(frame_no)
            base = np.zeros((height, width, 3), np.uint8) if isinstance(image, str) else image
            for _ in range(count):
                grain = rng.normal(0, noise, base.shape) if noise and not isinstance(image, str) else 0
                frame = np.clip(base.astype(np.float32) + grain, 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    container.mux(packet)
                frame_no += 1
        for packet in stream.encode():
            container.mux(packet)
    return cuts


def abc_video(path: Path, *, width=160, height=90) -> list[int]:
    """3 s of scene A, 3 s of B, 3 s of C, 1 s black, 3 s of A again (24 fps): cuts 72, 144, 216, 240."""
    a, b, c = (scene_texture(s, width, height) for s in (1, 2, 3))
    return write_video(path, [(a, 72), (b, 72), (c, 72), ("black", 24), (a, 72)], width=width, height=height)
