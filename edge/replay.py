"""Replay a video file through the edge pipeline as fast as the CPU allows.

The clock is the stream's timestamps from ``start``; open incidents end with
``stream_ended`` at the end of the file, or where it cannot be read on (then the reason is raised).
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
    try:
        for rel, image in open_camera(camera.model_copy(update={"url": video}), config.rules):
            t = start + rel
            yield from pipeline.analyse(t, image)
    except SourceError:  # a file that cannot be read on: what it started still ends, then the reason
        yield from pipeline.close(t, "stream_ended")
        raise
    yield from pipeline.close(t, "stream_ended")
