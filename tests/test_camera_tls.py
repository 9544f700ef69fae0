"""A camera read over TLS (rtsps://) with its ``tls_ca``: the real RTSP test server serving TLS, certificates made
here with openssl. Read where the camera's certificate verifies; a stand-in's refused, saying why; unchecked
without a ``tls_ca``, as before."""

import logging
import subprocess
import threading
from pathlib import Path

import pytest

from edge import box
from edge.config import parse_config
from edge.source import SourceError, open_frames
from xueliang import services

from .conftest import CLIP, wait_until

SECRET = "s3cr3t-pw"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def certificate_authority(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"))
    return folder / "ca.crt"


def server_certificate(ca: Path, folder: Path, names: str) -> tuple[Path, Path]:
    """A certificate for ``names`` (a subjectAltName: ``IP:127.0.0.1,DNS:localhost``) signed by ``ca``, and its key."""
    folder.mkdir(parents=True)
    crt, key, csr, ext = (folder / f"server.{kind}" for kind in ("crt", "key", "csr", "ext"))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=camera",
            "-keyout", str(key), "-out", str(csr))
    ext.write_text(f"subjectAltName={names}\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca.with_suffix(".key")),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return crt, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """``site``: the CA that signed the camera's certificate (``camera``: for 127.0.0.1 and localhost; ``elsewhere``:
    for camera-7.example alone); ``other``: a CA that signed neither."""
    folder = tmp_path_factory.mktemp("certificates")
    site, other = certificate_authority(folder / "site", "site CA"), certificate_authority(folder / "other", "other CA")
    return {"site": site, "other": other,
            "camera": server_certificate(site, folder / "camera", "IP:127.0.0.1,DNS:localhost"),
            "elsewhere": server_certificate(site, folder / "elsewhere", "DNS:camera-7.example")}


@pytest.mark.slow
def test_a_camera_is_read_only_where_its_certificate_verifies_and_one_refused_says_why_and_stops_no_other(
        tmp_path, certificates, caplog):
    """One server, its certificate signed by the site CA, read by three cameras: one told the site CA reads it;
    one told another CA sees what a man in the middle on the street network would be to a box that knows its
    camera's CA, and is refused with the reason in its heartbeat and the log (FFmpeg says only "Input/output
    error"), never the password; one with no ``tls_ca`` reads it, its certificate unchecked, as before."""
    caplog.set_level(logging.WARNING, logger="edge.box")
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path, tls=certificates["camera"]) as server:
        url = f"rtsps://admin:{SECRET}@127.0.0.1:{server.port}/campus-gate"
        config = parse_config({"box": "b1", "cameras": [
            # each its own url (one stream read by two cameras is refused: a block copied, its url not changed);
            # the server does not read the query
            {"id": "trusted", "url": f"{url}?as=trusted", "grid": "G-1", "tls_ca": str(certificates["site"])},
            {"id": "stand-in", "url": f"{url}?as=stand-in", "grid": "G-1", "tls_ca": str(certificates["other"])},
            {"id": "unchecked", "url": f"{url}?as=unchecked", "grid": "G-1"}]})
        stop, slots = threading.Event(), box.Slots()
        readers = {c.id: box.CameraReader(c, slots, box.Metrics(), stop) for c in config.cameras}
        for reader in readers.values():
            reader.start()
        try:
            wait_until(lambda: readers["stand-in"].health.last_error and all(
                readers[c].health.state == "online" for c in ("trusted", "unchecked")), 20,
                message="the trusted and unchecked cameras online, the stand-in refused")
            cams = box.status("b1", readers, slots, {})["cameras"]
        finally:
            stop.set()
    refused = (f"cannot open rtsps://admin:***@127.0.0.1:{server.port}/campus-gate?as=stand-in: its certificate does not verify "
               f"against tls_ca {certificates['other']} (unable to get local issuer certificate); not read: a "
               "stand-in for the camera, or a certificate tls_ca did not sign or that names another host")
    assert cams["stand-in"]["last_error"] == refused and cams["stand-in"]["state"] != "online", cams["stand-in"]
    assert readers["stand-in"].health.last_frame_at is None
    assert cams["trusted"]["state"] == cams["unchecked"]["state"] == "online", cams
    assert refused in caplog.text and SECRET not in caplog.text


@pytest.mark.slow
def test_a_certificate_its_ca_signed_for_another_host_is_refused(tmp_path, certificates):
    """The certificate must name the host the url names: one the site CA signed for camera-7.example, shown at
    127.0.0.1, is another device's."""
    with services.rtsp_server({"campus-gate": CLIP}, tmp_path, tls=certificates["elsewhere"]) as server:
        frames = open_frames(f"rtsps://127.0.0.1:{server.port}/campus-gate", open_timeout_s=5,
                             tls_ca=certificates["site"])
        with pytest.raises(SourceError) as err:
            next(frames)
    assert "its certificate does not verify against tls_ca" in str(err.value)
    assert "(IP address mismatch, certificate is not valid for '127.0.0.1'.)" in str(err.value)
