"""Reading the project's PNG plots back: the decoded pixels, and what was drawn in one colour (bars, a line).

The plot tests check that a chart shows its data (how many bars, their relative heights, the shape of a line),
not only that a file starting with the PNG signature was written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MPL_BLUE, MPL_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two cycle colours (C0, C1)


def read_png(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image as [height, width, 3] ints; it must decode as a PNG (of ``size`` = (width, height) if given)."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path} is {image.format}, not PNG"
        if size is not None:
            assert image.size == size, f"{path} is {image.size}, expected {size}"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def blend(rgb: tuple[int, int, int], alpha: float, under: tuple[int, int, int] = (255, 255, 255)) -> tuple:
    """The colour ``rgb`` drawn with ``alpha`` over ``under`` (a white background by default)."""
    return tuple(round(alpha * c + (1 - alpha) * u) for c, u in zip(rgb, under, strict=True))


def colour_mask(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 10) -> np.ndarray:
    return np.abs(pixels - np.asarray(rgb)).max(axis=-1) <= tolerance


def _longest_vertical_runs(mask: np.ndarray) -> np.ndarray:
    """Per column, the length of its longest run of consecutive True pixels."""
    best = np.zeros(mask.shape[1], dtype=int)
    current = np.zeros(mask.shape[1], dtype=int)
    for row in mask:
        current = np.where(row, current + 1, 0)
        best = np.maximum(best, current)
    return best


def bars(pixels: np.ndarray, rgb: tuple[int, int, int], min_height: int = 3, min_width: int = 3) -> list[int]:
    """Heights in pixels, left to right, of the vertical bars drawn in ``rgb``: runs of adjacent columns that
    hold a vertical stretch of that colour (a bar's height is its longest stretch). Legend patches are bars
    too: callers filter them by height or count them."""
    heights = _longest_vertical_runs(colour_mask(pixels, rgb))
    found, start = [], None
    for column, height in enumerate([*heights, 0]):
        if height >= min_height and start is None:
            start = column
        elif height < min_height and start is not None:
            if column - start >= min_width:
                found.append(int(heights[start:column].max()))
            start = None
    return found


def line_rows(pixels: np.ndarray, rgb: tuple[int, int, int], points: int) -> np.ndarray:
    """The mean pixel row of a line drawn in ``rgb`` at ``points`` evenly spaced columns from its first to its
    last column (row numbers grow downwards: a higher value plots at a smaller row)."""
    mask = colour_mask(pixels, rgb, tolerance=40)
    columns = np.flatnonzero(mask.any(axis=0))
    assert columns.size, "no line of that colour"
    rows = []
    for column in np.linspace(columns[0], columns[-1], points).round().astype(int):
        hit = np.flatnonzero(mask[:, column])
        assert hit.size, f"the line has a gap at column {column}"
        rows.append(hit.mean())
    return np.asarray(rows)
