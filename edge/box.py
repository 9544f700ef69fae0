"""The edge box process: one worker thread per camera, one shared detector, one publisher.

A camera that fails reconnects with capped exponential backoff and jitter and never
stalls the others. Incidents go through the outbox (edge/publisher.py).
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field

from edge.config import Camera, EdgeConfig
from edge.detector import Detector, load_detector
from edge.pipeline import CameraPipeline, Outgoing
from edge.publisher import Outbox, Publisher
from edge.source import SourceError, open_frames

log = logging.getLogger(__name__)

CAMERA_LOST_AFTER_S = 60.0
HEARTBEAT_S = 10.0


def backoff(attempt: int, base: float = 1.0, cap: float = 30.0, rand: float = 0.5) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, ...): capped exponential with jitter.

    ``rand`` in [0, 1) picks the jitter, so the function stays pure.

    >>> [round(backoff(a, rand=0.5), 2) for a in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 30.0]
    """
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + rand)


@dataclass
class CameraHealth:
    state: str = "connecting"  # online / reconnecting / offline
    analysed: int = 0
    reconnects: int = 0
    last_frame_at: float | None = None
    last_error: str | None = None
    infer_ms: float = 0.0
    since: float = field(default_factory=time.time)


def to_wire(out: Outgoing) -> list[tuple[str, bytes]]:
    """Evidence first, then the incident that refers to it."""
    from xueliang import wire

    incident_topic, evidence_topic = out.topics
    items = [(evidence_topic, out.evidence)] if out.evidence else []
    return items + [(incident_topic, wire.encode_incident(out.message))]


class CameraWorker(threading.Thread):
    def __init__(self, config: EdgeConfig, camera: Camera, detector: Detector, publisher: Publisher,
                 stop: threading.Event):
        super().__init__(name=f"camera-{camera.id}", daemon=True)
        self.camera, self.publisher, self.stop = camera, publisher, stop
        self.pipeline = CameraPipeline(config, camera, detector)
        self.health = CameraHealth()

    def _emit(self, outs: list[Outgoing]) -> None:
        for out in outs:
            log.info("incident %s %s camera=%s zone=%s", out.message["state"], out.message["incident_id"],
                     out.message["camera"], out.message["zone"])
            self.publisher.send(to_wire(out))

    def run(self) -> None:
        attempt, lost_since = 0, None
        while not self.stop.is_set():
            try:
                base = None
                for rel, image in open_frames(self.camera.url, self.camera.open_timeout_s,
                                              self.camera.read_timeout_s, self.camera.analysis_interval_s):
                    if self.stop.is_set():
                        return
                    base = time.time() - rel if base is None else base
                    if self.health.state != "online":
                        log.info("camera %s online", self.camera.id)
                    self.health.state, attempt, lost_since = "online", 0, None
                    started = time.perf_counter()
                    self._emit(self.pipeline.analyse(base + rel, image))
                    self.health.infer_ms = round((time.perf_counter() - started) * 1000, 1)
                    self.health.analysed += 1
                    self.health.last_frame_at = time.time()
                raise SourceError(f"{self.camera.url}: stream ended")
            except SourceError as exc:
                self.health.last_error = str(exc)
            except Exception as exc:  # one bad frame or bug must not kill the camera for good
                log.exception("camera %s failed", self.camera.id)
                self.health.last_error = f"{type(exc).__name__}: {exc}"
            attempt += 1
            self.health.reconnects += 1
            lost_since = lost_since or time.time()
            self.health.state = "reconnecting" if time.time() - lost_since < CAMERA_LOST_AFTER_S else "offline"
            if self.health.state == "offline" and self.pipeline.rules:
                self._emit(self.pipeline.close(time.time(), "camera_lost"))
            delay = backoff(attempt, rand=random.random())
            log.warning("camera %s %s (%s); retry in %.1fs", self.camera.id, self.health.state,
                        self.health.last_error, delay)
            self.stop.wait(delay)


def status(box: str, workers: list[CameraWorker], pending: int) -> dict:
    return {
        "box": box,
        "state": "online",
        "at": time.time(),
        "outbox_pending": pending,
        "cameras": {w.camera.id: {"state": w.health.state, "analysed": w.health.analysed,
                                  "reconnects": w.health.reconnects, "infer_ms": w.health.infer_ms,
                                  "last_error": w.health.last_error} for w in workers},
    }


def run_box(config: EdgeConfig) -> int:
    detector = load_detector(config.detection.model)
    outbox = Outbox(config.data_dir / f"{config.box}.outbox.sqlite")
    publisher = Publisher(config.box, config.broker, outbox)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    workers = [CameraWorker(config, cam, detector, publisher, stop) for cam in config.cameras]
    publisher.status = status(config.box, workers, outbox.pending())
    publisher.start()
    log.info("box %s: %d camera(s), %d message(s) pending in the outbox", config.box, len(workers), outbox.pending())
    for w in workers:
        w.start()
    while not stop.wait(HEARTBEAT_S):
        publisher.publish_status(status(config.box, workers, outbox.pending()))
    for w in workers:
        w.join(timeout=5)
    publisher.stop()
    outbox.close()
    return 0
