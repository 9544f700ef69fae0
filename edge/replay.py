"""Replay a video file through the edge pipeline as fast as the CPU allows.

The clock is the stream's timestamps from ``start``, where the recording's clock jumps ahead (two recordings
joined, a recorder's clock set) going on from the last frame, as the box does (``edge.source.anchor``); open
incidents end with ``stream_ended`` at the end of the file, or where it cannot be read on (then the reason is
raised, and noted in ``damage``, with what else was found damaged: ``edge.source.Damage``); a file with no picture to
decode is a SourceError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from edge.config import EdgeConfig
from edge.detector import load_detectors
from edge.pipeline import CameraPipeline, Outgoing
from edge.source import Damage, SourceError, anchor, frame_spacing, open_camera

log = logging.getLogger(__name__)


def replay(config: EdgeConfig, camera_id: str, video: str, start: float,
           damage: Damage | None = None) -> Iterator[Outgoing]:
    camera = config.camera(camera_id)
    pipeline = CameraPipeline(config, camera, load_detectors(config))
    spacing = frame_spacing(camera, config.rules)
    base, t, rel_at = None, start, 0.0
    pictures = 0
    try:
        for rel, image in open_camera(camera.model_copy(update={"url": video}), config.rules, damage=damage):
            was, base = base, anchor(base, rel, t, live=False, last=t, spacing=spacing)
            if was is not None and base != was:
                log.warning("%s: its clock jumps %.0f s ahead %.1f s in; replayed on from its last frame (no time is "
                            "counted that no frame shows)", video, rel - rel_at, rel_at)
            t, rel_at, pictures = base + rel, rel, pictures + 1
            yield from pipeline.analyse(t, image)
    except SourceError as exc:  # a file that cannot be read on: what it started still ends, then the reason
        if damage is not None and pictures:
            damage.stopped = str(exc)
        yield from pipeline.close(t, "stream_ended")
        raise
    if not pictures:  # it printed nothing and exited 0, as a clip in which nothing happened
        raise SourceError(f"{video}: no picture in it could be decoded (not a video, or cut off before its first)")
    if pictures == 1:  # a still picture (a JPEG named for the video) replayed as a clip in which nothing happened
        raise SourceError(f"{video}: one picture only (a still picture, or a video shorter than the "
                          f"{camera.analysis_interval_s:g} s between analysed frames): nothing can be seen to stay in a "
                          "zone; replay a video")
    yield from pipeline.close(t, "stream_ended")
