"""Bad edge configuration gets an error that names the camera, zone and field."""

import base64
import math
import os
import re
import string
import subprocess
import sys
import time
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import AMBIGUOUS, ConfigError, camera_url, load_config, parse_config
from edge.source import SourceError, open_frames
from xueliang import services
from xueliang.passwords import without_password

from .conftest import tcp_server


def config_with(camera_overrides=None, zone_overrides=None, top=None):
    zone = {"id": "p1", "types": ["illegal_parking"], "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "dwell_s": 30}
    zone.update(zone_overrides or {})
    camera = {"id": "gate-3", "url": "rtsp://127.0.0.1:8554/x", "grid": "HQ-1", "zones": [zone]}
    camera.update(camera_overrides or {})
    raw = {"box": "b1", "cameras": [camera]}
    raw.update(top or {})
    return raw


@pytest.mark.parametrize("raw, expected", [
    (config_with(zone_overrides={"polygon": [[0, 0], [1, 1]]}),
     "camera 'gate-3' zone 'p1' polygon: needs at least 3 points, got 2"),
    (config_with(zone_overrides={"polygon": [[0, 0], [1.5, 1], [0, 1]]}),
     "camera 'gate-3' zone 'p1' polygon: point [1.5, 1.0] is outside 0..1"),
    (config_with(zone_overrides={"polygon": [[1, 1], [1, 0], [1, 0.5]]}),  # on the edge: failed every frame
     "camera 'gate-3' zone 'p1' polygon: encloses no area, or less than 1e-06 of the frame (about two pixels of 1080p): its points lie on one line or close together"),
    (config_with(zone_overrides={"polygon": [[0.5, 0.5]] * 3}), "camera 'gate-3' zone 'p1' polygon: encloses no area"),
    (config_with(zone_overrides={"polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}), "zone 'p1' polygon: encloses no area"),
    # a bow-tie: its area the difference of its loops (the litter rule's urgent share), or none at all
    (config_with(zone_overrides={"polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}),
     "camera 'gate-3' zone 'p1' polygon: edges 1 and 3 cross ([0.0, 0.0]-[1.0, 1.0] and [1.0, 0.0]-[0.0, 1.0]; edge n "
     "runs from point n to the next); list the zone's corners in order around it"),
    (config_with(zone_overrides={"polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.5]]}),
     "camera 'gate-3' zone 'p1' polygon: edges 1 and 3 cross"),
    (config_with(zone_overrides={"polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.3, 0.1], [0.1, 0.5]]}),
     "zone 'p1' polygon: edges 1 and 3 cross"),  # touching: point 4 lies on edge 1
    (config_with(zone_overrides={"polygon": [[0.5 + 0.4 * math.cos(i / 1e4), 0.5 + 0.4 * math.sin(i / 1e4)]
                                             for i in range(200_000)]}),  # every point tested on every frame
     "camera 'gate-3' zone 'p1' polygon: has 200000 points, at most 100; draw the zone by its corners"),
    (config_with(zone_overrides={"dwell_s": -5}), "camera 'gate-3' zone 'p1' dwell_s: is -5; write more than 0"),
    (config_with(zone_overrides={"types": ["parking"]}), "camera 'gate-3' zone 'p1' types 0: Input should be"),
    # two rules under one key: every pile raised twice, with one incident id
    (config_with(zone_overrides={"types": ["garbage", "spill", "garbage"]}),
     "camera 'gate-3' zone 'p1' types: garbage named more than once; name each type once"),
    (config_with(zone_overrides={"dwel_s": 3}), "camera 'gate-3' zone 'p1' dwel_s: not a field here; did you mean "
     "dwell_s?"),
    (config_with(camera_overrides={"grid": ""}), "camera 'gate-3' grid: '' is not a grid code: write it as the city's "
     "grid table has it, in letters (Chinese too), digits and . _ - (a letter or digit first, at most 64; no spaces, "
     "/ + # or full-width letters)"),
    (config_with(camera_overrides={"grid": "红桥区 丁字沽"}), "camera 'gate-3' grid: '红桥区 丁字沽' is not a grid code"),
    (config_with(camera_overrides={"url": None}), "camera 'gate-3' url: Input should be a valid string"),
    # 1 failed every read as "Operation not supported", which reads like a broken camera
    (config_with(camera_overrides={"max_width": 1}),
     "camera 'gate-3' max_width: 1 pixels is too narrow to analyse; 0 (full size) or at least 64"),
    (config_with(top={"box": "bad box"}), "box: 'bad box' is not an id: write letters A-Z a-z, digits and . _ - (a "
     "letter or digit first, at most 64; it names MQTT topics, files and pages' addresses, so no Chinese, spaces or "
     "full-width letters: 东门 as dongmen)"),
    # a regular expression was all it said: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
    (config_with(camera_overrides={"id": "东门"}), "camera '东门' id: '东门' is not an id: write letters A-Z a-z"),
    (config_with(zone_overrides={"id": "ｐ1"}), "camera 'gate-3' zone 'ｐ1' id: 'ｐ1' is not an id"),
    # ids in topics and in the gateway's URLs: . and .. are path segments a URL shortens
    (config_with(top={"box": ".."}), "box: '..' is not an id"),
    (config_with(camera_overrides={"id": "."}), "camera '.' id: '.' is not an id"),
    (config_with(zone_overrides={"id": ".."}), "zone '..' id: '..' is not an id"),
    (config_with(top={"broker": {"port": 99999}}), "broker port: is 99999; write 65535 or less"),
    (config_with(top={"box": "dispatch"}), "box: 'dispatch' is reserved: xl/v1/dispatch/ carries the gateway's"),
    (config_with(top={"box": "escalations"}), "box: 'escalations' is reserved"),
    (config_with(top={"broker": {"username": "b2"}}), "broker: username 'b2' is not the box id 'b1'"),
    (config_with(top={"broker": {"resend_after_s": 0}}), "broker resend_after_s: is 0; write 1 or more"),
    ({"box": "b1", "cameras": []}, "cameras: List should have at least 1 item"),
    (config_with(top={"detection": {"litter_confirmed_min_score": 0.4}}),
     "detection: litter_confirmed_min_score 0.4 is above litter_min_score 0.3"),
    (config_with(top={"heartbeat_s": float("inf")}), "heartbeat_s: Input should be a finite number"),
    (config_with(top={"heartbeat_s": 1e300}), "heartbeat_s: is 1e+300; write 3600 or less"),
    (config_with(camera_overrides={"read_timeout_s": float("inf")}), "camera 'gate-3' read_timeout_s: Input should be a finite"),
    (config_with(top={"rules": {"gap_s": float("nan")}}), "rules gap_s: Input should be a finite number"),
    (config_with(top={"rules": {"update_interval_s": float("inf")}}), "rules update_interval_s: Input should be a finite"),
    (config_with(zone_overrides={"dwell_s": float("nan")}), "camera 'gate-3' zone 'p1' dwell_s: Input should be a finite"),
    # YAML's `dwell_s: yes` was a dwell of one second
    (config_with(zone_overrides={"dwell_s": True}), "camera 'gate-3' zone 'p1' dwell_s: True (YAML's "
     "yes/no/on/off/true/false) is not a number"),
    (config_with(top={"detection": {"litter_min_score": False}}), "detection litter_min_score: False (YAML's"),
])
def test_bad_config_names_the_place(raw, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert expected in str(err.value)



@pytest.mark.parametrize("raw, expected", [
    (config_with(zone_overrides={"dwell_secs": 30}),
     "camera 'gate-3' zone 'p1' dwell_secs: not a field here; did you mean dwell_s?"),
    (config_with(zone_overrides={"Dwell_S": 30}), "camera 'gate-3' zone 'p1' Dwell_S: not a field here; did you mean "
     "dwell_s?"),
    # a zone's setting written on its camera, a camera's or the broker's at the top, the rules' under the broker
    (config_with(camera_overrides={"dwell_s": 30}), "camera 'gate-3' dwell_s: not a field here; it belongs under zones:"),
    (config_with(top={"username": "b1"}), "username: not a field at the top level; it belongs under broker:"),
    (config_with(top={"max_width": 640}), "max_width: not a field at the top level; it belongs under cameras:"),
    (config_with(top={"broker": {"gap_s": 10}}), "broker gap_s: not a field here; it belongs under rules: at the top level"),
    (config_with(zone_overrides={"box": "b1"}), "camera 'gate-3' zone 'p1' box: not a field here; it belongs at the top"),
    (config_with(top={"min_scor": 0.5}), "min_scor: not a field at the top level; did you mean min_score, under detection:?"),
    (config_with(zone_overrides={"停车时长": 30}), "camera 'gate-3' zone 'p1' 停车时长: not a field here; the fields here are "
     "id, types, polygon, dwell_s, grid, persistence_s, clear_s, urgent_area"),
])
def test_a_field_misspelt_or_in_the_wrong_place_is_named_with_what_was_meant(raw, expected):
    """Installers' mistakes, each said only as "Extra inputs are not permitted"."""
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert expected in str(err.value)


def test_the_first_twenty_mistakes_are_listed_and_the_rest_counted():
    """A 4 MB file of keys that are no field (200,000) was refused with each on a line of its own: 9 MB of them."""
    with pytest.raises(ConfigError) as err:
        parse_config(config_with(zone_overrides={f"k{i}": 1 for i in range(150)}, camera_overrides={"grid": "东 门"}))
    lines = str(err.value).splitlines()
    assert lines[0] == "config: 151 error(s)" and len(lines) == 22
    assert lines[20].startswith("  camera 'gate-3' zone 'p1' k18: not a field here; the fields here are id, types")
    assert lines[21] == "  ... and 131 more, each a key that is no field"
    with pytest.raises(ConfigError) as err:  # another mistake among the rest is counted apart
        parse_config(config_with(zone_overrides={f"k{i}": 1 for i in range(30)}, top={"heartbeat_s": "10s"}))
    assert str(err.value).splitlines()[-1] == "  ... and 11 more, 10 of them keys that are no field"

@pytest.mark.parametrize("polygon", [
    [[0.5 + 0.4 * math.cos(k / 16), 0.5 + 0.4 * math.sin(k / 16)] for k in range(100)],  # the most corners
    [[0.1, 0.1], [0.5, 0.1], [0.5, 0.1], [0.5, 0.5]],  # a point repeated: taken as one, kept as written
    [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.1]],  # closed as GeoJSON closes a ring
    [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.3, 0.2], [0.1, 0.5]],  # not convex
])
def test_a_zone_may_have_100_corners_and_repeat_a_point(polygon):
    assert parse_config(config_with(zone_overrides={"polygon": polygon})).cameras[0].zones[0].polygon == \
        [tuple(p) for p in polygon]


def test_duplicate_zone_ids_are_refused():
    raw = config_with()
    raw["cameras"][0]["zones"].append(dict(raw["cameras"][0]["zones"][0]))
    with pytest.raises(ConfigError, match="camera 'gate-3': zone id 'p1' appears twice"):
        parse_config(raw)


def test_duplicate_camera_ids_are_refused_under_cameras():
    raw = config_with()
    raw["cameras"].append(dict(raw["cameras"][0]))
    with pytest.raises(ConfigError, match=r"\n  cameras: camera id 'gate-3' appears twice"):
        parse_config(raw)


def test_two_cameras_reading_one_pipe_are_refused_and_one_file_is_not(tmp_path):
    """The kernel gives each byte written to a pipe (a FIFO) to one of its readers: two cameras named on one pipe
    each got a torn share of the stream. A file or an RTSP stream is read whole by each camera that names it."""
    pipe, clip = tmp_path / "cam.fifo", tmp_path / "cam.mp4"
    os.mkfifo(pipe)
    clip.write_bytes(b"")
    raw = config_with()
    for url in (pipe, clip):
        raw["cameras"] = [dict(raw["cameras"][0], url=str(url)), dict(raw["cameras"][0], id="gate-4", url=str(url))]
        if url == clip:
            assert [c.id for c in parse_config(raw).cameras] == ["gate-3", "gate-4"]
            continue
        with pytest.raises(ConfigError, match=r"\n  cameras: cameras 'gate-3' and 'gate-4' read the same pipe: the "
                                              "kernel gives each byte written to it to one of its readers"):
            parse_config(raw)


@pytest.mark.parametrize("text, line", [
    ("box: b1\ncameras: []\nbox: b2\n", "'box' is written twice in one mapping (lines 1 and 3)"),
    # a camera's zones pasted twice, the second list empty: the camera loaded with no zones
    ("box: b1\ncameras:\n  - id: c1\n    url: x\n    grid: G-1\n    zones:\n      - id: z\n    zones: []\n",
     "'zones' is written twice in one mapping (lines 6 and 8)"),
])
def test_a_yaml_key_written_twice_is_refused_with_both_lines(tmp_path, text, line):
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid YAML: {line}; keep one")):
        load_config(path)


@pytest.mark.parametrize("setting, where", [
    ('data_dir: "/var/lib/xl\\0old"', "data_dir"),  # stopped the box with a traceback (embedded null byte)
    ('broker: {tls_ca: "/etc/xl/ca.crt\\0"}', "broker tls_ca"),  # the same, at the TLS set-up
    ('broker: {host: "10.0.0.9\\0.example"}', "broker host"),  # read cut short: another host
    ('broker: {password: "s3cr\\0et"}', "broker password"),
])
def test_a_nul_character_in_a_setting_is_refused_by_its_place_never_showing_it(tmp_path, setting, where):
    """YAML writes a NUL as "\\0"; the system reads a name only up to it. The camera's url, cut short there, opened
    another file or host; its password is not shown."""
    path = tmp_path / "edge.yaml"
    path.write_text(f"box: b1\n{setting}\ncameras: [{{id: c1, url: \"rtsp://admin:s3cr\\0et@10.0.0.5/s1\", grid: G}}]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    nul = "has a NUL character (\\0) in it, which no name, path or address can hold; remove it"
    assert f"\n  {where}: {nul}" in str(err.value) and f"\n  camera 'c1' url: {nul}" in str(err.value)
    assert "s3cr" not in str(err.value)


@pytest.mark.parametrize("line, error", [
    # Python's "Exceeds the limit (4300 digits) ...; use sys.set_int_max_str_digits()", naming neither
    ("broker: {port: " + "9" * 100_000 + "}", "port: a number of 100000 digits; a setting's number has at most "
     "4300\n  in \"{path}\", line 2, column 16"),
    # "day is out of range for month", alone
    ("heartbeat_s: 2026-02-30", "heartbeat_s: '2026-02-30' cannot be read as a YAML timestamp (day is out of range "
     "for month)\n  in \"{path}\", line 2, column 14"),
])
def test_a_yaml_value_python_cannot_make_is_named_by_key_and_place(tmp_path, line, error):
    path = tmp_path / "edge.yaml"
    path.write_text(f"box: b1\n{line}\ncameras: []\n")
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    assert str(failed.value) == f"{path}: not valid YAML: " + error.format(path=path)


def test_yaml_merge_keys_are_not_keys_written_twice(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\nzone: &kerb {types: [illegal_parking], polygon: [[0, 0], [1, 0], [1, 1]], dwell_s: 30}\n"
                    "cameras:\n  - id: c1\n    url: x\n    grid: G-1\n    zones:\n"
                    "      - {<<: *kerb, id: a}\n      - {<<: *kerb, id: b, dwell_s: 60}\n")
    with pytest.raises(ConfigError, match="zone: not a field at the top level"):  # read, then refused as a field
        load_config(path)


@pytest.mark.parametrize("zone, expected", [
    ({"types": ["garbage"], "dwell_s": 60}, "zone 'p1': dwell_s is for illegal_parking, which zone 'p1' does not watch"),
    ({"types": ["illegal_parking"], "persistence_s": 60}, "persistence_s is for garbage or spill, which"),
    ({"types": ["illegal_parking"], "clear_s": 9}, "clear_s is for garbage or spill, which"),
    ({"types": ["garbage"], "urgent_area": 0.5}, "zone 'p1': dwell_s is for illegal_parking; urgent_area is for spill, "
     "which zone 'p1' does not watch (types: garbage); leave it out or add the type"),
])
def test_a_setting_for_a_type_the_zone_does_not_watch_is_refused(zone, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_config(config_with(zone_overrides=zone))
    both = {**zone, "types": ["illegal_parking", "garbage", "spill"]}
    assert parse_config(config_with(zone_overrides=both)).cameras[0].zones[0].types == both["types"]


@pytest.mark.parametrize("url, tls_ca, expected", [
    ("rtsps://admin:Hunter2@10.0.0.5/s1", "nope.crt",
     "camera 'gate-3' tls_ca: no such file '{tmp}/nope.crt' (the CA certificate that signed the camera's)"),
    ("rtsps://admin:Hunter2@10.0.0.5/s1", "notes.txt", "camera 'gate-3' tls_ca: '{tmp}/notes.txt' is not a CA "
     "certificate in PEM ([X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found"),
    ("rtsps://admin:Hunter2@10.0.0.5/s1", ".", "camera 'gate-3' tls_ca: '{tmp}' is a folder; name the CA "
     "certificate file in it (the one that signed the camera's)"),
    # a CA checks only a certificate shown over TLS: on rtsp:// or a file it did nothing, and seemed to
    ("rtsp://admin:Hunter2@10.0.0.5/s1", "ca.crt", "camera 'gate-3': tls_ca is for a camera read over TLS (rtsps://), "
     "and its url is an rtsp:// url; write rtsps:// (the camera's TLS port, often 322) or leave tls_ca out"),
    ("/data/gate.mp4", "ca.crt", "camera 'gate-3': tls_ca is for a camera read over TLS (rtsps://), and its url is "
     "a file"),
])
def test_a_cameras_tls_ca_that_is_missing_no_certificate_or_not_over_tls_is_refused_at_load(tmp_path, url, tls_ca,
                                                                                            expected):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=site CA", "-keyout", str(tmp_path / "ca.key"), "-out",
                    str(tmp_path / "ca.crt")], check=True, capture_output=True, timeout=60)
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    with pytest.raises(ConfigError) as err:
        parse_config(config_with(camera_overrides={"url": url, "tls_ca": str(tmp_path / tls_ca)}))
    assert expected.format(tmp=tmp_path) in str(err.value)
    assert "Hunter2" not in str(err.value)
    config = parse_config(config_with(camera_overrides={"url": "rtsps://10.0.0.5/s1",
                                                        "tls_ca": str(tmp_path / "ca.crt")}))
    assert config.cameras[0].tls_ca == tmp_path / "ca.crt"


URL_READ = "give an rtsp:// or rtsps:// URL, or a file path"


@pytest.mark.parametrize("url, expected", [
    # opened through FFmpeg, but with no time of its own: a 5 fps MJPEG camera's clock ran 5x slow
    ("http://admin:Hunter2@10.0.0.5/video.mjpg", f"http:// is not a source the box reads right; {URL_READ} (a "
     "camera's stream over http:// or another protocol carries no time the box can follow: serve it over RTSP)"),
    ("udp://239.0.0.1:5000", "udp:// is not a source the box reads right"),
    ("foo://bar/x", "foo:// is not a source the box reads right"),  # each failed only at run time
    ("a:b.mp4", f"begins a:, which FFmpeg reads as a protocol; {URL_READ} (a file path with a colon in its first "
     "name: write ./ before it)"),
    # where the password ends and the host begins, read two ways (host admin and port 1234, or host 10.0.0.5; host x
    # or 10.0.0.5; an @ in the path, or in a password with a / in it)
    ("rtsp://admin:1234/Hunter2@10.0.0.5/s1", f"url: {AMBIGUOUS}"),
    ("rtsp://admin:Hunter2@x#1@10.0.0.5/s1", f"url: {AMBIGUOUS}"),
    ("rtsp://admin:Hunter2@10.0.0.5/live@main", f"url: {AMBIGUOUS}"),
    ("rtsp://10.0.0.5/main stream", "url: has a space in it: percent-encode it (a space as %20)"),
    ("RTSP://admin:Hunter2@/s1", f"url: names no host, or a port that is no number of 1 to 65535; {URL_READ}"),
    ("rtsp://admin:Hunter2/x", "url: names no host, or a port that is no number"),  # no @: port Hunter2
    ("rtsp://admin:Hunter2@10.0.0.5:65536/s1", "url: names no host, or a port that is no number"),
])
def test_a_camera_url_the_box_cannot_read_right_is_refused_at_load_without_its_password(url, expected):
    with pytest.raises(ConfigError) as err:
        parse_config(config_with(camera_overrides={"url": url}))
    assert "camera 'gate-3' url: " in str(err.value) and expected in str(err.value)
    assert "Hunter2" not in str(err.value)


@pytest.mark.parametrize("url, read_as", [
    ("RTSP://10.0.0.5:554/s1", "rtsp://10.0.0.5:554/s1"),  # FFmpeg: "Protocol not found"
    ("Rtsps://admin:p%40ss%23w0rd@10.0.0.5:322/s1?channel=1", "rtsps://admin:p%40ss%23w0rd@10.0.0.5:322/s1?channel=1"),
    ("rtsp://10.0.0.5/live@main", "rtsp://10.0.0.5/live@main"),  # an @ in the path is no user information
    ("rtsp://10.0.0.5:554/live@main", "rtsp://10.0.0.5:554/live@main"),
    ("rtsp://10.0.0.5:554/user=admin&password=Admin@123&channel=1&stream=0.sdp?",  # a password in the path
     "rtsp://10.0.0.5:554/user=admin&password=Admin@123&channel=1&stream=0.sdp?"),
    # a password as typed: FFmpeg read the host in it (admin, port ab: "Name or service not known"), and the box
    # logged it whole; now percent-encoded, which FFmpeg decodes
    ("rtsp://admin:ab/c?d@10.0.0.5:554/Streaming/Channels/101",
     "rtsp://admin:ab%2Fc%3Fd@10.0.0.5:554/Streaming/Channels/101"),
    ("rtsp://admin:Admin@123@10.0.0.5/s1", "rtsp://admin:Admin%40123@10.0.0.5/s1"),
    ("rtsp://admin:p#1 x@10.0.0.5:554/cam/realmonitor?channel=1&subtype=0",
     "rtsp://admin:p%231%20x@10.0.0.5:554/cam/realmonitor?channel=1&subtype=0"),
    ("rtsp://admin:a/b@[fe80::1]:554/s1", "rtsp://admin:a%2Fb@[fe80::1]:554/s1"),
    ("/data/videos/gate 1.mp4", "/data/videos/gate 1.mp4"),
    ("./a:b.mp4", "./a:b.mp4"),
])
def test_an_rtsp_url_of_any_case_and_a_file_path_are_read(url, read_as):
    assert parse_config(config_with(camera_overrides={"url": url})).cameras[0].url == read_as


HIKVISION = "rtsp://admin:{}@10.0.0.5:554/Streaming/Channels/101"


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(sorted(set(string.printable) - set(string.whitespace) - {"%"}) + [" "]), min_size=1))
def test_a_password_of_printable_characters_is_read_whole_or_refused_without_it(password):
    """Read whole where it reads one way only (always where it has no / ? #); refused in words that never hold it."""
    try:
        read = camera_url(HIKVISION.format(password))
    except ValueError as refused:
        assert re.search("[/?#]", password) and str(refused) == AMBIGUOUS
        return
    parts = urlsplit(read)
    assert (parts.username, unquote(parts.password), parts.hostname, parts.port, parts.path) == \
        ("admin", password, "10.0.0.5", 554, "/Streaming/Channels/101")
    assert camera_url(read) == read  # read as FFmpeg reads it
    assert without_password(f"cannot open {read}: refused") == f"cannot open {HIKVISION.format('***')}: refused"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_a_password_percent_encoded_is_read_as_it_is(password):
    url = HIKVISION.format(quote(password, safe=""))
    assert camera_url(url) == url and unquote(urlsplit(url).password) == password


DVR = "rtsp://10.0.0.5:554/user=admin&password={}&channel=1&stream=0.sdp?"  # many a DVR's: the password a parameter


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(sorted(set(string.printable) - set(string.whitespace) - {"&"})), min_size=1))
def test_a_password_given_as_a_parameter_of_the_url_is_hidden_whole(password):
    """A DVR's stream (as a database URL's ?password=) carries its password as a parameter, not before the host:
    the box's log and heartbeat showed it (``cannot open URL: [Errno 111] Connection refused: 'URL'``)."""
    said = "cannot open {0}: [Errno 111] Connection refused: '{0}'"
    assert without_password(said.format(DVR.format(password))) == said.format(DVR.format("***"))


@pytest.mark.parametrize("password", ["ab/c?d", "ab/c?d#e@f g'h:i%", "Admin@123"])
def test_a_password_as_typed_reaches_the_camera(password):
    """What FFmpeg sends the camera (RTSP basic authentication) is the password typed in the url, and what the box
    says of the camera never holds it: the first was read for host admin, port ab, and the error showed it."""
    sent = []

    def camera(conn):  # asks for a password, then has no such stream
        requests = conn.makefile("rb")
        while lines := list(iter(lambda: requests.readline().strip(), b"")):
            cseq = next(line.split(b":")[1].strip() for line in lines if line.lower().startswith(b"cseq"))
            auth = [line.split()[-1] for line in lines if line.lower().startswith(b"authorization: basic")]
            sent.extend(base64.b64decode(a).decode() for a in auth)
            conn.sendall(b"RTSP/1.0 " + (b"404 Not Found" if auth else b'401 Unauthorized\r\nWWW-Authenticate: Basic '
                         b'realm="cam"') + b"\r\nCSeq: " + cseq + b"\r\n\r\n")

    server = tcp_server(camera)
    url = f"rtsp://admin:{password}@127.0.0.1:{server.getsockname()[1]}/Streaming/Channels/101"
    try:
        with pytest.raises(SourceError) as refused:
            next(open_frames(parse_config(config_with(camera_overrides={"url": url})).cameras[0].url, 5, 5))
    finally:
        server.close()
    assert sent == [f"admin:{password}"]
    assert "404 Not Found" in str(refused.value) and password not in str(refused.value), refused.value


def test_a_camera_that_refuses_the_password_or_listens_on_no_port_is_said_in_ffmpegs_words_alone():
    """The heartbeat's last_error and the offline fault's reason read ``cannot open URL: [Errno 825242872] Server
    returned 401 Unauthorized (authorization failed): 'URL'``: FFmpeg's error code taken for an errno, and the url again."""
    def camera(conn):  # asks for a password, whatever it is given
        requests = conn.makefile("rb")
        while lines := list(iter(lambda: requests.readline().strip(), b"")):
            cseq = next(line.split(b":")[1].strip() for line in lines if line.lower().startswith(b"cseq"))
            conn.sendall(b'RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\nCSeq: ' + cseq +
                         b"\r\n\r\n")

    server = tcp_server(camera)
    port = server.getsockname()[1]
    try:
        for url, said in [(f"rtsp://admin:wrong@127.0.0.1:{port}/s1", "Server returned 401 Unauthorized (authorization "
                           "failed)"), (f"rtsp://admin:pw@127.0.0.1:{services.free_port()}/s1", "Connection refused")]:
            with pytest.raises(SourceError) as refused:
                next(open_frames(url, 5, 5))
            assert str(refused.value) == f"cannot open {without_password(url)}: {said}"
    finally:
        server.close()


def test_a_url_naming_a_cameras_web_port_is_said_to_name_no_rtsp_servers_port():
    """A camera's web port in the url (80, or 8000 written for 554) was refused as "Invalid data found when processing
    input", as garbage is: nothing said the port was the wrong one."""
    def web(conn):  # a camera's web server, as it answers an RTSP request
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    server = tcp_server(web)
    url = f"rtsp://admin:pw@127.0.0.1:{server.getsockname()[1]}/s1"
    try:
        with pytest.raises(SourceError) as refused:
            next(open_frames(url, 5, 5))
    finally:
        server.close()
    assert str(refused.value) == (f"cannot open {without_password(url)}: the port answered in HTTP, as a web server: "
                                  "the url names no RTSP server's port (a camera's web or SDK port; RTSP's is 554 on "
                                  "most)")


def test_good_config_fills_defaults():
    config = parse_config(config_with())
    assert config.cameras[0].zones[0].grid is None
    assert config.broker.port == 1883 and config.detection.min_score == 0.4


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("box: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("content, error", [
    ("# 东门摄像头\nbox: b1\n".encode("gbk"), r"edge.yaml: not UTF-8 text \(byte 0xb6 at offset 2\); save the file as UTF-8"),
    (("box: " + "[" * 5000 + "]" * 5000).encode(), "edge.yaml: nested too deeply"),
    (None, "edge.yaml: is a folder; name the file"),
])
def test_a_file_that_is_not_utf8_yaml_is_named(tmp_path, content, error):
    path = tmp_path / "edge.yaml"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(ConfigError, match=error):
        load_config(path)


def test_a_byte_order_mark_is_no_mistake(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_bytes("\ufeffbox: b1\ncameras:\n  - {id: c1, url: x.mp4, grid: G1}\n".encode())
    assert load_config(path).box == "b1"


@pytest.mark.slow
def test_cli_prints_the_error_and_exits_2(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\ncameras:\n  - {id: gate-3, url: x, grid: g, zones: [{id: p1, types: [illegal_parking], polygon: [[0, 0], [1, 1]]}]}\n")
    run = subprocess.run([sys.executable, "-m", "xueliang", "replay", "x.mp4", "--config", str(path), "--camera", "gate-3"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "camera 'gate-3' zone 'p1' polygon: needs at least 3 points, got 2" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("text, expected, error", [
    ("left_object: off", "off", None),           # YAML 1.1 reads this as false
    ("left_object: \"off\"", "off", None),
    ("left_object: either", "either", None),
    ("left_object: on", None, "detection left_object: got true"),
    ("left_object: maybe", None, "detection left_object: Input should be 'confirm', 'either' or 'off'"),
])
def test_left_object_off_unquoted_is_accepted(tmp_path, caplog, text, expected, error):
    path = tmp_path / "edge.yaml"
    path.write_text(f"box: b1\ndetection:\n  {text}\ncameras:\n  - {{id: c1, url: x.mp4, grid: G1}}\n")
    if error:
        with pytest.raises(ConfigError, match=error):
            load_config(path)
        return
    assert load_config(path).detection.left_object == expected
    assert ("YAML's unquoted off" in caplog.text) == (text == "left_object: off")


@pytest.mark.parametrize("style", ["flow", "block"])
def test_a_zone_of_100000_points_is_refused_at_its_101st_naming_camera_zone_and_field(tmp_path, style):
    """A mask's outline pasted as a zone (2-3 MB): PyYAML took 7-15 s over it before the polygon's bound refused it."""
    points = [f"[{0.5 + 0.4 * math.cos(i / 1e4):.6f}, {0.5 + 0.4 * math.sin(i / 1e4):.6f}]" for i in range(100_000)]
    polygon = f" [{', '.join(points)}]" if style == "flow" else "".join(f"\n          - {p}" for p in points)
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\ncameras:\n  - id: gate-3\n    url: rtsp://127.0.0.1:8554/x\n    grid: HQ-1\n    zones:\n"
                    f"      - id: p1\n        types: [illegal_parking]\n        polygon:{polygon}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value) == (f"{path}: 1 error(s)\n  camera 'gate-3' zone 'p1' polygon: has more than 100 points "
                                  f"(read up to line {9 if style == 'flow' else 110}), at most 100; draw the zone by "
                                  "its corners")


@pytest.mark.parametrize("where, indent, said", [
    ("", "", "the top level"),  # keys that are no field, pasted at the top
    ("cameras:\n  - id: gate-3\n    url: x.mp4\n    grid: G1\n    zones:\n      - id: p1\n", " " * 8,
     "camera 'gate-3' zone 'p1'"),
])
def test_a_mapping_of_more_than_1000_keys_is_refused_at_the_key_past_them(tmp_path, where, indent, said):
    """200,000 keys in one mapping (2.9 MB) took 4 s to read before the config refused each as no field."""
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\n" + where + "".join(f"{indent}k{i}: 1\n" for i in range(20_000)))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    line = where.count("\n") + 1_001  # the 1,001st key's, box or the zone's id the first
    assert str(refused.value) == (f"{path}: 1 error(s)\n  {said}: more than 1,000 keys in one mapping (read up to line "
                                  f"{line}); a mapping written by hand holds a few dozen: write many of a kind as a list")


def test_an_edge_config_over_4_mib_is_refused_unread(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\n" + "# a comment\n" * 400_000)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: more than 4,194,304 bytes; a file written by hand is a "
                                                    "fraction of that")):
        load_config(path)


@pytest.mark.parametrize("line, error", [
    # YAML 1.1's octal: a dwell of 24 s, without a word
    ("dwell_s: 030", "dwell_s: 030 is read by YAML as an octal number, 24; write it without the leading zero, or "
     "quote it ('030') where it is a name\n  in \"{path}\", line 8, column 19"),
    # base 60: 90 s, or an hour and a half meant?
    ("dwell_s: 1:30", "dwell_s: 1:30 is read by YAML as a number in base 60, 90 (minutes and seconds, or hours and "
     "minutes?); write the number itself, or quote it where it is text"),
])
def test_a_number_yaml_reads_in_a_base_nobody_means_is_refused_naming_key_and_line(tmp_path, line, error):
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\ncameras:\n  - id: gate-3\n    url: x.mp4\n    grid: G1\n    zones:\n"
                    f"      - {{id: p1, types: [illegal_parking], polygon: [[0, 0], [1, 0], [1, 1]],\n         {line}}}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value).startswith(f"{path}: not valid YAML: " + error.format(path=path))
    path.write_text(path.read_text().replace(line, line.split(":")[0] + ": 30"))
    assert load_config(path).cameras[0].zones[0].dwell_s == 30  # hexadecimal, 1_000, '030' quoted read as ever


def test_aliases_that_stand_for_a_billion_values_are_refused_where_they_pass_the_bound(tmp_path):
    """A camera with 300 zones by alias, and 300 cameras of it by alias (2 kB): 2.6 s to refuse, 24 s for 1,000 each
    (6 kB), 40 min for 60 kB; an anchor or two, or a merge (test_yaml_merge_keys...), is what a person writes."""
    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\nz: &z {id: z, types: [garbage], polygon: [[0, 0], [1, 0], [1, 1]]}\n"
                    f"zs: &zs [{', '.join(['*z'] * 300)}]\ncamera: &c {{id: c1, url: x.mp4, grid: G, zones: *zs}}\n"
                    f"cameras: [{', '.join(['*c'] * 300)}]\n")
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert time.monotonic() - started < 1
    assert str(refused.value).startswith(
        f"{path}: not valid YAML: its anchors and aliases (&c, *c) stand for more than 100,000 values by here; a "
        f"configuration written by hand repeats a few: write them out\n  in \"{path}\", line 5, column ")


@pytest.mark.parametrize("second", [
    "rtsp://10.0.0.5/s1",
    "RTSP://other:Hunter2@10.0.0.5:554/s1",  # the same stream: another account, the port written out, in capitals
])
def test_two_cameras_reading_one_rtsp_stream_are_refused_naming_both(second):
    """A camera's block copied for the next, its id changed and its url not: both loaded, the stream was pulled twice
    (a camera takes a few), each of its problems raised twice, and the camera meant never watched."""
    raw = config_with(camera_overrides={"url": "rtsp://admin:Hunter2@10.0.0.5/s1"})
    raw["cameras"].append(dict(raw["cameras"][0], id="gate-4", url=second))
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert "\n  cameras: cameras 'gate-3' and 'gate-4' read the same stream (rtsp://" in str(refused.value)
    assert "the camera meant is not watched; give the second its own url" in str(refused.value)
    assert "Hunter2" not in str(refused.value)
    for other in ("rtsp://10.0.0.6/s1", "rtsp://10.0.0.5/s2", "rtsp://10.0.0.5:8554/s1", "rtsps://10.0.0.5/s1",
                  "rtsp://10.0.0.5/s1?channel=2"):
        raw["cameras"][1]["url"] = other
        assert parse_config(raw).cameras[1].id == "gate-4"


@pytest.mark.parametrize("url, said", [
    # pasted from a document or a chat: each loaded as a file's name, "no such file" at run time
    ("\u201crtsp://admin:Hunter2@10.0.0.5/s1\u201d", "has '\u201c' before its rtsp://"),
    (" rtsp://admin:Hunter2@10.0.0.5/s1", "has ' ' before its rtsp://"),
    ("rtsp\uff1a//admin:Hunter2@10.0.0.5/s1", "its colon is a full-width one (\uff1a)"),
    ("RTSP : //admin:Hunter2@10.0.0.5/s1", "has a space in its ://"),
])
def test_a_url_pasted_with_quotes_a_space_or_a_full_width_colon_is_refused_not_read_as_a_file(url, said):
    with pytest.raises(ConfigError) as refused:
        parse_config(config_with(camera_overrides={"url": url}))
    assert f"camera 'gate-3' url: {said}, so the box would read it as a file's name (pasted from a document or a " \
        "chat?); write the url alone, beginning rtsp://" in str(refused.value)
    assert "Hunter2" not in str(refused.value)


@pytest.mark.parametrize("top, error", [
    # paho looked each up as a name, and failed every try at run time
    ({"broker": {"host": "10.0.0.10:1883"}}, "broker host: '10.0.0.10:1883' has a port in it: write the host alone "
     "(10.0.0.10) and port: 1883"),
    ({"broker": {"host": "mqtt://10.0.0.10"}}, "broker host: 'mqtt://10.0.0.10' is a URL: write the broker's host "
     "alone (10.0.0.10, mqtt.city.local), its port under port and TLS with tls_ca"),
    ({"broker": {"host": "10.0.0.10 "}}, "broker host: '10.0.0.10 ' is not a host"),
    # a shell's home folder: the box made a folder named ~ where it was started and kept its outbox there
    ({"data_dir": "~/xl"}, "data_dir: '~/xl': ~ is no home folder here (the box would make a folder named ~ where it "
     "is started); write the whole path, e.g. "),
    ({"data_dir": "~"}, "data_dir: '~': ~ is no home folder here"),
])
def test_a_broker_host_with_a_port_or_a_scheme_and_a_data_dir_under_a_home_are_refused(top, error):
    with pytest.raises(ConfigError) as refused:
        parse_config(config_with(top=top))
    assert error in str(refused.value)


def test_edge_check_says_what_the_config_sets_or_what_is_wrong_and_starts_nothing(tmp_path, capsys):
    """An installer had no way to check a config but to start the box on it (and stop it)."""
    from xueliang.cli import main

    path = tmp_path / "edge.yaml"
    path.write_text("box: b1\ncameras:\n  - id: gate-3\n    url: rtsp://admin:Hunter2@10.0.0.5/s1\n    grid: HQ-1\n"
                    "    zones:\n      - {id: p1, types: [illegal_parking], polygon: [[0.1, 0.1], [0.5, 0.1], "
                    "[0.5, 0.5]], dwell_s: 60}\n")
    assert main(["edge", "--config", str(path), "--check"]) == 0
    assert capsys.readouterr().out == (
        f"{path}: box b1, broker 127.0.0.1:1883, data_dir data/edge\n"
        "  camera gate-3: rtsp://admin:***@10.0.0.5/s1, grid HQ-1, 1 zone(s)\n"
        "    zone p1: illegal_parking; dwell 60 s; grid HQ-1; 3 corners\n")
    assert not (tmp_path / "data").exists()
    path.write_text(path.read_text() + "detection: {vehicle_labels: [cars]}\n")  # found where the box loads its models
    assert main(["edge", "--config", str(path), "--check"]) == 2
    assert "error: detection vehicle_labels: 'cars' is not a class of model" in capsys.readouterr().err


@pytest.mark.parametrize("zone, said", [
    # minutes meant: every car that stopped 3 s at a light a case, silently
    ({"dwell_s": 3}, "camera 'gate-3' zone 'p1' dwell_s: 3 s is shorter than a car waits at a light; it is in seconds "
     "(3 minutes: 180)"),
    ({"types": ["garbage"], "dwell_s": None, "persistence_s": 2}, "camera 'gate-3' zone 'p1' persistence_s: 2 s is"),
    ({"dwell_s": 60}, None),
])
def test_a_wait_of_a_few_seconds_is_said_at_load(caplog, zone, said):
    zone = {k: v for k, v in {**config_with()["cameras"][0]["zones"][0], **zone}.items() if v is not None}
    parse_config(config_with(camera_overrides={"zones": [zone]}))
    assert (said in caplog.text) if said else "shorter than a car waits" not in caplog.text


@pytest.mark.parametrize("location, said", [
    ({"lat": 0, "lon": 0}, True), ({"lat": 0.0, "lon": 0.0}, True),
    ({"lat": 0.0, "lon": 117.15}, False), ({"lat": 39.17, "lon": 117.15}, False), (None, False),
])
def test_a_cameras_location_left_at_the_templates_0_0_is_said_at_load_naming_the_camera(caplog, location, said):
    """It loaded in silence: the incidents of cameras of several boxes left at it were 0 m apart at the gateway."""
    parse_config(config_with(camera_overrides={"location": location}))
    warned = "camera 'gate-3' location: {lat: 0, lon: 0} is a template's (the sea off West Africa); the gateway takes " \
        "it for no location and joins its incidents by camera and zone: write the camera's own, or leave location out"
    assert (warned in caplog.text) == said


@pytest.mark.parametrize("value", ["10s", "3min", "3分钟"])
def test_a_duration_written_with_its_unit_is_refused_saying_the_unit_the_setting_takes(value):
    """It said: Input should be a valid number, unable to parse string as a number."""
    with pytest.raises(ConfigError) as refused:
        parse_config(config_with(zone_overrides={"dwell_s": value}))
    assert f"camera 'gate-3' zone 'p1' dwell_s: {value!r} is not a number: write the number alone, in the unit the " \
        "setting's name ends with (_s: seconds, 3min as 180; _m: metres)" in str(refused.value)
