"""Replay a video file through the edge pipeline as fast as the CPU allows.

The clock is the stream's timestamps from ``start``; open incidents end with
``stream_ended`` at the end of the file, or where it cannot be read on (then the reason is raised); a file with no picture to decode is a
SourceError.
"""

from __future__ import annotations

from collections.abc import Iterator

from edge.config import EdgeConfig
from edge.detector import load_detectors
from edge.pipeline import CameraPipeline, Outgoing
from edge.source import SourceError, open_camera


def replay(config: EdgeConfig, camera_id: str, video: str, start: float) -> Iterator[Outgoing]:
    camera = config.camera(camera_id)
    pipeline = CameraPipeline(config, camera, load_detectors(config))
    t = start
    pictures = 0
    try:
        for rel, image in open_camera(camera.model_copy(update={"url": video}), config.rules):
            t, pictures = start + rel, pictures + 1
            yield from pipeline.analyse(t, image)
    except SourceError:  # a file that cannot be read on: what it started still ends, then the reason
        yield from pipeline.close(t, "stream_ended")
        raise
    if not pictures:  # it printed nothing and exited 0, as a clip in which nothing happened
        raise SourceError(f"{video}: no picture in it could be decoded (not a video, or cut off before its first)")
    yield from pipeline.close(t, "stream_ended")
