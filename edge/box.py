"""The edge box process: camera readers apart from inference, one shared detector, one publisher.

Each camera has a reader thread (I/O and decoding only) that leaves its latest sampled
frame in a slot; a camera that hangs, floods or changes resolution only ever fills its
own slot. One analyser thread takes the frames of all cameras that are ready, runs the
detector passes they need through one onnxruntime session, then each camera's tracking
and rules. Incidents go through the outbox (edge/publisher.py); edge/outboxfile.py opens its
file at start (one that is not an outbox moved aside, a full disk's kept in memory until there
is room).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import random
import signal
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from edge.alignment import SIZE as VIEW_SIZE
from edge.config import Camera, ConfigError, EdgeConfig, Rules, is_pipe, is_rtsp
from edge.detector import Detector, load_detectors, min_scores, run_passes
from edge.ledger import adopt_file, end_left_open, old_file
from edge.pipeline import CameraPipeline, Outgoing
from edge.outboxfile import keep_outbox, open_outbox, pending_words
from edge.publisher import BOOT, Publisher, on_boot_clock
from edge.source import Damage, SourceError, anchor, file_end, frame_spacing, open_bound_s, open_camera, packet_wait_s
from edge.suppression import Suppressions
from xueliang import wire
from xueliang.passwords import without_password

log = logging.getLogger(__name__)

CAMERA_LOST_AFTER_S = 60.0  # then its open incidents end with camera_lost and an offline fault opens
MAX_ABANDONED_READS = 2  # a camera's hung reads left to end on their own, at most; a pipe's none (CameraReader.replace)
BACKOFF_CAP_S = 1.5  # the longest wait before a camera is tried again, less its jitter (backoff)
# a camera's try is taken for hung only this share and these seconds past its bound (hang_limit): on a very busy box
# the steps of a slow open that fails run past their timeouts a little (a thread waits for the CPU between them)
HANG_MARGIN, HANG_MARGIN_S = 0.1, 2.0
OFFLINE_AFTER_S = 8.0  # no frame for this long: the camera is reported offline
# or for this many of its analysis intervals, where longer: a camera analysed once a minute (analysis_interval_s 60)
# gives its reader a frame a minute, and was reported offline between two, and lost and read afresh at each
MISSED_FRAMES = 2
FILE_AGAIN_S = 0.5  # a file camera's pass takes at least this (a file of one frame is no busy loop)
READER_NICE = 15  # camera readers yield the CPU to the analyser
READER_START_GAP_S = 0.1
# Every RTSP packet (25/s per camera) needs the GIL for a moment in its reader; with Python's
# default 5 ms switch interval a busy analyser lets only ~200 of them through a second, readers
# fall behind, and a shared RTSP mount stalls for all its clients. 1 ms keeps them flowing.
GIL_SWITCH_INTERVAL_S = 0.001
REPEAT_LOG_S = 60.0  # a camera's failure repeated as it was (a directory for a url) is logged at most this often
WINDOW_MAX = 2048  # analysis times kept per camera for frames/s (30 s at up to ~60 analysed frames/s)


_BOX_EPOCH = time.time() - time.monotonic()


def box_now() -> float:
    """The box's own clock: the wall clock as it read when the box started, run on by the monotonic clock.

    The rules' times (a dwell, a persistence, a clear) and the cameras' health run on it, so a step of the
    wall clock (NTP correcting a box that booted with a stale clock, or setting it back) neither freezes them
    nor ages every camera at once; the times on the wire are this clock re-read on the wall clock's current
    time (``wall_offset``). Set back an hour, the wall clock had pinned every live camera's frames to the last
    frame's time for that hour: no incident started or ended."""
    return time.monotonic() + _BOX_EPOCH


def wall_offset(gateway_offset: float = 0.0) -> float:
    """What to add to a time on the box's clock for the time on the wire now: the wall clock's (0 until it steps),
    moved by ``gateway_offset`` (``Publisher.gateway_offset()``: the gateways' clock less the wall clock's where the
    two differ by more than a gateway accepts, else 0)."""
    return time.time() + gateway_offset - box_now()


def worth_saying(said: tuple[str, str, float] | None, state: str, error: str, now: float) -> bool:
    """Whether a camera's failure is logged at WARNING: its first, a change of state or of error, and the same
    again once ``REPEAT_LOG_S`` passed since it was last said; the rest at DEBUG (still tried as often). A camera
    whose url was a directory failed every 1.5 s: 40 warnings a minute.

    >>> said = ("reconnecting", "refused", 0.0)
    >>> [worth_saying(None, "reconnecting", "refused", 0.0), worth_saying(said, "reconnecting", "refused", 59.0)]
    [True, False]
    >>> [worth_saying(said, "offline", "refused", 1.0), worth_saying(said, "reconnecting", "401", 1.0),
    ...  worth_saying(said, "reconnecting", "refused", 60.0)]
    [True, True, True]
    """
    return said is None or said[:2] != (state, error) or now - said[2] >= REPEAT_LOG_S


def backoff(attempt: int, base: float = 0.5, cap: float = BACKOFF_CAP_S, rand: float = 0.5) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, ...): capped exponential, +-25% jitter.

    The cap is low on purpose: a camera must be back within seconds of its return, and a
    failed RTSP attempt costs almost nothing. ``rand`` in [0, 1) picks the jitter, so the
    function stays pure.

    >>> [round(backoff(a, rand=0.5), 2) for a in (1, 2, 3, 10)]
    [0.5, 1.0, 1.5, 1.5]
    """
    return min(cap, base * 2 ** (attempt - 1)) * (0.75 + 0.5 * rand)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.analysed = Counter("xl_edge_frames_analysed", "Sampled frames analysed", ["camera"], registry=r)
        self.passes = Counter("xl_edge_detector_passes", "Frames that went through the detector", ["camera"], registry=r)
        self.dropped = Counter("xl_edge_frames_dropped", "Sampled frames replaced before analysis", ["camera"], registry=r)
        self.reconnects = Counter("xl_edge_reconnects", "Camera reconnect attempts", ["camera"], registry=r)
        self.online = Gauge("xl_edge_camera_online", "1 when the camera delivers frames", ["camera"], registry=r)
        self.view_shift = Gauge("xl_edge_view_shift_ratio", "How far the picture moved since the camera came up, "
                                "as a share of its width (x) or height (y); the zones follow it", ["camera", "axis"],
                                registry=r)
        self.view_angle = Gauge("xl_edge_view_angle_degrees", "How far the picture turned since the camera came up "
                                "(knocked so that it rolled); the zones follow it", ["camera"], registry=r)
        self.decode = Histogram("xl_edge_decode_seconds", "Reader CPU time per sampled frame", ["camera"], registry=r,
                                buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1))
        self.infer = Histogram("xl_edge_inference_seconds", "Detector time per analyser round", registry=r,
                               buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2))
        self.pending = Gauge("xl_edge_outbox_pending", "Messages waiting for a gateway's confirmation", registry=r)
        self.unconfirmed = Gauge("xl_edge_outbox_unconfirmed", "Messages sent, not yet confirmed by a gateway", registry=r)
        self.oldest = Gauge("xl_edge_outbox_oldest_seconds", "Age of the oldest message no gateway confirmed", registry=r)
        self.resent = Gauge("xl_edge_outbox_resent", "Messages sent again for want of a confirmation, since start",
                            registry=r)
        self.unrouted = Gauge("xl_edge_outbox_unrouted", "Sends the broker gave to no subscriber (no gateway "
                              "subscribed, e.g. just after a broker restart), since start", registry=r)
        self.gateway_dead_letters = Gauge("xl_edge_gateway_dead_letters", "Messages a gateway set aside as dead "
                                          "letters, since start", registry=r)
        self.incidents = Counter("xl_edge_incident_events", "Incident events queued", ["type", "state"], registry=r)


@dataclass
class CameraHealth:
    state: str = "connecting"  # connecting / online / reconnecting / offline
    last_frame_at: float | None = None
    tried_at: float | None = None  # when its reader last began to open it
    started_at: float = field(default_factory=box_now)  # health times are on the box's clock (box_now)
    frame_interval_s: float = 0.0  # its analysis_interval_s: its reader gives a frame this often
    analysed: int = 0
    detector_passes: int = 0
    reconnects: int = 0
    dropped: int = 0
    decode_ms: float = 0.0
    infer_ms: float = 0.0
    faults: list[str] = field(default_factory=list)
    view_shift: tuple[float, float] = (0.0, 0.0)  # Alignment.shift: a camera knocked off since it came up
    view_angle: float = 0.0  # Alignment.angle: degrees it rolled, knocked
    last_error: str | None = None
    # when (box clock): kept once the camera is back, so a camera that comes and goes still says why, and
    # last_error_at tells an operator it is an old error
    last_error_at: float | None = None
    # recent analysis times, for frames/s: only the analyser writes it (appends; the bound drops the oldest),
    # the heartbeat only reads it
    window: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW_MAX))
    last_analysed_at: float | None = None
    max_gap_s: float = 0.0  # longest wait between two analysed frames since the last heartbeat

    def reported_state(self, now: float) -> str:
        """``offline`` once no frame came for OFFLINE_AFTER_S (or ``MISSED_FRAMES`` of its frame intervals, where
        longer), even while a read or open still hangs.

        >>> once_a_minute = CameraHealth(state="online", last_frame_at=100.0, frame_interval_s=60.0)
        >>> once_a_minute.reported_state(150.0), once_a_minute.reported_state(221.0)
        ('online', 'offline')
        >>> CameraHealth(state="online", last_frame_at=100.0, frame_interval_s=1.0).reported_state(109.0)
        'offline'
        """
        last = self.last_frame_at or self.started_at
        return "offline" if now - last > self.offline_after_s() else self.state

    def offline_after_s(self) -> float:
        """How long without a frame before the camera is reported offline."""
        return max(OFFLINE_AFTER_S, MISSED_FRAMES * self.frame_interval_s)

    def failed(self, error: str, now: float) -> None:
        self.last_error, self.last_error_at = error, now

    def waiting(self, now: float) -> bool:
        """Reported offline with nothing said: its reader has not failed since its last frame or its start, but is
        still in an open or a read (a pipe no one writes to), until ``hung`` finds it."""
        return self.reported_state(now) == "offline" and self.state in ("connecting", "online")

    def error(self, now: float) -> tuple[str | None, float | None]:
        """The error the heartbeat reports, and when (box clock): the last, or what a camera ``waiting`` waits on.

        >>> h = CameraHealth(state="online", last_frame_at=100.0, last_error="refused", last_error_at=50.0)
        >>> h.error(now=105.0)
        ('refused', 50.0)
        >>> reason, since = h.error(now=130.0)  # its read has not returned for 30 s: reported offline since 108
        >>> reason.split(" (")[0], since
        ('no frame for 30 s and no error: its open or read has not returned', 108.0)
        """
        if self.waiting(now):
            since = self.last_frame_at or self.started_at
            # a box starting 36 cameras at once on a busy core said so of every camera 10 s in, its sources sending
            return (f"no frame for {now - since:.0f} s and no error: its open or read has not returned (a source that "
                    "sends nothing, or the box too busy to read it yet)", since + self.offline_after_s())
        return self.last_error, self.last_error_at

    def fps(self, now: float, span: float = 30.0) -> float:
        return round(sum(1 for t in list(self.window) if now - t <= span) / span, 3)


@dataclass(frozen=True)
class Lost:
    """A camera's slot mark: lost (its incidents end camera_lost and an offline fault opens), and why: its reader's
    last error, which the fault carries."""

    reason: str | None


class Slots:
    """The latest sampled frame (or a ``Lost`` mark) per camera; a newer one replaces an older."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, object]] = {}
        self._cond = threading.Condition()

    def put(self, camera: str, t: float, item: object) -> bool:
        """Store; returns True when an unanalysed frame was replaced."""
        with self._cond:
            replaced = camera in self._items and not isinstance(self._items[camera][1], Lost)
            self._items[camera] = (t, item)
            self._cond.notify()
            return replaced

    def take_all(self, timeout: float) -> dict[str, tuple[float, object]]:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            items, self._items = self._items, {}
            return items

    def depth(self) -> int:
        with self._cond:
            return len(self._items)


class CameraReader:
    """Pulls one camera in a thread of its own: open, sample, reconnect with backoff. Never touches the detector.

    A read that hangs without failing (a server that keeps the session alive and sends no picture: FFmpeg's
    socket timeout is reset by every byte; a pipe no one writes to) cannot be interrupted from outside, and
    bounding every camera's every read with PyAV's interrupt costs each of them GIL time. ``replace`` leaves
    such a read to end on its own and reads the camera afresh in a new thread, from then on with each read
    bounded (``bound_reads``): a camera that hung once pays that cost, and its RTSP reads cannot hang again. A
    generation number makes whatever the old thread gets later (a frame, an error) count for nothing, and it
    ends there. A read the kernel holds no interrupt reaches: at most ``MAX_ABANDONED_READS`` of a camera's are
    left at a time; past that it waits for one of them to end. A pipe's read is never left: it is the camera's
    one read, and goes on when its writer writes.
    """

    def __init__(self, camera: Camera, slots: Slots, metrics: Metrics, stop: threading.Event, rules: Rules = Rules()):
        self.camera, self.slots, self.metrics, self.stop = camera, slots, metrics, stop
        self.rules = rules  # how far apart key frames may be (edge.source.keyframe_gap_limit)
        self.health = CameraHealth(frame_interval_s=camera.analysis_interval_s)
        self.generation = 0  # the reading thread's; a thread of an older one was left hung
        self._lock = threading.Lock()  # a thread checks its generation and writes under it
        self._thread: threading.Thread | None = None
        self._abandoned: list[threading.Thread] = []
        # carried from one thread to the next: reconnect attempts, since when the camera is lost, and the last
        # frame's time on the box's clock (a camera's clock never goes back)
        self._attempt, self._lost_since, self._last = 0, None, 0.0
        self._bound_reads = False  # once a read of the camera hung
        self._said: tuple[str, str, float] | None = None  # the failure last logged at WARNING: state, error, when
        self._unsaid = 0  # failures since, logged at DEBUG
        self._said_waiting = False
        # what its reads logged of a file (or a pipe) it reads again at each end: said once (``edge.source._say``)
        self._said_of_source: set[str] | None = None if is_rtsp(camera.url) else set()
        self._passes = 0  # a file camera's passes to its end: the first said at INFO, the rest at DEBUG

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, args=(self.generation,), daemon=True,
                                        name=f"camera-{self.camera.id}-{self.generation}")
        self._thread.start()

    def replace(self, now: float) -> bool:
        """Its read hangs (``hung`` at ``now``): mark the camera lost (its incidents end camera_lost and an offline
        fault opens, saying why), leave the hung read to end on its own and read the camera afresh in a new thread;
        whether it is read afresh. Not a pipe (a FIFO): the kernel gives each byte written to it to one of its
        readers, so a hung read left beside a fresh one took its share of the writer's bytes once the writer came
        back (the fresh one got 59 of 117 frames, the picture torn); a pipe's one read goes on when its writer
        writes (or ends, and its reader opens the pipe again). Nor while ``MAX_ABANDONED_READS`` of the camera's
        reads are still hung: it waits for one of them to end."""
        pipe = is_pipe(self.camera.url)
        with self._lock:  # under the reader's lock: a frame its read gives now comes after the lost mark, or before it
            h = self.health
            if not hung({self.camera.id: h}, now, {self.camera.id: self.camera}):
                return False  # its read gave a frame, or it tried again, since it was found
            error = self.hang_error(pipe)
            self.slots.put(self.camera.id, now, Lost(error))
            self._lost_since = self._lost_since or h.last_frame_at or h.started_at
            h.state, h.tried_at = "offline", now  # taken for hung again only past its limit again
            h.failed(error, now)
            self.metrics.online.labels(self.camera.id).set(0)
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            afresh = not pipe and len(self._abandoned) < MAX_ABANDONED_READS
            if afresh:
                if self._thread is not None:
                    self._abandoned.append(self._thread)
                self.generation += 1
                self._bound_reads = True
                h.reconnects += 1
                self.metrics.reconnects.labels(self.camera.id).inc()
        if afresh:
            log.warning("camera %s: no frame for %.0f s and its read hangs; reading it afresh, each read bounded "
                        "(%d hung read(s) left)", self.camera.id, hang_limit(self.camera), len(self._abandoned))
            self.start()
        elif pipe:
            log.warning("camera %s: no frame for %.0f s, its pipe's read waits for a writer; it reads on when one "
                        "writes (a second read of a pipe would take a share of its bytes)", self.camera.id,
                        hang_limit(self.camera))
        else:
            log.warning("camera %s: its read hangs, and %d earlier hung read(s) have not ended; waiting for one",
                        self.camera.id, len(self._abandoned))
        return afresh

    def hang_error(self, pipe: bool) -> str:
        return without_password(f"{self.camera.url}: no frame for {hang_limit(self.camera):g} s, the read hangs; "
                                + ("read on when the pipe's writer writes" if pipe else "read afresh"))

    def say_waiting(self, now: float) -> None:
        """Log once that the camera is offline with nothing said (``CameraHealth.waiting``): a pipe no one wrote to
        was offline a minute with no line in the log."""
        waiting = self.health.waiting(now)
        if waiting and not self._said_waiting:
            log.warning("camera %s offline: %s", self.camera.id, self.health.error(now)[0])
        self._said_waiting = waiting

    def _run(self, generation: int) -> None:
        # Readers (and the decoder threads FFmpeg starts from them) run at a lower priority than
        # the analyser: key frames of many cameras arrive in bursts, and the detector must not
        # wait for a dozen decoders sharing its core. Linux applies nice per thread.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICE)
        except OSError:
            pass
        cam = self.camera
        live, spacing = is_rtsp(cam.url), frame_spacing(cam, self.rules)
        while not self.stop.is_set() and generation == self.generation:
            frames, played, began, rel = None, False, 0.0, 0.0
            try:
                base, read = None, Damage()  # ``read``: how far its packets went (a file's end: ``file_end``)
                cpu = time.thread_time()
                self.health.tried_at = box_now()
                frames = open_camera(cam, self.rules, self._bound_reads, read, self._said_of_source)
                for rel, image in frames:
                    if self.stop.is_set():
                        return
                    now = box_now()
                    base = anchor(base, rel, now, live, self._last, spacing)
                    # a file plays in real time, as a camera would (read as fast as it could be, its incidents
                    # carried times a minute ahead of the wall clock after 30 s)
                    if not live and self.stop.wait(max(0.0, base + rel - now)):
                        return
                    with self._lock:
                        if generation != self.generation:  # left hung, and replaced
                            return
                        now = box_now()
                        self._last = base + rel
                        if self.health.state != "online":
                            log.info("camera %s online", cam.id)
                            self._said, self._unsaid = None, 0
                            self.metrics.online.labels(cam.id).set(1)
                        self.health.state, self._attempt, self._lost_since = "online", 0, None
                        self.health.last_frame_at = now
                        used = time.thread_time() - cpu
                        cpu += used
                        self.health.decode_ms = round(used * 1000, 2)
                        self.metrics.decode.labels(cam.id).observe(used)
                        if self.slots.put(cam.id, base + rel, image):
                            self.health.dropped += 1
                            self.metrics.dropped.labels(cam.id).inc()
                        began, played = began if played else base + rel, True
                if not live and played:  # a file played to its end is played again, as a camera goes on: no failure
                    # said once at INFO: a 1.5 s clip ends 40 times a minute, and a box may loop dozens of them
                    self._passes += 1
                    if self._passes == 1:
                        log.info("camera %s: its file played to its end; played again (and at each end after, "
                                 "logged at DEBUG)", cam.id)
                    else:
                        log.debug("camera %s: its file played to its end (%d times); played again", cam.id,
                                  self._passes)
                    end = max(file_end(self._last, rel, read.read_to_s, spacing), began + FILE_AGAIN_S)
                    if self.stop.wait(max(0.0, end - box_now())):
                        return
                    continue
                raise SourceError(f"{cam.url}: stream ended")
            except SourceError as exc:
                error = str(exc)
            except Exception as exc:  # a decoder bug on garbage input must not end the camera for good
                log.exception("camera %s reader failed", cam.id)
                error = without_password(f"{type(exc).__name__}: {exc}")
            finally:
                if frames is not None:
                    frames.close()
            with self._lock:
                if generation != self.generation:
                    return
                now = box_now()
                self.health.failed(error, now)
                self._attempt += 1
                self.health.reconnects += 1
                self.metrics.reconnects.labels(cam.id).inc()
                self.metrics.online.labels(cam.id).set(0)
                # lost counted from its last frame (or its start), as ``hung`` counts, not from this failure: an RTSP
                # read waits 15 s for a packet (KEY_FRAME_WAIT_S) before it fails, and a camera was lost 75 s on
                self._lost_since = self._lost_since or self.health.last_frame_at or self.health.started_at
                state = "reconnecting" if now - self._lost_since < CAMERA_LOST_AFTER_S else "offline"
                if state == "offline":
                    self.slots.put(cam.id, now, Lost(error))
                self.health.state = state
                delay = backoff(self._attempt, rand=random.random())
                loud = worth_saying(self._said, state, error, now)
                again = f" ({self._unsaid} more the same since it was last said)" if loud and self._unsaid else ""
                self._said, self._unsaid = ((state, error, now), 0) if loud else (self._said, self._unsaid + 1)
            log.log(logging.WARNING if loud else logging.DEBUG, "camera %s %s (%s); retry in %.1fs%s", cam.id, state,
                    error, delay, again)
            self.stop.wait(delay)


class Analyser(threading.Thread):
    """Runs every ready camera's detector passes through one session per model, then tracking and rules."""

    def __init__(self, config: EdgeConfig, detectors: dict[str, Detector], readers: dict[str, CameraReader], slots: Slots,
                 publisher: Publisher, metrics: Metrics, stop: threading.Event,
                 suppressions: Suppressions | None = None):
        super().__init__(name="analyser", daemon=True)
        self.detectors, self.readers, self.slots = detectors, readers, slots
        self.suppressions = suppressions or Suppressions()  # false alarms an operator rejected: not sent again
        self.publisher, self.metrics, self.stop = publisher, metrics, stop
        self.min_score = min_scores(config.detection)
        self.pipelines = {cam.id: CameraPipeline(config, cam, detectors) for cam in config.cameras}
        self.views = {cam.id: view_file(config.data_dir, cam) for cam in config.cameras}
        for cam_id, path in self.views.items():
            self.pipelines[cam_id].alignment.reference, self.pipelines[cam_id].first_shape = load_view(path)

    def _keep_view(self, cam_id: str) -> None:
        """The camera's first picture, once it has one, kept for its next start."""
        path, pipeline = self.views.get(cam_id), self.pipelines[cam_id]
        if path is None or pipeline.alignment.reference is None:
            return
        del self.views[cam_id]
        if not path.exists():
            save_view(path, pipeline.alignment.reference, pipeline.first_shape)

    def _emit(self, outs: list[Outgoing]) -> None:
        for out in outs:
            out = replace(out, message=on_boot_clock(out.message))  # made before the box knew the time: marked
            m = out.message
            if not self.suppressions.admit(m):
                continue
            log.info("incident %s %s %s camera=%s zone=%s", m["type"], m["state"], m["incident_id"], m["camera"], m["zone"])
            self.metrics.incidents.labels(m["type"], m["state"]).inc()
            self.publisher.send(to_wire(out))  # the outbox keeps it and, in the same write, the incident open or not

    def end_all(self, t: float) -> None:
        """The box stops: every camera's open incidents end (``box_stopped``), sent as any others are."""
        offset = wall_offset(self.publisher.gateway_offset())
        for pipeline in self.pipelines.values():
            pipeline.wall_offset = offset
            self._emit(pipeline.stop(t))

    def _detect(self, jobs: list[tuple]) -> tuple[list[tuple], list[sv.Detections]]:
        """Every camera's passes in one batch per model; where the batch fails, each camera's alone,
        so a frame the detector refuses costs only its camera that frame (it ended the analyser,
        and with it every camera's analysis)."""
        try:
            return jobs, run_passes(self.detectors, [x for *_, plan in jobs for x in plan], self.min_score)
        except Exception:
            kept, results = [], []
            for job in jobs:
                try:
                    results += run_passes(self.detectors, job[3], self.min_score)
                    kept.append(job)
                except Exception:
                    log.exception("camera %s: detection failed", job[0])
            return kept, results

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._round()
            except Exception:  # a fault of one round must not end every camera's analysis
                log.exception("analysis round failed")

    def _round(self) -> None:
        """Analyse the frames the cameras have ready: one batch per model, then each camera's rules."""
        ready = self.slots.take_all(timeout=0.5)
        jobs = []
        offset = wall_offset(self.publisher.gateway_offset())
        for cam_id, (t, item) in ready.items():
            pipeline = self.pipelines[cam_id]
            pipeline.wall_offset = offset
            if isinstance(item, Lost):
                self._emit(pipeline.camera_lost(t, item.reason))
                self.readers[cam_id].health.faults = pipeline.open_faults  # ended, camera_lost
                continue
            try:
                jobs.append((cam_id, t, item, pipeline.plan(t, item)))
            except Exception:  # one camera's bad frame must not stop the others
                log.exception("camera %s: analysis failed", cam_id)
        if not jobs:
            return
        started = time.perf_counter()
        jobs, results = self._detect(jobs)
        took = time.perf_counter() - started
        self.metrics.infer.observe(took)
        i = 0
        observed = time.perf_counter()
        rules_s: dict[str, float] = {}
        for cam_id, t, image, plan in jobs:
            parts, i = results[i:i + len(plan)], i + len(plan)
            began = time.perf_counter()
            try:
                self._emit(self.pipelines[cam_id].observe(t, image, parts))
            except Exception:  # one camera's bad frame must not stop the others
                log.exception("camera %s: analysis failed", cam_id)
                continue
            finally:
                rules_s[cam_id] = time.perf_counter() - began
            h = self.readers[cam_id].health
            now = box_now()
            h.analysed += 1
            h.window.append(now)
            if h.last_analysed_at is not None:
                h.max_gap_s = max(h.max_gap_s, now - h.last_analysed_at)
            h.last_analysed_at = now
            h.detector_passes = self.pipelines[cam_id].detector_passes
            h.faults = self.pipelines[cam_id].open_faults
            self._keep_view(cam_id)
            shift, angle = self.pipelines[cam_id].alignment.shift, self.pipelines[cam_id].alignment.angle
            if shift != h.view_shift or angle != h.view_angle:
                h.view_shift, h.view_angle = shift, angle
                for axis, value in zip("xy", shift):
                    self.metrics.view_shift.labels(cam_id, axis).set(value)
                self.metrics.view_angle.labels(cam_id).set(angle)
            h.infer_ms = round(took * 1000 / max(1, len(jobs)), 1)
            self.metrics.analysed.labels(cam_id).inc()
            if plan:
                self.metrics.passes.labels(cam_id).inc()
        done = time.perf_counter()
        if done - started > 1.0:
            images = sum(len(plan) for *_, plan in jobs)
            # each camera's share: of the detector's time as of its images, and its own rules and evidence
            costs = sorted(((took * len(plan) / max(1, images) + rules_s.get(cam_id, 0.0), cam_id, len(plan))
                            for cam_id, *_, plan in jobs), reverse=True)
            log.warning("slow analysis round: %d camera(s), %d detector image(s) %.2fs, rules and evidence %.2fs; "
                        "the costliest: %s", len(jobs), images, took, done - observed,
                        ", ".join(f"{cam_id} ({n} image(s), rules and evidence {rules_s.get(cam_id, 0.0):.2f}s)"
                                  for _, cam_id, n in costs[:3]))


def view_file(data_dir: Path, camera: Camera) -> Path:
    """Where the box keeps a camera's first picture (``Alignment.reference``), named by what it goes with:
    the camera and its zones (zones drawn again are drawn on another picture: a new first one). Not its
    address: a camera replaced on its pole, or a stream moved to another port, still watches the ground
    its zones were drawn on."""
    key = json.dumps([zone.polygon for zone in camera.zones])
    return data_dir / "views" / f"{camera.id}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.png"


def load_view(path: Path) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """A kept first picture and the size the camera's pictures had then (None for a view kept before sizes were,
    or unreadable), or (None, None): none kept, or unreadable (the camera's next first picture is)."""
    if not path.exists():
        return None, None
    picture = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if picture is None or picture.shape != VIEW_SIZE[::-1]:
        log.warning("%s: not a kept camera view (%s); the camera's next picture is its view", path,
                    "unreadable" if picture is None else f"{picture.shape[1]}x{picture.shape[0]}")
        return None, None
    return picture.astype(np.float32), kept_size(path.with_suffix(".json"))


def kept_size(path: Path) -> tuple[int, int] | None:
    """The picture size kept beside a view (``{"picture_size": [width, height]}``), None where there is none that
    can be read: the camera's next picture's size is taken for its first."""
    try:
        width, height = json.loads(path.read_text())["picture_size"]
        if type(width) is type(height) is int and 0 < width <= 1 << 16 and 0 < height <= 1 << 16:  # true is an int
            return width, height
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, RecursionError):  # RecursionError: JSON nested too deep
        pass
    log.warning("%s: not a kept picture size; the camera's next picture's size is its first", path)
    return None


def save_view(path: Path, picture: np.ndarray, size: tuple[int, int] | None) -> None:
    """Keep a camera's first picture and its size (a box started again after the camera's stream was cropped to
    another shape took the cropped one for its first, and its zones lay on other ground unseen); a disk that
    refuses it costs only the next start's comparison."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            part = path.with_suffix(".part.json")
            part.write_text(json.dumps({"picture_size": list(size)}))
            part.replace(path.with_suffix(".json"))
        part = path.with_suffix(".part.png")
        if not cv2.imwrite(str(part), np.clip(picture, 0, 255).astype(np.uint8)):
            raise OSError("the image could not be written")
        part.replace(path)
    except OSError as exc:
        log.warning("%s: camera view not kept: %s", path, exc)


def to_wire(out: Outgoing) -> list[tuple[str, bytes]]:
    """Evidence first (the frame as the camera gave it, then the snapshot), then the incident that refers to them."""
    incident_topic, evidence_topic = out.topics
    items = [(evidence_topic, jpeg) for jpeg in (out.frame, out.evidence) if jpeg]
    return items + [(incident_topic, wire.encode_incident(out.message))]


def zone_grids(camera: Camera) -> list[str]:
    """The grids a camera's zones name other than its own (a zone on a neighbouring grid's street), for the heartbeat:
    that grid's operators see the box too."""
    return sorted({z.grid for z in camera.zones if z.grid and z.grid != camera.grid})


_SEQ = itertools.count(1)  # its heartbeats' ``seq``, 1 at each start


def status(box: str, readers: dict[str, CameraReader], slots: Slots, delivery: dict,
           suppressions: Suppressions | None = None, heartbeat_s: float = wire.HEARTBEAT_S) -> dict:
    """The heartbeat (``delivery``: Publisher.delivery()); per-camera ``max_gap_s`` starts again after each one.
    ``heartbeat_s``: when the next one is due (a gateway takes the box for silent after three missed). Each camera
    says its grid (its config's): a gateway shows an operator the boxes with a camera in the operator's grids.
    ``boot`` (this start, random) and ``seq`` (1, 2, ... from each start) order the box's heartbeats without its wall
    clock, with the ``link`` the publisher adds as it sends one: a gateway keeps a later one of the same start that
    another gateway wrote first."""
    now = box_now()
    wall = time.time() - now  # box clock to wall clock

    def error(h: CameraHealth) -> dict:
        text, at = h.error(now)
        return {"last_error": text, "last_error_at": wire.iso(at + wall) if at is not None else None}

    body = {
        "box": box,
        "state": "online",
        "at": wire.iso(time.time()),
        "boot": BOOT,
        "seq": next(_SEQ),
        "heartbeat_s": heartbeat_s,
        **delivery,
        **(suppressions or Suppressions()).status(),
        "queue_depth": slots.depth(),
        "cameras": {cid: {"grid": r.camera.grid, "zone_grids": zone_grids(r.camera),
                          "state": r.health.reported_state(now), "faults": r.health.faults,
                          "analysed_fps": r.health.fps(now), "analysed": r.health.analysed,
                          "detector_passes": r.health.detector_passes,
                          "decode_ms": r.health.decode_ms, "inference_ms": r.health.infer_ms,
                          "max_gap_s": round(r.health.max_gap_s, 2),
                          "view_shift_pct": [round(100 * v, 1) for v in r.health.view_shift],
                          "view_angle_deg": round(r.health.view_angle, 1),
                          "dropped": r.health.dropped, "reconnects": r.health.reconnects,
                          **error(r.health)} for cid, r in readers.items()},
    }
    for r in readers.values():
        r.health.max_gap_s = 0.0
    return body


def hang_limit(camera: Camera) -> float:
    """How long a camera's reader may go without a frame and without trying the camera again before its read is
    taken for hung: ``CAMERA_LOST_AFTER_S``, or longer where one try of its own can take longer while each of its
    reads ends in its time: an open (PyAV bounds its set-up, then its probe of the streams, by ``open_timeout_s``
    each, an RTSP camera's by its wait for a key frame too: ``open_bound_s``), a first read that gets nothing
    (``read_timeout_s``, an RTSP camera's ``packet_wait_s``), then the longest backoff, and a margin for a busy
    box (``HANG_MARGIN``: it had none, and a slow open run over its time was taken for hung); or where its reader
    gives a frame only every ``analysis_interval_s``, ``MISSED_FRAMES`` of them.

    >>> hang_limit(Camera(id="c", url="rtsp://x", grid="G-1")), hang_limit(Camera(id="c", url="rtsp://x",
    ...                                                                           grid="G-1", open_timeout_s=60))
    (60.0, 152.5625)
    >>> hang_limit(Camera(id="c", url="rtsp://x", grid="G-1", read_timeout_s=25))  # 25 s for a key frame
    88.7625
    >>> hang_limit(Camera(id="c", url="rtsp://x", grid="G-1", analysis_interval_s=60))
    120.0
    """
    a_try = 2 * open_bound_s(camera.url, camera.open_timeout_s, camera.read_timeout_s) \
        + packet_wait_s(camera.url, camera.read_timeout_s) + 1.25 * BACKOFF_CAP_S
    return max(CAMERA_LOST_AFTER_S, (1 + HANG_MARGIN) * a_try + HANG_MARGIN_S,
               MISSED_FRAMES * camera.analysis_interval_s)


def hung(healths: dict[str, CameraHealth], now: float, cameras: dict[str, Camera] | None = None) -> list[str]:
    """The cameras whose reader has had no frame for ``CAMERA_LOST_AFTER_S`` and has not tried to open it again
    since then either: a read that hangs (a server that keeps the connection alive and sends no picture, a pipe
    no one writes to) raises nothing, so the reader never marks the camera lost itself, nor reconnects; it was
    reported offline, no fault opened, and it stayed down until the box restarted. A reader that fails tries
    again within seconds; one whose tries take longer than that (``cameras``: its config; ``hang_limit``: a
    slow open that fails, a read that gets nothing, the backoff after them) is hung only past its own limit.
    Taken for hung within it (its limit was its ``open_timeout_s`` alone), a camera whose every open and read
    ended in its time was marked lost and read afresh between two of its tries, its working reader left behind.

    >>> ok, stuck = CameraHealth(state="online", last_frame_at=100.0), CameraHealth(state="online", last_frame_at=10.0)
    >>> failing = CameraHealth(state="offline", last_frame_at=10.0, tried_at=119.0)
    >>> hung({"a": ok, "b": stuck, "c": failing, "d": CameraHealth(tried_at=50.0, started_at=0.0)}, now=120.0)
    ['b', 'd']

    A camera given 60 s to open whose open began at 0, failed at 120 (set-up and probe), got nothing for 15 s (an
    RTSP camera's wait for a key frame), and waits out its backoff (to 137), later on a busy box, is not hung; past
    its try, its backoff and their margin, it is:

    >>> slow = {"slow": Camera(id="slow", url="rtsp://x", grid="G-1", open_timeout_s=60, read_timeout_s=5)}
    >>> opening = CameraHealth(tried_at=0.0, started_at=0.0)
    >>> hung({"slow": opening}, now=152.0, cameras=slow), hung({"slow": opening}, now=153.0, cameras=slow)
    ([], ['slow'])
    """
    cameras = cameras or {}
    return [cam_id for cam_id, h in healths.items()
            if now - max(h.last_frame_at or h.started_at, h.tried_at or 0.0)
            > (hang_limit(cameras[cam_id]) if cam_id in cameras else CAMERA_LOST_AFTER_S)]


def look_after(readers: dict[str, CameraReader], now: float) -> None:
    """Each hung camera is lost (its incidents end camera_lost and an offline fault opens, as on a failure) and
    read afresh, or a pipe's read left to go on (``CameraReader.replace``), so it comes back when its source does."""
    for reader in readers.values():
        reader.say_waiting(now)
    for cam_id in hung({cid: r.health for cid, r in readers.items()}, now,
                       {cid: r.camera for cid, r in readers.items()}):
        readers[cam_id].replace(now)


def run_box(config: EdgeConfig) -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    detectors = load_detectors(config)
    outbox = open_outbox(config)
    try:
        publisher = Publisher(config.box, config.broker, outbox)
    except (OSError, ssl.SSLError) as exc:  # tls_ca missing, unreadable or not a certificate
        raise ConfigError(f"broker tls_ca {config.broker.tls_ca}: cannot be used as the CA certificate "
                          f"({exc.strerror or exc})") from None
    metrics = Metrics()
    if config.metrics_port:
        try:
            start_http_server(config.metrics_port, addr="127.0.0.1", registry=metrics.registry)
        except OSError as exc:
            raise ConfigError(f"metrics_port {config.metrics_port}: cannot serve metrics on 127.0.0.1 "
                              f"({exc.strerror or exc})") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    slots = Slots()
    readers = {cam.id: CameraReader(cam, slots, metrics, stop, config.rules) for cam in config.cameras}
    suppressions = Suppressions()
    publisher.listen(wire.suppressions_topic(config.box), lambda payload: suppressions.on_payload(payload, time.time()))
    # open when the box was last stopped short: nobody watched them since. An outbox kept in memory (its disk full)
    # holds none: its file's are ended once it is written there (keep_outbox)
    if outbox.path is not None:
        adopt_file(outbox, old_file(config))
    end_left_open(config.box, publisher, outbox.open_incidents(), time.monotonic())
    analyser = Analyser(config, detectors, readers, slots, publisher, metrics, stop, suppressions)
    publisher.status = status(config.box, readers, slots, publisher.delivery(time.time()), suppressions,
                              config.heartbeat_s)
    publisher.start()
    log.info("box %s: %d camera(s), %s", config.box, len(readers), pending_words(config, outbox))
    analyser.start()
    for r in readers.values():  # a little apart: dozens of RTSP set-ups at once overwhelm an NVR (and the box)
        r.start()
        stop.wait(READER_START_GAP_S)
    while not stop.wait(config.heartbeat_s):
        now = box_now()
        look_after(readers, now)
        keep_outbox(config, publisher)
        publisher.write_unwritten()  # what a full disk held back, once it has room
        publisher.watch_wall()  # NTP set the clock right: this boot's time, for a later boot's re-stamping
        delivery = publisher.delivery(time.time())
        for gauge, key in ((metrics.pending, "outbox_pending"), (metrics.unconfirmed, "outbox_unconfirmed"),
                           (metrics.oldest, "outbox_oldest_s"), (metrics.resent, "outbox_resent"),
                           (metrics.unrouted, "outbox_unrouted"), (metrics.gateway_dead_letters, "gateway_dead_letters")):
            gauge.set(delivery[key])
        publisher.publish_status(status(config.box, readers, slots, delivery, suppressions, config.heartbeat_s))
    analyser.join(timeout=2)
    if not analyser.is_alive():  # else the next start ends them, as the outbox holds them open
        analyser.end_all(box_now())
    publisher.stop(timeout=2)  # what no gateway confirmed by then stays in the outbox for next time
    if publisher.outbox.path is None and (lost := publisher.outbox.pending()):
        log.error("outbox never written (its disk had no room): %d message(s) no gateway confirmed are lost", lost)
    publisher.outbox.close()
    return 0
