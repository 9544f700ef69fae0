"""A camera's current picture, read once as the box reads it (``edge.source.open_frames``: its timeouts, its errors
with the password hidden): what ``xueliang detect`` runs on for a camera's url."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.source import SourceError, open_frames


def first_picture(url: str, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                  tls_ca: Path | None = None) -> np.ndarray:
    """The first picture ``url`` (a camera's, as ``edge.config.camera_url`` gives it) sends, full size, as BGR
    pixels; a SourceError says why not (the url's password hidden). Each read is bounded by ``read_timeout_s``
    (``bound_reads``): a one-off read must not wait for good on a session kept alive that sends no picture."""
    frames = open_frames(url, open_timeout_s, read_timeout_s, bound_reads=True, tls_ca=tls_ca)
    try:
        for _, image in frames:
            return image
    finally:
        frames.close()
    raise SourceError(f"{url}: stream ended before its first picture")
