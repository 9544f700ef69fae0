"""One camera's analysis: change gate -> detectors -> tracker / left-object check -> zone rules -> messages.

The detector passes are split out so a box can batch them across cameras:
``plan(t, image)`` says which images each model must see (``[(model, image)]``: the
vehicle model on the frame and the parking zones' crops, the litter model on tiles over the
garbage/spill zones and on a closer crop around each still, changed place the left-object check
saw there at its last look (``closer_looks``); nothing when the zones have not changed since the
last pass and the floor interval has not passed), and ``observe(t, image, parts)`` runs tracking,
the left-object check, rules and picture checks. ``analyse(t, image)`` does both with the
pipeline's own detectors (replay, tests). No network I/O happens here.

Garbage and spills: a zone that watches ``garbage`` or ``spill`` has a ``ConditionRule``
per type. The litter detector's best box of that type in the zone keeps the clock
running (a place takes the type its detections have voted for so far: one pile is one
incident for one department, see ``edge/litter.py``; where zones overlap, it is the incident of the
zone that raised it first, ``_raised_elsewhere``); under ``left_object: confirm`` the
incident starts only if the left-object check also sees still, changed ground under that
box (a detection under ``litter_min_score`` counts only there, down to
``litter_confirmed_min_score``: two weak signals agreeing); under ``either`` a still, changed
region with no detection counts too (for piles the model does not know), at an open incident's
place only and never at another's, and never for a lead held for review (``_left_here``). Under both, still,
changed ground mostly where an incident ended, while that place shows the ground it left, is that place's ghost and
counts for nothing (``_remember_ground``). Nothing that was
always there is dispatched on the detector's word alone: a detection the check never confirms
(for ``REVIEW_FACTOR`` times the persistence), or one seen since the camera came up, is sent with
``attributes.needs_review: true`` and the gateway holds its case for a person (street furniture
the model half-believes, a pile older than the camera's view). What is put in the zone later,
while such an incident is held, and the check sees as new ground, is raised apart and dispatched
(``_later_events``). A confirmed incident ends when the check sees its place as it was before the
object came, and is not cleared while the check sees the object still there, though the detector
blinks (``_at_place``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import zlib
from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from edge.alignment import Alignment
from edge.config import Camera, EdgeConfig, Zone
from edge.detector import (LITTER, VEHICLE, Detector, Region, closer_places, closer_regions, crop_regions,
                           merge_detections, min_scores, run_passes, tile_regions)
from edge.evidence import frame_jpeg, snapshot
from edge.health import THUMB_SIZE, PictureCheck, change, thumbnail
from edge.leftobject import Ground, LeftObject, Look, covered, regions, without, zone_mask
from edge.litter import TypeVote
from edge.geometry import (Box, anchor, box_area, box_to_pixels, in_frame, inside, iou, normalise, overlap,
                           point_in_polygon, polygon_area, polygon_to_xyxy)
from edge.rules import ConditionRule, DwellRule, EndReason, Event, Sighting
from edge.source import keyframe_gap_limit
from edge.stationary import Stationary
from edge.tracker import make_tracker, track
from xueliang import wire

log = logging.getLogger(__name__)

# camera faults, each a camera_fault incident while it lasts; "shifted": knocked a little off, followed
# (edge/alignment.py), to be re-aimed; "moved": turned to another view, or its picture changed shape
FAULTS = ("frozen", "blocked", "moved", "shifted", "offline")
LITTER_TYPES = ("garbage", "spill")
CONFIRM_COVER = 0.2  # share of a detected box that must be still, changed ground to confirm it
STAYED = 0.5  # a box under which less of what differs differed at each look of the 8 s before: moved (LeftObject.stayed)
GONE_COVER = 0.05  # a confirmed incident's place differing less than this from its ground before: gone
JUDGED_COVER = 0.5  # a detected box less than this share of which the check could judge: it cannot tell
LIKE_COVER = 0.5  # ... and differing from it, but showing less than this share of its object as it was: not there
PART_SEEN = 0.15  # a place less than half in view is judged on its object's pixels in view, this share of them at least
LOOK_FOLLOWS = 0.9  # showing at least this share of it: the same object, its look follows it (light, drying)
MAX_BOX_AREA = 0.5  # a vehicle or person box over more than this share of the picture is the road seen as one car
# ... and to the litter rules, a vehicle box over this share: the road "car" (0.42-0.5) covers 36-50 % of the motorway
# clips too (make eval --draw 33's cross-other and mesh sets, the real motorway); a vehicle there, and on all of the real
# clean footage, at most 14 %. Not people (up to 35 % close up, in bikes.mp4): what they carry is theirs
ROAD_SHARE = 0.25
STILL_LOOKS = 2  # passes that must see a stay's picture unchanged before its clock can raise an incident
REVIEW_FACTOR = 2  # a detection never confirmed goes for review after 2x the zone's persistence
# an ended incident's place is a ghost's this many times the check's absorb_s: a change of all 255 lightness levels
# takes ln(255 / 18) = 2.65 of them to fade under the check's threshold
GHOST_KEPT = 3.0
GHOST_SHARE = 0.5  # a still region this share of which lies in a ghost's place showing the ground it left is that ghost
WHOLE_FRAME = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
NAMED_LATELY = 3  # a "pile" in the box a vehicle was last named in, this many passes ago at most, is that vehicle
SAME_BOX = 0.5  # ... where its box and the vehicle's overlap by this much (intersection over union) at least
# the change gate looks at a parking zone's box in quarters too: a car stopped at the picture's edge covers a few per
# cent of its zone's box and barely moves the whole box's mean (2.9-3.9 against the gate's 4: first looked at 10 s
# after it stopped), its quarter's four times as much; a quarter opens the gate at twice the gate (noise and a shaking
# mast move a quarter more than the whole: up to 6.3 on the second parking set). A litter zone's box is looked at whole.
PARKING_GATE_CELLS = (2, 2)
PARKING_CELL_GATE = 2.0
# a camera fault's reason where its camera gave no first picture since its zones were drawn (``held_if_never_read``)
NEVER_READ = "never read since its zones were drawn: an installation not finished?"
SHAPE_TOLERANCE = 0.05  # pictures whose width-to-height ratios differ by less than this share have one shape


def same_shape(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two picture sizes (w, h) have one shape: the same picture at another resolution, where
    zones, drawn in fractions of the picture, stay on their ground. Within ``SHAPE_TOLERANCE``: a
    stream's 1920x1088 is its 1920x1080, and a D1 stream's 720x576 its 704x576 (which leaves out
    8 pixels each side).

    >>> same_shape((1280, 720), (640, 360)), same_shape((1920, 1080), (1920, 1088)), same_shape((720, 576), (704, 576))
    (True, True, True)
    >>> same_shape((768, 576), (768, 432)), same_shape((1280, 960), (1280, 1024))   # 4:3 cropped to 16:9; to 5:4
    (False, False)
    """
    return abs(math.log(a[0] * b[1] / (a[1] * b[0]))) <= math.log(1 + SHAPE_TOLERANCE)


def held_if_never_read(attributes: dict | None, read: bool) -> dict | None:
    """A camera fault's attributes: as they are where its camera was read since its zones were drawn (``read``); where
    it never was, held for a person (``needs_review``), its ``reason`` saying so after its own, cut to what the wire
    takes.
    A camera that worked and stopped is a fault to climb up to; one never read is an installation not finished (an
    installer's typo in its url, a wrong password, a camera not yet on its pole, a lens cap left on): the gateway sent
    video maintenance, with a working day's deadline, to cameras that had never worked.

    >>> held_if_never_read({"reason": "401 Unauthorized"}, read=True)
    {'reason': '401 Unauthorized'}
    >>> held_if_never_read({"reason": "401 Unauthorized"}, read=False)["reason"]
    '401 Unauthorized; never read since its zones were drawn: an installation not finished?'
    >>> held_if_never_read(None, read=False) == {"reason": NEVER_READ, "needs_review": True}
    True
    >>> len(held_if_never_read({"reason": "x" * 1000}, read=False)["reason"]) == wire.MAX_ATTRIBUTE_CHARS
    True
    """
    if read:
        return attributes
    reason = (attributes or {}).get("reason")
    room = wire.MAX_ATTRIBUTE_CHARS - len(NEVER_READ) - 2
    return {**(attributes or {}), "reason": f"{reason[:room]}; {NEVER_READ}" if reason else NEVER_READ,
            "needs_review": True}


@dataclass(frozen=True)
class Outgoing:
    """An incident message and, for start and end, its evidence JPEG and the frame without drawing."""

    message: dict
    evidence: bytes | None
    frame: bytes | None = None

    @property
    def topics(self) -> tuple[str, str]:
        m = self.message
        return wire.incident_topic(m["box"], m["camera"]), wire.evidence_topic(m["box"], m["camera"], m["incident_id"])


@dataclass
class _Place:
    """A confirmed litter incident's place: its box, the ground under it before the object came
    (``LeftObject.ground``), the check's ``scene`` then, how the object last looked there when the
    check saw it so (``LeftObject.look``), and whether the check last saw it there."""

    box: Box
    ground: Ground
    scene: int
    look: Look | None
    there: bool = True


@dataclass(frozen=True)
class _Ghost:
    """The place of a litter incident that ended, the ground it left there (``LeftObject.seen``), the check's
    ``scene`` then, and until when it is kept (``GHOST_KEPT``). See ``CameraPipeline._remember_ground``."""

    box: Box
    ground: Ground
    scene: int
    until: float


class CameraPipeline:
    def __init__(self, config: EdgeConfig, camera: Camera, detectors: dict[str, Detector]):
        self.box, self.camera, self.detectors = config.box, camera, detectors
        self.location = config.location(camera)  # in WGS 84, as the wire has it
        self.send_frames = config.send_frames
        self.detection, rules = config.detection, config.rules
        self.tracker = make_tracker(camera.analysis_interval_s, self.detection.min_score, rules.gap_s)
        self.rules: list[tuple[Zone, DwellRule]] = [
            (zone, DwellRule(f"{config.box}/{camera.id}/{zone.id}", zone.dwell_s, rules.still_tolerance,
                             rules.gap_s, rules.update_interval_s, leave_s=rules.leave_s,
                             min_score=self.detection.min_score, still_looks=STILL_LOOKS))
            for zone in camera.zones if "illegal_parking" in zone.types
        ]
        # per zone and type: the rule, and the rule for what is new in the zone while the first holds an
        # incident for review
        self.litter: list[tuple[Zone, str, ConditionRule, ConditionRule]] = [
            (zone, kind, ConditionRule(f"{config.box}/{camera.id}/{zone.id}/{kind}", clear_after_s=zone.clear_s,
                                       update_interval_s=rules.update_interval_s, persist_s=zone.persistence_s,
                                       gap_s=rules.gap_s, review_s=REVIEW_FACTOR * zone.persistence_s,
                                       start_window_s=keyframe_gap_limit(camera, rules)),
             ConditionRule(f"{config.box}/{camera.id}/{zone.id}/{kind}/later", clear_after_s=zone.clear_s,
                           update_interval_s=rules.update_interval_s, persist_s=zone.persistence_s, gap_s=rules.gap_s))
            for zone in camera.zones for kind in LITTER_TYPES if kind in zone.types
        ]
        if self.litter and LITTER not in detectors:
            raise ValueError(f"camera {camera.id!r} watches garbage or spills but no litter detector was given")
        self.left = LeftObject() if self.litter and self.detection.left_object != "off" else None
        self.types = TypeVote(forget_s=rules.gap_s)
        self._places: dict[ConditionRule, _Place] = {}  # a confirmed incident's place and its ground before
        self._ghosts: list[_Ghost] = []  # the places of incidents that ended, and the ground they left (their ghosts)
        self._litter_pass = float("-inf")
        self._zone_masks: dict[str, np.ndarray] = {}
        self._litter_regions: list[Region] = []
        # seconds from the times it is given (the box's clock, edge/box.py box_now) to the times on the wire: the
        # box sets it (edge/box.py wall_offset) as the wall clock steps (NTP) or is found off the gateways'; a
        # replay leaves it 0
        self.wall_offset = 0.0
        self._closer: list[Region] = []  # crops for a closer look at the next pass (still, changed places)
        self._looked: list[Region] = []  # the closer looks the last pass took
        self._litter = sv.Detections.empty()
        self._people = sv.Detections.empty()
        self.stationary = Stationary()
        self.alignment = Alignment()
        self._read = False  # a first picture was taken before the alignment forgot it (``read``)
        self._aligned_frame: tuple[np.ndarray, np.ndarray] | None = None  # (a frame, it moved back)
        self.picture = PictureCheck()
        self.faults = {name: ConditionRule(f"{config.box}/{camera.id}/fault/{name}", clear_after_s=5.0,
                                           update_interval_s=rules.update_interval_s) for name in FAULTS}
        self.detector_passes = 0
        # cameras re-detect at slightly different floor intervals so their passes do not bunch up
        self._floor_s = rules.redetect_floor_s * (0.8 + 0.4 * (zlib.crc32(camera.id.encode()) % 1000) / 1000)
        self._gate = rules.change_gate
        self._regions: list[Region] = []
        self._shape: tuple[int, int] | None = None
        # the picture has been frozen past the picture check's frozen_after_s: its zones are not analysed until a
        # detector pass on a picture that moves again (a still picture is no view of the ground as it is now)
        self._frozen = False
        self.first_shape: tuple[int, int] | None = None  # the camera's first picture's: taken for its zones'
        # zone boxes in thumbnail pixels, each with whether it is a parking zone's (looked at in quarters too)
        self._gate_boxes: list[tuple[tuple[int, int, int, int], bool]] = []
        self._full_frame = True
        self._last_t = float("-inf")
        self._last_image: np.ndarray | None = None
        self._last_pass: tuple[float, np.ndarray] | None = None  # time and thumbnail of the last detector pass
        self._vehicles = sv.Detections.empty()
        # (at which pass, where) the vehicle model last named each vehicle with min_score: its track's latest such box
        self._named_lately: list[tuple[int, Sighting]] = []
        self._thumb: tuple[np.ndarray, np.ndarray] | None = None  # (the frame, its thumbnail)

    def _thumbnail(self, image: np.ndarray) -> np.ndarray:
        if self._thumb is None or self._thumb[0] is not image:
            self._thumb = (image, thumbnail(image))
        return self._thumb[1]

    def _aligned(self, t: float, image: np.ndarray) -> np.ndarray:
        """``image`` as the camera's view was when it came up (``edge/alignment.py``): a camera
        knocked on its pole keeps its zones on the ground they were drawn on; made once per frame."""
        if self._aligned_frame is None or self._aligned_frame[0] is not image:
            h, w = image.shape[:2]
            self._layout(w, h)
            changed = self.alignment.look(t, image)
            self._aligned_frame = (image, self.alignment.aligned(image))
            if changed:
                x, y = self.alignment.shift
                if x or y or self.alignment.angle:
                    log.warning("camera %s: the picture moved by %.1f%% across and %.1f%% down and turned %.1f degrees "
                                "since it came up; the zones follow it (re-aim the camera)", self.camera.id, 100 * x,
                                100 * y, self.alignment.angle)
                else:
                    log.warning("camera %s: the picture is back where it was when it came up", self.camera.id)
                # the stays seen in the picture as it was moved back until now are where it is moved back now
                for zone, rule in self.rules:
                    keys = rule.carry(self.alignment.carried, self.alignment.since)
                    self.stationary.carry(zone.id, keys, self.alignment.carried, self._aligned_frame[1])
        return self._aligned_frame[1]

    def _layout(self, width: int, height: int) -> None:
        if self._shape == (width, height):
            return
        if self._shape is not None:  # the camera changed resolution: another picture to line up on
            self._read = self.read  # its first picture forgotten, not that it had one
            self.alignment.reset()
        before, self._shape = self._shape, (width, height)  # first frame, or the camera changed resolution
        first = self.first_shape = self.first_shape or self._shape
        if self.reshaped:
            log.warning("camera %s: its picture changed shape, from %dx%d to %dx%d: the zones were drawn on a picture "
                        "of another shape and would lie on other ground; its zones are not analysed (their incidents "
                        "end, camera_lost) and it has a moved fault until the picture has its shape again (set the "
                        "camera's stream back, or draw its zones again)", self.camera.id, *first, width, height)
        elif before is not None and not same_shape(before, self._shape):
            log.warning("camera %s: its picture has the shape of its first again (%dx%d); its zones are analysed again",
                        self.camera.id, width, height)
        polys = [z.polygon for z, _ in self.rules]
        max_side = int(self.detectors[VEHICLE].input_side * self.detection.crop_max_scale)
        self._regions = crop_regions(polys, width, height, max_side) if self.detection.zone_crops else []
        litter_polys = list({z.id: z.polygon for z, *_ in self.litter}.values())
        # Every parking zone has a crop (large ones tiled); the full-frame pass is for cameras with
        # litter zones, where it finds the people the left-object check leaves out, or without crops.
        self._full_frame = bool(litter_polys) or not self._regions
        self._litter_regions = tile_regions(litter_polys, width, height)
        self._closer, self._looked = [], []
        log.info("camera %s: %dx%d frames; vehicle model on %s%s; litter model on %d tile(s)", self.camera.id,
                 width, height, "the full frame and " if self._full_frame else "",
                 " ".join(f"[{x1},{y1},{x2},{y2}]" for x1, y1, x2, y2 in self._regions) or "no crops",
                 len(self._litter_regions))
        self._zone_masks = {}
        self._places.clear()  # the left-object check learns the new picture size from scratch
        self._ghosts.clear()
        # the change gate looks at each zone on its own: a car arriving in a small zone moves that zone's
        # mean a lot and a large box's mean little (at dusk, too little: an arrival was seen 11 s late)
        self._gate_boxes = [(box_to_pixels(polygon_to_xyxy(p), *THUMB_SIZE), parking)
                            for ps, parking in ((polys, True), (litter_polys, False)) for p in ps]
        self._last_pass = None
        self.tracker.reset()
        self.stationary.reset()

    @property
    def read(self) -> bool:
        """Whether the camera gave a first picture since its zones were drawn: in this run, or in one before (the box
        kept it, ``edge/box.py`` ``view_file``, and gave it back as ``alignment.reference``). Its faults until then
        are held for a person (``held_if_never_read``)."""
        return self._read or self.alignment.reference is not None

    @property
    def reshaped(self) -> bool:
        """Whether the picture has another shape than the camera's first (``same_shape``): cropped from 4:3
        to 16:9, a zone drawn in fractions of the picture lies on other ground, and was analysed there
        silently (a parking incident was raised in a zone moved onto the road)."""
        return self._shape is not None and self.first_shape is not None and not same_shape(self._shape,
                                                                                           self.first_shape)

    def regions(self, width: int, height: int) -> tuple[bool, list[Region]]:
        """Whether the vehicle model sees the full frame, and the crops it sees, for frames of this size."""
        self._layout(width, height)
        return self._full_frame, list(self._regions)

    def plan(self, t: float, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """The (model, image) passes this frame needs; [] when the last pass still holds."""
        if not self.rules and not self.litter:
            return []
        image = self._aligned(t, image)
        if self.reshaped or self._frozen and self.picture.still(self._thumbnail(image)):
            return []
        if self._last_pass is not None and self._gate_boxes:
            last_t, last_thumb = self._last_pass
            thumb = self._thumbnail(image)
            if t - last_t < self._floor_s and not self._unlooked() and not any(
                    self._changed(last_thumb[y1:y2, x1:x2], thumb[y1:y2, x1:x2], parking)
                    for (x1, y1, x2, y2), parking in self._gate_boxes):
                return []
        return [(VEHICLE, image)] * self._full_frame + [(VEHICLE, image[y1:y2, x1:x2]) for x1, y1, x2, y2 in self._regions] \
            + [(LITTER, image[y1:y2, x1:x2]) for x1, y1, x2, y2 in self._litter_regions + self._closer]

    def _changed(self, before: np.ndarray, now: np.ndarray, parking: bool) -> bool:
        """Whether a zone's box changed past the gate since the last pass: its whole box, or a parking zone's
        quarter by ``PARKING_CELL_GATE`` times the gate."""
        return change(before, now, (1, 1)) >= self._gate or parking and change(
            before, now, PARKING_GATE_CELLS) >= PARKING_CELL_GATE * self._gate

    def _unlooked(self) -> bool:
        """Whether the left-object check sees a still, changed place in a garbage/spill zone that the last
        pass neither looked at closer nor named anything on: something was put down since, too small or
        faint to move the change gate. The detector runs now, not at the floor: a pile put down at 15 s
        was first looked at 9 s later, and its persistence ran from then (``tests/test_litter.py``). A
        place the detector already names is left to its clock."""
        seen = self._looked + [tuple(b) for b in self._litter.xyxy]
        return any(not any(overlap(c, s) for s in seen) for c in self._closer)

    def observe(self, t: float, image: np.ndarray, parts: list[sv.Detections]) -> list[Outgoing]:
        """Tracking, zone rules and picture checks for a frame; ``parts`` are the detector's
        results for ``plan``'s images, or [] to reuse the last pass."""
        t = max(t, self._last_t + 1e-3)  # rules need time that never goes back
        image = self._aligned(t, image)
        before, self._last_t, self._last_image = self._last_image, t, image
        h, w = image.shape[:2]
        thumb = self._thumbnail(image)
        seen = self.picture.observe(t, thumb)
        out = self._faults(t, seen, image)
        if not self.rules and not self.litter:
            return out
        if self.reshaped:  # the zones would lie on other ground: what they had open ends, shown as it was last seen
            return out + self._end_zones(t, "camera_lost", before if before is not None and same_shape(
                before.shape[1::-1], self.first_shape) else None)
        if "frozen" in seen or self._frozen and not parts:
            # the same picture past frozen_after_s (a still image played as a video, an encoder stuck on one frame)
            # shows nothing of the ground as it is now: what its zones had open ends, as a lost camera's, and nothing
            # is raised there until a detector pass sees the picture move again (plan runs one at its first change)
            if self._frozen:
                return out
            self._frozen, self._last_pass = True, None
            self.tracker.reset()
            self.stationary.reset()
            return out + self._end_zones(t, "camera_lost", image)
        self._frozen = False
        if parts:
            self.detector_passes += 1
            self._last_pass = (t, thumb)
            n = self._full_frame + len(self._regions)
            found = merge_detections(parts[:n], self._regions, self.detection.vehicle_labels, self._full_frame)
            # the vehicle model sees a motorway or a dual carriageway from afar as one "car" (0.42-0.58, 53-91 %
            # of the frame, on the real clean footage's two) on every frame: it is nothing the rules follow, and
            # as a box "in front" it hid every parked car's place and every pile and spill on those roads
            found = found[found.area <= MAX_BOX_AREA * w * h] if len(found) else found
            labels = found.data["class_name"] if len(found) else np.array([])
            confident = found.confidence >= self.detection.min_score if len(found) else np.array([], bool)
            vehicles = found[np.isin(labels, self.detection.vehicle_labels)] if len(found) else found
            # ByteTrack sees every vehicle detection down to track_min_score: the low ones only continue
            # tracks; what it leaves untracked below min_score is noise.
            vehicles = track(self.tracker, vehicles)
            keep = (vehicles.tracker_id >= 0) | (vehicles.confidence >= self.detection.min_score)
            self._vehicles = vehicles[keep] if len(vehicles) else vehicles
            self._remember_named(self._sightings(self._vehicles, w, h))
            self._people = found[(labels == "person") & confident] if len(found) else found
            self._litter_pass, self._looked = t, self._closer
            self._litter = in_frame(parts[n:], self._litter_regions + self._closer).with_nms(threshold=0.45) \
                if self.litter else sv.Detections.empty()
        sightings = self._sightings(self._vehicles, w, h)
        out += self._litter_events(t, image, sightings)
        in_front = [s.box for s in sightings + self._sightings(self._people, w, h)]
        for zone, rule in self.rules:
            inside = [point_in_polygon(s.anchor, zone.polygon) for s in sightings]
            mine = [s for s, i in zip(sightings, inside) if i]
            views = self.stationary.views(zone.id, rule.stays(), image, in_front)
            def same_vehicle(key: int, s: Sighting, zone_id: str = zone.id) -> bool | None:
                return self.stationary.same_vehicle(zone_id, key, image, s.box, in_front)
            def already_there(key: int, box: Box, zone_id: str = zone.id) -> bool | None:
                return self.stationary.already_there(zone_id, key, image, box)
            out += [self._outgoing(zone.id, zone.polygon, zone.grid, "illegal_parking", e, image)
                    for e in rule.observe(t, mine, views, fresh=bool(parts), same_vehicle=same_vehicle,
                                          outside=[s for s, i in zip(sightings, inside) if not i],
                                          taken=self._parked_elsewhere(zone), already_there=already_there)]
            self.stationary.remember(zone.id, rule.stays(), t, image, in_front)
        return out

    def analyse(self, t: float, image: np.ndarray) -> list[Outgoing]:
        return self.observe(t, image, run_passes(self.detectors, self.plan(t, image), min_scores(self.detection)))

    def _litter_events(self, t: float, image: np.ndarray, vehicles: list[Sighting]) -> list[Outgoing]:
        if not self.litter:
            return []
        h, w = image.shape[:2]
        static = None
        # people and vehicles the vehicle model is sure of (min_score) are cut out of the left-object check,
        # and a "pile" mostly inside one is that person or vehicle; a track kept alive on weak detections (a
        # car's, carried on over a pile it drove past) neither hides the ground nor outweighs the litter model;
        # nor does the road named one car (ROAD_SHARE): under it a pile's sightings were dropped, its clock
        # forgotten, and it started 18 s late (make eval --draw 31's x-motorway-0)
        movers = [s.box for s in vehicles if s.score >= self.detection.min_score and box_area(s.box) <= ROAD_SHARE] \
            + [s.box for s in self._sightings(self._people, w, h) if s.score >= self.detection.min_score]
        # where a knocked camera's picture was moved back, the strip it no longer shows is black: not new ground,
        # and a "pile" mostly in it is its edge (edge/alignment.py)
        movers += self.alignment.unseen()
        seen = self._sightings(self._litter, w, h)
        if self.left is not None:
            static = self.left.observe(t, image, movers)
            self._ghosts = [g for g in self._ghosts if t < g.until and g.scene == self.left.scene]
            # what still differs where an incident ended, while that place shows the ground it left, is its ghost:
            # no place to look closer at, it confirms nothing and stands in for nothing
            static = without(static, [g.box for g in self._ghosts if self._shows_its_ground(g)], GHOST_SHARE)
            named = [s.box for s in seen if s.score >= self.detection.litter_confirmed_min_score]
            self._closer = self._closer_looks(static, named, w, h)
        # below litter_min_score, a detection counts only where the check sees still, changed ground under it
        lately = [v.box for _, v in self._named_lately]
        # a camera knocked and not yet followed (edge/alignment.py): the check took the move back as a sway, and the
        # clocks' places are in the picture as it was too; the detector's boxes, in the moved picture, are taken
        # back with it, so a pile named after the knock keeps its clock and the check's still pixels under it
        knocked = self.left is not None and self.alignment.knocked
        back = self.left.taken_back if knocked else lambda box: box
        found = [s for s in seen if all(inside(s.box, m) < 0.6 for m in movers)
                 and all(iou(s.box, v) < SAME_BOX for v in lately)
                 and (s.score >= self.detection.litter_min_score
                      or static is not None and covered(static, back(s.box)) >= CONFIRM_COVER)]
        if knocked:
            found = [replace(s, box=box, anchor=anchor(box)) for s in found for box in [back(s.box)]]
        # one type per place, and an open incident's place keeps its type
        incidents = [(r.place, kind) for _, kind, rule, later in self.litter
                     for r in (rule, later) if r.place is not None]
        found = self.types.label(t, found, fresh=self._litter_pass == t, incidents=incidents)
        out = []
        for zone, kind, rule, later in self.litter:
            mine = [s for s in found if s.label == kind and point_in_polygon(s.anchor, zone.polygon)
                    and not self._raised_elsewhere(zone, s)]
            out += self._later_events(t, image, zone, kind, rule, later, mine, static)
            if rule.place is not None:  # an open incident is kept by sightings at its place only
                mine = self._at_place(rule, mine)
            elif later.place is not None:  # raised by `later`, open past the held lead: not raised again
                mine = [s for s in mine if not overlap(s.box, later.place)]
            best = max(mine, key=lambda s: s.score, default=None)
            mode = self.detection.left_object
            source = "detector"
            confirmed: bool | None = False
            if best is not None and (static is None or covered(static, best.box) >= CONFIRM_COVER):
                confirmed = True
            elif best is not None and self.left is not None and self.left.judged(best.box) < JUDGED_COVER:
                confirmed = None  # the check cannot tell (people in front): as the place was at its last sightings
            if confirmed is not False and static is not None:
                source = "detector+left_object"
            if best is None and mode == "either" and kind == next(k for k in zone.types if k in LITTER_TYPES) \
                    and not (rule.place is not None and rule.needs_review):
                best = self._left_here(zone, kind, rule, static)
                if best is not None:
                    confirmed, source = True, "left_object"
            # what was left stays where it was left: a car crawling along a hard shoulder that the vehicle model
            # named too seldom to follow, called garbage, was read as still, changed ground where it slowed, and
            # dispatched (the swayed real dual carriageway, models/litter/HISTORY.md)
            stayed = self.left.stayed(best.box) if best is not None and self.left is not None else None
            active = best is not None
            sighting = best or Sighting(None, (0.5, 0.5), polygon_to_xyxy(zone.polygon), 0.0, kind)
            events = rule.observe(t, active, sighting, True if mode == "off" else confirmed,
                                  moved=stayed is not None and stayed < STAYED)
            if confirmed is None and rule.needs_review:  # the check could not tell, and never confirmed it
                source = "detector"
            self._remember_ground(rule, events)
            out += [self._litter_outgoing(zone, kind, e, image, source, rule.needs_review) for e in events]
        return out

    def _left_here(self, zone: Zone, kind: str, rule: ConditionRule, static: np.ndarray) -> Sighting | None:
        """The still, changed region that stands in for ``rule``'s sighting under ``left_object: either`` where the
        detector names nothing: the largest in the zone at the open incident's place (as ``_at_place`` keeps it on
        detections there only), and none at another open incident's place (that object is that incident's). The
        largest anywhere in the zone kept a held lead whose object was taken away open on another pile there, and
        moved it onto that pile, for as long as it lay there. Not for a lead held for review (the caller's): raised on
        the detector's word and never confirmed, it is kept by the detector's sightings alone; its object was in the
        check's background since the camera came up, and the bare ground it leaves when taken away shows as a still,
        changed region (a ghost) that kept it open for the ten minutes the background takes to learn it. ``static``
        holds no ghost's region (``_litter_events``, ``_ghosts``)."""
        others = [r.place for _, _, other, later in self.litter for r in (other, later)
                  if r is not rule and r.place is not None]
        for box, _ in regions(static, self._zone_mask(zone, static.shape), self.detection.left_object_min_area):
            if (rule.place is None or overlap(box, rule.place)) and not any(overlap(box, p) for p in others):
                x1, y1, x2, y2 = box
                return Sighting(None, ((x1 + x2) / 2, (y1 + y2) / 2), box, 0.5, kind)
        return None

    def _shows_its_ground(self, ghost: _Ghost) -> bool:
        """Whether a ghost's place shows the ground its incident left (less than ``CONFIRM_COVER`` of it differs), or
        the check cannot tell (people or vehicles in front of most of it: no still region lies there either)."""
        assert self.left is not None
        unlike = self.left.unlike(ghost.ground, ghost.box)
        return unlike is None or unlike < CONFIRM_COVER

    def _remember_named(self, vehicles: list[Sighting]) -> None:
        """Where each vehicle was last named with ``min_score``, for the ``NAMED_LATELY`` passes after: a litter
        box like it (``SAME_BOX``) is that vehicle, though the vehicle model misses it on this pass (counted in
        passes, not seconds: the change gate spaces them 1-9 s apart, and a car missed on one pass in two must
        not fall between them). The backbone from COCO called a dark car crawling along a motorway's hard
        shoulder garbage; the vehicle model named the car at some passes only (0.42-0.58, nothing over 0.16 at
        others), the left-object check saw its body as still, changed ground, and a garbage incident was
        dispatched (``models/litter/HISTORY.md``). Only the
        latest sure box of a track is kept: a car that drove over a spill and on is not kept over it, and a
        track carried on weak answers (a "car" at 0.2 over a pile) moves nothing. Only vehicles ByteTrack follows
        (named on two passes at least): the vehicle model once named a pile itself a car at 0.42, untracked, and
        kept three passes more it held the pile back 8 s (``make eval --draw 28``, ``x-campus-road-9``)."""
        sure = [v for v in vehicles if v.score >= self.detection.min_score and v.track_id is not None]
        renamed = {v.track_id for v in sure}
        n = self.detector_passes
        self._named_lately = [(when, v) for when, v in self._named_lately if n - when <= NAMED_LATELY
                              and v.track_id not in renamed] + [(n, v) for v in sure]

    def _parked_elsewhere(self, zone: Zone) -> list[Box]:
        """The boxes of the vehicles another parking zone's incident is open for: one vehicle is one incident,
        in the zone whose dwell it reached first. Where parking zones overlap (a no-stopping bay inside a
        kerb zone), a vehicle in both was raised in each: two cases for one car."""
        return [stay.box for other, rule in self.rules if other.id != zone.id for stay in rule.stays()
                if stay.incident_id is not None]

    def _raised_elsewhere(self, zone: Zone, s: Sighting) -> bool:
        """Whether another zone's incident (open, or held for review) is at the place of ``s``: one object
        is one incident, in the zone that raised it first. Where zones overlap, a pile in both was
        raised in each (two cases for one pile, and its held leads twice: ``make eval``'s garage floor,
        2026-12-05). Each zone still follows what it sees until then: a zone whose rule is busy with
        another incident leaves the object to the other zone (raising it in the zone that holds most of
        it instead lost a spill on draw 8's swayed garage)."""
        return any(r.place is not None and overlap(s.box, r.place)
                   for other, _, rule, later in self.litter if other.id != zone.id for r in (rule, later))

    def _closer_looks(self, static: np.ndarray, named: list[Box], w: int, h: int) -> list[Region]:
        """Crops for the litter model's next pass around the still, changed places the check sees in the
        garbage/spill zones, ``closer_looks`` of them, the largest share of their zone first, each with the
        litter model's boxes over it from its last pass (``named``; the place may be a piece of the object). In a tile a
        third of the frame wide, a pile 3 % of the frame wide is some 30 of the model's 320 pixels; on a
        crop three times its size, a third of them. On ``make eval``'s cross sets this found piles and
        spills the tiles never scored, and others sooner (see the litter model's card)."""
        if not self.detection.closer_looks:
            return []
        still = []
        for zone in {z.id: z for z, *_ in self.litter}.values():
            still += regions(static, self._zone_mask(zone, static.shape), self.detection.left_object_min_area)
        boxes = [b for b, _ in sorted(still, key=lambda r: -r[1])[:self.detection.closer_looks]]
        boxes = closer_places(boxes, named)
        side = self._litter_regions[0][2] - self._litter_regions[0][0] if self._litter_regions else min(w, h)
        return closer_regions(boxes, w, h, largest=side)

    def _zone_mask(self, zone: Zone, shape: tuple[int, int]) -> np.ndarray:
        mask = self._zone_masks.get(zone.id)
        if mask is None or mask.shape != shape:
            mask = self._zone_masks[zone.id] = zone_mask(zone.polygon, shape)
        return mask

    def _remember_ground(self, rule: ConditionRule, events: list[Event]) -> None:
        """An incident the left-object check confirmed (with the check on, an incident not for review
        is one it confirmed) keeps the ground as it was before its object came (see
        ``LeftObject.ground``) and the scene the check knew then, for ``_at_place``; forgotten when it
        ends. The place of any that ends is kept as a ghost's, with the ground it left (``_ghosts``): the check's
        background learnt its object, not that ground, and reads the bare ground as a still, changed region until it
        learns it. Under ``either`` that region was raised as a new object, and under ``confirm`` it confirmed a
        detection there (a faint score on bare ground, a shadow): bare ground dispatched."""
        for e in events:
            if e.state == "start" and not rule.needs_review and self.left is not None:
                box = e.sighting.box
                ground = self.left.ground(box)
                if ground is not None:
                    self._places[rule] = _Place(box, ground, self.left.scene, self.left.look(ground, box))
            elif e.state == "end":
                self._places.pop(rule, None)
                ground = self.left.seen(e.sighting.box) if self.left is not None else None
                if ground is not None and e.ended_at is not None:
                    self._ghosts.append(_Ghost(e.sighting.box, ground, self.left.scene,
                                               e.ended_at + GHOST_KEPT * self.left.absorb_s))

    def _at_place(self, rule: ConditionRule, mine: list[Sighting]) -> list[Sighting]:
        """The sightings that keep ``rule``'s open incident, from what the left-object check last saw of
        the place of a confirmed one against its ground before the object came:
        - looks as it did (less than ``GONE_COVER`` differs): none; the object was taken away, whatever
          the detector still half-believes there (a stain on the floor), and the clear time runs; also
          where people hide more than half of it and the object's pixels in view (``PART_SEEN`` of them
          at least) look as the ground did (people stood on a removed pile's place for 14 s, and its
          incident stayed open on its last sighting: ``make eval --draw 11``, ``x-campus-road-3``); but
          where the detector names it at this look and it shows at least ``LIKE_COVER`` of its object as
          it last looked, the detector's sightings: a faint spill reads as its ground and as itself at
          once (one was ended 15.8 s before it was taken away: ``make eval --draw 12``, ``x-campus-yard-1``);
        - has not looked as it did since it was confirmed (or since it last differed by at least
          ``CONFIRM_COVER`` and showed at least ``LIKE_COVER`` of its object as it last looked there),
          also while people or vehicles hide it, and the check has not learnt the scene again since
          (lights, a moved camera): the detector's sightings there, or the incident's last one where
          the detector blinks (a weak spill it sees one pass in three, a pile behind passers-by): a
          pile is not cleared while it is there. A faint spill in a small picture can differ by less
          than ``CONFIRM_COVER`` all the while it lies there (one was cleared 2 s before it was taken
          away, found on ``make eval``'s cross set on other scenes);
        - otherwise (seen as gone, then differing a little again; or differing from its ground by any
          share but showing less than ``LIKE_COVER`` of its object: the ground was read wrong, or
          something else stands there): the detector's sightings there. A spill on a yard taken away
          left its place 28-47 % unlike the ground read before it came, for the 36 s the clip went on,
          and its incident open on its last sighting (``make eval --draw 5``, the long-GOP copy); what
          showed there was the yard, not the spill. A pile taken away on a swaying road left its place
          7-13 % unlike its ground and showing none of the pile, and its incident open 43 s, to the
          end of the clip (``make eval --draw 8``, the swayed copy of ``x-campus-road-3``).
        The object's look follows it while the check sees nearly all of it so (``LOOK_FOLLOWS``: light,
        a spill that dries), not what half covers it (on draw 5's motorway a lorry the vehicle model
        missed, half over a pile, became its look, and the empty place later "showed" it)."""
        here = [s for s in mine if overlap(s.box, rule.place)]
        place = self._places.get(rule)
        if place is None or self.left is None:
            return here
        unlike = self.left.unlike(place.ground, place.box)
        if unlike is None and place.look is not None:  # mostly hidden: judged on its object's pixels in view
            part = self.left.unlike(place.ground, place.box, PART_SEEN, within=place.look.object)
            if part is not None and part < GONE_COVER:
                place.there = False
                return []
        if unlike is not None and unlike < GONE_COVER:
            like = self.left.like(place.look, place.box) if here and place.look is not None else None
            if like is not None and like >= LIKE_COVER:  # a faint object, named there and showing itself
                return here
            place.there = False
            return []
        if unlike is not None:  # differs from its ground, at least GONE_COVER of it
            if place.look is None and unlike >= CONFIRM_COVER:  # started while people stood in front of it:
                place.look = self.left.look(place.ground, place.box)  # the object as it first shows
            like = self.left.like(place.look, place.box) if place.look is not None else None
            if unlike >= CONFIRM_COVER:
                place.there = like is None or like >= LIKE_COVER
                if like is not None and like >= LOOK_FOLLOWS:
                    place.look = self.left.look(place.ground, place.box) or place.look
            elif like is not None and like < LIKE_COVER:
                place.there = False
        return here or ([rule.sighting] if place.there and place.scene == self.left.scene else [])

    def _later_events(self, t: float, image: np.ndarray, zone: Zone, kind: str, rule: ConditionRule,
                      later: ConditionRule, mine: list[Sighting], static: np.ndarray | None) -> list[Outgoing]:
        """Something new in a zone whose rule holds an incident for review (a pile dumped on or beside
        a stain that was there when the camera came up): the held incident cannot carry it, since it
        stays open on the stain, only at the stain's place, and was never dispatched. Once the
        left-object check sees still, changed ground under a detection, ``later`` raises it as its own
        incident, dispatched, kept at its place as a confirmed incident is (``_at_place``: not only while
        the check still sees it still, which a swaying camera's check stopped doing 8-12 s before a
        spill was taken away) and cleared when that ground is back to what it was. When the held lead ends, the
        clocks ``later`` runs before a start go on in the zone's rule (``ConditionRule.hand_over``), and an
        incident ``later`` raised stays its own until it ends (the zone's rule raised the same pile a second time,
        under another id, at its persistence past the lead's end: ``models/litter/HISTORY.md``, draw 33)."""
        if later.place is None and not rule.holds_for_review:  # the held lead ended: the zone's rule goes on
            later.hand_over(rule)
        if later.place is not None:  # open: kept at its place until that ground is back, as `_at_place` says
            new = self._at_place(later, mine)
        else:
            new = [s for s in (mine if rule.holds_for_review else [])
                   if static is not None and covered(static, s.box) >= CONFIRM_COVER]
        best = max(new, key=lambda s: s.score, default=None)
        sighting = best or Sighting(None, (0.5, 0.5), polygon_to_xyxy(zone.polygon), 0.0, kind)
        events = later.observe(t, best is not None, sighting)
        self._remember_ground(later, events)
        return [self._litter_outgoing(zone, kind, e, image, "detector+left_object", False) for e in events]

    def _litter_outgoing(self, zone: Zone, kind: str, e: Event, image: np.ndarray, source: str,
                         needs_review: bool) -> Outgoing:
        extra = {"source": source if e.state != "end" else "none", "needs_review": needs_review}
        if kind == "spill":
            b = e.sighting.box
            extra["urgent"] = bool((b[2] - b[0]) * (b[3] - b[1]) >= zone.urgent_area * polygon_area(zone.polygon))
        return self._outgoing(zone.id, zone.polygon, zone.grid, kind, e, image, extra)

    def camera_lost(self, t: float, reason: str | None = None) -> list[Outgoing]:
        """The camera has been unreachable too long: end its incidents, raise an offline fault saying why
        (``reason``: its reader's last error, e.g. a refused connection or a 401). Without it "no video stream",
        a wrong password and a dead camera looked the same, and maintenance went to the pole for a URL's fault."""
        out = self.close(t, "camera_lost")
        s = Sighting(None, (0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0, "offline")
        extra = {"reason": reason[:wire.MAX_ATTRIBUTE_CHARS]} if reason else None
        return out + [self._fault(e, None, extra) for e in self.faults["offline"].observe(t, True, s)]

    def close(self, t: float, reason: EndReason) -> list[Outgoing]:
        t = max(t, self._last_t)
        return self._end_zones(t, reason, self._last_image) + [
            self._fault(e, self._last_image) for name, rule in self.faults.items() if name != "offline"
            for e in rule.close(t, reason)]

    def stop(self, t: float) -> list[Outgoing]:
        """The box stops: every open incident ends, ``box_stopped``, its offline fault too (no one watches them from
        now on; one still there is raised again after the box's next start)."""
        t = max(t, self._last_t)
        return self.close(t, "box_stopped") + [self._fault(e, None)
                                               for e in self.faults["offline"].close(t, "box_stopped")]

    def _end_zones(self, t: float, reason: EndReason, image: np.ndarray | None) -> list[Outgoing]:
        """End the zones' open incidents (``image``: the evidence's picture)."""
        out = [self._outgoing(zone.id, zone.polygon, zone.grid, "illegal_parking", e, image)
               for zone, rule in self.rules for e in rule.close(t, reason)]
        out += [self._outgoing(zone.id, zone.polygon, zone.grid, kind, e, image)
                for zone, kind, *pair in self.litter for rule in pair for e in rule.close(t, reason)]
        self._places.clear()
        return out

    @property
    def open_faults(self) -> list[str]:
        """The picture faults whose ``camera_fault`` incident is open, for the heartbeat (offline is its camera's
        state). The faults the last frame showed flipped at each frame of a picture changing shape to and fro under
        one open incident, and were [] the 5 s an incident takes to clear: a heartbeat said no fault while an
        incident said one, and its end was not yet sent."""
        return sorted(name for name, rule in self.faults.items() if name != "offline" and rule.is_open)

    def _faults(self, t: float, seen: set[str], image: np.ndarray) -> list[Outgoing]:
        """The camera_fault incidents' events for the faults the picture check ``seen`` in this frame and the view's."""
        shift = [round(100 * v, 1) for v in self.alignment.shift]
        # turned while the box was down (the picture check learnt the new view), or a picture of another shape
        if self.alignment.moved or self.reshaped:
            seen.add("moved")
        elif any(shift) or self.alignment.angle:
            seen.add("shifted")
        out = []
        for name, rule in self.faults.items():
            s = Sighting(None, (0.5, 1.0), (0.0, 0.0, 1.0, 1.0), 1.0, name)
            active = name in seen
            extra = {"view_shift_x_pct": shift[0], "view_shift_y_pct": shift[1],
                     "view_angle_deg": round(self.alignment.angle, 1)} if name == "shifted" else None
            if name == "moved" and self.reshaped and self._shape and self.first_shape:
                extra = {"picture_size": "%dx%d" % self._shape, "first_picture_size": "%dx%d" % self.first_shape}
            out += [self._fault(e, image, extra) for e in rule.observe(t, active, s)]
        return out

    def _fault(self, e: Event, image: np.ndarray | None, extra: dict | None = None) -> Outgoing:
        """A camera_fault incident's event, held for a person while its camera was never read
        (``held_if_never_read``)."""
        return self._outgoing("camera", WHOLE_FRAME, None, "camera_fault", e, image,
                              held_if_never_read(extra, self.read))

    @staticmethod
    def _sightings(vehicles: sv.Detections, w: int, h: int) -> list[Sighting]:
        ids = vehicles.tracker_id if vehicles.tracker_id is not None else [None] * len(vehicles)
        labels = vehicles.data.get("class_name", [""] * len(vehicles))
        return [
            Sighting(track_id=int(tid) if tid is not None and tid >= 0 else None,
                     anchor=anchor(box), box=box, score=float(score), label=str(label))
            for box, score, tid, label in zip((normalise(b, w, h) for b in vehicles.xyxy.astype(float).tolist()),
                                              vehicles.confidence, ids, labels)
        ]

    def _outgoing(self, zone_id: str, polygon, grid: str | None, kind: str, event: Event,
                  image: np.ndarray | None, extra: dict | None = None) -> Outgoing:
        s = event.sighting
        jpeg = frame = None
        if event.state in ("start", "end") and image is not None:
            jpeg = snapshot(image, s.box, polygon, f"{s.label} {s.score:.2f} {event.dwell_s:.0f}s")
            frame = frame_jpeg(image) if self.send_frames else None
        location = self.location
        model = self.detectors[LITTER if kind in LITTER_TYPES else VEHICLE]
        message = {
            "schema_version": wire.SCHEMA_VERSION,
            "incident_id": wire.owned_incident_id(self.box, event.incident_id),
            "seq": event.seq,
            "state": event.state,
            "type": kind,
            "box": self.box,
            "camera": self.camera.id,
            "zone": zone_id,
            "grid": grid or self.camera.grid,
            "location": {"lat": location.lat, "lon": location.lon} if location else None,
            "started_at": wire.iso(event.started_at + self.wall_offset),
            "observed_at": wire.iso(event.observed_at + self.wall_offset),
            "ended_at": wire.iso(event.ended_at + self.wall_offset) if event.ended_at is not None else None,
            "end_reason": event.end_reason,
            "confidence": round(min(1.0, max(0.0, s.score)), 3),
            "bbox": [round(min(1.0, max(0.0, v)), 4) for v in s.box],
            "track_id": s.track_id,
            "attributes": {"dwell_s": event.dwell_s, "label": s.label, **(extra or {})},
            "evidence": {"sha256": hashlib.sha256(jpeg).hexdigest(), "bytes": len(jpeg),
                         **({"frame": {"sha256": hashlib.sha256(frame).hexdigest(), "bytes": len(frame)}}
                            if frame else {})} if jpeg else None,
            "model": {"name": model.name, "version": model.version},
        }
        return Outgoing(wire.validate_incident(message), jpeg, frame)
