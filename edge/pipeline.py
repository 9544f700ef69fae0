"""One camera's analysis: change gate -> detector -> tracker -> zone rules -> incident messages.

The detector pass is split out so a box can batch it across cameras:
``plan(t, image)`` says which images need the detector (the frame and its zone crops, or
nothing when the zones have not changed since the last pass and the floor interval has
not passed), and ``observe(t, image, parts)`` runs tracking, rules and picture checks.
``analyse(t, image)`` does both with the pipeline's own detector (replay, tests).
No network I/O happens here.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np
import supervision as sv

from edge.config import Camera, EdgeConfig, Zone
from edge.detector import Detector, Region, crop_regions, merge_detections
from edge.evidence import snapshot
from edge.health import PictureCheck, change, thumbnail
from edge.rules import ConditionRule, DwellRule, EndReason, Event, Sighting, point_in_polygon
from edge.tracker import make_tracker, track
from xueliang import wire

FAULTS = ("frozen", "blocked", "moved", "offline")
WHOLE_FRAME = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


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
        self.picture = PictureCheck()
        self.faults = {name: ConditionRule(f"{config.box}/{camera.id}/fault/{name}", clear_after_s=5.0,
                                           update_interval_s=rules.update_interval_s) for name in FAULTS}
        self.active_faults: set[str] = set()
        self.detector_passes = 0
        # cameras re-detect at slightly different floor intervals so their passes do not bunch up
        self._floor_s = rules.redetect_floor_s * (0.8 + 0.4 * (zlib.crc32(camera.id.encode()) % 1000) / 1000)
        self._gate = rules.change_gate
        self._regions: list[Region] = []
        self._shape: tuple[int, int] | None = None
        self._gate_box: tuple[int, int, int, int] | None = None
        self._last_t = float("-inf")
        self._last_image: np.ndarray | None = None
        self._last_pass: tuple[float, np.ndarray] | None = None  # time and thumbnail of the last detector pass
        self._vehicles = sv.Detections.empty()
        self._thumb: tuple[np.ndarray, np.ndarray] | None = None  # (the frame, its thumbnail)

    def _thumbnail(self, image: np.ndarray) -> np.ndarray:
        if self._thumb is None or self._thumb[0] is not image:
            self._thumb = (image, thumbnail(image))
        return self._thumb[1]

    def _layout(self, width: int, height: int) -> None:
        if self._shape == (width, height):
            return
        self._shape = (width, height)  # first frame, or the camera changed resolution
        polys = [z.polygon for z, _ in self.rules]
        self._regions = crop_regions(polys, width, height) if self.detection.zone_crops else []
        xs = [x for p in polys for x, _ in p]
        ys = [y for p in polys for _, y in p]
        tw, th = 64, 48
        self._gate_box = (int(min(xs) * tw), int(min(ys) * th), int(np.ceil(max(xs) * tw)), int(np.ceil(max(ys) * th))) \
            if polys else None
        self._last_pass = None
        self.tracker.reset()

    def plan(self, t: float, image: np.ndarray) -> list[np.ndarray]:
        """The images the detector must see for this frame; [] when the last pass still holds."""
        if not self.rules:
            return []
        h, w = image.shape[:2]
        self._layout(w, h)
        if self._last_pass is not None and self._gate_box is not None:
            last_t, last_thumb = self._last_pass
            x1, y1, x2, y2 = self._gate_box
            thumb = self._thumbnail(image)
            if t - last_t < self._floor_s and change(last_thumb[y1:y2, x1:x2], thumb[y1:y2, x1:x2], (1, 1)) < self._gate:
                return []
        return [image] + [image[y1:y2, x1:x2] for x1, y1, x2, y2 in self._regions]

    def observe(self, t: float, image: np.ndarray, parts: list[sv.Detections]) -> list[Outgoing]:
        """Tracking, zone rules and picture checks for a frame; ``parts`` are the detector's
        results for ``plan``'s images, or [] to reuse the last pass."""
        t = max(t, self._last_t + 1e-3)  # rules need time that never goes back
        self._last_t, self._last_image = t, image
        h, w = image.shape[:2]
        self._layout(w, h)
        thumb = self._thumbnail(image)
        out = self._faults(t, thumb, image)
        if not self.rules:
            return out
        if parts:
            self.detector_passes += 1
            self._last_pass = (t, thumb)
            found = merge_detections(parts, self._regions, self.detection.vehicle_labels)
            vehicles = found[np.isin(found.data["class_name"], self.detection.vehicle_labels)] if len(found) else found
            self._vehicles = track(self.tracker, vehicles)
        sightings = self._sightings(self._vehicles, w, h)
        for zone, rule in self.rules:
            inside = [s for s in sightings if point_in_polygon(s.anchor, zone.polygon)]
            out += [self._outgoing(zone.id, zone.polygon, zone.grid, "illegal_parking", e, image)
                    for e in rule.observe(t, inside)]
        return out

    def analyse(self, t: float, image: np.ndarray) -> list[Outgoing]:
        return self.observe(t, image, [self.detector.detect(x, self.detection.min_score) for x in self.plan(t, image)])

    def camera_lost(self, t: float) -> list[Outgoing]:
        """The camera has been unreachable too long: end its incidents, raise an offline fault."""
        out = self.close(t, "camera_lost")
        s = Sighting(None, (0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0, "offline")
        return out + [self._outgoing("camera", WHOLE_FRAME, None, "camera_fault", e, None)
                      for e in self.faults["offline"].observe(t, True, s)]

    def close(self, t: float, reason: EndReason) -> list[Outgoing]:
        t = max(t, self._last_t)
        out = [self._outgoing(zone.id, zone.polygon, zone.grid, "illegal_parking", e, self._last_image)
               for zone, rule in self.rules for e in rule.close(t, reason)]
        return out + [self._outgoing("camera", WHOLE_FRAME, None, "camera_fault", e, self._last_image)
                      for name, rule in self.faults.items() if name != "offline" for e in rule.close(t, reason)]

    def _faults(self, t: float, thumb: np.ndarray, image: np.ndarray) -> list[Outgoing]:
        self.active_faults = self.picture.observe(t, thumb)
        out = []
        for name, rule in self.faults.items():
            s = Sighting(None, (0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0, name)
            active = name in self.active_faults
            out += [self._outgoing("camera", WHOLE_FRAME, None, "camera_fault", e, image)
                    for e in rule.observe(t, active, s)]
        return out

    @staticmethod
    def _sightings(vehicles: sv.Detections, w: int, h: int) -> list[Sighting]:
        ids = vehicles.tracker_id if vehicles.tracker_id is not None else [None] * len(vehicles)
        labels = vehicles.data.get("class_name", [""] * len(vehicles))
        return [
            Sighting(track_id=int(tid) if tid is not None and tid >= 0 else None,
                     anchor=((x1 + x2) / 2 / w, y2 / h), box=(x1 / w, y1 / h, x2 / w, y2 / h),
                     score=float(score), label=str(label))
            for (x1, y1, x2, y2), score, tid, label in zip(vehicles.xyxy.astype(float).tolist(),
                                                           vehicles.confidence, ids, labels)
        ]

    def _outgoing(self, zone_id: str, polygon, grid: str | None, kind: str, event: Event,
                  image: np.ndarray | None) -> Outgoing:
        s = event.sighting
        jpeg = None
        if event.state in ("start", "end") and image is not None:
            jpeg = snapshot(image, s.box, polygon, f"{s.label} {s.score:.2f} {event.dwell_s:.0f}s")
        location = self.camera.location
        message = {
            "schema_version": wire.SCHEMA_VERSION,
            "incident_id": event.incident_id,
            "seq": event.seq,
            "state": event.state,
            "type": kind,
            "box": self.box,
            "camera": self.camera.id,
            "zone": zone_id,
            "grid": grid or self.camera.grid,
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
