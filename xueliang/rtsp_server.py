#!/usr/bin/python3
"""A test RTSP server: serves H.264 and H.265 files as endless live camera streams.

Runs with the system interpreter (``/usr/bin/python3``: python3-gi is a Debian package),
started as a subprocess by the demo and the tests:

    /usr/bin/python3 rtsp_server.py --port 8554 campus-gate=fixtures/videos/campus-gate.mp4

With ``--tls-cert FILE --tls-key FILE`` (PEM) it serves rtsps:// instead: RTSP over TLS with that
certificate, as a camera that checks no password does.

With ``--clock NAME:KEY=VALUE,...`` a mount's frames are stamped by a camera's wrong clock (``Clock``): one that
runs slow or fast (``rate=0.99``: a cheap crystal), stands still (``stall_at_s=3``) or steps
(``step_at_s=3,step_s=3600``: the camera's NTP setting it mid-stream), from the start of the mount's stream (its first
client's):

    /usr/bin/python3 rtsp_server.py campus-gate=fixtures/videos/campus-gate.mp4 --clock campus-gate:rate=0.99

One always-running pipeline per mount reads its file at real-time pace in an endless
loop and pushes each H.264/H.265 access unit into the live ``appsrc`` of the shared RTSP media,
so every client sees one continuous stream and starts at the next key frame. (A shared
factory reading the file itself rewinds it for everyone whenever a client connects.)
"""

import argparse
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402

DEMUX = {".mp4": "qtdemux", ".mov": "qtdemux", ".mkv": "matroskademux"}


def codec_of(path: str) -> str:
    """``h264`` or ``h265``: the file's video codec, as GStreamer's element names spell it."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                          "-of", "csv=p=0", path], capture_output=True, text=True, timeout=30).stdout.strip()
    return "h265" if out == "hevc" else "h264"


@dataclass(frozen=True)
class Clock:
    """A camera's clock, as it stamps a frame sent ``t`` s into its stream (``stamp``): running ``rate`` times as fast
    as the box's, standing still from ``stall_at_s`` on, and set ``step_s`` on (back where negative) at ``step_at_s``;
    never before the stream's start (GStreamer's times have no sign).

    >>> [Clock(rate=0.99).stamp(t) for t in (0.0, 100.0)], [Clock(stall_at_s=2).stamp(t) for t in (1.0, 5.0)]
    ([0.0, 99.0], [1.0, 2.0])
    >>> [Clock(step_at_s=3, step_s=3600).stamp(t) for t in (2.0, 4.0)], Clock(step_at_s=3, step_s=-9).stamp(4.0)
    ([2.0, 3604.0], 0.0)
    """

    rate: float = 1.0
    stall_at_s: float | None = None
    step_at_s: float | None = None
    step_s: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> tuple[str, "Clock"]:
        """``NAME:rate=0.99,stall_at_s=3``: the mount's name and its clock."""
        name, _, settings = spec.partition(":")
        known = {f.name for f in fields(cls)}
        values = {}
        for setting in filter(None, settings.split(",")):
            key, _, value = setting.partition("=")
            if key not in known:
                raise argparse.ArgumentTypeError(f"{spec}: no setting {key!r} (one of {', '.join(sorted(known))})")
            values[key] = float(value)
        return name, cls(**values)

    def stamp(self, t: float) -> float:
        shown = t * self.rate
        if self.stall_at_s is not None:
            shown = min(shown, self.stall_at_s * self.rate)
        if self.step_at_s is not None and t >= self.step_at_s:
            shown += self.step_s
        return max(0.0, shown)


class Mount:
    def __init__(self, name: str, path: str, clock: Clock | None = None):
        self.name = name
        self.clock = clock
        self.stepped = False  # its clock's step said in the log (once)
        self.codec = codec_of(path)
        demux = DEMUX.get(path[path.rfind("."):].lower(), "qtdemux")
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{path}" ! {demux} ! {self.codec}parse config-interval=-1 ! '
            f"video/x-{self.codec},stream-format=byte-stream,alignment=au ! "
            "appsink name=sink sync=false emit-signals=true max-buffers=100 drop=false")
        self.caps = None
        # pacing is ours, not the sink's: after the seek that loops the file, the stream clock
        # goes on from where it was, so the loop point looks like any other frame to clients
        self.t0: float | None = None
        self.offset = 0.0
        self.last_pts = 0.0
        self.step = 0.04
        self.clients: list[list] = []  # [appsrc, waiting_for_key_frame]
        self.lock = threading.Lock()
        self.pipeline.get_by_name("sink").connect("new-sample", self.on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)

    def start(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)

    def on_message(self, bus, message) -> None:
        if message.type == Gst.MessageType.EOS:  # loop the file
            self.offset += self.last_pts + self.step
            self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        elif message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            print(f"rtsp-server: mount {self.name}: {err.message}", file=sys.stderr, flush=True)

    def on_sample(self, sink):
        sample = sink.emit("pull-sample")
        buf = sample.get_buffer()
        self.caps = self.caps or sample.get_caps()
        stamp = buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else buf.pts  # decode order is send order
        made = Gst.BUFFER_OFFSET_NONE  # when the frame is made, on the monotonic clock (ns): a camera's capture
        if stamp != Gst.CLOCK_TIME_NONE:
            pts = stamp / Gst.SECOND
            if 0 < pts - self.last_pts < 1:
                self.step = pts - self.last_pts
            self.last_pts = pts
            now = time.monotonic()
            if self.t0 is None:
                self.t0 = now - pts
            delay = self.t0 + self.offset + pts - now
            if delay > 0:
                time.sleep(delay)
            made = int((self.t0 + self.offset + pts) * Gst.SECOND)
        key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        shown_after = buf.pts - buf.dts if Gst.CLOCK_TIME_NONE not in (buf.pts, buf.dts) and buf.pts > buf.dts else 0
        with self.lock:
            clients = list(self.clients)
        for client in clients:
            src, waiting = client
            if waiting and not key:
                continue
            client[1] = False
            out = buf.copy()
            out.pts = out.dts = Gst.CLOCK_TIME_NONE  # appsrc stamps it with the live running time
            out.offset = shown_after  # carried to ``present`` (appsrc leaves a time stream's offsets alone)
            out.offset_end = made
            flow = src.emit("push-buffer", out)
            if flow != Gst.FlowReturn.OK:
                with self.lock:
                    if client in self.clients:
                        self.clients.remove(client)
                # said, as each media set up is: once in a whole run of the suite a first session was kept alive and
                # sent nothing, and this log, which said only "ready", could not tell whether its media had been dropped
                print(f"rtsp-server: mount {self.name}: a media stopped taking frames ({flow.value_nick}: its "
                      f"clients gone, or it failed); {len(self.clients)} left", file=sys.stderr, flush=True)
        return Gst.FlowReturn.OK

    def attach(self, factory, media) -> None:
        src = media.get_element().get_child_by_name("src")
        if self.caps is not None:
            src.set_property("caps", self.caps)
        src.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, self.present, media)
        with self.lock:
            self.clients.append([src, True])
        print(f"rtsp-server: mount {self.name}: a media set up for a client ({len(self.clients)} now)", file=sys.stderr,
              flush=True)

    def present(self, pad, info, media):
        """An access unit leaving appsrc: stamped with the running time it was made at (``on_sample``'s schedule, as a
        camera stamps a frame when it captures it, however late it sends it), its presentation time that far after as
        in the file, both on the mount's ``clock``.

        appsrc stamps both with the running time it is sent at, in decode order; the payloader times its RTP
        packets by the presentation time, so a clip with B-frames (x264's default) was shown in send order, its
        frames' times jumping back and forth (0.2, 0.1, 0.5, 0.4, 0.6, 0.3 s ...). Stamped when sent, a frame this
        server sent 25 ms late on a loaded machine was 0.125 s after the one before and 0.075 s before the next."""
        buf = info.get_buffer()
        src = pad.get_parent_element()
        if buf.pts != Gst.CLOCK_TIME_NONE and buf.offset_end != Gst.BUFFER_OFFSET_NONE and src.get_clock():
            made = buf.offset_end + src.get_clock().get_time() - time.monotonic_ns()  # on the media's clock
            buf.pts = buf.dts = max(0, made - src.get_base_time())  # one made before its client's start: at it
        if buf.pts != Gst.CLOCK_TIME_NONE:
            buf.pts += buf.offset
            if self.clock is not None:
                if media.get_rate_control():
                    # each packet sent as it comes, not at its presentation time: the server's sink waited for that
                    # (a client's PLAY sets it so), so a clock that runs fast was sent at a second a second, its
                    # frames piling up, and one stepped an hour ahead sent nothing more (the pacing is ``on_sample``'s)
                    media.set_rate_control(False)
                step_at = self.clock.step_at_s
                if step_at is not None and not self.stepped and buf.pts >= step_at * Gst.SECOND:
                    self.stepped = True
                    print(f"rtsp-server: mount {self.name}: its clock set {self.clock.step_s:+g} s", file=sys.stderr,
                          flush=True)
                buf.pts = int(self.clock.stamp(buf.pts / Gst.SECOND) * Gst.SECOND)
                if buf.dts != Gst.CLOCK_TIME_NONE:  # decoded no later than shown, across a step back too
                    buf.dts = min(buf.pts, int(self.clock.stamp(buf.dts / Gst.SECOND) * Gst.SECOND))
        return Gst.PadProbeReturn.OK


ROLE = "anyone"


def tls_auth(cert: str, key: str) -> GstRtspServer.RTSPAuth:
    """The server's TLS: its certificate, and every client let in as ``ROLE`` (a server with an auth lets in only
    the roles its factories' permissions name)."""
    auth = GstRtspServer.RTSPAuth()
    auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(cert, key))
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
    auth.set_default_token(token)
    return auth


def anyone_plays() -> GstRtspServer.RTSPPermissions:
    permissions = GstRtspServer.RTSPPermissions()
    for permission in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        permissions.add_permission_for_role(ROLE, permission, True)
    return permissions


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-cert", help="serve rtsps:// with this certificate (PEM; --tls-key its key)")
    parser.add_argument("--tls-key")
    parser.add_argument("--clock", action="append", default=[], type=Clock.parse,
                        help="NAME:rate=R,stall_at_s=S,step_at_s=S,step_s=S: a mount's frames stamped by a wrong clock")
    parser.add_argument("mounts", nargs="+", help="NAME=FILE")
    args = parser.parse_args()
    clocks = dict(args.clock)
    if unknown := set(clocks) - {spec.partition("=")[0] for spec in args.mounts}:
        parser.error(f"--clock for no mount: {', '.join(sorted(unknown))}")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    if args.tls_cert:
        server.set_auth(tls_auth(args.tls_cert, args.tls_key))
    mounts = []
    for spec in args.mounts:
        name, _, path = spec.partition("=")
        mount = Mount(name, path, clocks.get(name))
        factory = GstRtspServer.RTSPMediaFactory()
        c = mount.codec
        factory.set_launch("( appsrc name=src is-live=true format=time do-timestamp=true "
                           f"caps=video/x-{c},stream-format=byte-stream,alignment=au ! "
                           f"{c}parse ! rtp{c}pay name=pay0 pt=96 config-interval=1 )")
        factory.set_shared(True)
        if args.tls_cert:
            factory.set_permissions(anyone_plays())
        factory.connect("media-configure", mount.attach)
        server.get_mount_points().add_factory(f"/{name}", factory)
        mount.start()
        mounts.append(mount)
    if server.attach(None) == 0:
        print(f"rtsp-server: cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    scheme = "rtsps" if args.tls_cert else "rtsp"
    print(f"rtsp-server: ready on {scheme}://{args.host}:{args.port}/ " + " ".join(m.name for m in mounts), flush=True)
    loop.run()
    for m in mounts:
        m.pipeline.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
