"""Laying figures out: captions above a picture, and many pictures in a grid (PIL only)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

CAPTION_HEIGHT = 18
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def caption_font() -> ImageFont.ImageFont:
    """The 12-pixel default font (PIL ships it; no font file needed)."""
    return ImageFont.load_default(size=12)


def with_caption(picture: Image.Image, caption: Optional[str]) -> Image.Image:
    """``picture`` with a white strip of :data:`CAPTION_HEIGHT` pixels above it holding ``caption``
    (cut to fit the width); ``picture`` itself when ``caption`` is ``None``."""
    if caption is None:
        return picture
    font = caption_font()
    while caption and font.getlength(caption) > picture.width - 4:
        caption = caption[:-2] + "…" if len(caption) > 2 else ""
    canvas = Image.new("RGB", (picture.width, picture.height + CAPTION_HEIGHT), BACKGROUND)
    canvas.paste(picture, (0, CAPTION_HEIGHT))
    ImageDraw.Draw(canvas).text((2, 2), caption, fill=TEXT, font=font)
    return canvas


def grid(pictures: Sequence[Image.Image], columns: Optional[int] = None, gap: int = 6) -> Image.Image:
    """``pictures`` in rows of ``columns`` (default: about square), each in a cell as large as the
    largest picture, top-left aligned, ``gap`` pixels of white between cells and around them."""
    if not pictures:
        raise ValueError("grid of no pictures")
    columns = columns or math.ceil(math.sqrt(len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    cell_w = max(p.width for p in pictures)
    cell_h = max(p.height for p in pictures)
    canvas = Image.new("RGB", (columns * (cell_w + gap) + gap, rows * (cell_h + gap) + gap), BACKGROUND)
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        canvas.paste(picture.convert("RGB"), (gap + column * (cell_w + gap), gap + row * (cell_h + gap)))
    return canvas
