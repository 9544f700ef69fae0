"""Interlaced cameras: the analogue ones behind DVR/NVR encoders (PAL 720x576, 50 fields a second)."""
import subprocess

import av
import numpy as np
import pytest

from edge.source import Damage, open_frames


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
