"""Camera sources: RTSP or a file, read with PyAV, with open/read timeouts.

A source yields ``(seconds, frame)`` where ``seconds`` is the frame's stream time
relative to the first frame, so the stream's own timestamps drive the clock; it never goes back
(where the stream's clock steps back, it goes on from the last frame).
Only frames the sampler wants are converted to pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The camera could not be opened or stopped sending; the text says which and why."""


@dataclass
class Sampler:
    """Pick about one frame every ``interval_s`` of stream time.

    >>> s = Sampler(1.0)
    >>> [t for t in [0.0, 0.1, 0.9, 1.0, 1.5, 2.05] if s.due(t)]
    [0.0, 1.0, 2.05]

    After a gap in the stream the grid starts again at the first frame after it, so the frame
    right behind that one is not sampled too:

    >>> [t for t in [8.0, 8.04, 8.5, 9.0] if s.due(t)]
    [8.0, 9.0]
    """

    interval_s: float
    _next: float | None = None

    def due(self, t: float) -> bool:
        if self._next is not None and t < self._next - 1e-6:
            return False
        # stay on the grid of the first sample so jitter does not accumulate; after a gap, start it again
        behind = self._next is None or t >= self._next + self.interval_s
        self._next = (t if behind else self._next) + self.interval_s
        return True


NO_TIMESTAMPS = 0x0080  # FFmpeg's AVFMT_NOTIMESTAMPS: the format (raw H.264, H.265, MJPEG) has no time of its own
CLOCK_STEP_S = 1e-3  # a frame's time after a step back of the stream's clock: just after the last one
NO_ZONES_KEYFRAME_GAP_S = 6.0  # the tolerated key-frame gap of a camera with no zones (faults only)
# ``auto`` skips to key frames once this many came in a row, each within the tolerated gap of the one
# before: two were not enough, since an encoder's scene cuts add key frames (x264's defaults at 25 fps
# gave 0, 2.6, 9.7, 15.2 s), and going back to every frame after skipping does not work with B-frames
# (the decoder hands out key frames only until its next IDR frame: 25 s later there, never in another file)
KEYS_SEEN = 3


def keyframe_gap_limit(camera, rules) -> float:
    """How far apart key frames may be before ``sampling: auto`` decodes every frame.

    The rules tolerate a sample every half ``gap_s`` (a stay not yet confirmed must be seen
    again within ``gap_s``) and three samples over the shortest dwell or persistence (a stay
    is confirmed on three detector passes); never less than the analysis interval. A camera's
    own ``max_keyframe_gap_s`` wins.

    >>> from edge.config import Camera, Rules
    >>> zone = {"id": "kerb", "types": ["illegal_parking"], "polygon": [[0, 0], [1, 0], [1, 1]], "dwell_s": 180}
    >>> cam = Camera(id="c", url="x", grid="g", zones=[zone])
    >>> keyframe_gap_limit(cam, Rules()), keyframe_gap_limit(cam, Rules(gap_s=20))
    (5.0, 10.0)
    >>> keyframe_gap_limit(Camera(id="c", url="x", grid="g", zones=[{**zone, "dwell_s": 9}]), Rules())
    3.0
    """
    if camera.max_keyframe_gap_s is not None:
        return camera.max_keyframe_gap_s
    limits = [rules.gap_s / 2] if camera.zones else [NO_ZONES_KEYFRAME_GAP_S]
    for zone in camera.zones:
        if "illegal_parking" in zone.types:
            limits.append(zone.dwell_s / 3)
        if "garbage" in zone.types or "spill" in zone.types:
            limits.append(zone.persistence_s / 3)
    return max(camera.analysis_interval_s, min(limits))


def open_camera(camera, rules) -> Iterator[tuple[float, np.ndarray]]:
    """``open_frames`` with a camera's settings from the edge config."""
    return open_frames(camera.url, camera.open_timeout_s, camera.read_timeout_s, camera.analysis_interval_s,
                       camera.sampling, keyframe_gap_limit(camera, rules), camera.max_width)


def _pixels(frame: av.VideoFrame, max_width: int) -> np.ndarray:
    if max_width and frame.width > max_width:
        height = int(round(frame.height * max_width / frame.width / 2)) * 2
        return frame.reformat(width=max_width, height=height, format="bgr24").to_ndarray()
    return frame.to_ndarray(format="bgr24")


def open_frames(url: str, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                interval_s: float = 1.0, sampling: str = "auto",
                max_keyframe_gap_s: float = 2.5, max_width: int = 0) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(stream_seconds, bgr_image)`` about every ``interval_s`` until the stream ends.

    ``sampling``: ``keyframes`` decodes only key frames (PyAV ``skip_frame="NONKEY"``,
    25-50x less decoding; H.264 and H.265 alike); ``rate`` decodes every frame and samples
    by time (for cameras with very long GOPs); ``auto`` decodes every frame (analysing the key
    frames) until the stream shows ``KEYS_SEEN`` key frames in a row at most ``max_keyframe_gap_s``
    apart (see ``keyframe_gap_limit``), then key frames only; where none comes within that gap it
    samples every frame by time (``rate``) for good, and a key-frame stream whose key frames later
    come further apart falls back to it. (It used to skip to key frames from the first frame: a file
    with the encoders' default GOP, ten seconds or more, was analysed once at its start and then not
    until its second key frame, and one with B-frames decoded nothing more after the fallback.) Frames wider than
    ``max_width`` (0: no limit) are scaled down in the same pass that converts them to BGR.
    Raises SourceError when the camera cannot be opened or a read times out.
    """
    options = {"analyzeduration": "1000000", "probesize": "1000000"}
    timeout: tuple[float, float] | None = (open_timeout_s, read_timeout_s)
    if url.startswith("rtsp://"):
        # FFmpeg's own socket timeout, not PyAV's: PyAV's is an interrupt callback that takes the
        # GIL on every network read (hundreds a second per camera), which starved the readers of
        # a busy box. A hung camera sends nothing, so the socket timeout catches it all the same;
        # it bounds each read of the RTSP set-up too, so ``open_timeout_s`` applies to files only.
        options |= {"rtsp_transport": "tcp", "timeout": str(int(read_timeout_s * 1e6))}
        timeout = None
    try:
        container = av.open(url, options=options, timeout=timeout)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {url}: {exc}") from None
    try:
        if not container.streams.video:
            raise SourceError(f"{url} has no video stream")
        stream = container.streams.video[0]
        # a raw stream (.h264, .h265, .mjpeg) may carry no time at all: its frames are counted at its
        # frame rate, every one decoded (key frames alone would not count time); read as the others,
        # it gave its first frame and then nothing, the camera analysed once
        raw_step = 1 / float(stream.guessed_rate or stream.average_rate or 25) \
            if container.format.flags & NO_TIMESTAMPS else None
        keyframes_only = sampling in ("auto", "keyframes") and raw_step is None
        # frame threading holds back one frame per thread: with key frames 2 s apart that is
        # seconds of delay, so key-frame decoding uses slice threads only. Key-frame skipping
        # starts after the first decoded frame (``auto``: once ``KEYS_SEEN`` key frames in a row came
        # close enough): from the start it costs RTSP a whole GOP.
        stream.thread_type = "SLICE" if keyframes_only else "AUTO"
        skipping = False  # decoding key frames only (skip_frame NONKEY)
        sampler = Sampler(interval_s)
        first: float | None = None
        last_key: float | None = None
        close_keys = 0  # key frames in a row, each within the gap of the one before (``auto``)
        last_t = 0.0
        try:
            untimed_at: float | None = None  # wall time of a first frame that came without a timestamp
            for frame in container.decode(stream):
                if keyframes_only and sampling == "keyframes" and not skipping:
                    stream.codec_context.skip_frame = "NONKEY"
                    skipping = True
                if frame.time is None:
                    if raw_step is not None and (first is not None or untimed_at is not None):
                        last_t += raw_step
                        if sampler.due(last_t):
                            yield last_t, _pixels(frame, max_width)
                        continue
                    # RTSP often delivers its first (key) frame without a pts: use it at t=0 and
                    # anchor the stream clock on the next timed frame
                    if first is not None or untimed_at is not None:
                        continue
                    untimed_at = time.monotonic()
                    sampler.due(0.0)
                    yield 0.0, _pixels(frame, max_width)
                    continue
                if first is None:
                    first = frame.time
                    if untimed_at is not None:
                        first -= max(1e-3, min(interval_s, time.monotonic() - untimed_at))
                t = frame.time - first
                if t < last_t:  # the stream's clock restarted or stepped back (a looped file, a camera's
                    # clock reset): go on from the last frame; from 0 the sampler waited (and analysed
                    # nothing) until the stream caught up with where it had been, hours on a live camera
                    first, t, last_key = frame.time - last_t - CLOCK_STEP_S, last_t + CLOCK_STEP_S, None
                    close_keys = 0
                last_t = t
                if keyframes_only and sampling == "auto":
                    gap = t - last_key if last_key is not None else 0.0
                    if gap > max_keyframe_gap_s:
                        log.info("%s: no key frame for %.1fs; decoding every frame from now on", url, gap)
                        if skipping:
                            stream.codec_context.skip_frame = "DEFAULT"
                        keyframes_only = skipping = False
                    elif frame.key_frame:
                        close_keys += 1
                        if close_keys >= KEYS_SEEN and not skipping:  # the GOP is short: key frames only
                            stream.codec_context.skip_frame = "NONKEY"
                            skipping = True
                        last_key = t
                # on the key-frame path only key frames are analysed: while ``auto`` still decodes every frame
                # to find the GOP, and the frames a decoder still hands out after it skips to key frames
                if (frame.key_frame or not keyframes_only) and sampler.due(t):
                    yield t, _pixels(frame, max_width)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{url}: read failed: {exc}") from None
    finally:
        container.close()
