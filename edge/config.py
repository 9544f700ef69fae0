"""Typed edge configuration: one pydantic model per concern, typos fail loudly.

Errors name the camera, zone and field, e.g.
``camera 'gate-3' zone 'p1' polygon: needs at least 3 points, got 2``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge.geometry import polygon_area
from xueliang.certificates import ca_certificate
from xueliang.mqtt import broker_host
from xueliang.passwords import without_password
from xueliang.polygon import crossing_edges
from xueliang.textfile import MANY_KEYS, NotThere, TooLong, load_yaml, read_text, said_first, there
from xueliang import wire
from xueliang.coordinates import System, to_wgs84
from xueliang.wire import GRID_PATTERN, HEARTBEAT_S, RESERVED_BOX_IDS

log = logging.getLogger(__name__)
IncidentType = Literal[wire.ZONE_TYPES]
IDENT = f"^{wire.IDENT.pattern}$"  # box, camera, zone: the wire's (a letter or digit first: never . or .., a path's)
MIN_ZONE_AREA = 1e-6  # of the frame: about two pixels of a 1080p picture
SHORT_WAIT_S = 10.0  # a zone's dwell or persistence shorter than this is said at load: minutes meant?
MIN_WIDTH = 64  # max_width: the picture checks' thumbnail is 64 wide
MAX_ZONE_POINTS = 100  # a zone is drawn by hand; 200,000 points were tested on every frame
# a box's config is a kilobyte or two a camera; a bound on what is read of one (a zone of 100,000 points: 2 MB)
MAX_CONFIG_BYTES = 4 << 20
# the live streams the box reads right: RTSP carries each frame's time (rtsps: RTSP over TLS, FFmpeg's). An
# http:// MJPEG camera has none: counted at an assumed 25 fps, a 5 fps one's clock ran 5x slow
RTSP_SCHEMES = ("rtsp", "rtsps")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}  # FFmpeg's, where a url names none
# what FFmpeg takes for a protocol: a url's leading letters, digits and + - . up to a colon (url_find_protocol)
_PROTOCOL = re.compile(r"[A-Za-z0-9+.-]+(?=:)")
URLS_READ = "an rtsp:// or rtsps:// URL, or a file path"
# a url copied from a document or a chat: curly quotes or a space before its scheme, or a full-width colon after it
_PASTED_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)\s*[:\uff1a]\s*//")
# where FFmpeg ends a url's host and begins its path (av_url_split): the first of these after the //
_PATH_START = re.compile(r"[/?#]")
# a host as FFmpeg takes it: a name or an IPv4 address, or an IPv6 one in brackets; a port of digits
_HOST = re.compile(r"(?:[\w.-]+|\[[0-9A-Fa-f:.]+(?:%25[\w.-]+)?\])(?::(?P<port>[0-9]{1,5}))?")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
# in a camera url's user information, percent-encoded for FFmpeg (which decodes it): what ends the address (/ ? #),
# the user information (@) or a url in an error (a space, a quote), so xueliang.passwords.without_password hides it
# all; and brackets, which Python's urlsplit takes for an IPv6 address's
_ENCODED = frozenset("/?#@'\"[]")
AMBIGUOUS = ("reads more than one way (where the password ends and the host begins): percent-encode a / ? # or @ "
             "in the password (/ as %2F, ? as %3F, # as %23, @ as %40), and an @ in the path as %40")


def is_rtsp(url: str) -> bool:
    """Whether a camera's url (as ``camera_url`` gave it) is a live RTSP stream rather than a file.

    >>> is_rtsp("rtsps://10.0.0.5/s1"), is_rtsp("/data/gate.mp4")
    (True, False)
    """
    return url.startswith(tuple(f"{scheme}://" for scheme in RTSP_SCHEMES))


def is_pipe(url: str) -> bool:
    """Whether a camera's url names a pipe (a FIFO) rather than an RTSP stream or a file: the kernel gives each
    byte written to a pipe to one of its readers, and its open and reads wait there for a writer.

    >>> is_pipe("rtsp://10.0.0.5/s1"), is_pipe("/no/such/file.mp4")
    (False, False)
    """
    if is_rtsp(url):
        return False
    try:
        return stat.S_ISFIFO(os.stat(url).st_mode)
    except (OSError, ValueError):  # no such file (yet), or a path no file can have
        return False


def camera_url(url: str) -> str:
    """A camera's url as the box reads it: its scheme in lower case (FFmpeg knows ``RTSP://`` as no protocol), a
    ``/ ? # @``, space, quote or bracket in its user name or password percent-encoded (FFmpeg decodes it; a ``%``
    and two hex digits are taken for one already encoded). A ValueError says what is wrong and what the box reads,
    never the password. The user information runs to the last ``@`` before the host, where FFmpeg reads it; a
    password with a ``/ ? #`` in it, which FFmpeg takes for the path begun, is read whole where that is the only
    reading that names a host (``_readings``); a url that reads more than one way is refused.

    >>> camera_url("RTSP://admin:p%40ss@10.0.0.5:554/s1"), camera_url("/data/gate.mp4")
    ('rtsp://admin:p%40ss@10.0.0.5:554/s1', '/data/gate.mp4')
    >>> camera_url("rtsp://admin:ab/c?d@e@10.0.0.5:554/Streaming/Channels/101")
    'rtsp://admin:ab%2Fc%3Fd%40e@10.0.0.5:554/Streaming/Channels/101'
    >>> camera_url("rtsp://admin:1234/5@10.0.0.5/s1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: reads more than one way (where the password ends and the host begins): percent-encode a / ? # or @ ...
    """
    protocol = _PROTOCOL.match(url)
    if protocol is None and (pasted := _PASTED_URL.search(url)):  # else a file's name: "no such file" at run time
        scheme, written = pasted.group(1), pasted.group()  # what follows is not shown: it may hold the password
        wrong = [f"has {url[:pasted.start()][:20]!r} before its {scheme}://"] if pasted.start() else []
        wrong += ["its colon is a full-width one (\uff1a)"] * ("\uff1a" in written)
        wrong += ["has a space in its ://"] * bool(re.search(r"\s", written))
        raise ValueError(f"{' and '.join(wrong)}, so the box would read it as a file's name (pasted from a document or "
                         f"a chat?); write the url alone, beginning {scheme.lower()}://")
    if protocol is None:
        return url  # a file path
    named, scheme, rest = protocol.group(), protocol.group().lower(), url[protocol.end() + 1:]
    if not rest.startswith("//"):
        raise ValueError(f"begins {named}:, which FFmpeg reads as a protocol; give {URLS_READ} (a file path with a "
                         "colon in its first name: write ./ before it)")
    if scheme not in RTSP_SCHEMES:
        raise ValueError(f"{named}:// is not a source the box reads right; give {URLS_READ} (a camera's stream over "
                         "http:// or another protocol carries no time the box can follow: serve it over RTSP)")
    readings = _readings(rest[2:])
    if not readings:
        raise ValueError(f"names no host, or a port that is no number of 1 to 65535; give {URLS_READ}, e.g. "
                         "rtsp://admin:password@10.0.0.5:554/stream1")
    if len(readings) > 1:
        raise ValueError(AMBIGUOUS)
    ((userinfo, from_host),) = readings
    if re.search(r"\s", from_host):
        raise ValueError("has a space in it: percent-encode it (a space as %20)")
    return f"{scheme}://{from_host}" if userinfo is None else f"{scheme}://{_encoded(userinfo)}@{from_host}"


def stream_key(url: str) -> tuple:
    """What names one RTSP stream in a camera's url (as ``camera_url`` gave it): its scheme, host (in any case), port
    (the scheme's where none is written), path and query; not the user name or password.

    >>> stream_key("rtsp://admin:pw@CAM-1:554/s1") == stream_key("rtsp://CAM-1/s1")
    True
    """
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS[parts.scheme], parts.path, parts.query


def _readings(address: str) -> list[tuple[str | None, str]]:
    """The ways ``address`` (a url past its ``//``) reads as user information (None: none) and the rest, from the
    host on, where each names a host: FFmpeg's, the user information to the last ``@`` before the first ``/ ? #``;
    and each that takes a ``/ ? #`` before an ``@`` for the password's, where a ``user:`` begins the address (not
    an IP address and its port) and a host follows that ``@`` (a name or an address, up to the next ``/ ? #``).

    >>> _readings("10.0.0.5:554/live@main"), _readings("admin:x/y@10.0.0.5/s1"), _readings("admin:x/y")
    ([(None, '10.0.0.5:554/live@main')], [('admin:x/y', '10.0.0.5/s1')], [])
    """
    first = _PATH_START.search(address)
    end = first.start() if first else len(address)
    userinfo, at, host = address[:end].rpartition("@")
    readings = [(userinfo if at else None, address[len(userinfo + at):])] if _is_host(host) else []
    name, colon, _ = address[:end].partition(":")
    if not colon or "@" in name or _IPV4.fullmatch(name) or name.startswith("["):  # the colon is a port's
        return readings
    for after in re.finditer("@", address[end:]):
        host = address[end + after.end():]
        if _is_host(_PATH_START.split(host, maxsplit=1)[0]):
            readings.append((address[:end + after.start()], host))
    return readings


def _encoded(userinfo: str) -> str:
    """``userinfo`` with each of ``_ENCODED``, a space and what is not printable percent-encoded.

    >>> _encoded("admin:a/b?c#d@e f'%41")
    'admin:a%2Fb%3Fc%23d%40e%20f%27%41'
    """
    return "".join(quote(c, safe="") if c in _ENCODED or c.isspace() or not c.isprintable() else c for c in userinfo)


def _is_host(text: str) -> bool:
    """Whether ``text`` is a host, and a port of 1 to 65535 if any, as FFmpeg reads one."""
    host = _HOST.fullmatch(text)
    return host is not None and (host["port"] is None or 0 < int(host["port"]) < 65536)


class ConfigError(ValueError):
    """The configuration file is wrong; the message says where and how to fix it."""


class Strict(BaseModel):
    # finite numbers only, as on the wire: an .inf heartbeat ended the box (Event.wait overflows)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """YAML reads yes/no/on/off/true as a bool, which a number field would take as 1 or 0
        (``dwell_s: yes``: every car passing a one-second incident): refused."""
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (float, int, float | None):
            raise ValueError(f"{value!r} (YAML's yes/no/on/off/true/false) is not a number; write a number")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        """A NUL (YAML's ``"\\0"``) ends a name where the system reads it: a ``data_dir`` or ``tls_ca`` with one
        stopped the box with a traceback, and a camera's url or the broker's host was read cut short there (another
        file, another host). Refused; the value is not shown (it may be a password)."""
        if isinstance(value, str) and "\0" in value:
            raise ValueError("has a NUL character (\\0) in it, which no name, path or address can hold; remove it")
        return value


class Location(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Zone(Strict):
    id: str = Field(pattern=IDENT, title="Zone id, unique within the camera")
    types: list[IncidentType] = Field(min_length=1, title="Problem types this zone watches")
    polygon: list[tuple[float, float]] = Field(
        title=f"x, y points in 0..1 of the frame: 3 to {MAX_ZONE_POINTS} corners in order around the zone "
        "(its outline must not cross itself)")
    dwell_s: float = Field(default=180.0, gt=0, le=86_400, title="Seconds a vehicle must stay before it is an incident")
    grid: str | None = Field(default=None, pattern=GRID_PATTERN, title="Grid code; defaults to the camera's")
    persistence_s: float = Field(default=120.0, gt=0, le=86_400,
                                 title="Seconds a pile or spill must stay before it is an incident")
    clear_s: float = Field(default=5.0, gt=0, le=3_600,
                           title="Seconds the place must look clear before a pile or spill incident ends (cleared)")
    urgent_area: float = Field(default=0.25, gt=0, le=1,
                               title="A spill covering at least this fraction of the zone is urgent")

    @field_validator("types")
    @classmethod
    def _types(cls, types: list[str]) -> list[str]:
        """A type named twice would give the zone two rules under one key: the same incident raised twice."""
        if twice := sorted({t for t in types if types.count(t) > 1}):
            raise ValueError(f"{', '.join(twice)} named more than once; name each type once")
        return types

    @field_validator("polygon", mode="before")
    @classmethod
    def _points(cls, points: object) -> object:
        """A polygon written as its numbers in a row (``[0.8, 0.03, 0.97, 0.03, ...]``, a drawing tool's) or as
        strings (``["0.8,0.03", ...]``): one line saying how to write it, not "Input should be a valid tuple" for
        each."""
        if isinstance(points, list) and points and not any(isinstance(p, (list, tuple)) for p in points):
            raise ValueError(f"write each point as [x, y] in a list of them, [[0.80, 0.03], [0.97, 0.03], ...]; got "
                             f"{str(points[0])[:20]!r} and the like, no point in brackets")
        return points

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) < 3:
            raise ValueError(f"needs at least 3 points, got {len(points)}")
        if len(points) > MAX_ZONE_POINTS:  # every point is tested on every frame
            raise ValueError(f"has {len(points)} points, at most {MAX_ZONE_POINTS}; draw the zone by its corners")
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point [{x}, {y}] is outside 0..1; give x, y as fractions of the frame")
        # a bow-tie's area is the difference of its loops (the urgent spill share), its inside ambiguous;
        # a point repeated right after itself counts as one (see crossing_edges), the polygon stays as written
        if crossed := crossing_edges(points):
            (a, b), (c, d) = ([list(points[k]), list(points[(k + 1) % len(points)])] for k in crossed)
            raise ValueError(f"edges {crossed[0] + 1} and {crossed[1] + 1} cross ({a}-{b} and {c}-{d}; edge n runs "
                             "from point n to the next); list the zone's corners in order around it")
        if polygon_area(points) < MIN_ZONE_AREA:  # a zone on the frame's edge line failed every frame
            raise ValueError(f"encloses no area, or less than {MIN_ZONE_AREA:g} of the frame (about two pixels of "
                             "1080p): its points lie on one line or close together; give the zone's corners")
        return points

    @model_validator(mode="after")
    def _settings_for_its_types(self) -> "Zone":
        """A setting for a type the zone does not watch does nothing: ``dwell_s: 60`` written on a litter zone
        left it at the default persistence of 120 s, silently."""
        idle = [f"{name} is for {' or '.join(sorted(types))}"
                for name, types in (("dwell_s", {"illegal_parking"}), ("persistence_s", {"garbage", "spill"}),
                                    ("clear_s", {"garbage", "spill"}), ("urgent_area", {"spill"}))
                if name in self.model_fields_set and not types & set(self.types)]
        if idle:
            raise ValueError(f"{'; '.join(idle)}, which zone {self.id!r} does not watch (types: "
                             f"{', '.join(self.types)}); leave it out or add the type")
        return self


class Camera(Strict):
    id: str = Field(pattern=IDENT, title="Camera id, unique within the box")
    url: str = Field(min_length=1, title=f"{URLS_READ[0].upper()}{URLS_READ[1:]}: the scheme in any case; a / ? # @ in "
                     "the password taken as typed, or percent-encoded (/ as %2F, ? as %3F, # as %23, @ as %40)")
    grid: str = Field(pattern=GRID_PATTERN, title="The camera's basic grid code (letters, digits, . _ -)")
    location: Location | None = None
    coordinates: System | None = Field(
        default=None, title="What location is in, where not the box's coordinates: wgs84, gcj02 or bd09")
    zones: list[Zone] = Field(default_factory=list)
    analysis_interval_s: float = Field(default=1.0, gt=0, le=60, title="Seconds between analysed frames")
    sampling: Literal["auto", "keyframes", "rate"] = Field(
        default="auto", title="keyframes: decode key frames only; rate: decode all, sample by time; "
        "auto: key frames unless they are further apart than the camera's rules tolerate")
    max_keyframe_gap_s: float | None = Field(
        default=None, gt=0, le=60, title="sampling auto: decode every frame once key frames are further apart than "
        "this; unset: what the rules tolerate, half of gap_s and a third of the shortest dwell or persistence, "
        "6 s for a camera without zones (edge/source.py keyframe_gap_limit)")
    max_width: int = Field(default=0, ge=0, le=16_384, title="Analyse frames scaled down to this width (0: full "
                           f"size, which is also the cheapest conversion; else at least {MIN_WIDTH} pixels); a "
                           "frame over 4K UHD's pixels is analysed scaled down to them either way")
    open_timeout_s: float = Field(default=10.0, gt=0, le=600, title="Seconds for each of the two steps of opening "
                                  "a source: its set-up (RTSP's included) and the probe of its streams, so an open "
                                  "can take twice this (a server that answers a byte at a time is given up on after "
                                  "them); a pipe's open waits for its writer, unbounded")
    read_timeout_s: float = Field(default=5.0, gt=0, le=600, title="Seconds a read may wait for a packet (an RTSP "
                                  "camera's at least 15 s, for its next key frame; a pipe's waits for its writer, "
                                  "unbounded)")
    tls_ca: Path | None = Field(default=None, title="rtsps:// only: CA certificate file (PEM) that signed the camera's "
                                "certificate; the box then reads the camera only where its certificate verifies "
                                "against it and names the url's host (unset: the certificate is not checked)")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return camera_url(url)

    @field_validator("tls_ca")
    @classmethod
    def _tls_ca(cls, tls_ca: Path | None) -> Path | None:
        return tls_ca if tls_ca is None else ca_certificate(tls_ca, "the camera's")

    @field_validator("max_width")
    @classmethod
    def _max_width(cls, width: int) -> int:
        if 0 < width < MIN_WIDTH:  # 1 failed every read as "Operation not supported", like a broken camera
            raise ValueError(f"{width} pixels is too narrow to analyse; 0 (full size) or at least {MIN_WIDTH}")
        return width

    @model_validator(mode="after")
    def _tls_ca_over_tls(self) -> "Camera":
        """A CA checks a certificate only a camera read over TLS shows: on rtsp:// or a file it did nothing."""
        if self.tls_ca is not None and not self.url.startswith("rtsps://"):
            what = "an rtsp:// url" if is_rtsp(self.url) else "a file"
            raise ValueError(f"tls_ca is for a camera read over TLS (rtsps://), and its url is {what}; write "
                             "rtsps:// (the camera's TLS port, often 322) or leave tls_ca out")
        return self

    @model_validator(mode="after")
    def _unique_zones(self) -> "Camera":
        seen = set()
        for zone in self.zones:
            if zone.id in seen:
                raise ValueError(f"zone id {zone.id!r} appears twice")
            seen.add(zone.id)
        return self


class Broker(Strict):
    host: Annotated[str, AfterValidator(broker_host)] = Field(default="127.0.0.1", min_length=1,
                                                              title="The broker's name or address, alone")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(default=None, title="Broker user; under the ACL in deploy/ it is the box id")
    password: str | None = Field(default=None, repr=False)  # a config printed whole (a log, a traceback) shows none
    tls_ca: Path | None = Field(default=None, title="CA certificate file: connect with TLS and check the broker")
    keepalive_s: int = Field(default=15, ge=5, le=600)
    resend_after_s: float = Field(default=30.0, ge=1, le=3600, title="Send a message again when no gateway has "
                                  "confirmed it this many seconds after the broker took it (then twice as long each time)")
    max_unconfirmed: int = Field(default=1000, ge=1, le=100_000, title="Messages out and not yet confirmed by a "
                                 "gateway, at most; the rest wait in the outbox")


class Detection(Strict):
    model: str = Field(default="ssd_mobilenet_v2_coco", title="Model name under models/")
    vehicle_labels: list[str] = Field(default=["car", "motorcycle", "bus", "truck"], min_length=1,
                                      title="The vehicle model's classes that are vehicles (each must be one of them)")
    min_score: float = Field(default=0.4, gt=0, lt=1, title="Score a vehicle detection needs to start a track "
                             "(and a stay); SSD scores are quantised: 0.4 behaves like 0.42")
    track_min_score: float = Field(default=0.1, gt=0, lt=1, title="Vehicle detections down to this score continue "
                                   "an existing track (ByteTrack's second association); they never start one")
    zone_crops: bool = Field(default=True, title="Detect on a padded crop around each parking zone (planned per "
                             "zone, see crop_max_scale) instead of the whole frame")
    crop_max_scale: float = Field(default=3.0, ge=1, le=10, title="A zone's crop is shrunk at most this much to the "
                                  "model's input (300 px: crops up to 900 px); larger zones are tiled, and zones share "
                                  "a crop only when that keeps their vehicles big enough")
    threads: int = Field(default=2, ge=1, le=64, title="onnxruntime intra-op threads")
    litter_model: str = Field(default="litter_yolov8n_320", title="Garbage/spill model name under models/")
    litter_min_score: float = Field(default=0.3, gt=0, lt=1, title="Chosen on the validation split by models/litter/write_manifest.py (its manifest's validation.min_score)")
    litter_confirmed_min_score: float = Field(
        default=0.3, gt=0, lt=1, title="Score a garbage or spill detection needs where the left-object check sees "
        "still, changed ground under it (two signals agreeing; at most litter_min_score, not used with left_object "
        "off); chosen on the validation split by models/litter/write_manifest.py (its manifest's "
        "validation.confirmed_min_score: the best F1, without the precision floor a detection alone needs)")
    left_object: Literal["confirm", "either", "off"] = Field(
        default="confirm", title="Model-free left-object check: confirm: a pile or spill counts only where the "
        "detector and the check agree; either: also a still, changed region with no detection; off: detector only")
    left_object_min_area: float = Field(default=0.02, gt=0, le=1,
                                        title="Smallest still, changed region (fraction of the zone) that counts")
    closer_looks: int = Field(
        default=2, ge=0, le=16, title="Still, changed places in garbage/spill zones (the left-object check's, the "
        "largest share of their zone first) the litter model also sees on a crop of their own, three times their "
        "size with the model's boxes over them, at each pass: a pile small in its tile is seen bigger (0: none; "
        "each costs one more litter model run per pass while such a place is there; none with left_object off)")

    @field_validator("left_object", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted ``off`` as false: take it as "off", say so; refuse ``on``/``yes``."""
        if value is False:
            log.warning("detection left_object: read as false (YAML's unquoted off); taken as \"off\" — "
                        "write left_object: \"off\" to say it plainly")
            return "off"
        if value is True:
            raise ValueError("got true (YAML reads unquoted on/yes/true so); write one of \"confirm\", "
                             "\"either\" or \"off\"")
        return value

    @model_validator(mode="after")
    def _scores(self) -> "Detection":
        if self.track_min_score > self.min_score:
            raise ValueError(f"track_min_score {self.track_min_score} is above min_score {self.min_score}; "
                             "it must be at most min_score")
        if self.litter_confirmed_min_score > self.litter_min_score:
            raise ValueError(f"litter_confirmed_min_score {self.litter_confirmed_min_score} is above "
                             f"litter_min_score {self.litter_min_score}; it must be at most litter_min_score")
        return self


class Rules(Strict):
    still_tolerance: float = Field(default=0.5, gt=0, le=2, title="Anchor movement allowed, in box heights")
    gap_s: float = Field(default=10.0, gt=0, le=3_600, title="Seconds unseen before a vehicle counts as gone, where its "
                         "place cannot be checked (not yet confirmed by 3 detections), and before a pile counts as gone")
    leave_s: float = Field(default=10.0, gt=0, le=3_600, title="Seconds a parked vehicle's place must look empty "
                           "(changed, nothing in front, no detection) before its incident ends 'left'")
    update_interval_s: float = Field(default=60.0, gt=0, le=86_400, title="Seconds between update events")
    change_gate: float = Field(default=4.0, ge=0, le=255, title="Grey-level change in every zone (and twice it in "
                               "every quarter of a parking zone's box) below which the last detector pass is reused "
                               "(0: always detect)")
    redetect_floor_s: float = Field(default=10.0, gt=0, le=3_600, title="Re-run the detector at least this often")


class EdgeConfig(Strict):
    box: str = Field(pattern=IDENT, title="Box id; its topics live under xl/v1/{box}/")
    broker: Broker = Broker()
    cameras: list[Camera] = Field(min_length=1)
    detection: Detection = Detection()
    rules: Rules = Rules()
    data_dir: Path = Field(default=Path("data/edge"), title="Outbox and state")
    heartbeat_s: float = Field(default=HEARTBEAT_S, gt=0, le=3_600, title="Seconds between status heartbeats")
    metrics_port: int = Field(default=0, ge=0, le=65535, title="Prometheus /metrics on 127.0.0.1 (0: off)")
    send_frames: bool = Field(default=True, title="Send each incident's frame as the camera gave it beside the "
                              "annotated snapshot (training data); false while a gateway is older than evidence.frame")
    coordinates: System = Field(
        default="wgs84", title="What the cameras' locations are in: wgs84 (GPS, Tianditu), "
        "gcj02 (read off AMap or Tencent) or bd09 (Baidu); sent in WGS 84 (a camera's own coordinates wins)")

    @field_validator("box")
    @classmethod
    def _not_reserved(cls, box: str) -> str:
        if box in RESERVED_BOX_IDS:
            raise ValueError(f"{box!r} is reserved: xl/v1/{box}/ carries the gateway's messages; choose another box id")
        return box

    @field_validator("data_dir")
    @classmethod
    def _no_home(cls, data_dir: Path) -> Path:
        """A shell reads ``~`` as a home folder, the box does not: ``~/xl`` kept the outbox in a folder named ``~``
        under wherever the box was started."""
        if str(data_dir).startswith("~"):
            raise ValueError(f"'{data_dir}': ~ is no home folder here (the box would make a folder named "
                             f"{data_dir.parts[0]} where it is started); write the whole path, e.g. "
                             f"{data_dir.expanduser()}")
        return data_dir

    @field_validator("broker")
    @classmethod
    def _account(cls, broker: Broker, info: ValidationInfo) -> Broker:
        box = info.data.get("box")
        if box is not None and broker.username is not None and broker.username != box:
            raise ValueError(f"username {broker.username!r} is not the box id {box!r}: the broker lets an "
                             "account write only under xl/v1/{its user name}/ (xueliang broker-account)")
        return broker

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[Camera]) -> list[Camera]:
        seen = set()
        for camera in cameras:
            if camera.id in seen:
                raise ValueError(f"camera id {camera.id!r} appears twice")
            seen.add(camera.id)
        pipes: dict[str, str] = {}
        for camera in cameras:  # a file or an RTSP stream is read whole by each camera that names it; a pipe is not
            if is_pipe(camera.url) and (first := pipes.setdefault(camera.url, camera.id)) != camera.id:
                raise ValueError(f"cameras {first!r} and {camera.id!r} read the same pipe: the kernel gives each byte "
                                 "written to it to one of its readers, so each camera got a torn share of the "
                                 "stream; give one camera both cameras' zones")
        streams: dict[tuple, str] = {}
        for camera in cameras:  # a camera's block copied for the next one, its id changed and its url not
            if is_rtsp(camera.url) and (first := streams.setdefault(stream_key(camera.url), camera.id)) != camera.id:
                raise ValueError(f"cameras {first!r} and {camera.id!r} read the same stream "
                                 f"({without_password(camera.url)}): each of its problems would be raised twice, and "
                                 "the camera meant is not watched; give the second its own url, or one camera both "
                                 "cameras' zones")
        return cameras

    @model_validator(mode="after")
    def _minutes_meant(self) -> "EdgeConfig":
        """A wait of a few seconds is a traffic light's or a drop-off's, likely minutes written for seconds (``dwell_s:
        3``: every car that stopped 3 s a case); said, not refused: tests and trials use such waits."""
        for camera in self.cameras:
            for zone in camera.zones:
                for name in ("dwell_s", "persistence_s"):
                    if name in zone.model_fields_set and (wait := getattr(zone, name)) < SHORT_WAIT_S:
                        log.warning("camera %r zone %r %s: %g s is shorter than a car waits at a light; it is in "
                                    "seconds (3 minutes: 180)", camera.id, zone.id, name, wait)
        return self

    @model_validator(mode="after")
    def _template_location(self) -> "EdgeConfig":
        """A camera's block copied from a template with its ``location: {lat: 0, lon: 0}``: said, not refused (a
        location is optional, the box runs without one); the gateway takes it for none (``wire.template_location``)."""
        for camera in self.cameras:
            if camera.location is not None and wire.template_location(camera.location.lat, camera.location.lon):
                log.warning("camera %r location: {lat: 0, lon: 0} is a template's (the sea off West Africa); the "
                            "gateway takes it for no location and joins its incidents by camera and zone: write the "
                            "camera's own, or leave location out", camera.id)
        return self

    def location(self, camera: Camera) -> Location | None:
        """Where ``camera`` stands in WGS 84, as the wire carries it, from the system its location is written in.

        >>> config = parse_config({"box": "b", "coordinates": "gcj02", "cameras": [{"id": "c", "url": "x.mp4",
        ...     "grid": "G", "location": {"lat": 39.913345, "lon": 116.384047}}]})  # read off AMap
        >>> where = config.location(config.cameras[0])
        >>> round(where.lat, 6), round(where.lon, 6)
        (39.911954, 116.377817)
        """
        if camera.location is None:
            return None
        lon, lat = to_wgs84(camera.location.lon, camera.location.lat, camera.coordinates or self.coordinates)
        return Location(lat=lat, lon=lon)

    def camera(self, camera_id: str) -> Camera:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise ConfigError(f"camera {camera_id!r} is not in the config; known: {[c.id for c in self.cameras]}")


def _where(raw: dict, loc: tuple) -> str:
    """Turn a pydantic error location into 'camera 'x' zone 'y' field'."""
    words, node = [], raw
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in ("cameras", "zones") and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = loc[i + 1]
            try:
                node = node[key][index]
                name = node.get("id", f"#{index + 1}") if isinstance(node, dict) else f"#{index + 1}"
            except (KeyError, IndexError, TypeError):
                name = f"#{index + 1}"
            words.append(f"{key[:-1]} {name!r}")
            i += 2
            continue
        words.append(str(key))
        node = node.get(key, {}) if isinstance(node, dict) else {}
        i += 1
    return " ".join(words)


def parse_config(raw: object, source: str = "config") -> EdgeConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with box, broker and cameras")
    try:
        return EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        listed, more = said_first(errors, EdgeConfig)
        lines = [f"{source}: {len(errors)} error(s)", *(f"  {_where(raw, err['loc'])}: {text}" for err, text in listed)]
        raise ConfigError("\n".join([*lines, f"  {more}"] if more else lines)) from None


def check_files(config: EdgeConfig, source: str = "config") -> None:
    """``edge --check``'s look at each camera whose url is a file path (a video file or a pipe): ConfigError naming
    each that is not there, is a folder, or cannot be read (``NotThere``). Not at load: the box starts without it and
    says at run time that the camera cannot be read, until it is there (a pipe another program makes at its own start);
    ``--check`` passed it with exit 0, a file's name mistyped."""
    wrong = []
    for camera in config.cameras:
        if is_rtsp(camera.url):
            continue
        path = Path(camera.url)
        try:
            there(path)
        except NotThere as exc:
            where = "" if path.is_absolute() else f" (a relative path is read from the folder the box starts in: {Path.cwd()})"
            wrong.append(f"camera {camera.id!r} url: {exc}{where}; a url that is no rtsp:// address names a video "
                         "file, or a pipe whose program is started first")
    if said := data_dir_unusable(config.data_dir):
        where = "" if config.data_dir.is_absolute() else \
            f"; a relative path is read from the folder the box starts in: {Path.cwd()}"
        wrong.append(f"data_dir {config.data_dir}: cannot keep the outbox there ({said}{where})")
    if wrong:
        raise ConfigError("\n".join([f"{source}: {len(wrong)} error(s)", *(f"  {line}" for line in wrong)]))


def data_dir_unusable(data_dir: Path) -> str | None:
    """Why the box's start could not keep its outbox in ``data_dir`` (made there where missing), looked at without
    making or writing anything: the folder, or the nearest one above it that is there, is a file, on a read-only disk
    or not the user's to write; None where the start can. ``edge --check`` passed such a folder with exit 0.

    >>> data_dir_unusable(Path("/etc/hostname/edge")), data_dir_unusable(Path("/tmp/no/such/edge"))
    ('Not a directory: /etc/hostname', None)
    """
    there = data_dir
    while not os.path.lexists(there) and there != there.parent:
        there = there.parent
    if not there.is_dir():
        return f"Not a directory: {there}"
    if os.statvfs(there).f_flag & os.ST_RDONLY:
        return f"Read-only file system: {there}"
    if not os.access(there, os.W_OK | os.X_OK):
        return f"Permission denied: {there}"
    return None


def load_config(path: str | Path) -> EdgeConfig:
    path = Path(path)
    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except ValueError as exc:  # not there, a folder, unreadable, not UTF-8, too long
        raise ConfigError(str(exc)) from None
    try:  # a zone's polygon is refused at its point past the bound: PyYAML took 7-15 s over 100,000 of them
        raw = load_yaml(text, str(path), longest={"polygon": MAX_ZONE_POINTS})
    except TooLong as exc:
        if exc.what == "keys":  # 200,000 keys that are no field took 4 s to read before each was refused
            raise ConfigError(f"{path}: 1 error(s)\n  {_where(exc.partial, exc.loc) or 'the top level'}: more than "
                              f"{exc.limit:,} keys in one mapping (read up to line {exc.problem_mark.line + 1}); "
                              f"{MANY_KEYS}") from None
        raise ConfigError(f"{path}: 1 error(s)\n  {_where(exc.partial, exc.loc)}: has more than {exc.limit} points "
                          f"(read up to line {exc.problem_mark.line + 1}), at most {MAX_ZONE_POINTS}; draw the zone by "
                          "its corners") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"{path}: nested too deeply to be a configuration") from None
    return parse_config(raw, str(path))
