"""Reading the files people write by hand: the edge config, the gateway config, the city's tables.

They come from whatever editor is at hand. A UTF-8 byte order mark (Windows Notepad, Excel's
"CSV UTF-8") is dropped; another encoding (GBK from a Chinese Windows) or a folder is refused
with a reason, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


def read_text(path: Path) -> str:
    """The file's text; ValueError saying what is wrong and what to do. FileNotFoundError passes.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.yaml"
    >>> _ = p.write_bytes("# 东门\\nbox: b1\\n".encode("gbk"))
    >>> read_text(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: ...t.yaml: not UTF-8 text (byte 0xb6 at offset 2); save the file as UTF-8
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder; name the file") from None
    except PermissionError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "save the file as UTF-8") from None
