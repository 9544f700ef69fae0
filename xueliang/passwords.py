"""The one rule that keeps a password in a URL out of what the product logs, prints and sends."""

from __future__ import annotations

import re

# the password in a URL's user information (rtsp://admin:12345@10.0.0.5/...: how most cameras are addressed); up to
# the last @ before the host, so a password with an @ in it is hidden whole
_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"]*):[^\s/'\"]*@")


def without_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``: a camera's URL is in the errors the box
    logs and sends in its heartbeat (retained at the broker, read by every gateway), and FFmpeg's own errors
    repeat it; the log lines of every command pass through it too (``xueliang.cli.JsonLines``).

    >>> without_password("cannot open rtsp://admin:s3cr%40et@10.0.0.5:554/s1: refused: 'rtsp://admin:p@ss@10.0.0.5/s1'")
    "cannot open rtsp://admin:***@10.0.0.5:554/s1: refused: 'rtsp://admin:***@10.0.0.5/s1'"
    >>> without_password("rtsp://10.0.0.5/s1 and rtsp://user@10.0.0.5/s1 and /data/a:b@c.mp4")
    'rtsp://10.0.0.5/s1 and rtsp://user@10.0.0.5/s1 and /data/a:b@c.mp4'
    """
    return _PASSWORD.sub(r"\g<scheme>:***@", text)
