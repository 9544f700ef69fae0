"""The JPEG checks, in one place. A photo a person uploads must decode as a JPEG (``check_jpeg``:
what merely starts with JPEG's two bytes may be HTML behind them). A box's snapshot
(``check_evidence``) must be bounded and have a JPEG's headers, of at most ``MAX_EVIDENCE_PIXELS``;
only its headers are read on the ingest path (Pillow's open: the markers up to the first scan, no
pixels), enough to keep HTML, a cut-off file or a header claiming 65500x65500 out of the cases and the
training exports. Both count the scans first (``check_scans``): every browser that shows a picture,
and the training export, decodes each one; and walk the header's segments (``check_header``), which Pillow
reads one at a time in Python, and whose frame header says a kind of JPEG Pillow opens but few decode.

>>> import io; from PIL import Image
>>> out = io.BytesIO(); Image.new("RGB", (64, 48)).save(out, "JPEG")
>>> check_jpeg(out.getvalue())
(64, 48)
>>> check_jpeg(b"\\xff\\xd8<html><script>alert(1)</script></html>")
Traceback (most recent call last):
...
gateway.images.ImageError: not a JPEG image (cannot identify image file)
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from xueliang import jpeg, wire

MAX_PHOTO_BYTES = 8_000_000  # a 48-megapixel phone photo is 5-8 MB
MAX_PHOTO_PIXELS = 50_000_000
MAX_EVIDENCE_PIXELS = 40_000_000  # an 8K camera's frame is 33 megapixels
# a progressive JPEG has about 10 scans; libjpeg decodes every one, repeated or not (a 7000x7000
# picture's last scan sent 1,000 times, 267 kB, took 31 s of CPU; at 8 MB it would be about an hour)
MAX_SCANS = 64
# a header's segments and the bytes between them that begin none (fill bytes, junk), at most: Pillow reads each in
# Python (4 MB of empty APP1 segments took 2 s of ingest's CPU, 4 MB of fill bytes 1.4 s; a camera's header has
# about 10 segments and no such bytes, a phone's some 20 with its EXIF, ICC profile and XMP)
MAX_HEADER_SEGMENTS = 1_000
MAX_HEADER_SKIPPED = 65_536
# the frames kept: Huffman-coded baseline, extended and progressive (SOF0-2). Pillow opens the header of any
# (lossless SOF3, hierarchical SOF5-7 and DHP, arithmetic-coded SOF9-15), but libjpeg decodes few of them and
# browsers fewer: such evidence, kept, was a broken picture on its case page, and the training export dropped it
DECODED_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
_DECODE_SIDE = 1024  # decoding at a reduced scale (JPEG's DCT scaling) proves the data without 150 MB of pixels
# what a kept photo keeps of the application segments a phone writes (by marker, and how the segment's data begins):
# JFIF's, the colour profile (without it a wide-gamut phone photo shows dull) and Adobe's (how a CMYK JPEG's colours
# are stored). The rest, EXIF (where the phone was: a worker's photo taken at home, or a street's at night, named
# their address to whoever reads the case, anyone with http.public_read), XMP (the same again), IPTC, the
# multi-picture index and comments, is left out; EXIF's orientation alone is written back, as browsers turn the
# picture by it
_KEPT_SEGMENTS = {0xE0: (b"JFIF\0", b"JFXX\0"), 0xE2: (b"ICC_PROFILE\0",), 0xEE: (b"Adobe",)}
_ORIENTATION = 0x0112  # EXIF's tag: how to turn the picture for display (1 as stored; 6 and 8 a phone held upright)


class ImageError(ValueError):
    """Why the bytes are not an acceptable photo; ``kind`` says it in a word the pages word for a worker:
    ``heic``, ``other_picture`` (PNG, WebP, GIF), ``too_many_pixels`` or ``not_jpeg``."""

    def __init__(self, message: str, kind: str = "not_jpeg"):
        super().__init__(message)
        self.kind = kind


# what a phone or a browser sends instead of a JPEG, by how its bytes begin: an iPhone's camera takes HEIC unless set
# to "Most Compatible" (兼容性最佳), and a file named .jpg, or sent as image/jpeg, may be any of them
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")


def picture_format(data: bytes) -> str | None:
    """The kind of picture ``data`` is where it is one a phone sends other than a JPEG, else None.

    >>> picture_format(b"\\0\\0\\0\\x18ftypheic\\0\\0\\0\\0mif1heic"), picture_format(b"RIFF\\0\\0\\0\\0WEBPVP8 ")
    ('HEIC/HEIF', 'WebP')
    """
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "AVIF" if data[8:11] == b"avi" else "HEIC/HEIF"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def check_scans(data: bytes) -> tuple[int, bool]:
    """ImageError if the JPEG ``data`` holds more than ``MAX_SCANS`` scans; counted (``xueliang.jpeg.walk``),
    nothing decoded. Else how many, and whether the walk reached its end-of-image marker.

    >>> import io; from PIL import Image
    >>> out = io.BytesIO(); Image.new("L", (64, 48)).save(out, "JPEG", progressive=True)
    >>> data = out.getvalue(); last = data[data.rindex(b"\\xff\\xda"):-2]  # the last scan, to the end of image
    >>> check_scans(data), check_scans(data[:-2])
    ((6, True), (6, False))
    >>> check_scans(data[:-2] + last * 100 + b"\\xff\\xd9")
    Traceback (most recent call last):
    ...
    gateway.images.ImageError: a JPEG of 106 scans; at most 64 (a progressive JPEG has about 10)
    """
    scans, ended = jpeg.walk(data)
    if scans > MAX_SCANS:
        raise ImageError(f"a JPEG of {scans:,} scans; at most {MAX_SCANS} (a progressive JPEG has about 10)")
    return scans, ended


def check_header(data: bytes) -> None:
    """ImageError if the JPEG ``data``'s header (up to its first scan) holds more than ``MAX_HEADER_SEGMENTS``
    segments or ``MAX_HEADER_SKIPPED`` bytes between them that begin none, or a frame header of a kind other than
    ``DECODED_FRAMES``, or two; walked (``xueliang.jpeg.head``) before Pillow reads it.

    >>> check_header(jpeg.START + b"\\xff" * 70_000 + b"\\xff\\xd9")
    Traceback (most recent call last):
    ...
    gateway.images.ImageError: a JPEG with 70,000 bytes between its header's segments that begin none (fill bytes, junk); at most 65,536
    >>> check_header(jpeg.START + b"\\xff\\xc3\\x00\\x02\\xff\\xd9")
    Traceback (most recent call last):
    ...
    gateway.images.ImageError: a lossless JPEG (SOF3): only a baseline, extended or progressive one (SOF0, SOF1, SOF2) is kept, the kinds every browser and the training export decode
    """
    segments, skipped, frames = jpeg.head(data, MAX_HEADER_SEGMENTS)
    if segments > MAX_HEADER_SEGMENTS:
        raise ImageError(f"a JPEG whose header holds more than {MAX_HEADER_SEGMENTS:,} segments (a camera's has "
                         "about 10)")
    if skipped > MAX_HEADER_SKIPPED:
        raise ImageError(f"a JPEG with {skipped:,} bytes between its header's segments that begin none (fill bytes, "
                         f"junk); at most {MAX_HEADER_SKIPPED:,}")
    for marker in frames[:1]:
        if marker not in DECODED_FRAMES:
            raise ImageError(f"a{'n' if jpeg.FRAMES[marker][0] in 'ae' else ''} {jpeg.FRAMES[marker]} JPEG "
                             f"({_frame_name(marker)}): only a baseline, extended or progressive one (SOF0, SOF1, "
                             "SOF2) is kept, the kinds every browser and the training export decode")
    if len(frames) > 1:
        raise ImageError(f"a JPEG of {len(frames)} frame headers ({', '.join(map(_frame_name, frames))}); "
                         "libjpeg refuses a second (\"two SOF markers\")")


def _frame_name(marker: int) -> str:
    """A frame header's marker as the JPEG standard names it: ``SOF0`` ... ``SOF15``, ``DHP``."""
    return "DHP" if marker == 0xDE else f"SOF{marker - 0xC0}"


def check_jpeg(data: bytes, max_pixels: int = MAX_PHOTO_PIXELS) -> tuple[int, int]:
    """Decode ``data`` as a JPEG of at most ``max_pixels`` and ``MAX_SCANS`` scans; its (width, height),
    or ImageError."""
    if not data:
        raise ImageError("no photo: the body is empty (0 bytes)")
    if (kind := picture_format(data)) in ("HEIC/HEIF", "AVIF"):
        raise ImageError(f"a {kind} photo, not a JPEG: set the phone's camera to take JPEG (on an iPhone, Settings > "
                         "Camera > Formats > Most Compatible) or save the photo as JPEG", "heic")
    if kind is not None:
        raise ImageError(f"a {kind} picture, not a JPEG: send the camera's JPEG photo, or save it as JPEG",
                         "other_picture")
    check_scans(data)  # before anything is decoded
    check_header(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            image = Image.open(io.BytesIO(data), formats=["JPEG"])
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(f"a photo of {width}x{height} pixels is more than {max_pixels:,}", "too_many_pixels")
        image.draft("RGB", (_DECODE_SIDE, _DECODE_SIDE))
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise ImageError(f"a photo of more than {max_pixels:,} pixels", "too_many_pixels") from None
    except Exception as exc:  # Pillow reports broken data as OSError, SyntaxError, ValueError, struct.error...
        message = str(exc).split(" <_io.BytesIO")[0]  # no object address in an answer
        raise ImageError(f"not a JPEG image ({message})") from None
    return width, height


def without_metadata(data: bytes) -> bytes:
    """A JPEG photo (``check_jpeg``'s) as it is kept and served: its frame and scans byte for byte, its JFIF, colour
    profile and Adobe segments (``_KEPT_SEGMENTS``), and of its EXIF only the orientation; nothing else a camera or
    phone wrote beside the picture (the place it was taken, the phone's make and serial number, a thumbnail, the
    pictures a phone appends after the end of the image).

    >>> import io; from PIL import Image
    >>> exif = Image.Exif(); exif[0x0112], exif[0x010F] = 6, "Xiaomi"
    >>> out = io.BytesIO(); Image.new("RGB", (64, 48)).save(out, "JPEG", exif=exif); kept = without_metadata(out.getvalue())
    >>> dict(Image.open(io.BytesIO(kept)).getexif()), len(out.getvalue()) - len(kept)
    ({274: 6}, 20)
    """
    segments, image = jpeg.split(data)
    kept = [segment for marker, segment in segments
            if not 0xE0 <= marker <= 0xEF and marker != 0xFE  # the picture's own: tables, frame, restart interval
            or segment[4:].startswith(_KEPT_SEGMENTS.get(marker, ()))]
    orientation = _orientation(data)
    if orientation in range(2, 9):
        exif = Image.Exif()
        exif[_ORIENTATION] = orientation
        payload = exif.tobytes()
        kept.insert(1 if kept and kept[0][1] == 0xE0 else 0,  # after JFIF's, which must come first
                    b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload)
    return jpeg.START + b"".join(kept) + image


def _orientation(data: bytes) -> int:
    """The EXIF orientation of a JPEG, 1 where it has none or it cannot be read."""
    try:
        value = Image.open(io.BytesIO(data), formats=["JPEG"]).getexif().get(_ORIENTATION, 1)
        return value if isinstance(value, int) else 1
    except Exception:  # Pillow reports a broken EXIF block as any of several errors: the picture is shown as stored
        return 1


def check_evidence(data: bytes) -> None:
    """A box's snapshot as it arrives: 1 byte to ``wire.MAX_EVIDENCE_BYTES``, a JPEG's headers (not its
    pixels) of at most ``MAX_EVIDENCE_PIXELS`` and of a kind browsers decode (``check_header``), 1 to ``MAX_SCANS`` scans and its end-of-image marker; else
    ImageError.

    >>> check_evidence(b"GIF89a")
    Traceback (most recent call last):
    ...
    gateway.images.ImageError: evidence is not a JPEG
    """
    if not data or len(data) > wire.MAX_EVIDENCE_BYTES:
        raise ImageError(f"evidence of {len(data)} bytes; must be 1..{wire.MAX_EVIDENCE_BYTES}")
    if not data.startswith(jpeg.START):
        raise ImageError("evidence is not a JPEG")
    scans, ended = check_scans(data)
    check_header(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            width, height = Image.open(io.BytesIO(data), formats=["JPEG"]).size
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise ImageError(f"evidence of more than {MAX_EVIDENCE_PIXELS:,} pixels") from None
    except Exception as exc:  # Pillow reports broken headers as OSError, SyntaxError, struct.error...
        raise ImageError(f"evidence is not a JPEG ({str(exc).split(' <_io.BytesIO')[0]})") from None
    if width * height > MAX_EVIDENCE_PIXELS:
        raise ImageError(f"evidence of {width}x{height} pixels is more than {MAX_EVIDENCE_PIXELS:,}")
    # walked to its end for the count: headers whole and the rest cut off opened as a JPEG, and the case page showed
    # it grey below the cut (a box salvaging its outbox sends no such snapshot: ``edge.salvage``)
    if not ended:
        raise ImageError(f"evidence is cut off: its {len(data):,} bytes end before the JPEG's end-of-image marker")
    if not scans:
        raise ImageError("evidence is a JPEG's headers without a picture (no scan)")
