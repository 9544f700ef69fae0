"""One camera's analysis: detector -> tracker -> zone rules -> incident messages with evidence.

``CameraPipeline.analyse(t, image)`` is the whole per-frame step; it does no network I/O,
so replay, the live box and tests drive the same code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import supervision as sv

from edge.config import Camera, EdgeConfig, Zone
from edge.detector import Detector, crop_regions, detect_frame
from edge.evidence import snapshot
from edge.rules import DwellRule, EndReason, Event, Sighting, point_in_polygon
from edge.tracker import make_tracker, track
from xueliang import wire


@dataclass(frozen=True)
class Outgoing:
    """An incident message and, for start and end, its evidence JPEG."""

    message: dict
    evidence: bytes | None

    @property
    def topics(self) -> tuple[str, str]:
        m = self.message
        return wire.incident_topic(m["box"], m["camera"]), wire.evidence_topic(m["box"], m["camera"], m["incident_id"])


class CameraPipeline:
    def __init__(self, config: EdgeConfig, camera: Camera, detector: Detector):
        self.box, self.camera, self.detector = config.box, camera, detector
        self.detection, rules = config.detection, config.rules
        self.tracker = make_tracker(camera.analysis_interval_s, self.detection.min_score, rules.gap_s)
        self.rules: list[tuple[Zone, DwellRule]] = [
            (zone, DwellRule(f"{config.box}/{camera.id}/{zone.id}", zone.dwell_s, rules.still_tolerance,
                             rules.gap_s, rules.update_interval_s))
            for zone in camera.zones if "illegal_parking" in zone.types
        ]
        self._regions: list | None = None
        self._shape: tuple[int, int] | None = None
        self._last_t = float("-inf")
        self._last_image: np.ndarray | None = None

    def _crops(self, width: int, height: int) -> list:
        if self._shape != (width, height):  # first frame, or the camera changed resolution
            self._shape = (width, height)
            polys = [z.polygon for z, _ in self.rules]
            self._regions = crop_regions(polys, width, height) if self.detection.zone_crops else []
        return self._regions or []

    def detect(self, image: np.ndarray) -> sv.Detections:
        h, w = image.shape[:2]
        return detect_frame(self.detector, image, self._crops(w, h), self.detection.min_score,
                            self.detection.vehicle_labels)

    def analyse(self, t: float, image: np.ndarray) -> list[Outgoing]:
        t = max(t, self._last_t + 1e-3)  # rules need time that never goes back
        self._last_t, self._last_image = t, image
        if not self.rules:
            return []
        found = self.detect(image)
        vehicles = found[np.isin(found.data["class_name"], self.detection.vehicle_labels)] if len(found) else found
        vehicles = track(self.tracker, vehicles)
        h, w = image.shape[:2]
        boxes = vehicles.xyxy.astype(float).tolist()
        sightings = [
            Sighting(
                track_id=int(tid) if tid is not None and tid >= 0 else None,
                anchor=((x1 + x2) / 2 / w, y2 / h),
                box=(x1 / w, y1 / h, x2 / w, y2 / h),
                score=float(score),
                label=str(label),
            )
            for (x1, y1, x2, y2), score, tid, label in zip(
                boxes, vehicles.confidence,
                vehicles.tracker_id if vehicles.tracker_id is not None else [None] * len(vehicles),
                vehicles.data.get("class_name", []))
        ]
        out: list[Outgoing] = []
        for zone, rule in self.rules:
            inside = [s for s in sightings if point_in_polygon(s.anchor, zone.polygon)]
            out += [self._outgoing(zone, e, image) for e in rule.observe(t, inside)]
        return out

    def close(self, t: float, reason: EndReason) -> list[Outgoing]:
        t = max(t, self._last_t)
        return [self._outgoing(zone, e, self._last_image) for zone, rule in self.rules for e in rule.close(t, reason)]

    def _outgoing(self, zone: Zone, event: Event, image: np.ndarray | None) -> Outgoing:
        s = event.sighting
        jpeg = None
        if event.state in ("start", "end") and image is not None:
            caption = f"{s.label} {s.score:.2f} {event.dwell_s:.0f}s"
            jpeg = snapshot(image, s.box, zone.polygon, caption)
        location = self.camera.location
        message = {
            "schema_version": wire.SCHEMA_VERSION,
            "incident_id": event.incident_id,
            "seq": event.seq,
            "state": event.state,
            "type": "illegal_parking",
            "box": self.box,
            "camera": self.camera.id,
            "zone": zone.id,
            "grid": zone.grid or self.camera.grid,
            "location": {"lat": location.lat, "lon": location.lon} if location else None,
            "started_at": wire.iso(event.started_at),
            "observed_at": wire.iso(event.observed_at),
            "ended_at": wire.iso(event.ended_at) if event.ended_at is not None else None,
            "end_reason": event.end_reason,
            "confidence": round(min(1.0, max(0.0, s.score)), 3),
            "bbox": [round(min(1.0, max(0.0, v)), 4) for v in s.box],
            "track_id": s.track_id,
            "attributes": {"dwell_s": event.dwell_s, "label": s.label},
            "evidence": {"sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg)} if jpeg else None,
            "model": {"name": self.detector.name, "version": self.detector.version},
        }
        return Outgoing(wire.validate_incident(message), jpeg)
