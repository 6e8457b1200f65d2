"""Procedural lesion images: 224x224 RGB on a skin background of a Fitzpatrick type.

A condition's ``render.pattern`` names a recipe: a list of drawing primitives
(patches, rings, dots, nodules, lines, networks, hair, nails, pigmented lesions)
with their parameters. Everything is drawn from one ``numpy`` generator, so an
image is a pure function of (condition, skin type, seed).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from dermeval.synth.catalogue import Condition

SIZE = 224
# Mean skin colour (sRGB) of Fitzpatrick types I-VI.
FITZPATRICK_RGB: dict[int, tuple[int, int, int]] = {
    1: (242, 214, 198), 2: (229, 192, 163), 3: (206, 162, 124),
    4: (170, 121, 86), 5: (120, 82, 55), 6: (74, 50, 35),
}

Canvas = np.ndarray  # float32 HxWx3 in 0-255
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] (bilinear upsampling of a coarse random grid)."""
    grid = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray((grid * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def _blend(canvas: Canvas, mask: np.ndarray, color: np.ndarray, alpha: float = 1.0) -> None:
    m = np.clip(mask, 0, 1)[..., None] * alpha
    canvas *= 1 - m
    canvas += m * color


def _blob(cx: float, cy: float, r: float, rng: np.random.Generator, irregular: float = 0.15,
          soft: float = 2.0, aspect: float = 1.0, angle: float = 0.0, window: tuple | None = None) -> np.ndarray:
    """A filled shape with a wobbly edge; values fall from 1 inside to 0 outside over ``soft`` px.

    With ``window`` (a pair of slices) only that part of the canvas is computed.
    """
    xx, yy = (_XX, _YY) if window is None else (_XX[window], _YY[window])
    dx, dy = xx - cx, yy - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = dx * ca + dy * sa, (-dx * sa + dy * ca) * aspect
    theta = np.arctan2(v, u)
    radius = np.full_like(theta, r)
    for k in (2, 3, 5, 7):
        radius += r * irregular * rng.normal() / k * np.cos(k * theta + rng.uniform(0, 6.3))
    dist = np.hypot(u, v)
    return np.clip((radius - dist) / soft + 0.5, 0, 1)


def _stamp(cv: Canvas, cx: float, cy: float, r: float, rng: np.random.Generator, color: np.ndarray,
           alpha: float, irregular: float = 0.1, soft: float = 1.2, aspect: float = 1.0) -> None:
    """Draw a small blob, computing only the pixels around it (dots are many and small)."""
    reach = int(r * max(aspect, 1.0) * 1.6 + soft + 3)
    win = (slice(max(int(cy) - reach, 0), min(int(cy) + reach + 1, SIZE)),
           slice(max(int(cx) - reach, 0), min(int(cx) + reach + 1, SIZE)))
    if win[0].start >= win[0].stop or win[1].start >= win[1].stop:
        return
    mask = _blob(cx, cy, r, rng, irregular, soft, aspect, window=win)
    _blend(cv[win], mask, color, alpha)


def _lesion_color(color: tuple[int, int, int], skin: np.ndarray) -> np.ndarray:
    """Inflammation looks darker (violaceous-brown) on darker skin; white stays white."""
    c = np.asarray(color, dtype=np.float32)
    if c.mean() > 225:
        return c
    depth = skin.mean() / np.mean(FITZPATRICK_RGB[1])
    return c * (0.45 + 0.55 * depth) + skin * 0.15 * (1 - depth)


# --- primitives -----------------------------------------------------------------------

def patch(cv: Canvas, rng, col, skin, n=1, r=(45, 70), irregular=0.2, soft=6.0, scale=0.0,
          rim=None, alpha=0.85, aspect=(0.7, 1.3), texture=0.0) -> None:
    for _ in range(n):
        cx, cy = rng.uniform(50, SIZE - 50, 2)
        m = _blob(cx, cy, rng.uniform(*r), rng, irregular, soft, rng.uniform(*aspect), rng.uniform(0, 3.1))
        if texture:
            m = m * (1 - texture + texture * _smooth_noise(rng, 20))
        _blend(cv, m, col, alpha)
        if rim is not None:
            edge = m * (1 - m) * 4
            _blend(cv, edge, _lesion_color(rim, skin), 0.8)
        if scale:
            flakes = (rng.random((SIZE, SIZE)) < scale).astype(np.float32)
            flakes = np.asarray(Image.fromarray((flakes * 255).astype(np.uint8)).filter(
                ImageFilter.MaxFilter(3)), dtype=np.float32) / 255
            _blend(cv, flakes * (m > 0.6), np.array([238, 236, 230], np.float32), 0.75)


def ring(cv: Canvas, rng, col, skin, n=1, r=(35, 70), width=(6, 10), centre=None, inner=None, alpha=0.9) -> None:
    for _ in range(n):
        cx, cy = rng.uniform(60, SIZE - 60, 2)
        rad, w = rng.uniform(*r), rng.uniform(*width)
        outer = _blob(cx, cy, rad, rng, 0.08, 2.5)
        hole = _blob(cx, cy, rad - w, rng, 0.05, 2.5)
        _blend(cv, outer - hole, col, alpha)
        if centre is not None:
            _blend(cv, hole, _lesion_color(centre, skin), 0.35)
        if inner is not None:
            _blend(cv, _blob(cx, cy, rad * 0.35, rng, 0.05, 2.0), _lesion_color(inner, skin), 0.9)


def dots(cv: Canvas, rng, col, skin, n=(30, 60), r=(2.5, 5.0), cluster=0.0, head=None, halo=None,
         shine=0.0, dimple=False, aspect=1.0, alpha=0.9) -> None:
    count = int(rng.integers(*n))
    centre = rng.uniform(70, SIZE - 70, 2)
    for _ in range(count):
        if cluster:
            cx, cy = centre + rng.normal(0, cluster, 2)
        else:
            cx, cy = rng.uniform(8, SIZE - 8, 2)
        rad = rng.uniform(*r)
        if halo is not None:
            _stamp(cv, cx, cy, rad * 1.8, rng, _lesion_color(halo, skin), 0.5, soft=2.0, aspect=aspect)
        _stamp(cv, cx, cy, rad, rng, col, alpha, aspect=aspect)
        if head is not None:
            _stamp(cv, cx, cy, rad * 0.45, rng, np.asarray(head, np.float32), 0.9, 0.05, 1.0)
        if shine:
            _stamp(cv, cx - rad * 0.3, cy - rad * 0.3, rad * 0.3, rng, np.array([255, 255, 255], np.float32),
                   shine, 0.0, 1.0)
        if dimple:
            _stamp(cv, cx, cy, max(rad * 0.22, 1.0), rng, col * 0.55, 0.9, 0.0, 0.8)


def nodule(cv: Canvas, rng, col, skin, r=(28, 45), shine=0.5, vessels=0, ulcer=None, crust=None,
           rim=None, alpha=0.92) -> None:
    cx, cy = rng.uniform(85, SIZE - 85, 2)
    rad = rng.uniform(*r)
    body = _blob(cx, cy, rad, rng, 0.12, 3.0)
    _blend(cv, body, col, alpha)
    if rim is not None:
        _blend(cv, body * (1 - _blob(cx, cy, rad * 0.8, rng, 0.1, 3.0)), _lesion_color(rim, skin), 0.6)
    shade = np.clip(1 - np.hypot(_XX - cx + rad * 0.35, _YY - cy + rad * 0.35) / rad, 0, 1) * body
    _blend(cv, shade, np.array([255, 250, 250], np.float32), shine)
    for _ in range(vessels):
        lines(cv, rng, np.array([170, 30, 40], np.float32), skin, n=(1, 2), length=(rad * 0.5, rad),
              origin=(cx, cy), width=1.0, alpha=0.8)
    if ulcer is not None:
        _blend(cv, _blob(cx, cy, rad * 0.35, rng, 0.3, 2.0), np.asarray(ulcer, np.float32), 0.9)
    if crust is not None:
        _blend(cv, _blob(cx, cy, rad * 0.6, rng, 0.35, 2.0) * _smooth_noise(rng, 16) * 1.6,
               np.asarray(crust, np.float32), 0.9)


def lines(cv: Canvas, rng, col, skin, n=(3, 6), length=(30, 80), width=1.5, wavy=0.0, origin=None,
          beads=0.0, alpha=0.8) -> None:
    mask = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(int(rng.integers(*n))):
        x, y = origin if origin is not None else rng.uniform(30, SIZE - 30, 2)
        ang, steps = rng.uniform(0, 6.3), int(rng.uniform(*length))
        for _s in range(steps):
            ang += rng.normal(0, wavy) if wavy else 0
            x, y = x + np.cos(ang), y + np.sin(ang)
            if not (1 <= x < SIZE - 1 and 1 <= y < SIZE - 1):
                break
            rad = width * (2.2 if beads and rng.random() < beads else 1.0)
            x0, x1, y0, y1 = int(x - rad), int(x + rad) + 1, int(y - rad), int(y + rad) + 1
            mask[max(y0, 0):y1, max(x0, 0):x1] = 1.0
    _blend(cv, np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.8)), np.float32) / 255, col, alpha)


def network(cv: Canvas, rng, col, skin, cells=9, width=0.12, alpha=0.7) -> None:
    n = _smooth_noise(rng, cells)
    band = np.clip(1 - np.abs(n - 0.5) / width, 0, 1)
    _blend(cv, band, col, alpha)


def hair(cv: Canvas, rng, col, skin, density=900, bald=True, scaly=False, stubs=False) -> None:
    cx, cy = rng.uniform(80, SIZE - 80, 2)
    patch_mask = _blob(cx, cy, rng.uniform(35, 55), rng, 0.1, 4.0) if bald else np.zeros((SIZE, SIZE))
    layer = np.zeros((SIZE, SIZE), np.float32)
    base_angle = rng.uniform(0, 6.3)
    for _ in range(density):
        x, y = rng.uniform(0, SIZE, 2)
        if patch_mask[int(y) % SIZE, int(x) % SIZE] > 0.3:
            if stubs and rng.random() < 0.3:
                layer[int(y) % SIZE, int(x) % SIZE] = 1.0
            continue
        ang = base_angle + rng.normal(0, 0.25)
        for t in range(int(rng.uniform(12, 30))):
            px, py = int(x + t * np.cos(ang)), int(y + t * np.sin(ang))
            if 0 <= px < SIZE and 0 <= py < SIZE:
                layer[py, px] = 1.0
    _blend(cv, layer, col, 0.9)
    if scaly:
        flakes = (rng.random((SIZE, SIZE)) < 0.05) * patch_mask
        _blend(cv, flakes, np.array([225, 225, 220], np.float32), 0.8)


def nail(cv: Canvas, rng, col, skin, kind="yellow") -> None:
    cx = SIZE / 2 + rng.uniform(-15, 15)
    plate = ((np.abs(_XX - cx) < 48) & (_YY > 40) & (_YY < 200)).astype(np.float32)
    plate *= np.clip((48 - np.abs(_XX - cx)) / 3, 0, 1)
    _blend(cv, plate, np.array([236, 200, 196], np.float32), 0.85)
    _blend(cv, plate * (_YY < 70), np.array([250, 248, 240], np.float32), 0.8)  # free edge
    if kind == "yellow":
        m = plate * (rng.uniform(110, 170) > _YY) * (0.6 + 0.4 * _smooth_noise(rng, 10))
        _blend(cv, m, col, 0.9)
    elif kind == "pitted":
        dots(cv, rng, np.array([150, 120, 115], np.float32), skin, n=(25, 45), r=(1.2, 2.2), cluster=25)
        _blend(cv, _blob(cx, 150, 14, rng, 0.2, 3.0) * plate, col, 0.7)
    else:  # longitudinal band
        w = rng.uniform(8, 22)
        band = plate * (np.abs(_XX - cx - rng.uniform(-15, 15)) < w) * (0.7 + 0.3 * _smooth_noise(rng, 12))
        _blend(cv, band, col, 0.9)
        _blend(cv, _blob(cx, 205, 18, rng, 0.3, 3.0), col, 0.6)


def pigmented(cv: Canvas, rng, col, skin, r=(38, 55), irregular=0.35, colours=((60, 35, 25),),
              warty=0.0, halo=None) -> None:
    cx, cy = rng.uniform(80, SIZE - 80, 2)
    rad = rng.uniform(*r)
    body = _blob(cx, cy, rad, rng, irregular, 2.5, rng.uniform(0.7, 1.3), rng.uniform(0, 3.1))
    _blend(cv, body, col, 0.92)
    for c in colours[1:]:
        sub = _blob(cx + rng.normal(0, rad * 0.35), cy + rng.normal(0, rad * 0.35), rad * rng.uniform(0.25, 0.5),
                    rng, 0.4, 3.0)
        _blend(cv, sub * body, np.asarray(c, np.float32), 0.8)
    if warty:
        _blend(cv, body * (_smooth_noise(rng, 40) > 0.55), col * 0.6, warty)
        dots(cv, rng, np.array([235, 225, 200], np.float32), skin, n=(6, 14), r=(1.2, 2.2), cluster=rad * 0.4)
    if halo is not None:
        _blend(cv, body * (1 - _blob(cx, cy, rad * 0.6, rng, 0.1, 4.0)), _lesion_color(halo, skin), 0.5)


PRIMITIVES: dict[str, Callable[..., None]] = {f.__name__: f for f in
                                              (patch, ring, dots, nodule, lines, network, hair, nail, pigmented)}


def skin_background(rng: np.random.Generator, fitzpatrick: int) -> Canvas:
    """A skin-coloured canvas with tone mottling, pores and a soft lighting gradient."""
    base = np.asarray(FITZPATRICK_RGB[fitzpatrick], np.float32) * rng.uniform(0.95, 1.05, 3)
    cv = np.broadcast_to(base, (SIZE, SIZE, 3)).astype(np.float32).copy()
    cv *= (0.93 + 0.14 * _smooth_noise(rng, 6))[..., None]
    pores = (rng.random((SIZE, SIZE)) < 0.01).astype(np.float32)
    _blend(cv, pores, base * 0.8, 0.5)
    light = 1.06 - 0.12 * ((_XX * rng.uniform(-1, 1) + _YY * rng.uniform(-1, 1)) / SIZE + 0.5)
    cv *= light[..., None]
    return cv


def render_condition(condition: Condition, fitzpatrick: int, seed: int) -> Image.Image:
    """Draw one case image: a pure function of (condition, skin type, seed)."""
    if fitzpatrick not in FITZPATRICK_RGB:
        raise ValueError(f"Fitzpatrick type must be 1-6, got {fitzpatrick}")
    recipe = RECIPES.get(condition.render.pattern)
    if recipe is None:
        raise ValueError(f"condition {condition.id}: no drawing recipe for pattern {condition.render.pattern!r}")
    rng = np.random.default_rng(seed)
    cv = skin_background(rng, fitzpatrick)
    skin = cv.mean(axis=(0, 1))
    for primitive, kwargs in recipe:
        kw: dict[str, Any] = dict(kwargs)
        base_color = kw.pop("color", condition.render.color)
        col = skin * 0.92 if tuple(base_color) == (0, 0, 0) else _lesion_color(base_color, skin)
        PRIMITIVES[primitive](cv, rng, col, skin, **kw)
    noise = rng.normal(0, 3.0, cv.shape).astype(np.float32)
    img = Image.fromarray(np.clip(cv + noise, 0, 255).astype(np.uint8), "RGB")
    return img.filter(ImageFilter.GaussianBlur(0.6))


def png_bytes(img: Image.Image) -> bytes:
    """PNG encoding with fixed settings, so the same image always gives the same bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def contact_sheet(tiles: list[tuple[str, Image.Image]], columns: int = 8, tile: int = 112) -> Image.Image:
    """A grid of labelled thumbnails, one per condition."""
    from PIL import ImageDraw

    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 14)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, img) in enumerate(tiles):
        x, y = (i % columns) * tile, (i // columns) * (tile + 14)
        sheet.paste(img.resize((tile, tile)), (x, y))
        draw.text((x + 2, y + tile + 1), label[:20], fill=(0, 0, 0))
    return sheet


from dermeval.synth.recipes import RECIPES  # noqa: E402  (recipes refer to primitive names only)
