"""A JPEG's segments walked by their lengths, no decoder needed (so edge and gateway alike): how many scans it
holds (the gateway refuses a photo of too many), whether it reaches its end-of-image marker (libjpeg
decodes a file cut off with its missing part grey, saying so only on stderr; ``xueliang detect`` refuses it),
and the frame headers its header holds (what kind of JPEG it is).
"""

from __future__ import annotations

import re

START = b"\xff\xd8"  # the start-of-image marker every JPEG begins with
# a marker: FF and a byte that is none of a stuffed FF in scan data (00), TEM (01), a restart (D0-D7) or a
# fill byte (FF); searched for in C, as a Python loop over 4 MB of FF bytes took a second of ingest's time
_MARKER = re.compile(rb"\xff[^\x00\x01\xd0-\xd7\xff]")
# the frame headers (SOFn, and DHP, which Pillow reads as one) by their marker's second byte: what kind of JPEG it is
FRAMES = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless",
          0xC5: "hierarchical", 0xC6: "hierarchical progressive", 0xC7: "hierarchical lossless",
          0xC9: "arithmetic-coded extended", 0xCA: "arithmetic-coded progressive", 0xCB: "arithmetic-coded lossless",
          0xCD: "arithmetic-coded hierarchical", 0xCE: "arithmetic-coded hierarchical progressive",
          0xCF: "arithmetic-coded hierarchical lossless", 0xDE: "hierarchical"}


def walk(data: bytes) -> tuple[int, bool]:
    """(scans, ended): how many scans (SOS markers) a JPEG holds, walking its segments by their lengths (an EXIF
    thumbnail inside APP1 is not counted, nor is its end) and through each scan's data to the next marker, and
    whether the walk reached the end-of-image marker.

    >>> app0, scan = b"\\xff\\xe0\\x00\\x04JF", b"\\xff\\xda\\x00\\x03\\x01" + b"\\x12\\xff\\x00\\x34\\xff\\xd0\\x56"
    >>> whole = START + app0 + scan + scan + b"\\xff\\xd9"
    >>> walk(whole), walk(whole[:-2]), walk(whole[:len(whole) * 6 // 10]), walk(START + b"\\xff" * 10 + b"\\xd9")
    ((2, True), (2, False), (1, False), (0, True))
    """
    scans, at = 0, 2
    while (found := _MARKER.search(data, at)) is not None:
        at = found.start()
        if data[at + 1] == 0xD9:  # the end of the image
            return scans, True
        scans += data[at + 1] == 0xDA  # a segment: its length covers its header (a scan's data follows SOS's)
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return scans, False


def head(data: bytes, stop_after: int) -> tuple[int, int, bytes]:
    """(segments, skipped, frames) of a JPEG's header, up to its first scan: how many segments it holds (counted to
    ``stop_after`` and one more, then the walk stops), how many bytes lie between them that begin none (fill
    bytes, junk), and the second byte of each frame header's marker among them (``FRAMES``: ``b"\\xc0"`` for a
    baseline JPEG's one). Pillow reads a header one segment, and each byte between them, at a time in Python: 4 MB
    of fill bytes, or of empty APP1 segments, took it 1.4 s and 2 s; a camera's or a phone's header has about 10.

    >>> app0, sof0 = b"\\xff\\xe0\\x00\\x04JF", b"\\xff\\xc0\\x00\\x02"
    >>> head(START + app0 + b"\\xff\\xff\\x00" + sof0 + b"\\xff\\xda\\x00\\x02\\xff\\xe0", 10), head(START + app0 * 5, 2)
    ((2, 3, b'\\xc0'), (3, 0, b''))
    """
    segments = skipped = 0
    frames = bytearray()
    at = 2
    while segments <= stop_after and (found := _MARKER.search(data, at)) is not None:
        skipped += found.start() - at
        at = found.start()
        if data[at + 1] in (0xDA, 0xD9):  # the first scan, or the end: Pillow reads no further
            break
        segments += 1
        if data[at + 1] in FRAMES:
            frames.append(data[at + 1])
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return segments, skipped, bytes(frames)


def split(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """(segments, image) of a JPEG: its header's segments up to its first scan, each as (the second byte of its
    marker, its bytes from the marker on), the bytes between them that begin none left out; and the rest, from the
    first scan through its end-of-image marker (what follows that marker, such as the pictures a phone appends for
    its multi-picture format, left out), or to the end of ``data`` where it has none.

    >>> app0, sof0, scan = b"\\xff\\xe0\\x00\\x04JF", b"\\xff\\xc0\\x00\\x02", b"\\xff\\xda\\x00\\x03\\x01\\x12\\xff\\x00"
    >>> split(START + app0 + b"\\xff\\xff" + sof0 + scan + b"\\xff\\xd9" + START + b"more")
    ([(224, b'\\xff\\xe0\\x00\\x04JF'), (192, b'\\xff\\xc0\\x00\\x02')], b'\\xff\\xda\\x00\\x03\\x01\\x12\\xff\\x00\\xff\\xd9')
    """
    segments, at = [], 2
    while (found := _MARKER.search(data, at)) is not None:
        at = found.start()
        if data[at + 1] in (0xDA, 0xD9):  # the first scan, or the end
            break
        size = 2 + int.from_bytes(data[at + 2:at + 4], "big")
        segments.append((data[at + 1], data[at:at + size]))
        at += size
    first = at
    while (found := _MARKER.search(data, at)) is not None:  # on through the scans, as ``walk`` goes
        at = found.start()
        if data[at + 1] == 0xD9:
            return segments, data[first:at + 2]
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return segments, data[first:]
