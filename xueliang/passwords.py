"""The one rule that keeps a password in a URL out of what the product logs, prints and sends."""

from __future__ import annotations

import re

# a password in a URL, as a city's configs carry one: in its user information (rtsp://admin:12345@10.0.0.5/...: how
# most cameras are addressed), up to the last @ before the host, so a password with an @ in it is hidden whole; or as
# a parameter (the DVRs' rtsp://10.0.0.5:554/user=admin&password=12345&channel=1..., or ..._password=12345_channel=1...;
# a database URL's ?password=), up to the next & or the URL's end: what follows an _, a closing quote, is hidden too
_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"]*):[^\s/'\"]*@"
                       r"|(?P<key>(?i:passw(?:or)?d|pwd))=[^\s&]+")


def without_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``: a camera's URL is in the errors the box
    logs and sends in its heartbeat (retained at the broker, read by every gateway), and FFmpeg's own errors
    repeat it; the log lines of every command pass through it too (``xueliang.cli.JsonLines``).

    >>> without_password("cannot open rtsp://admin:s3cr%40et@10.0.0.5:554/s1: refused: 'rtsp://admin:p@ss@10.0.0.5/s1'")
    "cannot open rtsp://admin:***@10.0.0.5:554/s1: refused: 'rtsp://admin:***@10.0.0.5/s1'"
    >>> without_password("rtsp://10.0.0.5/s1 and rtsp://user@10.0.0.5/s1 and /data/a:b@c.mp4")
    'rtsp://10.0.0.5/s1 and rtsp://user@10.0.0.5/s1 and /data/a:b@c.mp4'
    >>> without_password("refused: 'rtsp://10.0.0.5:554/user=admin&password=12345&channel=1&stream=0.sdp?'")
    "refused: 'rtsp://10.0.0.5:554/user=admin&password=***&channel=1&stream=0.sdp?'"
    >>> without_password("refused: 'rtsp://10.0.0.5:554/user=admin_password=it's_channel=1'")
    "refused: 'rtsp://10.0.0.5:554/user=admin_password=***"
    >>> without_password("database postgresql+psycopg://xl@db:5432/city?password=s3cr%40et&sslmode=require")
    'database postgresql+psycopg://xl@db:5432/city?password=***&sslmode=require'
    """
    return _PASSWORD.sub(lambda m: f"{m['scheme']}:***@" if m["scheme"] else f"{m['key']}=***", text)
