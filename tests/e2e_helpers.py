"""Helpers of the headless end-to-end test (tests/test_e2e_cli.py): a small paired dataset drawn with
OpenCV, each CLI step run as a timed subprocess, and a PyAV probe of the videos it writes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.app_process import run_main


def write_paired_dataset(folder: Path, count: int = 6, size: int = 64) -> tuple[Path, Path]:
    """``count`` pairs of ``size``² PNGs: B is a simple scene (soft colour field, discs, a box, a little
    grain), A is the same scene with a fine diagonal hatch on top — the "detail" concept. The hatch
    has zero mean, so A and B do not drift in colour and stay aligned: a clean pair set."""
    import cv2
    import numpy as np

    a_dir, b_dir = folder / "A detailed", folder / "B simple"
    a_dir.mkdir(parents=True)
    b_dir.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for index in range(count):
        rng = np.random.default_rng(index)
        field_ = rng.uniform(60, 190, (4, 4, 3)).astype(np.uint8)
        scene = cv2.resize(field_, (size, size), interpolation=cv2.INTER_CUBIC)
        for _ in range(3):
            centre = tuple(int(v) for v in rng.integers(size // 8, size - size // 8, 2))
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.circle(scene, centre, int(rng.integers(size // 12, size // 4)), colour, -1)
        box = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.rectangle(scene, (size // 16, size * 5 // 8), (size * 7 // 16, size * 15 // 16), box, -1)
        scene = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
        hatch = 6 * np.sin((xx + yy) * np.pi / 2 + index)
        detailed = np.clip(scene + hatch[..., None], 0, 255).astype(np.uint8)
        assert cv2.imwrite(str(a_dir / f"shot {index}.png"), detailed)
        assert cv2.imwrite(str(b_dir / f"shot {index}.png"), scene)
    return a_dir, b_dir


@dataclass
class StepRunner:
    """Runs ``python main.py ARGS`` steps, fails with the step's stderr, and keeps each wall time."""

    times: dict[str, float] = field(default_factory=dict)

    def run(self, step: str, *args) -> str:
        start = time.perf_counter()
        result = run_main(*args)
        self.times[step] = time.perf_counter() - start
        print(f"e2e step {step}: {self.times[step]:.1f} s")
        assert result.returncode == 0, f"{step} exited {result.returncode}:\n{result.stderr}"
        return result.stdout

    def run_json(self, step: str, *args) -> dict:
        return json.loads(self.run(step, *args))

    def report(self) -> str:
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.times.items())
        return f"e2e wall times: {steps}; total {sum(self.times.values()):.1f} s"


@dataclass(frozen=True)
class VideoProbe:
    codec: str
    frames: int
    width: int
    height: int


def probe_video(path: Path) -> VideoProbe:
    """The codec, decoded frame count and size of a video, by PyAV (a real decoder)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        context = stream.codec_context
        return VideoProbe(context.name, frames, context.width, context.height)
