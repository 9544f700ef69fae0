"""A camera's current picture, read once as the box reads it (``edge.source.open_frames``: its timeouts, its errors
with the password hidden): what ``xueliang detect`` runs on for a camera's url, and ``xueliang snapshot``'s picture of
each camera with its zones drawn (``edge.evidence.zones_snapshot``), for the installer at a box with no monitor."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.evidence import zones_snapshot
from edge.source import SourceError, open_frames
from xueliang.passwords import without_password

READERS = 8  # cameras read at once: a dead one takes up to twice its open_timeout_s, and must not hold up the rest


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


@dataclass(frozen=True)
class Shot:
    """One camera's snapshot: the file written and what it shows, or the camera's fault (``fault``) and no file."""

    camera: str
    path: Path | None = None
    said: str = ""
    fault: str | None = None


def zone_label(zone) -> str:
    """What a zone's outline is labelled with: its id and what it watches.

    >>> from edge.config import Zone
    >>> zone_label(Zone(id="footpath", types=["garbage", "spill"], polygon=[(0, 0), (1, 0), (1, 1)]))
    'footpath: garbage, spill'
    """
    return f"{zone.id}: {', '.join(zone.types)}"


def take(camera, out_dir: Path) -> Shot:
    """``camera``'s current picture, full size, with its zones drawn and labelled, as ``out_dir/CAMERA.jpg``; its
    fault in the words the box logs it (a SourceError's, the password hidden) where it cannot be read."""
    try:
        image = first_picture(camera.url, camera.open_timeout_s, camera.read_timeout_s, camera.tls_ca)
    except SourceError as exc:
        return Shot(camera.id, fault=str(exc))
    except Exception as exc:  # a decoder's bug on a camera's garbage: that camera's fault, as the box takes it
        return Shot(camera.id, fault=without_password(f"{type(exc).__name__}: {exc}"))
    path = out_dir / f"{camera.id}.jpg"
    try:
        path.write_bytes(zones_snapshot(image, [(zone.polygon, zone_label(zone)) for zone in camera.zones]))
    except OSError as exc:  # the disk full, the file not ours to write
        return Shot(camera.id, fault=f"cannot write {path}: {exc.strerror or exc}")
    h, w = image.shape[:2]
    zones = (f"{len(camera.zones)} zone(s) drawn" if camera.zones else
             "no zones: it detects nothing until zones are drawn")
    return Shot(camera.id, path, f"{w}x{h}, {zones}")


def snapshots(cameras: list, out_dir: Path) -> Iterator[Shot]:
    """Each camera's ``take``, read side by side, as each is done: a dead camera fails alone."""
    with ThreadPoolExecutor(max_workers=max(1, min(READERS, len(cameras)))) as pool:
        for done in as_completed([pool.submit(take, camera, out_dir) for camera in cameras]):
            yield done.result()
