"""A JPEG's segments walked by their lengths, no decoder needed (so edge and gateway alike): how many scans it
holds (the gateway refuses a photo of too many) and whether it reaches its end-of-image marker (libjpeg
decodes a file cut off with its missing part grey, saying so only on stderr; ``xueliang detect`` refuses it).
"""

from __future__ import annotations

START = b"\xff\xd8"  # the start-of-image marker every JPEG begins with


def walk(data: bytes) -> tuple[int, bool]:
    """(scans, ended): how many scans (SOS markers) a JPEG holds, walking its segments by their lengths (an EXIF
    thumbnail inside APP1 is not counted, nor is its end) and through each scan's data to the next marker, and
    whether the walk reached the end-of-image marker.

    >>> app0, scan = b"\\xff\\xe0\\x00\\x04JF", b"\\xff\\xda\\x00\\x03\\x01" + b"\\x12\\xff\\x00\\x34\\xff\\xd0\\x56"
    >>> whole = START + app0 + scan + scan + b"\\xff\\xd9"
    >>> walk(whole), walk(whole[:-2]), walk(whole[:len(whole) * 6 // 10])
    ((2, True), (2, False), (1, False))
    """
    scans, at = 0, 2
    while (at := data.find(b"\xff", at)) >= 0 and at + 1 < len(data):
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
        elif marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD7:  # a stuffed FF in scan data, TEM, a restart
            at += 2
        elif marker == 0xD9:  # the end of the image
            return scans, True
        else:  # a segment: its length covers its header (a scan's data follows the SOS header)
            scans += marker == 0xDA
            at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return scans, False
