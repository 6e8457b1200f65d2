"""Image paths and image files: resolution inside a data root, and integrity checks."""

from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image, ImageOps

# A dermatology photograph is a few megapixels; far beyond this is a
# decompression bomb (a tiny file that inflates to gigabytes in memory).
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 50 * 1024 * 1024


class ImageError(ValueError):
    """An image reference that cannot be used; the message says why."""


def resolve_under(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside ``root``, refusing absolute paths and escapes via ``..`` or links."""
    if not isinstance(rel, str) or not rel.strip():
        raise ImageError("image path is empty")
    if "\x00" in rel:
        raise ImageError("image path contains a NUL byte")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise ImageError(f"image path {rel!r} is absolute; it must be relative to the data root")
    root_resolved = root.resolve()
    candidate = (root_resolved / rel).resolve()
    if not candidate.is_relative_to(root_resolved):
        raise ImageError(f"image path {rel!r} escapes the data root {root}")
    return candidate


def check_image_file(path: Path) -> tuple[int, int]:
    """Open ``path`` far enough to prove it is a usable image; return (width, height).

    Raises ImageError for a missing, empty, oversized, corrupt or bomb-sized file.
    """
    if not path.exists():
        raise ImageError(f"image not found: {path}")
    if not path.is_file():
        raise ImageError(f"image is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"image is empty (0 bytes): {path}")
    if size > MAX_IMAGE_BYTES:
        raise ImageError(f"image is {size:,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise ImageError(f"image is {w}x{h} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel "
                                     f"limit (decompression bomb?): {path}")
                im.verify()
            # verify() checks structure only (a JPEG cut short passes it); decoding proves the pixels are there.
            with Image.open(path) as im:
                im.load()
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"image refused as a decompression bomb: {path} ({exc})") from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageError(f"image cannot be decoded: {path} ({type(exc).__name__}: {exc})") from None
    return w, h


def load_rgb(path: Path) -> Image.Image:
    """Load a checked image as RGB."""
    check_image_file(path)
    try:
        with Image.open(path) as im:
            # A phone photo stores its rotation as EXIF orientation: show the model the upright picture.
            return ImageOps.exif_transpose(im).convert("RGB")
    except Exception as exc:  # changed on disk since the check, or a decoder failure the check missed
        raise ImageError(f"image cannot be decoded: {path} ({type(exc).__name__}: {exc})") from None
