"""Pictures of a shape no camera makes, and cameras whose picture changes shape, on real streams made here with
ffmpeg and the real models: refused as the camera's fault (edge/source.py), bounded in the pipeline
(edge/detector.py tile_regions, edge/leftobject.py), a moved fault while the zones would lie on other ground
(edge/pipeline.py); the video track a person means, of several."""

import logging
import os
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

from edge.config import parse_config
from edge.detector import LITTER, MAX_TILES, load_detectors
from edge.leftobject import TALLEST, LeftObject
from edge.pipeline import CameraPipeline
from edge.source import SourceError, open_frames

from .conftest import CLIP, REPO

NOW = 1_767_225_600.0  # stream times the wire takes (this century)
KERB = {"id": "kerb", "types": ["illegal_parking"], "dwell_s": 3,
        "polygon": [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]}
FOOT = {"id": "foot", "types": ["garbage", "spill"], "polygon": [[0.02, 0.33], [0.42, 0.33], [0.52, 0.47], [0.02, 0.43]]}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def stream(path, *parts: tuple[float, float, str]):
    """An MPEG-TS of the campus clip's ``(from_s, seconds, filter)`` parts one after the other, as a camera's
    stream whose profile is changed while it runs."""
    chunks = []
    for i, (start, seconds, how) in enumerate(parts):
        part = path.with_name(f"{path.stem}-{i}.ts")
        ffmpeg("-ss", str(start), "-t", str(seconds), "-i", str(CLIP), "-vf", how, "-c:v", "libx264", "-preset",
               "veryfast", "-g", "10", "-an", "-f", "mpegts", str(part))
        chunks.append(part.read_bytes())
    path.write_bytes(b"".join(chunks))
    return path


def still(path, size: str):
    ffmpeg("-f", "lavfi", "-i", f"testsrc=s={size}:r=2:d=1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
           "yuv420p", str(path))
    return path


@pytest.mark.parametrize("size", ["4000x4", "4x4000", "16x16", "3840x400", "8200x4400"])
def test_a_picture_no_camera_makes_is_the_cameras_fault_and_names_its_size(tmp_path, size):
    """A 4000x4 stream made 667 detector images a frame and stopped analysis for every camera of the box. A picture
    larger than H.264 and H.265 allow (8200x4400: 36.1 megapixels) was decoded whole before it was scaled down."""
    with pytest.raises(SourceError, match=f"a {size} picture is no camera's"):
        next(open_frames(str(still(tmp_path / "odd.mp4", size))))


@pytest.fixture(scope="module")
def oversized(tmp_path_factory):
    """MPEG-TS parts: 2 s of 320x240, 1 s of 8200x4400 (5 frames, one key frame), one 8200x4400 frame."""
    folder = tmp_path_factory.mktemp("oversized")
    parts = {"small": "testsrc=s=320x240:r=5:d=2", "large": "color=gray:s=8200x4400:r=5:d=1",
             "one": "color=gray:s=8200x4400:r=5:d=0.2"}
    for name, source in parts.items():
        ffmpeg("-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts",
               str(folder / f"{name}.ts"))
    return {name: (folder / f"{name}.ts").read_bytes() for name in parts}


@pytest.mark.parametrize("sampling", ["auto", "keyframes", "rate"])
@pytest.mark.parametrize("tail", ["large", "one"])
def test_a_stream_whose_picture_grows_past_any_cameras_ends_its_read_naming_the_size(tmp_path, oversized, tail,
                                                                                      sampling):
    """A stream of 800 KB whose pictures were 16384x8192 took the reader 1.5 GB: its decoder allocated every one
    before the box looked at its size. The decoder now refuses such a picture (FFmpeg's max_pixels), and the
    read ends at once with the camera's fault, the frames before it analysed. The decoder says so only where it
    decodes the picture: on the key-frame path it skips it without a word, and its frame threads (``rate``) drop
    it: a stream that ended on one such frame was read to its end as if nothing was wrong, and on the key-frame
    path, one that went on was said to be a stream whose key frames the decoder skips ("set the camera's sampling
    to auto or rate")."""
    clip = tmp_path / "grows.ts"
    clip.write_bytes(oversized["small"] + oversized[tail])
    shapes = []
    with pytest.raises(SourceError, match=r"a 8200x4400 picture is no camera's: 36\.1 megapixels, more than H\.264's"):
        for _, image in open_frames(str(clip), sampling=sampling):
            shapes.append(image.shape)
    assert len(shapes) == (2 if sampling == "rate" else 1) and set(shapes) == {(240, 320, 3)}


def test_a_stream_of_one_picture_no_camera_makes_is_refused_naming_its_size(tmp_path, oversized):
    """A file of one 8200x4400 frame gave no frame, and no reason but "1 damaged packet(s) skipped": the decoder
    refuses to open on the size its stream states, and forgets it; the packet after opens it again and is refused
    naming it, and a file of one frame has none after. The same of a pipe whose writer sent one such frame. A file of
    one frame of a size cameras make gives its frame."""
    stream, big, small = tmp_path / "one.ts", tmp_path / "one.mp4", tmp_path / "small.mp4"
    stream.write_bytes(oversized["one"])
    ffmpeg("-i", str(stream), "-c", "copy", str(big))
    ffmpeg("-f", "lavfi", "-i", "color=gray:s=320x240:r=5", "-frames:v", "1", "-c:v", "libx264", "-preset",
           "ultrafast", str(small))
    for sampling in ("auto", "keyframes", "rate"):
        with pytest.raises(SourceError, match=r"one\.mp4: a 8200x4400 picture is no camera's"):
            list(open_frames(str(big), sampling=sampling))
        assert [image.shape for _, image in open_frames(str(small), sampling=sampling)] == [(240, 320, 3)]
    pipe = tmp_path / "camera.pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_bytes, args=(oversized["one"],), daemon=True)
    writer.start()
    with pytest.raises(SourceError, match=r"camera\.pipe: a 8200x4400 picture is no camera's"):
        list(open_frames(str(pipe), read_timeout_s=2.0))
    writer.join(5)


# a process's peak memory over its own before the open, in MB, and why the source was refused
PEAK = """
import resource, sys
from edge.source import SourceError, open_frames
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    print(next(open_frames(sys.argv[1], read_timeout_s=2.0))[1].shape)
except SourceError as exc:
    print(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def png(width: int, height: int) -> bytes:
    """A PNG header stating a 16-bit RGB picture of ``width`` x ``height`` (6 bytes a pixel), with next to no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([16, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


@pytest.mark.slow  # a Python process each, to read its peak memory
@pytest.mark.parametrize("source", ["ts", "flv", "mpg", "flv pipe", "png", "png pipe"])
def test_a_source_stating_a_picture_no_camera_makes_is_refused_before_its_probe_allocates_it(tmp_path, oversized,
                                                                                              source):
    """The open's probe (FFmpeg's find_stream_info) decodes a few frames before the box sees a picture's size, with
    no max_pixels of its own: 110 KB of 8200x4400 H.264 took a reader 160 MB, a PNG header of 834 bytes stating
    8192x8192 at 16 bits 390 MB (16000x16000: 1.5 GB; 400 KB of 16384x8192 H.264: 570 MB). Handed max_pixels, the
    decoders of the streams its demuxer states at the open refused such a picture, but an FLV's and an MPEG-PS's
    streams appear only while it probes, and theirs had none (the same 160 MB; 16384x8192: 720 MB): a file's or a
    pipe's probe now decodes nothing. The size is named all the same: where the stream states none of its own (a
    PNG's), the one its header states."""
    kind = source.split()[0]
    path = tmp_path / f"large.{kind}"
    path.write_bytes(png(8192, 8192) if kind == "png" else oversized["large"])
    if kind in ("flv", "mpg"):  # as a relay copying the camera's stream writes it (``ffmpeg -c copy -f flv``)
        path.rename(path.with_suffix(".ts"))
        ffmpeg("-i", str(path.with_suffix(".ts")), "-c", "copy", "-f", {"mpg": "mpeg"}.get(kind, kind), str(path))
    if source.endswith("pipe"):
        data, path = path.read_bytes(), tmp_path / "camera.pipe"
        os.mkfifo(path)
        threading.Thread(target=path.write_bytes, args=(data,), daemon=True).start()
    done = subprocess.run([sys.executable, "-c", PEAK, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    reason, grown_mb = done.stdout.splitlines()
    size = "8192x8192" if kind == "png" else "8200x4400"
    assert f"{path.name}: a {size} picture is no camera's" in reason, done.stderr[-2000:]
    assert int(grown_mb) < 60


def test_the_longest_and_smallest_pictures_cameras_make_are_analysed(tmp_path):
    for size, shape in (("256x32", (32, 256)), ("32x256", (256, 32)), ("128x96", (96, 128))):
        _, image = next(open_frames(str(still(tmp_path / f"{size}.mp4", size))))
        assert image.shape[:2] == shape


def test_of_several_video_tracks_the_largest_picture_is_analysed_and_said(tmp_path, caplog):
    """A file with a 160x120 preview track before its 768x576 one was analysed at 160x120 (FFmpeg's best
    stream, the default one, is the preview)."""
    clip = tmp_path / "two.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=2:d=2", "-t", "2", "-i", str(CLIP), "-map", "0", "-map", "1",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip))
    caplog.set_level(logging.INFO, "edge.source")
    shapes = {image.shape for _, image in open_frames(str(clip))}
    assert shapes == {(576, 768, 3)}
    assert "2 video streams (#0 160x120, #1 768x576); analysing #1, the largest picture" in caplog.text


@pytest.fixture(scope="module")
def detectors():
    config = parse_config({"box": "b1", "cameras": [{"id": "c", "url": "x", "grid": "G-1", "zones": [KERB, FOOT]}]})
    return config, load_detectors(config)


@pytest.mark.parametrize("width, height", [(4000, 4), (4, 4000)])
def test_a_picture_of_any_shape_costs_a_bounded_number_of_detector_images_and_fails_no_frame(detectors, width,
                                                                                              height):
    """Behind the source's refusal, the pipeline bounds what one camera's frame costs: its litter tiles were "a
    third of the width" capped at the height, 667 of 4x4 pixels on a 4000x4 picture (27 s a round, the box's
    other cameras waiting), and the left-object check failed on every frame of it (OpenCV refused its
    192x1 picture)."""
    config, models = detectors
    pipeline = CameraPipeline(config, config.cameras[0], models)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (height, width, 3), np.uint8) for _ in range(3)]
    assert sum(model == LITTER for model, _ in pipeline.plan(NOW, frames[0])) <= MAX_TILES
    for t, image in enumerate(frames):
        pipeline.analyse(NOW + t, image)  # raises nothing
    assert pipeline.detector_passes == 3


def test_the_left_object_checks_picture_of_a_tall_camera_is_bounded():
    """The check's picture is 192 wide: an 8x2000 camera's had been 192x48000 (a 4x4000 one's 6 GB, 25 s a look)."""
    check = LeftObject()
    masks = [check.observe(float(t), np.full((2000, 8, 3), 40 * t, np.uint8)) for t in range(3)]
    assert masks[-1].shape == (TALLEST * check.width, check.width)


def events(pipeline, clip):
    """(stream second, picture height, type, state, label, end reason, attributes) of what the pipeline sends."""
    out = []
    for t, image in open_frames(str(clip), sampling="rate"):
        out += [(round(t), image.shape[0], m["type"], m["state"], m["attributes"]["label"], m["end_reason"],
                 m["attributes"]) for m in (o.message for o in pipeline.analyse(NOW + t, image))]
    return out


@pytest.mark.slow
def test_a_picture_cropped_to_another_shape_is_a_moved_fault_and_its_zones_rest_until_it_is_back(tmp_path, caplog):
    """A 4:3 stream cropped to 16:9 while it ran (its profile changed): the zones, in fractions of the picture, lay on
    other ground, and only an INFO line said so; a parking incident was raised in the kerb zone moved onto the road."""
    clip = stream(tmp_path / "crop.ts", (0, 15, "null"), (15, 8, "crop=768:432:0:72"), (23, 8, "null"))
    config = parse_config({"box": "b1", "cameras": [{"id": "c", "url": "x", "grid": "G-1", "zones": [KERB]}]})
    pipeline = CameraPipeline(config, config.cameras[0], load_detectors(config))
    sent = events(pipeline, clip)
    parking = [(t, h, state, reason) for t, h, kind, state, _, reason, _ in sent if kind == "illegal_parking"]
    faults = [(t, h, state, label, attributes) for t, h, kind, state, label, _, attributes in sent
              if kind == "camera_fault"]
    assert parking[0][1:] == (576, "start", None) and parking[1] == (15, 432, "end", "camera_lost")
    assert all(h == 576 for _, h, *_ in parking[2:])  # nothing raised on the cropped picture
    assert faults[0][:4] == (15, 432, "start", "moved")
    assert {k: faults[0][4][k] for k in ("picture_size", "first_picture_size")} == {
        "picture_size": "768x432", "first_picture_size": "768x576"}
    assert [(state, label) for _, _, state, label, _ in faults] == [("start", "moved"), ("end", "moved")]
    assert faults[1][:2] >= (23, 576)  # cleared once the picture has its shape again
    assert "changed shape, from 768x576 to 768x432: the zones were drawn on a picture of another shape" in caplog.text


@pytest.mark.slow
def test_a_picture_at_another_resolution_of_its_shape_is_no_fault(tmp_path):
    """1280x720, then 640x360, then 1920x1080: the same picture, the zones on their ground, analysed throughout."""
    clip = stream(tmp_path / "sizes.ts", (0, 6, "scale=1280:720"), (6, 6, "scale=640:360"), (12, 6, "scale=1920:1080"))
    config = parse_config({"box": "b1", "cameras": [{"id": "c", "url": "x", "grid": "G-1", "zones": [KERB]}]})
    pipeline = CameraPipeline(config, config.cameras[0], load_detectors(config))
    sent = events(pipeline, clip)
    assert [e for e in sent if e[2] == "camera_fault"] == []
    assert ("illegal_parking", "start") in [(e[2], e[3]) for e in sent] and not pipeline.reshaped
