"""The demo's procedural paired dataset: the same synthetic scenes, detailed (A) and simplified (B).

Each scene is a layout drawn with OpenCV from a seeded random generator: a sky-to-ground gradient
and a handful of large shapes. Set A draws the layout with the concept present — fine texture in
every shape and on the ground, and many small objects (dots, studs, tiny squares and crosses) —
set B draws the same layout with the concept absent: flat shapes, smooth gradient, nothing small.
A slider trained on the pairs learns "small detail and texture".

Two pairs are deliberately flawed so the dataset checks have something to show: in
:data:`SHIFTED_PAIR` B is moved by :data:`SHIFT_PX` pixels, in :data:`COLOUR_CAST_PAIR` B has a
warm colour cast. Everything is deterministic from the seed: the same seed writes the same pixels.

Import-light: numpy and OpenCV are imported when an image is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: pixels (width, height): 3:2, and the short side is the checks' default resolution (256)
IMAGE_SIZE = (384, 256)
PAIR_COUNT = 24
#: 1-based pair numbers of the deliberate flaws (``scene_07`` and ``scene_15``)
SHIFTED_PAIR = 7
COLOUR_CAST_PAIR = 15
#: how far B of the shifted pair moves (right, down), in pixels
SHIFT_PX = (7, 4)
#: the colour cast added to B of the colour-cast pair, per channel in B, G, R order (warmer: more
#: red, less blue)
COLOUR_CAST_BGR = (-18.0, 2.0, 16.0)
DEFAULT_SEED = 1234


def pair_id(number: int) -> str:
    """``scene_07`` for pair 7 (1-based): the shared file stem of its A and B images."""
    return f"scene_{number:02d}"


@dataclass(frozen=True)
class Shape:
    kind: str  # rect | circle | ellipse | triangle
    centre: tuple[int, int]
    size: tuple[int, int]  # half-width, half-height (radius for a circle)
    angle: float
    colour: tuple[int, int, int]  # B, G, R
    texture: str  # stripes | checks | speckle | rings


@dataclass(frozen=True)
class Scene:
    """The layout both images of a pair share."""

    sky: tuple[tuple[int, int, int], tuple[int, int, int]]  # top and horizon colour (BGR)
    ground: tuple[int, int, int]
    horizon: int
    shapes: tuple[Shape, ...]
    seed: int


_TEXTURES = ("stripes", "checks", "speckle", "rings")
_KINDS = ("rect", "circle", "ellipse", "triangle")


def make_scene(number: int, seed: int = DEFAULT_SEED) -> Scene:
    """The layout of pair ``number`` (1-based) for ``seed``."""
    import numpy as np

    rng = np.random.default_rng([seed, number])
    width, height = IMAGE_SIZE

    def colour(low: int, high: int) -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(low, high, size=3))

    horizon = int(rng.integers(height * 5 // 10, height * 7 // 10))
    shapes = []
    for _ in range(int(rng.integers(3, 6))):
        half_w = int(rng.integers(26, 70))
        half_h = int(rng.integers(22, 60))
        shapes.append(
            Shape(
                kind=str(rng.choice(_KINDS)),
                centre=(int(rng.integers(60, width - 60)), int(rng.integers(50, height - 40))),
                size=(half_w, half_h),
                angle=float(rng.uniform(-30, 30)),
                colour=colour(50, 215),
                texture=str(rng.choice(_TEXTURES)),
            )
        )
    return Scene(
        sky=(colour(150, 240), colour(90, 200)),
        ground=colour(40, 150),
        horizon=horizon,
        shapes=tuple(shapes),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


# --- drawing -----------------------------------------------------------------------------------


def _shape_mask(shape: Shape):
    """A uint8 mask (255 inside) of one shape, anti-aliased edges."""
    import cv2
    import numpy as np

    width, height = IMAGE_SIZE
    mask = np.zeros((height, width), np.uint8)
    cx, cy = shape.centre
    hw, hh = shape.size
    if shape.kind == "circle":
        cv2.circle(mask, (cx, cy), min(hw, hh), 255, -1, cv2.LINE_AA)
    elif shape.kind == "ellipse":
        cv2.ellipse(mask, (cx, cy), (hw, hh), shape.angle, 0, 360, 255, -1, cv2.LINE_AA)
    else:
        if shape.kind == "rect":
            corners = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
        else:  # triangle
            corners = [(0, -hh), (hw, hh), (-hw, hh)]
        theta = np.deg2rad(shape.angle)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        points = (np.array(corners, float) @ rotation.T + (cx, cy)).round().astype(np.int32)
        cv2.fillPoly(mask, [points], 255, cv2.LINE_AA)
    return mask


def _layout(scene: Scene):
    """(flat float32 BGR image of the layout, list of shape masks in float 0–1)."""
    import numpy as np

    width, height = IMAGE_SIZE
    image = np.empty((height, width, 3), np.float32)
    top, low = (np.array(c, np.float32) for c in scene.sky)
    rows = np.linspace(0.0, 1.0, scene.horizon, dtype=np.float32)[:, None, None]
    image[: scene.horizon] = top + (low - top) * rows
    # light falls from the top left: smooth shading that both images share (it spreads B's
    # colour histograms, so only detail tells A from B)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ground_rows = np.linspace(1.0, 0.0, height - scene.horizon, dtype=np.float32)[:, None, None]
    image[scene.horizon :] = np.array(scene.ground, np.float32) + 30.0 * (ground_rows - 0.5)
    masks = []
    for shape in scene.shapes:
        mask = _shape_mask(shape).astype(np.float32)[..., None] / 255.0
        cx, cy = shape.centre
        reach = float(max(shape.size))
        light = np.clip(((cx - x) + (cy - y)) / (2 * reach), -1.0, 1.0)[..., None] * 28.0
        image = image * (1 - mask) + (np.array(shape.colour, np.float32) + light) * mask
        masks.append(mask)
    return image, masks


def _texture(kind: str, rng, amplitude: float):
    """A zero-mean grey texture (float32, ±``amplitude``) of the image's size."""
    import numpy as np

    width, height = IMAGE_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    period = float(rng.uniform(3.0, 5.0))
    angle = float(rng.uniform(0, np.pi))
    if kind == "stripes":
        pattern = np.sin((x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / period))
    elif kind == "checks":
        pattern = np.sign(np.sin(x * np.pi / period * 1.5) * np.sin(y * np.pi / period * 1.5))
    elif kind == "rings":
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        pattern = np.sin(np.hypot(x - cx, y - cy) * (2 * np.pi / period))
    else:  # speckle
        pattern = rng.uniform(-1.0, 1.0, size=(height, width)).astype(np.float32)
    return (pattern * amplitude).astype(np.float32)


def _small_objects(image, rng, count: int) -> None:
    """Draw ``count`` small objects (dots, studs, squares, crosses) in place, each a lighter or
    darker version of the colour under it, so the image's mean colour barely moves."""
    import cv2
    import numpy as np

    height, width = image.shape[:2]
    for _ in range(count):
        x, y = int(rng.integers(4, width - 4)), int(rng.integers(4, height - 4))
        base = image[y, x].astype(np.float32)
        delta = float(rng.uniform(40, 80)) * (1 if rng.random() < 0.5 else -1)
        colour = tuple(float(v) for v in np.clip(base + delta, 0, 255))
        size = int(rng.integers(2, 5))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            cv2.circle(image, (x, y), size, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(image, (x, y), size + 1, colour, 1, cv2.LINE_AA)
        elif kind == 2:
            cv2.rectangle(image, (x - size, y - size), (x + size, y + size), colour, -1)
        else:
            cv2.line(image, (x - size, y), (x + size, y), colour, 1, cv2.LINE_AA)
            cv2.line(image, (x, y - size), (x, y + size), colour, 1, cv2.LINE_AA)


def _to_uint8(image):
    import numpy as np

    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def draw_pair(number: int, seed: int = DEFAULT_SEED):
    """(A, B) of pair ``number`` (1-based) as uint8 BGR arrays of :data:`IMAGE_SIZE`.

    A: the layout with texture in every shape and on the ground, and many small objects.
    B: the same layout, flat. B of :data:`SHIFTED_PAIR` is moved, B of :data:`COLOUR_CAST_PAIR` tinted.
    """
    import cv2
    import numpy as np

    scene = make_scene(number, seed)
    rng = np.random.default_rng(scene.seed)
    flat, masks = _layout(scene)
    detailed = flat.copy()
    width, height = IMAGE_SIZE
    ground = np.zeros((height, width, 1), np.float32)
    ground[scene.horizon :] = 1.0
    for mask in masks:
        ground *= 1 - mask
    detailed += _texture("speckle", rng, 9.0)[..., None] * ground
    for shape, mask in zip(scene.shapes, masks, strict=True):
        detailed += _texture(shape.texture, rng, 13.0)[..., None] * mask
    _small_objects(detailed, rng, int(rng.integers(90, 140)))
    # the concept is detail, not colour: A keeps B's mean colour (the small objects and clipping
    # move it a little), so clean pairs pass the colour-drift checks
    detailed += (flat.mean(axis=(0, 1)) - detailed.mean(axis=(0, 1)))[None, None, :]
    a, b = _to_uint8(detailed), flat
    if number == SHIFTED_PAIR:
        dx, dy = SHIFT_PX
        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        b = cv2.warpAffine(b, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    if number == COLOUR_CAST_PAIR:
        b = b + np.array(COLOUR_CAST_BGR, np.float32)[None, None, :]
    return a, _to_uint8(b)


def laplacian_variance(image) -> float:
    """How much fine detail an image has: the variance of the grey image's Laplacian."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def encode_png(image) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return data.tobytes()


def image_paths(folder: str | Path, number: int) -> tuple[Path, Path]:
    """Where pair ``number``'s A and B images go in a dataset folder (``a/`` and ``b/``)."""
    folder = Path(folder)
    name = f"{pair_id(number)}.png"
    return folder / "a" / name, folder / "b" / name


def demo_pair_set(folder: str | Path, count: int = PAIR_COUNT):
    """The :class:`~difflora_gui.dataset.model.PairSet` of a built demo dataset folder."""
    from difflora_gui.dataset.model import MediaItem, Pair, PairSet

    folder = Path(folder)
    pairs = []
    for number in range(1, count + 1):
        a, b = image_paths(folder, number)
        pairs.append(Pair(pair_id(number), MediaItem(str(a), "image"), MediaItem(str(b), "image")))
    return PairSet(
        name="Demo: small detail",
        pairs=pairs,
        sources={"a": str(folder / "a"), "b": str(folder / "b")},
        rule="stem",
        resolution=min(IMAGE_SIZE),
    )
