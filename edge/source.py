"""Camera sources: RTSP or a file, read with PyAV, with open/read timeouts.

A source yields ``(seconds, frame)`` where ``seconds`` is the frame's stream time
relative to the first frame, so the stream's own timestamps drive the clock; it never goes back
(where the stream's clock steps back, it goes on from the last frame).
Only frames the sampler wants are converted to pixels.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import cv2
from av.sidedata.sidedata import SideDataContainer, Type
import numpy as np

from edge.config import is_pipe, is_rtsp
from xueliang.passwords import without_password

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The camera could not be opened or stopped sending; the text says which and why (no password)."""

    def __init__(self, text: str):
        super().__init__(without_password(text))


def ffmpeg_said(exc: BaseException) -> str:
    """What FFmpeg or the system said of a source, without what PyAV puts around it: FFmpeg's error code given as an
    errno (``[Errno 825242872]`` of a 401) and the url again, which the line saying it names already.

    >>> ffmpeg_said(av.error.ConnectionRefusedError(111, "Connection refused", "rtsp://10.0.0.5/s1"))
    'Connection refused'
    >>> ffmpeg_said(av.error.HTTPUnauthorizedError(825242872, "Server returned 401 Unauthorized", "rtsp://10.0.0.5/s1"))
    'Server returned 401 Unauthorized'
    >>> ffmpeg_said(ValueError("no video stream"))
    'no video stream'
    """
    text = str(exc)
    if isinstance(exc, (OSError, av.FFmpegError)) and (code := getattr(exc, "errno", None)) is not None:
        text = text.removeprefix(f"[Errno {code}] ")
        if (name := getattr(exc, "filename", None)) is not None:
            text = text.replace(f": {name!r}", "", 1)
    return text


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


@dataclass
class PacketClock:
    """The times (pts, dts) of a stream's packets in decoding order, counted on where the demuxer gives none.

    FFmpeg's MPEG-PS demuxer times only a packet that begins a PES packet at the head of a pack (a relay's
    ``ffmpeg -c copy -f mpeg``: 2 KB packs, of 25 frames a second at 320x240 one in eight timed, a key frame
    mostly not) and, for H.264 and H.265 alone, does not count the others on (its reordering "not reliably set").
    A frame without a time was dropped: of 3 s, one key frame analysed, not 3. An untimed packet here is one
    ``length`` after the last in decoding order (its dts); its pts is that where no packet has shown reordering
    (pts = dts), for a key frame its dts and the last timed key frame's lag, and else unknown (``_decoded`` counts
    that frame on as it is shown). Before the first timed packet (a raw stream's, an RTSP session's first) none.

    >>> clock, untimed = PacketClock(), (None, None)
    >>> [clock.times(*p) for p in [(*untimed, 2, True), (10, 10, 2, True), (*untimed, 2, False), (*untimed, 2, True)]]
    [(None, None), (10, 10), (12, 12), (14, 14)]
    >>> clock = PacketClock()   # B-frames: a key frame shown two frames after it is decoded
    >>> [clock.times(*p) for p in [(14, 10, 2, True), (*untimed, 2, False), (16, 14, 2, False), (*untimed, 2, True)]]
    [(14, 10), (None, 12), (16, 14), (20, 16)]
    """

    _dts: int | None = None  # the last packet's decoding time, stated or counted
    _lag: int | None = None  # pts - dts of the last timed key frame
    _reorders: bool = False  # a timed packet has shown pts != dts (B-frames)

    def next_dts(self, length: int) -> int | None:
        """The dts a packet ``length`` after the last one has, counted on; None before the first timed one."""
        return None if self._dts is None else self._dts + length

    def times(self, pts: int | None, dts: int | None, length: int, key: bool) -> tuple[int | None, int | None]:
        if pts is not None or dts is not None:
            self.note(pts, dts, key)
            return pts, dts
        if self._dts is None:
            return None, None
        dts = self._dts = self.next_dts(length)
        pts = dts + self._lag if key and self._lag is not None else None if self._reorders else dts
        return pts, dts

    def note(self, pts: int | None, dts: int | None, key: bool) -> None:
        """Take in a packet the demuxer timed (one stamp or both), for the untimed ones after it."""
        if pts is not None and dts is not None:
            self._reorders |= pts != dts
            self._lag = pts - dts if key else self._lag
        self._dts = dts if dts is not None else pts


@dataclass
class Damage:
    """What a read of a file found damaged (``open_frames``'s ``damage``), in seconds into the file: packets the
    decoder refused (skipped, the frames after them read on), where the read got to, and the length the file's
    index states (an MP4's: it counts the frames, and the packets stop short of it where the file is cut off, a
    copy or a download that stopped; a stream with no index states none). ``stopped``: why the read ended
    before the file did, where the caller notes it. A cut-off MP4 was read to its cut without a word but one
    damaged packet's.

    >>> Damage(read_to_s=23.9, stated_s=40.0).words()
    'cut off at about 23.9 s in, of the 40.0 s its index states'
    >>> Damage(refused=3, first_refused_s=12.0, read_to_s=40.0, stated_s=40.0).words()
    'packets the decoder refused: 3, skipped, the first at about 12.0 s in'
    >>> Damage(read_to_s=40.0, stated_s=40.0).words() is None
    True
    """

    refused: int = 0
    first_refused_s: float | None = None
    read_to_s: float | None = None
    stated_s: float | None = None
    stopped: str | None = None

    def cut_off(self) -> bool:
        return self.read_to_s is not None and self.stated_s is not None and self.stated_s - self.read_to_s > CUT_OFF_S

    def words(self) -> str | None:
        """What is damaged, for a person; None where nothing is."""
        said = []
        if self.stopped is not None:
            said.append(f"not readable on from about {self.read_to_s or 0.0:.1f} s in ({self.stopped})")
        elif self.cut_off():
            said.append(f"cut off at about {self.read_to_s:.1f} s in, of the {self.stated_s:.1f} s its index states")
        if self.refused:
            said.append(f"packets the decoder refused: {self.refused}, skipped, the first at about "
                        f"{self.first_refused_s or 0.0:.1f} s in")
        return "; ".join(said) or None


NO_TIMESTAMPS = 0x0080  # FFmpeg's AVFMT_NOTIMESTAMPS: the format (raw H.264, H.265, MJPEG) has no time of its own
CLOCK_STEP_S = 1e-3  # a frame's time after a step back of the stream's clock: just after the last one
CLOCK_AHEAD_S = 5.0  # a live camera's frame further ahead of the box's clock than this: the camera's clock jumped
CLOCK_BEHIND_S = 5.0  # ... further behind it than this and the stretch ``auto`` decodes again: its clock runs slow
# A file is read ahead of its time (the box waits for each frame to be due, a replay does not wait): a frame further
# than this past where the next one was due at the latest (``frame_spacing``) is a jump in its clock, skipped
FILE_GAP_S = 5.0
NO_ZONES_KEYFRAME_GAP_S = 6.0  # the tolerated key-frame gap of a camera with no zones (faults only)
MAX_HELD_PACKETS = 1500  # ``auto`` holds at most this many packets since a key frame (60 fps: 25 s)
# a picture above 4K UHD is analysed scaled down to it: a 16000x16000 stream made 576 detector crops a frame,
# and every other camera of the box waited 10 s a round for it
MAX_FRAME_PIXELS = 3840 * 2160
# the turn that shows a frame upright, by its display matrix's rotation (counterclockwise degrees, as FFmpeg's
# players turn it: ``orientation``); other angles are analysed as stored, with a warning
TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}
MAX_BAD_PACKETS = 250  # packets in a row the decoder refuses before the stream counts as broken (25 fps: 10 s)
CUT_OFF_S = 1.0  # a file whose packets end this much short of the length its index states is cut off
MAX_BLANK_KEY_FRAMES = 3  # key frames in a row that give no picture before the decoder is taken to skip them
# The picture shapes cameras make lie well within these: the smallest format a camera offers is SQCIF (128x96), the
# longest a panoramic camera's four 16:9 sensors stitched side by side (7680x1080, 7.1:1); 32:9 (5120x1440) and a
# phone's or a corridor mode's 9:16 are common. A 4000x4 "picture" made 667 detector images a frame and took the
# analyser from every other camera of the box for 27 s a round.
MIN_PICTURE_SIDE = 32
MAX_PICTURE_RATIO = 8.0
# The largest picture of H.264's and H.265's highest levels (8192x4352, 8K): a stream of a larger one is no camera's.
# The decoder refuses it (FFmpeg's max_pixels) before it allocates one: a 16384x8192 stream of 800 KB took a reader
# 1.5 GB (its frame threads' pictures), enough to have the box's every camera killed with it on a small machine.
MAX_PICTURE_PIXELS = 8192 * 4352
DISPLAY_MATRIX = Type.DISPLAYMATRIX
RTSPS_PORT = 322  # an rtsps:// url's port where it names none (FFmpeg's RTSPS_DEFAULT_PORT)
RTSP_PORT = 554  # an rtsp:// url's
# An RTSP camera (or a proxy before it) may start each session at its next key frame and send nothing until then, and
# a smart codec (H.264+/H.265+) stretches key frames 10 s apart and more when nothing moves: its reads wait this long
# at least for a packet, its open's probe as long and a second more (the probe's analyzeduration)
KEY_FRAME_WAIT_S = 15.0
PROBE_S = 1.0


def packet_wait_s(url: str, read_timeout_s: float) -> float:
    """How long a read of ``url`` waits for a packet: ``read_timeout_s``, and for an RTSP camera at least
    ``KEY_FRAME_WAIT_S``, FFmpeg's socket timeout for the whole session (it is set once, at the open): one whose key
    frames came further apart than ``read_timeout_s`` was refused at most tries, its open given up on before its
    next key frame came.

    >>> packet_wait_s("rtsp://cam/1", 5.0), packet_wait_s("rtsp://cam/1", 30.0), packet_wait_s("a.mp4", 5.0)
    (15.0, 30.0, 5.0)
    """
    return max(read_timeout_s, KEY_FRAME_WAIT_S) if is_rtsp(url) else read_timeout_s


def open_bound_s(url: str, open_timeout_s: float, read_timeout_s: float) -> float:
    """PyAV's bound on each step of opening ``url`` (its set-up, then its probe): ``open_timeout_s``, and for an RTSP
    camera at least its probe's wait for the first packet (``packet_wait_s``) and ``PROBE_S``.

    >>> open_bound_s("rtsp://cam/1", 10.0, 5.0), open_bound_s("rtsp://cam/1", 30.0, 5.0), open_bound_s("a.mp4", 10, 5)
    (16.0, 30.0, 10)
    """
    return max(open_timeout_s, packet_wait_s(url, read_timeout_s) + PROBE_S) if is_rtsp(url) else open_timeout_s


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


def frame_spacing(camera, rules) -> float:
    """How far apart a camera's sampled frames come at most in a stream that runs on unbroken: its analysis
    interval, or where ``sampling: auto`` analyses key frames alone, as far apart as it lets them be.

    >>> from edge.config import Camera, Rules
    >>> frame_spacing(Camera(id="c", url="x", grid="g"), Rules()), frame_spacing(Camera(
    ...     id="c", url="x", grid="g", analysis_interval_s=30, max_keyframe_gap_s=4), Rules())
    (6.0, 30.0)
    """
    return max(camera.analysis_interval_s, keyframe_gap_limit(camera, rules))


def anchor(base: float | None, rel: float, now: float, live: bool, last: float = 0.0, spacing: float = 0.0) -> float:
    """The base that puts a frame ``rel`` stream seconds in on the box's clock, at ``base + rel``.

    The first frame is now. A frame cannot come from the future: where its clock jumps ahead, it goes on
    from now, never at or before the last frame (``last``). A live camera's frame is ahead past now and
    ``CLOCK_AHEAD_S`` (a camera's NTP correction; left alone, its incidents carried times the gateway refuses
    as ahead of its clock until the camera reconnected). A file is read ahead of its time (the box waits for
    each of its frames, a replay takes them at once, ``now`` its last frame's time): its frame is ahead past
    the last frame, ``spacing`` (``frame_spacing``) and ``FILE_GAP_S`` (a recording joined from two hours
    apart, a recorder's clock set). Left alone, a replay counted the hours no frame showed as a parked car's
    dwell, and raised a car seen at 10:00 and again at 20:00 as parked for 10 h. Nor does a live camera's frame
    come from further past than ``spacing`` and ``CLOCK_BEHIND_S``: its frames come as they are made, but for a key
    frame's stretch decoded again at once (``_decoded``, ``sampling: auto``), and one further behind now is of a clock
    that runs slow (one at half speed put its incidents half of all the time it was read in the past, and counted a
    car's dwell at half its length); it too goes on from now.

    >>> anchor(None, 5.0, 1000.0, live=True)
    995.0
    >>> anchor(995.0, 3606.0, 1001.0, live=True, last=1000.0)  # an hour ahead: from now on
    -2605.0
    >>> anchor(995.0, 10.0, 1017.0, live=True, last=1004.0, spacing=6.0)  # 12 s behind (a slow clock): from now on
    1007.0
    >>> anchor(995.0, 10.0, 1010.0, live=True, last=1004.0, spacing=6.0)  # 5 s behind: a key frame's stretch
    995.0
    >>> anchor(995.0, 15.0, 1000.0, live=False, last=1000.0, spacing=6.0)  # a file's next frame, 10 s on
    995.0
    >>> anchor(995.0, 3606.0, 1000.0, live=False, last=1000.0, spacing=6.0)  # an hour on: just after the last
    -2605.999
    """
    if base is None:
        return now - rel
    if base + rel > (now + CLOCK_AHEAD_S if live else last + spacing + FILE_GAP_S) \
            or live and base + rel < now - spacing - CLOCK_BEHIND_S:
        return max(now, last + CLOCK_STEP_S) - rel
    return base


def file_end(last: float, rel: float, read_to_s: float | None, spacing: float = 0.0) -> float:
    """When a pass of a file camera ends on the box's clock: its last frame handed on was at ``last``, ``rel`` s
    into it (``open_frames``'s time), and its packets went on to ``read_to_s`` s in (``Damage.read_to_s``: its last
    frame's end). The file is opened again then, so a pass takes the file's length whatever was analysed of it: a
    4 s clip of one key frame (an encoder's default key-frame spacing is 10 s) was played again 0.5 s after its
    first frame, eight times its speed. A rest of the file longer than ``spacing`` (``frame_spacing``) and
    ``FILE_GAP_S`` is a jump of its clock, as ``anchor`` takes a frame's: played again from the last frame.

    >>> file_end(1000.0, 0.0, 4.0, spacing=6.0)  # a 4 s clip of one key frame
    1004.0
    >>> file_end(1000.0, 29.0, 30.0, spacing=6.0), file_end(1000.0, 29.0, None)  # a 30 s clip; a stream with no time
    (1001.0, 1000.0)
    >>> file_end(1000.0, 29.0, 3629.0, spacing=6.0)  # its clock set an hour on after its last frame analysed
    1000.0
    """
    rest = max(0.0, read_to_s - rel) if read_to_s is not None else 0.0
    return last + (rest if rest <= spacing + FILE_GAP_S else 0.0)


def open_camera(camera, rules, bound_reads: bool = False, damage: Damage | None = None,
                said: set[str] | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """``open_frames`` with a camera's settings from the edge config."""
    return open_frames(camera.url, camera.open_timeout_s, camera.read_timeout_s, camera.analysis_interval_s,
                       camera.sampling, keyframe_gap_limit(camera, rules), camera.max_width, bound_reads, camera.tls_ca,
                       damage, said)


def _say(said: set[str] | None, level: int, message: str, *args) -> None:
    """Log what a read found of its source, at DEBUG where ``said`` (its camera's, kept across its reads) holds it
    already: a file camera is read again at each end, and every pass logged the same lines of it ("2 video streams",
    "no key frame within ..."), one every few seconds for a short clip."""
    if said is not None:
        text = message % args
        level = logging.DEBUG if text in said else level
        said.add(text)
    log.log(level, message, *args)


def analysed_size(width: int, height: int, max_width: int) -> tuple[int, int] | None:
    """The size a frame is analysed at, where not its own: at most ``max_width`` wide (0: no limit) and
    ``MAX_FRAME_PIXELS`` in all, heights even, never below 2.

    >>> analysed_size(1920, 1080, 0), analysed_size(1920, 1080, 960), analysed_size(4000, 2, 640)
    (None, (960, 540), (640, 2))
    >>> analysed_size(16000, 16000, 0)   # one camera's picture is one camera's share of the analyser
    (2880, 2880)
    """
    scale = max_width / width if max_width and width > max_width else 1.0
    by_pixels = width * height * scale * scale > MAX_FRAME_PIXELS
    if by_pixels:
        scale = math.sqrt(MAX_FRAME_PIXELS / (width * height))
    if scale >= 1.0:
        return None
    new_width = int(width * scale) // 2 * 2 if by_pixels else max_width
    return max(2, new_width), max(2, int(round(height * scale / 2)) * 2)


def picture_fault(width: int, height: int) -> str | None:
    """Why a picture of this size (as seen, upright) is no camera's, or None where cameras make it.

    >>> picture_fault(1920, 1080), picture_fault(1080, 1920), picture_fault(7680, 1080), picture_fault(128, 96)
    (None, None, None, None)
    >>> picture_fault(4000, 4)
    "a 4000x4 picture is no camera's: a side under 32 pixels"
    >>> picture_fault(3840, 400)
    "a 3840x400 picture is no camera's: 9.6 times as wide as high, more than 8"
    >>> picture_fault(8192, 4352), picture_fault(16384, 8192)
    (None, "a 16384x8192 picture is no camera's: 134.2 megapixels, more than H.264's and H.265's largest (35.7)")
    """
    if width * height > MAX_PICTURE_PIXELS:
        return (f"a {width}x{height} picture is no camera's: {width * height / 1e6:.1f} megapixels, more than "
                f"H.264's and H.265's largest ({MAX_PICTURE_PIXELS / 1e6:.1f})")
    if min(width, height) < MIN_PICTURE_SIDE:
        return f"a {width}x{height} picture is no camera's: a side under {MIN_PICTURE_SIDE} pixels"
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_PICTURE_RATIO:
        how = "wide as high" if width > height else "high as wide"
        return f"a {width}x{height} picture is no camera's: {ratio:.1f} times as {how}, more than {MAX_PICTURE_RATIO:g}"
    return None


def mp4_without_index(path: str, most: int = 10_000) -> bool:
    """Whether the file at ``path`` is an MP4 (or a MOV: its first box ``ftyp``) whose top-level boxes hold no index
    (``moov``): a recorder stopped before it wrote it at the end, or a copy cut off before it. Read box header by
    box header (a seek each), at most ``most`` of them.

    >>> import tempfile
    >>> box = lambda kind, body=b"": struct.pack(">I", 8 + len(body)) + kind + body
    >>> with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
    ...     _ = f.write(box(b"ftyp", b"isom") + box(b"mdat", b"x" * 100)[:50]); f.flush()
    ...     mp4_without_index(f.name)
    True
    >>> with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
    ...     _ = f.write(box(b"ftyp", b"isom") + box(b"moov", b"x" * 100)[:50]); f.flush()
    ...     mp4_without_index(f.name)
    False
    """
    try:
        with open(path, "rb") as f:
            end, at, kinds = os.fstat(f.fileno()).st_size, 0, []
            while at + 8 <= end and len(kinds) < most:
                f.seek(at)
                size, kind = struct.unpack(">I4s", f.read(8))
                if size == 1 and at + 16 <= end:  # a 64-bit size follows
                    size = struct.unpack(">Q", f.read(8))[0]
                kinds.append(kind)
                if size < 8:  # 0: the box runs to the file's end
                    break
                at += size
    except OSError:
        return False
    return kinds[:1] == [b"ftyp"] and b"moov" not in kinds


def certificate_fault(url: str, tls_ca: Path, timeout_s: float) -> str | None:
    """Why the certificate the camera at ``url`` (rtsps://) shows does not verify against ``tls_ca`` and the url's
    host, as Python's TLS sees it; None where it does, or where no TLS handshake was had. Asked only once FFmpeg
    has refused the camera, which decides: FFmpeg says "Input/output error" alone, its reason going to its log,
    which PyAV keeps only with FFmpeg's logging turned on for the whole process (every camera's decoder too)."""
    parts = urlsplit(url)
    try:
        context = ssl.create_default_context(cafile=str(tls_ca))
        with socket.create_connection((parts.hostname, parts.port or RTSPS_PORT), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=parts.hostname):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message
    except (OSError, ValueError):  # no connection, another TLS failure, the CA file gone since the config was read
        return None


RTSP_ASK_S = 2.0  # how long ``not_rtsp`` waits for the answer


def not_rtsp(url: str, timeout_s: float = RTSP_ASK_S) -> str | None:
    """What says that the server at ``url`` (rtsp://) is no RTSP server: its answer to an RTSP request (OPTIONS)
    within ``timeout_s`` where that is another protocol's (a camera's web port answers in HTTP); None where it answers
    in RTSP, answers nothing, or cannot be reached (FFmpeg's error says that). Asked only once FFmpeg found what came
    back no stream, which it says alike of a web server and of garbage: "Invalid data found when processing input"."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or RTSP_PORT), timeout=timeout_s) as conn:
            conn.sendall(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            answer = conn.recv(64)
    except (OSError, ValueError):  # refused, unreachable, silent, the name not found
        return None
    if not answer or answer.startswith(b"RTSP/"):
        return None
    said = "in HTTP, as a web server" if answer.startswith(b"HTTP/") else \
        f"but not in RTSP (its answer began {answer[:16]!r})"
    return f"the port answered {said}: the url names no RTSP server's port (a camera's web or SDK port; RTSP's is " \
        "554 on most)"


def orientation(matrix: bytes | None) -> tuple[int, bool]:
    """The turn (counterclockwise degrees, 0 to 359) and whether the picture is mirrored before it, that show a
    picture as its display matrix (FFmpeg's: nine 32-bit integers) says. PyAV's ``rotation`` reads a mirror as a turn
    of 180 degrees: a mirrored clip was analysed upside down and mirrored the other way.

    >>> import struct
    >>> orientation(struct.pack("=9i", 0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30)), orientation(None)  # portrait
    ((90, False), (0, False))
    >>> orientation(struct.pack("=9i", -65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30))  # a selfie camera's mirror
    (0, True)
    >>> orientation(struct.pack("=9i", 65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30))  # upside down: mirrored, turned
    (180, True)
    """
    if matrix is None or len(matrix) < 36:
        return 0, False
    m = struct.unpack("=9i", matrix[:36])
    mirrored = m[0] * m[4] - m[1] * m[3] < 0
    across, down = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if not across or not down:
        return 0, False
    sign = -1 if mirrored else 1  # the matrix of the picture once mirrored: its first row the other way
    return round(-math.degrees(math.atan2(sign * m[1] / down, sign * m[0] / across))) % 360, mirrored


def _display_matrix(frame: av.VideoFrame) -> bytes | None:
    # A container of its own, not ``frame.side_data``: that one is kept on the frame and holds the frame, a cycle
    # only Python's collector ends, and each frame so held kept its decoder's threads alive (a camera reconnecting
    # every few seconds left 8 threads a read: 25-160 in a soak of 4 cameras)
    matrix = SideDataContainer(frame).get(DISPLAY_MATRIX)
    return bytes(matrix) if matrix is not None else None


def is_field(frame: av.VideoFrame, codec_name: str, sar: Fraction | None = None) -> bool:
    """Whether the decoder handed out one field of an interlaced picture, half its height: an H.265 stream coded as
    field pictures (x265 ``--interlace``, a DVR's or NVR's for an analogue camera), each field a picture of its own,
    which FFmpeg's HEVC decoder does not weave; it marks a picture interlaced only where its SEI says it is a top or
    a bottom field. H.264's and MPEG-2's decoders weave the two fields (PAFF, field pictures) into one frame of full
    height, which they mark interlaced too. Such a field is scaled to full height (``_pixels``), not woven with the
    other: on the key-frame path a key frame is one field, the other never decoded. Only a picture at least twice as
    wide as high as shown (with its pixels' aspect ``sar``) is taken for a field (a PAL field 720x288, a 1080i one
    1920x540): an encoder that tags whole progressive pictures as fields (x265 ``--interlace`` fed whole frames) would
    otherwise have them doubled in height, every vehicle twice as tall."""
    wide = frame.width * (sar or 1)
    return codec_name == "hevc" and frame.interlaced_frame and wide >= 2 * frame.height


def _pixels(frame: av.VideoFrame, max_width: int, url: str, sar: Fraction | None = None,
            field: bool = False) -> np.ndarray:
    """The frame's BGR pixels at the size it is analysed at, as shown: as wide as its pixels' aspect ratio ``sar``
    makes it (an analogue encoder's D1 stream, an anamorphic one: analysed as stored, a 4:3 stream's vehicles were
    three quarters as wide to the detector and in the evidence), twice as high where it is one ``field`` of the
    picture (``is_field``: analysed as stored, the vehicles were half as tall), then upright, turned as its display
    matrix says (a phone films portrait and stores it on its side; analysed so, a zone drawn on the picture as seen
    lay on other ground), mirrored first where it says so. The size is the picture's as seen, so ``max_width`` is the
    width as seen. A picture no camera makes (``picture_fault``) is the camera's fault: SourceError, which names its
    size."""
    degrees, mirrored = orientation(_display_matrix(frame))
    turn = TURNS.get(degrees)
    quarter = turn in (cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_90_CLOCKWISE)
    wide = max(1, round(frame.width * sar)) if sar and sar != 1 else frame.width
    high = 2 * frame.height if field else frame.height
    width, height = (high, wide) if quarter else (wide, high)
    fault = picture_fault(width, height)
    if fault:
        how = ([f"its pixels {sar.numerator}:{sar.denominator}"] if wide != frame.width else []) \
            + ["one field of it"] * field
        stored = f" (stored {frame.width}x{frame.height}, {', '.join(how)})" if how else ""
        raise SourceError(f"{url}: {fault}{stored}; not analysed")
    size = analysed_size(width, height, max_width) or ((width, height) if wide != frame.width or field else None)
    if size is not None:
        w, h = size[::-1] if quarter else size
        image = frame.reformat(width=w, height=h, format="bgr24").to_ndarray()
    else:
        image = frame.to_ndarray(format="bgr24")
    if mirrored:
        image = cv2.flip(image, 1)
    return image if turn is None else cv2.rotate(image, turn)


def pixel_ratio(size: tuple[int, int], coded: tuple[int, int], coded_sar: Fraction | None,
                seen: dict[tuple[int, int], Fraction | None]) -> Fraction | None:
    """The pixels' aspect ratio of a frame of ``size``: the decoder's (``coded_sar``, of the pictures of size ``coded``
    it decodes now) where its pictures are of that size, else the one last seen with pictures of that size (``seen``,
    kept up here). The decoder is ahead of the frames it hands out (its reordering and threads; on the key-frame path,
    a GOP): where a camera's stream switched from its 320x180 main stream to its sub stream, the same picture stored
    240x180 of 4:3 pixels, its last 2 s of 320x180 frames were widened to 427x180, another shape (a moved fault, the
    zones' incidents ended), and switching back, the sub stream's last frames were not widened. PyAV shows no frame's
    own ratio.

    >>> seen, main, sub = {}, (320, 180), (240, 180)
    >>> pixel_ratio(main, main, Fraction(1), seen), pixel_ratio(main, sub, Fraction(4, 3), seen)  # switching to sub
    (Fraction(1, 1), Fraction(1, 1))
    >>> pixel_ratio(sub, sub, Fraction(4, 3), seen), pixel_ratio(sub, main, Fraction(1), seen)  # and back
    (Fraction(4, 3), Fraction(4, 3))
    """
    if size == coded or size not in seen:
        seen[size] = coded_sar
    return seen[size]


def frame_sar(frame: av.VideoFrame, codec, seen: dict[tuple[int, int], Fraction | None]) -> Fraction | None:
    """``pixel_ratio`` of a decoded frame."""
    return pixel_ratio((frame.width, frame.height), (codec.width, codec.height), codec.sample_aspect_ratio, seen)


def _say_orientation(frame: av.VideoFrame, url: str, said: set[str] | None = None) -> None:
    """A warning where the first frame's display matrix turns it by other than a quarter (a clip turned by an
    editor): analysed as stored, its picture leans; quarter turns and mirrors are followed (``_pixels``)."""
    degrees, mirrored = orientation(_display_matrix(frame))
    if degrees not in TURNS and degrees:
        _say(said, logging.WARNING, "%s: its display matrix turns the picture %d degrees%s; only quarter turns are "
             "followed, so it is analysed as stored, leaning", without_password(url), degrees,
             " and mirrors it" if mirrored else "")


def video_stream(streams, url: str, said: set[str] | None = None):
    """The video stream of a source a person means: of those that are not a cover picture (a file's attached
    picture), the largest picture, the default one first where two are as large (FFmpeg's own best stream is the
    default one: a file with a 160x120 preview track before its 768x576 one was analysed at 160x120). Which one,
    logged where there are several; SourceError where there is none."""
    moving = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        raise SourceError(f"{url} has no video stream" + (" (only a cover picture)" if streams else ""))
    # a stream whose codec its container does not state, or FFmpeg does not know, has no decoder (no codec context):
    # an MP4 cut off within its index (moov) states its track and not its codec, and the camera's fault said
    # "AttributeError: 'NoneType' object has no attribute 'width'", with a traceback at each try
    known = [s for s in moving if s.codec_context is not None]
    if not known:
        raise SourceError(f"{url}: its video stream states no codec FFmpeg decodes (a file cut off within its "
                          "index, an MP4's moov, or a codec FFmpeg does not know); not read")
    chosen = max(known, key=lambda s: (s.codec_context.width * s.codec_context.height,
                                       bool(s.disposition & av.stream.Disposition.default), -s.index))

    def said_of(s) -> str:
        size = "no codec" if s.codec_context is None else f"{s.codec_context.width}x{s.codec_context.height}"
        return f"#{s.index} {size}" + (" cover picture" if s not in moving else "")
    if len(streams) > 1:
        _say(said, logging.INFO, "%s: %d video streams (%s); analysing #%d, the largest picture", without_password(url),
             len(streams), ", ".join(said_of(s) for s in streams), chosen.index)
    return chosen


def _packet_time(packet: av.Packet) -> float | None:
    stamp = packet.pts if packet.pts is not None else packet.dts
    return float(stamp * packet.time_base) if stamp is not None and packet.time_base is not None else None


def _timed(packets: Iterator[av.Packet], step: int, held_back: bool = False) -> Iterator[av.Packet]:
    """``packets``, those the demuxer left untimed (no pts, no dts) timed by ``PacketClock`` (a packet that states
    no length is ``step`` long). A timed packet passes as it came: nearly every packet of every camera is one, and
    setting its stamps again cost as much as the clock. ``held_back`` (an MPEG-PS): ``_paired`` first."""
    clock = PacketClock()
    if held_back:
        packets = _paired(packets, clock, step)
    for packet in packets:
        pts, dts = packet.pts, packet.dts
        if pts is None and dts is None:
            packet.pts, packet.dts = clock.times(pts, dts, packet.duration or step, packet.is_keyframe)
        else:
            clock.note(pts, dts, packet.is_keyframe)
        yield packet


def _paired(packets: Iterator[av.Packet], clock: PacketClock, step: int) -> Iterator[av.Packet]:
    """``packets``, each held until the next has come, and where both state the same dts, one has the other's stamps:
    FFmpeg's MPEG-PS parser gives a small frame beside a PES packet's start that packet's stamps too (H.264's
    B-frames of 51 bytes, H.265's P-frames of 70; a few a GOP: a frame shown four frames early, and the clock stepped
    back after it). The stamps of the one the count (``clock.next_dts``, the packets before timed by ``_timed``)
    disagrees with are dropped, for ``_timed`` to count; before any count, the earlier one's (as H.264's parser
    errs)."""
    held = next(packets, None)
    for packet in packets:
        if held.dts is not None and held.dts == packet.dts:  # the wrong one: that whose count disagrees
            wrong = packet if clock.next_dts(held.duration or step) == held.dts else held
            wrong.pts = wrong.dts = None
        yield held
        held = packet
    if held is not None:
        yield held


def _timely(packets: Iterator[av.Packet], wait_s: float | None, url: str) -> Iterator[av.Packet]:
    """``packets``, the read ended where one took ``wait_s`` (an RTSP camera's ``packet_wait_s``) or more to come.

    FFmpeg's socket timeout fires once no byte came for that long, but its demuxer, told so, hands over the packet its
    parser held (the last frame before the stop: a frame ends only where the next begins; "Failed reading RTSP data:
    Connection timed out" logged), and its next read waits as long again before it fails: a stream that stopped
    mid-way failed twice its wait after its last packet (4.3 s of 2, 6.3 of 3, 10.3 of 5; the test server stopped),
    and was read again after 30 s, not 15. The open is not so: before the first packet its parser holds none. A read
    that took the wait was such a timeout, or got only what is not a packet of the stream (keep-alives, audio):
    no packet within the wait all the same.
    """
    while True:
        asked = time.monotonic()
        packet = next(packets, None)
        if packet is None:
            return
        if wait_s is not None and time.monotonic() - asked >= wait_s:
            raise SourceError(f"{url}: read failed: no packet within {wait_s:g} s")
        yield packet


def stated_size(data: bytes) -> tuple[int, int] | None:
    """The picture size a PNG's header (IHDR) or a JPEG's frame header (SOF) states, read without decoding it.

    >>> stated_size(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(4) + b"IHDR" + bytes.fromhex("00003e80 00002328"))
    (16000, 9000)
    >>> stated_size(bytes.fromhex("ffd8 ffe0 0004 0000 ffc0 0011 08 2328 3e80")), stated_size(b"RIFF....AVI ")
    ((16000, 9000), None)
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    at = 2 if data[:2] == b"\xff\xd8" else len(data)
    while at + 9 <= len(data) and data[at] == 0xFF:  # the segments before the frame header, each with its length
        if 0xC0 <= data[at + 1] <= 0xCF and data[at + 1] not in (0xC4, 0xC8, 0xCC):  # SOF0-15: height, then width
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None


def _oversized(codec, url: str, packet: av.Packet | None = None) -> SourceError | None:
    """The camera's fault where its decoder is set up for a picture over ``MAX_PICTURE_PIXELS``, which it refuses
    (its max_pixels): the picture's size, from the stream's parameters or its last key frame's. A stream that states
    no size of its own (an image's, MJPEG's) leaves the decoder none once it has refused one (0x0): the size
    ``packet`` states, where it is a PNG or a JPEG (``stated_size``)."""
    width, height = codec.width, codec.height
    if not width * height and packet is not None:
        width, height = stated_size(bytes(packet)) or (0, 0)
    if width * height > MAX_PICTURE_PIXELS:
        return SourceError(f"{url}: {picture_fault(width, height)}; not decoded")
    return None


def _decoded(container, stream, sampling: str, max_keyframe_gap_s: float, url: str, damage: Damage,
             said: set[str] | None = None, packet_wait_s: float | None = None) -> Iterator[av.VideoFrame]:
    """The frames of ``stream`` that may be analysed: on the key-frame path, key frames alone (``_Decoding``).

    ``keyframes``: from the first frame on, the decoder skips all but key frames (``skip_frame`` NONKEY; 25-50x less
    decoding). ``auto`` does the same but keeps the packets since the last key frame, and from the first one that
    comes more than ``max_keyframe_gap_s`` after it, decodes every frame for good (``_Decoding.held``). Anything
    else: every frame. A packet the decoder refuses is skipped (``_Decoding.refused``); ``damage`` is told of each,
    and of how far the packets went. ``packet_wait_s``: the read ends where a packet took that long to come
    (``_timely``; None: no limit).
    """
    decoding = _Decoding(stream, sampling, max_keyframe_gap_s, url, damage, said)
    packets = _timely(container.demux(stream), packet_wait_s, url)
    yield from decoding.frames(_timed(packets, decoding.step, container.format.name == "mpeg"))


class _Decoding:
    """One read's decoding of a stream for ``_decoded``: which packets go to the decoder, which of its frames are
    handed out. Each rule is a step of its own; they share the read's state."""

    def __init__(self, stream, sampling: str, max_keyframe_gap_s: float, url: str, damage: Damage,
                 said: set[str] | None):
        self.stream, self.codec, self.url, self.damage, self.said = stream, stream.codec_context, url, damage, said
        self.sampling, self.max_keyframe_gap_s = sampling, max_keyframe_gap_s
        self.origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else None
        self.key_path = sampling in ("auto", "keyframes")
        self.since_key: list[av.Packet] | None = None  # ``auto`` on the key-frame path: those from the last key frame
        self.key_at: float | None = None  # that key frame's stream time
        self.handed: int | None = None  # the pts of the last frame handed out
        self.replayed_to: int | None = None  # decoding again: frames up to this pts were handed out already
        self.bad = 0  # packets the decoder refused in a row (``damage.refused``: in all)
        self.blank = 0  # packets in a row due a picture that gave none: past the first one, key frames on the key path
        self.pictured = False  # a picture came: from then on a key frame's comes as it is decoded (reordering is full)
        self.unkeyed: int | None = 0  # packets passed over before the first key frame; None from it on
        rate = stream.guessed_rate or stream.average_rate or 25
        self.step = max(1, round(1 / (rate * stream.time_base))) if stream.time_base else 1  # a frame's length, stamped
        self.shown: int | None = None  # the pts of the last frame the decoder showed, handed out or not
        self.key_held = False  # the last packet, a key frame's, gave none: the decoder holds it (``decode``)

    def frames(self, packets: Iterator[av.Packet]) -> Iterator[av.VideoFrame]:
        # The decoder refuses to open on a picture its stream states over its max_pixels, and forgets the size (0x0):
        # the packet after opens it again and is refused naming it, but a file of one frame has none after, and its one
        # was counted damaged with no reason but FFmpeg's "Invalid argument"
        if oversized := _oversized(self.codec, self.url):
            raise oversized
        for packet in packets:
            at = _packet_time(packet)
            self.note_read(packet, at)
            if not self.keyed(packet):
                continue
            todo = [packet]
            if self.key_path and self.sampling == "auto" and self.held(packet, at):
                todo = self.since_key
                yield from self.every_frame()
            for each in todo:
                yield from self.decode(each)

    def note_read(self, packet: av.Packet, at: float | None) -> None:
        """How far the file was read (``damage.read_to_s``): its last frame's length on."""
        if at is not None:
            self.origin = at if self.origin is None else self.origin
            length = float(packet.duration * packet.time_base) if packet.duration else 0.0
            self.damage.read_to_s = max(self.damage.read_to_s or 0.0, at - self.origin + length)

    def keyed(self, packet: av.Packet) -> bool:
        """Whether ``packet`` goes to the decoder: not before the first key frame (a camera or proxy that starts a
        session between key frames, a pipe joined mid-stream). The decoder has no picture they refer to, and where
        the parameter sets (SPS/PPS) come only with key frames it refused each, so a GOP of 10 s ended the read as
        undecodable (250 in a row) and a shorter one counted them as damage. Where no packet is marked a key frame
        within ``MAX_HELD_PACKETS``, they are decoded from there on (a demuxer that marks none)."""
        if self.unkeyed is None:
            return True
        if not packet.is_keyframe and self.unkeyed < MAX_HELD_PACKETS:
            self.unkeyed += 1
            return False
        if not packet.is_keyframe:
            _say(self.said, logging.WARNING, "%s: none of its first %d packets is marked a key frame; decoding them "
                 "from here on", self.url, self.unkeyed)
        self.unkeyed = None
        return True

    def held(self, packet: av.Packet, at: float | None) -> bool:
        """``auto`` on the key-frame path keeps the packets since the last key frame (a GOP's worth: about 1 MB for
        2 s of 1080p at 4 Mb/s); True where they are to be decoded again (``every_frame``): ``packet`` came more than
        ``max_keyframe_gap_s`` after that key frame, more than ``MAX_HELD_PACKETS`` are held, or the decoder skips
        the key frames."""
        if packet.is_keyframe:
            self.since_key, self.key_at = [packet], at
            return False
        if self.since_key is None:
            return False
        self.since_key.append(packet)
        if self.blank >= MAX_BLANK_KEY_FRAMES:  # key frames the decoder skips (an intra-refresh camera's): their
            # pictures never came, and the camera was analysed once a connection, without a word
            _say(self.said, logging.INFO, "%s: %d key frames in a row gave no picture (the decoder skips them: an "
                 "intra refresh's recovery points, or another codec's); decoding every frame from the last one on",
                 self.url, self.blank)
            return True
        if at is not None and self.key_at is not None and at < self.key_at:  # the clock stepped back
            self.key_at = at
        if (at is not None and self.key_at is not None and at - self.key_at > self.max_keyframe_gap_s
                or len(self.since_key) > MAX_HELD_PACKETS):  # (packets with no time: held no longer)
            _say(self.said, logging.INFO, "%s: no key frame within %.1fs (%d packets); decoding every frame from the "
                 "last one on", self.url, self.max_keyframe_gap_s, len(self.since_key))
            return True
        return False

    def every_frame(self) -> Iterator[av.VideoFrame]:
        """Off the key-frame path, for good: the decoder is reset, to decode the packets held again from their key
        frame, and every frame from then on: nothing of that stretch is skipped, B-frames or not. What it held back
        comes first; the frames handed out already are not again (``replayed_to``)."""
        for frame in self.held_back():  # what the decoder holds back (B-frames) comes first
            if frame.key_frame:
                self.handed = frame.pts if frame.pts is not None else self.handed
                yield frame
        self.codec.skip_frame = "DEFAULT"
        self.key_path, self.since_key, self.replayed_to, self.blank = False, None, self.handed, 0

    def held_back(self) -> list[av.VideoFrame]:
        """The frames the decoder holds back to show in order (a stream with B-frames: H.264's two, H.265's), drained;
        it is reset, for a key frame to come next."""
        frames = self.codec.decode(None)
        for frame in frames:
            frame.time_base = self.stream.time_base  # a drained frame comes without it
        self.codec.flush_buffers()
        return frames

    def decode(self, packet: av.Packet) -> Iterator[av.VideoFrame]:
        """The frames of ``packet`` handed out (``handed_out``). A packet the decoder refuses is skipped
        (``refused``); a stream that gives no picture for long is no stream of its codec, or, on ``keyframes``,
        one whose key frames the decoder skips."""
        due = self.pictured and (not self.key_path or packet.is_keyframe)
        oversized = None
        try:
            frames = packet.decode()
            keyless = self.key_path and not any(frame.key_frame for frame in frames)
            if keyless and self.key_held:
                # the decoder shows a frame once the frames it may reorder before it have come, on this path the
                # next key frames: each was handed out two key frames late (an RTSP camera analysed 4 s behind, its
                # 2nd frame 5 s after its 1st), and those a read held when it ended never. Drained at the packet
                # after the key frame's, not at its own: a key frame coded as two fields (PAFF, an analogue camera's
                # DVR) comes in two packets, and a reset between them lost every key frame, without a word
                frames += self.held_back()
            self.key_held = keyless and packet.is_keyframe
        except av.FFmpegError as exc:  # a damaged packet (lost on the network, a bad sector): skip it alone
            self.refused(packet, exc, due)
        else:
            self.bad, self.pictured = 0, self.pictured or bool(frames)
            self.blank = 0 if frames else self.blank + due
            # The decoder refuses a picture over its max_pixels (``_oversized``) and says so only where it decodes
            # that picture: on the key-frame path it skips it without a word, and its frame threads (``rate``) drop
            # it; a stream that ended on one was read as if nothing was wrong, and on the key-frame path, one that
            # went on was taken for key frames the decoder skips
            oversized = _oversized(self.codec, self.url)
            if oversized and not frames:
                raise oversized
        # A stream whose codec changed mid-way (two recordings joined, H.264 then H.265) goes to the first one's
        # decoder, which refuses most of the rest and takes the packets it reads as key frames without a picture
        # (250 refused in a row never came): the rest went unread, and the read ended as if all was read
        if not self.key_path and self.blank >= MAX_BAD_PACKETS:
            raise SourceError(f"{self.url}: {self.blank} packets in a row gave no picture; no {self.codec.name} "
                              "stream any more (its codec changed mid-way?)")
        if self.bad:
            return
        if self.key_path and self.sampling == "keyframes" and self.blank >= MAX_BLANK_KEY_FRAMES:
            raise SourceError(f"{self.url}: {self.blank} key frames in a row gave no picture (the decoder skips them: "
                              "an intra refresh's recovery points, or another codec's); set the camera's sampling to "
                              "auto or rate")
        yield from self.handed_out(frames)
        if oversized:  # once the frames before it are handed out (its frame threads held them back)
            raise oversized

    def refused(self, packet: av.Packet, exc: av.FFmpegError, due: bool) -> None:
        """A packet the decoder refused (damaged on the network or on disk), skipped: the frames after it are read
        (until its next key frame the decoder shows them as best it can), and only ``MAX_BAD_PACKETS`` refused in a
        row end the read. One damaged packet of a recording had ended it there, and a camera whose stream carried one
        was read again from its start, and again."""
        if oversized := _oversized(self.codec, self.url, packet):  # the picture it sets up is refused: no damage
            raise oversized from None
        self.bad, self.damage.refused, self.blank = self.bad + 1, self.damage.refused + 1, self.blank + due
        if self.damage.first_refused_s is None and self.origin is not None \
                and (when := _packet_time(packet)) is not None:
            self.damage.first_refused_s = when - self.origin
        if self.damage.refused == 1 or self.damage.refused % 100 == 0:
            _say(self.said, logging.WARNING, "%s: %d damaged packet(s) skipped so far (the last: %s)", self.url,
                 self.damage.refused, exc)
        if self.bad >= MAX_BAD_PACKETS:
            raise SourceError(f"{self.url}: {self.bad} packets in a row could not be decoded (the last: {exc})") \
                from None

    def handed_out(self, frames: list[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """Of the frames the decoder gave, those handed out: on the key-frame path, key frames alone. A frame between
        that a decoder hands out all the same (VP9's skips none, nor AV1's told to once open) is passed over, and
        never counts as handed out: handed out and not analysed, the stretch decoded again (``every_frame``) was
        taken for seen and lost (5 s of a camera at each connection)."""
        for frame in frames:
            if frame.pts is None and self.shown is not None and not self.key_path:  # its packet's time unknown (an
                frame.pts = self.shown + (frame.duration or self.step)  # MPEG-PS's B-frames): the next in showing order
            self.shown = frame.pts if frame.pts is not None else self.shown
            if self.replayed_to is not None and frame.pts is not None:
                if frame.pts <= self.replayed_to:
                    continue
                self.replayed_to = None
            # skipping starts after the first decoded frame: from the start it costs RTSP a whole GOP
            if self.key_path and self.codec.skip_frame != "NONKEY":
                self.codec.skip_frame = "NONKEY"
            if self.key_path and not frame.key_frame:
                continue
            self.handed = frame.pts if frame.pts is not None else self.handed
            yield frame


def open_frames(url: str, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                interval_s: float = 1.0, sampling: str = "auto",
                max_keyframe_gap_s: float = 2.5, max_width: int = 0,
                bound_reads: bool = False, tls_ca: Path | None = None,
                damage: Damage | None = None, said: set[str] | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(stream_seconds, bgr_image)`` about every ``interval_s`` until the stream ends.

    ``sampling``: ``keyframes`` decodes and analyses only key frames (H.264 and H.265 alike);
    ``rate`` decodes every frame and samples by time (for cameras with very long GOPs); ``auto``
    analyses key frames only while they come at most ``max_keyframe_gap_s`` apart (see
    ``keyframe_gap_limit``) and, from the first one that does not, decodes every frame again from the
    last key frame and samples by time for good (``_decoded``). Frames wider than ``max_width`` (0: no
    limit) are scaled down in the same pass that converts them to BGR. ``bound_reads``: PyAV's interrupt
    bounds each read of an RTSP stream at ``read_timeout_s`` too, not only its set-up (a file's always), for
    a camera whose read has hung (see below). A pipe's open and reads have no time limit (see below). ``tls_ca``
    (rtsps:// only): FFmpeg reads the camera only where its certificate verifies against this CA file and names
    the url's host; a camera it refuses so is a SourceError that says why (``certificate_fault``). ``damage``:
    told what the read found damaged (``Damage``; a replay says so). ``said``: what earlier reads of the source
    logged of it, logged again at DEBUG only (``_say``).
    Raises SourceError when the camera cannot be opened or a read times out.
    """
    # av.open hands these to the probe's decoders too (those of the streams its demuxer states at the open), which
    # decode a few frames with no limit of their own: a 400 KB H.264 stream of 16384x8192 took 570 MB, an 834-byte PNG
    # stating 16000x16000 1.5 GB, before a picture's size was looked at
    options = {"analyzeduration": str(int(PROBE_S * 1e6)), "probesize": "1000000",
               "max_pixels": str(MAX_PICTURE_PIXELS)}
    if not is_rtsp(url):
        # ... but not to those of the streams that appear only while it probes (an FLV's, an MPEG-PS's: a relay's
        # ``ffmpeg -c copy -f flv``), which decoded theirs whole: 400 KB of 16384x8192 took 720 MB. A file's or a
        # pipe's probe decodes nothing (no decoder on its whitelist): its streams' sizes and rates come from their
        # demuxer and parsers alone. Every camera's frames came the same, its open as soon or sooner (a multipart
        # MJPEG pipe's, whose probe had ended at its first picture, waits out PROBE_S). RTSP states its streams at
        # the open (its SDP).
        options["codec_whitelist"] = "none"
    opening, waiting = open_bound_s(url, open_timeout_s, read_timeout_s), packet_wait_s(url, read_timeout_s)
    timeout: tuple[float, float | None] | None = (opening, read_timeout_s)
    if is_rtsp(url):
        # FFmpeg's own socket timeout, not PyAV's: PyAV's is an interrupt callback that takes the
        # GIL on every network read (hundreds a second per camera), which starved the readers of
        # a busy box. A camera that sends nothing trips the socket timeout all the same.
        # PyAV's interrupt bounds the whole set-up only (it takes no GIL where no timeout is set): a
        # server that answers a byte at a time never trips a socket timeout, and hung the open for good.
        # Nor does one that keeps the session alive and sends no picture (nor FFmpeg's rw_timeout: every
        # byte resets both): its read hung for good. A camera found so (edge.box.hung) is read on with
        # ``bound_reads``: PyAV's interrupt on every read, GIL and all.
        # Its first packet may come only with the camera's next key frame (``packet_wait_s``), so the socket timeout
        # and the open's bound wait for it; a stream that stops mid-way is then noticed at that wait, not sooner.
        options |= {"rtsp_transport": "tcp", "timeout": str(int(waiting * 1e6))}
        timeout = (opening, read_timeout_s if bound_reads else None)
        if tls_ca is not None:  # the rtsp demuxer hands these on to its TLS connection (GnuTLS in PyAV's FFmpeg 8),
            options |= {"tls_verify": "1", "ca_file": str(tls_ca)}  # which checks the chain and the url's host
    elif is_pipe(url):
        # A pipe's open waits in the kernel for a writer, and its reads for the writer's bytes, where PyAV's
        # interrupt never reaches: it fired only at the first read once the writer was back (the wait counted
        # against it), ended the read, and the writer with it (SIGPIPE: no reader left). A pipe that gives
        # nothing is found by the box (edge.box.hung), and its read goes on when its writer writes.
        timeout = None
    began = time.monotonic()
    try:
        container = av.open(url, options=options, timeout=timeout)
    except (av.FFmpegError, OSError) as exc:
        late = f"not set up within {opening:g} s, " \
            if timeout is not None and time.monotonic() - began >= opening else ""
        fault = certificate_fault(url, tls_ca, open_timeout_s) \
            if tls_ca is not None and not late and getattr(exc, "errno", None) == errno.EIO else None
        if fault:
            raise SourceError(f"cannot open {url}: its certificate does not verify against tls_ca {tls_ca} "
                              f"({fault}); not read: a stand-in for the camera, or a certificate tls_ca did not "
                              "sign or that names another host") from None
        if not late and "://" not in url and os.path.isfile(url) and os.path.getsize(url) == 0:
            # FFmpeg says "Invalid data found when processing input" of an empty file: a copy that never ran
            raise SourceError(f"cannot open {url}: the file is empty (0 bytes)") from None
        if not late and "://" not in url and os.path.isfile(url) and isinstance(exc, av.InvalidDataError) \
                and mp4_without_index(url):
            # FFmpeg says "Invalid data found when processing input" of it, as of a file that is no video at all
            raise SourceError(f"cannot open {url}: an MP4 with no index (no moov box): a recording stopped before "
                              "it was written, or a copy cut off short; not read") from None
        if not late and is_rtsp(url) and urlsplit(url).scheme.lower() == "rtsp" \
                and isinstance(exc, av.InvalidDataError) and (said := not_rtsp(url)):
            raise SourceError(f"cannot open {url}: {said}") from None
        if not late and is_rtsp(url) and isinstance(exc, av.InvalidDataError) \
                and time.monotonic() - began >= waiting:
            # its probe got no packet within the socket timeout: FFmpeg says the same of it as of garbage
            raise SourceError(f"cannot open {url}: no packet within {waiting:g} s of asking for the stream; a camera "
                              "that starts it at its next key frame sends nothing until then: one whose key frames "
                              "are further apart needs its read_timeout_s set above their interval, or that interval "
                              f"shortened on the camera ({ffmpeg_said(exc)})") from None
        raise SourceError(f"cannot open {url}: {late}{ffmpeg_said(exc)}") from None
    try:
        stream = video_stream(container.streams.video, url, said)
        codec = stream.codec_context
        if is_rtsp(url) and stream.start_time is None and time.monotonic() - began >= opening:
            # PyAV's interrupt ends the probe at its bound as if the stream had ended, and FFmpeg returns the stream the
            # SDP states: a session set up and kept alive (keep-alives, RTCP) that sent no packet was "opened", and its
            # read hung for good (every byte resets the socket timeout) until the box's hang guard a minute on. A
            # stream's start is its first packet's time; its size tells nothing (an H.265 SDP states it, sprop-sps)
            raise SourceError(f"cannot open {url}: the camera's stream was set up but sends no pictures (no packet "
                              f"within {opening:g} s of asking for it; a camera whose key frames are further apart, "
                              "starting it at its next one, needs its read_timeout_s set above their interval)")
        codec.options = {"max_pixels": str(MAX_PICTURE_PIXELS)}  # refused before it is allocated
        damage = Damage() if damage is None else damage
        if stream.frames and stream.duration:  # an index that counts its frames states the length (an MP4's)
            damage.stated_s = float(stream.duration * stream.time_base)
        # a raw stream (.h264, .h265, .mjpeg) may carry no time at all: its frames are counted at its
        # frame rate, every one decoded (key frames alone would not count time); read as the others,
        # it gave its first frame and then nothing, the camera analysed once
        raw_step = 1 / float(stream.guessed_rate or stream.average_rate or 25) \
            if container.format.flags & NO_TIMESTAMPS else None
        if raw_step is not None:
            sampling = "rate"
        # frame threading holds back one frame per thread: with key frames 2 s apart that is
        # seconds of delay, so key-frame decoding uses slice threads only
        stream.thread_type = "SLICE" if sampling in ("auto", "keyframes") else "AUTO"
        sampler = Sampler(interval_s)
        sars: dict[tuple[int, int], Fraction | None] = {}  # the pixels' aspect ratio of each picture size seen
        fields_said = False  # once a read, not at every frame it hands out

        def pixels(frame: av.VideoFrame) -> np.ndarray:
            nonlocal fields_said
            sar = frame_sar(frame, codec, sars)
            field = is_field(frame, codec.name, sar)
            image = _pixels(frame, max_width, url, sar, field)
            if field and not fields_said:
                fields_said = True
                _say(said, logging.INFO, "%s: interlaced H.265 coded as field pictures (%dx%d, each a field of a %dx%d "
                     "picture): each field scaled to full height, %dx%d", without_password(url), frame.width,
                     frame.height, frame.width, 2 * frame.height, image.shape[1], image.shape[0])
            return image

        first: float | None = None
        last_t = 0.0
        live = is_rtsp(url) or is_pipe(url)  # its frames come as they are made: its clock runs on with them
        # when the stream's time last went on: from its first frame, which may come a GOP after the open (a source
        # joined between key frames); timed from the open, that first frame was taken for a clock that stood still
        advanced_at: float | None = None
        try:
            untimed_at: float | None = None  # wall time of a first frame that came without a timestamp
            for frame in _decoded(container, stream, sampling, max_keyframe_gap_s, without_password(url), damage,
                                  said, waiting if is_rtsp(url) else None):
                if first is None and untimed_at is None:
                    _say_orientation(frame, url, said)
                if frame.time is None:
                    if raw_step is not None and (first is not None or untimed_at is not None):
                        last_t += raw_step
                        damage.read_to_s = last_t + raw_step  # its packets carry no time: its frames counted
                        if sampler.due(last_t):
                            yield last_t, pixels(frame)
                        continue
                    # RTSP often delivers its first (key) frame without a pts: use it at t=0 and
                    # anchor the stream clock on the next timed frame
                    if first is not None or untimed_at is not None:
                        continue
                    untimed_at = time.monotonic()
                    sampler.due(0.0)
                    yield 0.0, pixels(frame)
                    continue
                if first is None:
                    first = frame.time
                    if untimed_at is not None:
                        # as far after the untimed one as the box saw it come, but a key frame on the key-frame path
                        # is the next one, due: it came as soon as a second after it (the probe's packets, read
                        # ahead), and a hair short of interval_s it was passed over, its 2 s of the camera unanalysed
                        keyed = frame.key_frame and sampling in ("auto", "keyframes")
                        first -= interval_s if keyed else max(1e-3, min(interval_s, time.monotonic() - untimed_at))
                t = frame.time - first
                if advanced_at is None or t > last_t + CLOCK_STEP_S:
                    advanced_at = time.monotonic()
                elif live and time.monotonic() - advanced_at > read_timeout_s:
                    # no frame was due to the sampler: nothing was analysed, and the camera looked as if it sent
                    # nothing (offline, then lost as a read that hangs), however long its clock stood still
                    raise SourceError(f"{url}: its frames' time has stood still for {read_timeout_s:g} s: the "
                                      "source's clock (its stream's timestamps) is stuck; read again")
                if t < last_t:  # the stream's clock restarted or stepped back (a looped file, a camera's
                    # clock reset): go on from the last frame; from 0 the sampler waited (and analysed
                    # nothing) until the stream caught up with where it had been, hours on a live camera
                    first, t = frame.time - last_t - CLOCK_STEP_S, last_t + CLOCK_STEP_S
                last_t = t
                if sampler.due(t):
                    yield t, pixels(frame)
        except av.ExitError:  # PyAV's interrupt: a read of a file, or with ``bound_reads``, went on too long
            raise SourceError(f"{url}: read failed: no packet within {read_timeout_s:g} s") from None
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{url}: read failed: {ffmpeg_said(exc)}") from None
    finally:
        container.close()
