"""Interlaced cameras: the analogue ones behind DVR/NVR encoders (PAL 720x576, 50 fields a second)."""
import logging
import subprocess

import av
import cv2
import numpy as np
import pytest

from edge.config import parse_config
from edge.detector import load_detectors
from edge.pipeline import CameraPipeline
from edge.source import Damage, open_frames
from xueliang import services

from .conftest import CLIP


class _Bits:
    """An H.264 RBSP written a field at a time (u, ue, se)."""

    def __init__(self):
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> "_Bits":
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> "_Bits":
        return self.u(2 * (value + 1).bit_length() - 1, value + 1)

    def align(self) -> "_Bits":
        self.bits += [0] * (-len(self.bits) % 8)
        return self

    def nal(self, ref_idc: int, kind: int) -> bytes:
        rbsp = bytes(int("".join(map(str, self.u(1, 1).align().bits[i:i + 8])), 2)
                     for i in range(0, len(self.bits), 8))
        out, zeros = bytearray([(ref_idc << 5) | kind]), 0
        for byte in rbsp:  # emulation prevention
            if zeros >= 2 and byte <= 3:
                out, zeros = out + b"\x03", 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return b"\x00\x00\x00\x01" + bytes(out)


def paff(fields: list[np.ndarray], gop: int) -> bytes:
    """H.264 (Main, CAVLC) of grey ``fields`` coded as field pictures (PAFF: each frame two pictures, two packets,
    top field first), which no encoder here makes (x264 codes interlace as MBAFF, one picture a frame). A key frame's
    fields are coded whole (I_PCM), the frames between repeat them (every macroblock skipped)."""
    height, width = fields[0].shape
    mbs = width // 16 * (height // 16)
    sps = _Bits().u(8, 77).u(16, 30).ue(0).ue(0).ue(0).ue(4).ue(2).u(1, 0).ue(width // 16 - 1).ue(height // 16 - 1)
    sps = sps.u(3, 0b001).u(1, 0).u(1, 0)  # frame_mbs_only 0, no MBAFF, direct_8x8_inference; no crop, no VUI
    pps = _Bits().ue(0).ue(0).u(2, 0).ue(0).ue(0).ue(0).u(3, 0).ue(0).ue(0).ue(0).u(3, 0b100)
    out = bytearray()
    for n in range(len(fields) // 2):
        key = n % gop == 0
        for bottom in (0, 1):
            out += _Bits().u(3, 0 if key else 1).nal(0, 9)  # access unit delimiter
            if key and not bottom:
                out += sps.nal(3, 7) + pps.nal(3, 8)
            idr = key and not bottom
            s = _Bits().ue(0).ue(7 if key else 5).ue(0).u(4, n % gop).u(1, 1).u(1, bottom)
            if idr:
                s.ue(n // gop % 2)
            s.u(8, 4 * (n % gop) + 2 * bottom)  # pic_order_cnt_lsb
            if not key:
                s.u(2, 0)  # no override, no list modification
            s.u(2 if idr else 1, 0).ue(0).ue(1)  # reference marking, qp delta, no deblocking
            if key:
                luma, chroma = np.clip(fields[2 * n + bottom], 1, 255).astype(np.uint8), bytes([128] * 64)
                for at in range(mbs):
                    y, x = divmod(at, width // 16)
                    s.ue(25).align().u(256 * 8, int.from_bytes(luma[y * 16:y * 16 + 16, x * 16:x * 16 + 16].tobytes(),
                                                               "big"))
                    s.u(128 * 8, int.from_bytes(chroma * 2, "big"))
            else:
                s.ue(mbs)
            out += s.nal(3, 5 if idr else 1)
    return bytes(out)


@pytest.fixture(scope="module")
def paff_clip(tmp_path_factory):
    """3 s of 64x64 interlaced at 25 frames a second, a key frame a second, in MPEG-TS: a square moving 2 pixels a
    field (50 a second), each field its own picture and packet."""
    folder = tmp_path_factory.mktemp("paff")
    fields = []
    for k in range(150):
        field = np.full((32, 64), 40, np.uint8)
        field[8:24, 2 * (k % 24):2 * (k % 24) + 16] = 220
        fields.append(field)
    raw, ts = folder / "paff.h264", folder / "paff.ts"
    raw.write_bytes(paff(fields, gop=25))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(raw), "-c", "copy", "-bsf:v",
                    "setts=pts=N*1800:dts=N*1800:duration=1800:time_base=1/90000", "-f", "mpegts", str(ts)],
                   check=True, timeout=60)
    return ts


@pytest.mark.parametrize("sampling", ["auto", "keyframes"])
def test_a_key_frame_coded_as_two_fields_is_handed_out_whole(paff_clip, sampling):
    """An encoder that codes each field as a picture of its own (PAFF: an analogue camera's DVR) sends a key frame in
    two packets. Draining the decoder at the first one (a key packet that gave no frame: B-frames held back) reset
    it between the two fields: no key frame was ever handed out, with no error, no damage and no word, and the camera
    was never analysed. Each key frame comes whole, as FFmpeg decodes it, its two fields woven, at its time."""
    with av.open(str(paff_clip)) as container:
        whole = {round(float(f.time), 2): f.to_ndarray(format="bgr24") for f in container.decode(video=0)
                 if f.key_frame}
    first = min(whole)
    damage = Damage()
    got = [(round(t, 2), image) for t, image in open_frames(str(paff_clip), sampling=sampling, damage=damage)]
    assert [t for t, _ in got] == [round(t - first, 2) for t in sorted(whole)] == [0.0, 1.0, 2.0]
    for t, image in got:
        assert image.shape == (64, 64, 3)
        assert np.abs(image.astype(int) - whole[round(t + first, 2)].astype(int)).mean() < 1, t
    assert damage.refused == 0
    # the fields are woven, not deinterlaced: where the square moved between them its edge is combed
    rows = got[0][1][:, :, 0].astype(int)
    assert abs(rows[16:48:2, 16] - rows[17:48:2, 16]).min() > 100


# The campus clip's top fifth, where the parked van is, moved to the bottom of a 768x576 picture: the kerb zone's
# van lies at 0.70-0.89 of the picture's height (its top left grey)
AT_BOTTOM = "crop=768:192:0:0,pad=768:576:0:384:gray"
BOTTOM_KERB = {"id": "bottom-kerb", "types": ["illegal_parking"], "dwell_s": 3,
               "polygon": [[0.80, 0.70], [0.97, 0.70], [0.97, 0.89], [0.80, 0.89]]}


@pytest.fixture(scope="module")
def hevc_fields(tmp_path_factory):
    """14 s of that picture as an x265 DVR codes an interlaced camera (the van is an incident of a 3 s dwell at 12 s):
    each field a picture of its own (768x288, 20 a second, tagged top or bottom in its SEI), a key frame a second, in
    MPEG-TS and in Matroska (for the RTSP server); and the picture's first frame, progressive, to compare with."""
    folder = tmp_path_factory.mktemp("hevcfields")
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "interlace=tff:keyint=20:log-level=error"]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "14", "-i", str(CLIP), "-an", "-vf",
                    f"{AT_BOTTOM},separatefields", *x265, "-f", "mpegts", str(folder / "fields.ts")],
                   check=True, timeout=120)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(folder / "fields.ts"), "-c", "copy",
                    str(folder / "fields.mkv")], check=True, timeout=60)
    whole = subprocess.run(["ffmpeg", "-loglevel", "error", "-t", "1", "-i", str(CLIP), "-vf", AT_BOTTOM, "-frames:v",
                            "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"], capture_output=True, check=True,
                           timeout=60).stdout
    return folder, np.frombuffer(whole, np.uint8).reshape(576, 768, 3)


@pytest.mark.parametrize("sampling", ["auto", "keyframes", "rate"])
def test_hevc_field_pictures_are_analysed_at_the_cameras_full_picture_size(hevc_fields, sampling, caplog):
    """FFmpeg weaves H.264's and MPEG-2's two fields into one frame, but hands out each field of an H.265 stream
    coded as field pictures (x265 --interlace, a DVR's) alone: the box analysed a 768x288 picture of a 768x576
    camera, its vehicles half as tall to the detector and in the evidence. Each field is scaled to full height
    (a key frame is one field: on the key-frame path its other field is never decoded), and the box says so once."""
    folder, whole = hevc_fields
    caplog.set_level(logging.INFO, logger="edge.source")
    said: set[str] = set()
    got = list(open_frames(str(folder / "fields.ts"), sampling=sampling, said=said))
    assert len(got) >= 13 and {image.shape for _, image in got} == {(576, 768, 3)}
    # the picture as the camera saw it, its bottom (the van) where it was: half its lines, each drawn twice
    assert np.abs(got[0][1][384:].astype(int) - whole[384:]).mean() < 12
    assert [r.getMessage() for r in caplog.records if "field pictures" in r.getMessage()] == [
        f"{folder / 'fields.ts'}: interlaced H.265 coded as field pictures (768x288, each a field of a 768x576 "
        "picture): each field scaled to full height, 768x576"]
    list(open_frames(str(folder / "fields.ts"), sampling=sampling, said=said))  # a file read again: said once
    assert sum("field pictures" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO) == 1


@pytest.mark.slow
def test_a_zone_at_the_bottom_of_a_field_coded_cameras_picture_sees_the_van_parked_there(hevc_fields):
    """The van parked at the bottom of a field-coded H.265 camera's picture is an incident of the zone drawn there,
    its evidence the camera's full picture (it was the 768x288 field, every vehicle in it squashed to half height)."""
    folder, _ = hevc_fields
    config = parse_config({"box": "b1", "cameras": [{"id": "c", "url": "x", "grid": "G-1", "zones": [BOTTOM_KERB]}]})
    pipeline = CameraPipeline(config, config.cameras[0], load_detectors(config))
    sent = [o for t, image in open_frames(str(folder / "fields.ts"), sampling="rate")
            for o in pipeline.analyse(1_767_225_600.0 + t, image)]
    started = [o for o in sent if o.message["type"] == "illegal_parking" and o.message["state"] == "start"]
    assert [o.message["zone"] for o in started] == ["bottom-kerb"]
    x1, y1, x2, y2 = started[0].message["bbox"]
    assert 0.70 < y1 < y2 < 0.89 and 0.80 < (x1 + x2) / 2 < 0.97
    evidence = cv2.imdecode(np.frombuffer(started[0].evidence, np.uint8), cv2.IMREAD_COLOR)
    assert evidence.shape == (576, 768, 3)


@pytest.mark.slow
def test_hevc_field_pictures_over_rtsp_are_analysed_at_full_picture_size(hevc_fields, tmp_path):
    """The same stream from the RTSP test server (GStreamer's H.265 payloader), as a DVR serves it."""
    folder, _ = hevc_fields
    with services.rtsp_server({"dvr": folder / "fields.mkv"}, tmp_path) as server:
        frames = open_frames(f"rtsp://127.0.0.1:{server.port}/dvr", sampling="auto")
        shapes = [image.shape for _, (_, image) in zip(range(3), frames)]
        frames.close()
    assert shapes == [(576, 768, 3)] * 3


def test_whole_pictures_an_encoder_tags_as_fields_are_not_doubled_in_height(tmp_path):
    """x265 fed whole progressive pictures with --interlace tags each a field: taken for fields, a 320x240 camera's
    pictures were analysed at 320x480, every vehicle twice as tall. A picture as high as half its width or more is a
    whole picture, whatever its SEI says."""
    clip = tmp_path / "tagged.ts"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "2",
                    "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "interlace=tff:keyint=10:log-level=error",
                    "-f", "mpegts", str(clip)], check=True, timeout=60)
    with av.open(str(clip)) as container:
        assert all(f.interlaced_frame for f in container.decode(video=0))  # the decoder says fields
    assert {image.shape for _, image in open_frames(str(clip), sampling="rate")} == {(240, 320, 3)}
