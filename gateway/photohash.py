"""The same picture, however it was re-sent: a department's photo whose picture is already another case's photo
(拍照造假: one "after" photo fed back for several cases, or an old one again, re-saved, scaled or slightly cropped).

``picture_hash`` is a 64-bit difference hash of the grey picture as it is shown (EXIF orientation applied): each
bit says whether a cell of a 9x8 grid is brighter than its left neighbour. Two hashes at most
``SAME_PICTURE_BITS`` apart are the same picture. Measured on frames of the test clips (tests/test_photo_reuse.py):
re-encoded at quality 30 or progressive, halved or quartered is 0 or 1 bit off, cropped by 2-3% around at most 7;
the same place with the framing moved by a tenth 10 or more, by 15% 19 or more, mirrored 31 or more. A crop is a
framing moved: one of 3% from a corner is up to 10 off, and goes unmarked. A fixed camera's frames of one view
minutes apart are often the same picture to it (0 to 3 bits apart): a photo from the place is hand-held. A picture
nearly black (its cells' grey levels spread by less than ``MIN_SPREAD``: a night photo without light, at a twentieth of
a day's brightness or less) has no hash: what little it shows is the JPEG's rounding, and 4 of 1,746 pairs of different
real scenes (the litter training's backgrounds) at 3 % of their brightness came within 8 bits; nor has one the small
decode refuses. Such a photo is found by its bytes only.

Stored, a hash is found by its four 16-bit ``bands``: two hashes at most 11 bits apart have one band within 2 bits
(were each band 3 or more off, they would be 12), so a lookup asks the index for each band's ``near_bands`` (137
values) and measures the few it finds, instead of reading every photo the city has.

>>> a = 0x0F0F_0000_FFFF_1234
>>> distance(a, a ^ 0b1011), bands(a), len(near_bands(a)[0]), 0x1234 ^ 0b11 in near_bands(a)[3]
(3, (3855, 0, 65535, 4660), 137, True)
"""

from __future__ import annotations

import io
from itertools import combinations

import numpy as np
from PIL import Image, ImageOps

SAME_PICTURE_BITS = 8
BANDS, BAND_BITS, BAND_RADIUS = 4, 16, 2  # (BAND_RADIUS + 1) * BANDS > SAME_PICTURE_BITS: no match is missed
_GRID = (9, 8)  # (width, height): 8 comparisons a row, 8 rows
MIN_SPREAD = 2.0  # grey levels, the cells' standard deviation (a day's street: 17 or more; at 5 % brightness: 1-4)
_DECODE_SIDE = 64  # JPEG's DCT scaling: a 50-megapixel photo is decoded at an eighth (the 9x8 grid needs little)


def picture_hash(data: bytes) -> int | None:
    """The difference hash of a JPEG (``images.check_jpeg``'s): 64 bits, the first the top-left cell's; None for a
    picture nearly black or one that does not decode (above)."""
    try:
        image = Image.open(io.BytesIO(data), formats=["JPEG"])
        image.draft("L", (_DECODE_SIDE, _DECODE_SIDE))
        grey = ImageOps.exif_transpose(image.convert("L"))  # turned as shown: a copy re-saved upright is the same
        cells = np.asarray(grey.resize(_GRID, Image.Resampling.BOX), dtype=np.int16)
    except Exception:  # Pillow reports broken data as OSError, SyntaxError, ValueError, struct.error...
        return None  # check_jpeg took it: kept, found by its bytes
    if cells.std() < MIN_SPREAD:
        return None
    return int.from_bytes(np.packbits(cells[:, 1:] > cells[:, :-1]).tobytes(), "big")


def distance(a: int, b: int) -> int:
    """How many of two hashes' bits differ (Hamming distance)."""
    return (a ^ b).bit_count()


def bands(h: int) -> tuple[int, ...]:
    """The hash's ``BANDS`` bands of ``BAND_BITS``, the first its top bits."""
    mask = (1 << BAND_BITS) - 1
    return tuple((h >> (BAND_BITS * (BANDS - 1 - i))) & mask for i in range(BANDS))


def near_bands(h: int) -> list[list[int]]:
    """For each band of ``h``, every value at most ``BAND_RADIUS`` bits from it."""
    flips = [sum(1 << bit for bit in bits)
             for r in range(BAND_RADIUS + 1) for bits in combinations(range(BAND_BITS), r)]
    return [[value ^ flip for flip in flips] for value in bands(h)]
