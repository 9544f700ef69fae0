"""Per-camera multi-object tracking with ByteTrack (the ``trackers`` package), set for slow sampling."""

from __future__ import annotations

import supervision as sv
from trackers import ByteTrackTracker


def make_tracker(interval_s: float, min_score: float, gap_s: float) -> ByteTrackTracker:
    """A ByteTrack tuned for ~1 analysed frame per ``interval_s``.

    The library's defaults assume 30 fps and confident detections: its lost-track buffer
    counts frames and its activation threshold (0.7) is above the scores a small parked
    car gets, so both are set from the analysis rate and the detection threshold. ByteTrack's
    own idea is used in full: the caller passes detections down to ``track_min_score``;
    those under ``min_score`` only continue tracks (second association), never start one.
    """
    rate = 1.0 / interval_s
    return ByteTrackTracker(
        lost_track_buffer=max(2, int(round(gap_s * rate))),
        frame_rate=rate,
        track_activation_threshold=min_score,
        minimum_consecutive_frames=1,
        minimum_iou_threshold=0.1,
        high_conf_det_threshold=min_score,
    )


def track(tracker: ByteTrackTracker, detections: sv.Detections) -> sv.Detections:
    """Detections with ``tracker_id`` set (-1 when not yet tracked).

    Called once per analysed frame in fixed-rate mode: with ``timestamp=`` (trackers 2.6.1)
    a still car at 1 frame/s was re-spawned every frame and never got an id, so the
    sampler's regular interval stands in for time.
    """
    return tracker.update(detections)
