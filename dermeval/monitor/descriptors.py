"""Cheap per-narrative and per-image descriptors watched for drift."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from dermeval import text as tx
from dermeval.images import check_image_file

HEDGES = re.compile(r"\b(may|might|possibly|possible|probably|likely|unlikely|could|suggest\w*|consider\w*|"
                    r"uncertain\w*|cannot be (excluded|ruled out)|perhaps|appears?|seems?)\b", re.I)


def narrative_descriptors(text: str) -> dict[str, int]:
    parts = [p for p in tx.sentences(text) if not tx.is_marker(p)]
    return {"words": len(text.split()), "hedges": len(HEDGES.findall(text)),
            "referral_mentions": len(tx.find(parts, tx.REFERRAL))}


def skin_lightness(path: Path | str, border: int = 16) -> float:
    """Mean CIE L* of the image's outer frame: the skin around the lesion (a skin-tone proxy).

    The image passes the same size and decode checks as scoring first (ImageError otherwise), and
    is reduced to at most 512 px a side before the arithmetic, so memory stays bounded.
    """
    check_image_file(Path(path))
    with Image.open(path) as im:
        im.draft("RGB", (512, 512))  # JPEG: decode at a reduced scale straight away
        small = im.convert("RGB")
        small.thumbnail((512, 512))
        rgb = np.asarray(small, dtype=np.float64) / 255.0
    mask = np.zeros(rgb.shape[:2], bool)
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = True, True, True, True
    px = rgb[mask]
    lin = np.where(px <= 0.04045, px / 12.92, ((px + 0.055) / 1.055) ** 2.4)
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    f = np.where(y > (6 / 29) ** 3, np.cbrt(y), y / (3 * (6 / 29) ** 2) + 4 / 29)
    return float(np.mean(116 * f - 16))
