"""Sprites and drawings with transparency, flattened onto a plain background as RGB PNG files."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def flatten(image: Image.Image, background=(255, 255, 255)) -> Image.Image:
    """``image`` (any mode, transparency included) alpha-composited onto ``background``, as RGB."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def save_rgb(source, target: Path, background=(255, 255, 255)) -> tuple[int, int]:
    """Flatten the image file (or PIL image) ``source`` into the PNG ``target``; its size."""
    image = source if isinstance(source, Image.Image) else Image.open(source)
    flat = flatten(image, background)
    target.parent.mkdir(parents=True, exist_ok=True)
    flat.save(target, format="PNG")
    return flat.size
