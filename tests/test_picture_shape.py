"""Pictures of a shape no camera makes, and cameras whose picture changes shape, on real streams made here with
ffmpeg and the real models: refused as the camera's fault (edge/source.py), bounded in the pipeline
(edge/detector.py tile_regions, edge/leftobject.py), a moved fault while the zones would lie on other ground
(edge/pipeline.py); the video track a person means, of several."""

import subprocess

import pytest

from edge.source import SourceError, open_frames

from .conftest import CLIP

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


@pytest.mark.parametrize("size", ["4000x4", "4x4000", "16x16", "3840x400"])
def test_a_picture_no_camera_makes_is_the_cameras_fault_and_names_its_size(tmp_path, size):
    """A 4000x4 stream made 667 detector images a frame and stopped analysis for every camera of the box."""
    with pytest.raises(SourceError, match=f"a {size} picture is no camera's"):
        next(open_frames(str(still(tmp_path / "odd.mp4", size))))


def test_the_longest_and_smallest_pictures_cameras_make_are_analysed(tmp_path):
    for size, shape in (("256x32", (32, 256)), ("32x256", (256, 32)), ("128x96", (96, 128))):
        _, image = next(open_frames(str(still(tmp_path / f"{size}.mp4", size))))
        assert image.shape[:2] == shape
