"""Characters a machine's text may carry that a reader does not see as written: controls (a newline, a terminal's
escape), invisible formatting (a right-to-left override, a zero-width space), line and paragraph separators, lone
surrogates. A box, a camera's server or FFmpeg may send any of them; what is kept and shown has them replaced
(``neutralised``), what is logged has them escaped (``escaped``), a name a city writes is refused with them
(``hidden`` says which)."""

from __future__ import annotations

import unicodedata

HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs"}  # control, invisible formatting (bidi controls among them), line breaks


def hidden(text: str, keep: str = "") -> str:
    r"""The control and invisible formatting characters in ``text`` (but those of ``keep``) as code points, each once;
    "" for none.

    >>> hidden("已到场\u202e12:00\u202e\t"), hidden("已到场\n车已挪走\t12:00", keep="\n\t")
    ('U+202E, U+0009', '')
    """
    return ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(c for c in text if c not in keep
                                                                and unicodedata.category(c) in HIDDEN))


def neutralised(text: str) -> str:
    r"""``text`` with each control or invisible formatting character replaced by U+FFFD, for text from a machine that
    is kept and shown rather than refused.

    >>> neutralised("cannot open rtsp://cam\u202egpj.exe\x1b[2J") == "cannot open rtsp://cam\ufffdgpj.exe\ufffd[2J"
    True
    """
    return "".join("\ufffd" if unicodedata.category(c) in HIDDEN else c for c in text)


def escaped(text: str, keep: str = "") -> str:
    r"""``text`` with each control or invisible formatting character (but those of ``keep``) written as Python writes
    it in a string's repr (``\n``, ``\x1b``, ``\u202e``), for a log line: a topic or a camera's error with a newline
    in it wrote what read as another line of the log, and a right-to-left override turned the line's end around.

    >>> print(escaped("xl/v1/b-1\n12:00 INFO case 12 closed\u202e\u200b/incident: 401 \x1b[2J\ud800"))
    xl/v1/b-1\n12:00 INFO case 12 closed\u202e\u200b/incident: 401 \x1b[2J\ud800
    >>> print(escaped("Traceback:\n  ValueError: a\tb\u2028", keep="\n"))
    Traceback:
      ValueError: a\tb\u2028
    """
    if text.isprintable():  # every log line goes through here; a printable one holds none of HIDDEN's categories
        return text
    return "".join(c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   if c not in keep and unicodedata.category(c) in HIDDEN else c for c in text)
