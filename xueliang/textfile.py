"""Reading the files people write by hand: the edge config, the gateway config, the city's tables.

They come from whatever editor is at hand. A UTF-8 byte order mark (Windows Notepad, Excel's
"CSV UTF-8") is dropped; another encoding (GBK from a Chinese Windows) or a folder is refused
with a reason, never a traceback; a YAML key written twice is refused, not read as its last value; a value
Python cannot make (an integer of 5,000 digits, 2026-02-30) is refused naming its key and line.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import yaml


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


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping: it keeps the last one silently, and a
    camera with ``zones:`` pasted twice (the second list empty) loaded with no zones. The keys compared are those
    written in the mapping (``written``, kept as it is composed): a merge (``<<: *anchor``) copies the anchor's
    pairs into its mapping's, and into the anchor's own where that merges another, in place, before or after the
    check, and an override of a merged key is no key written twice."""

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        node.written = list(node.value)  # its pairs as written, before any merge adds to node.value
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in getattr(node, "written", node.value):
                if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` merges, it is no key
                    continue
                key = self.construct_object(key_node, deep=False)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the safe loader says so itself
                    continue
                if first is not key_node.start_mark:  # twice on one line too: {port: 8080, port: 9090}
                    where = (f"lines {first.line + 1} and {key_node.start_mark.line + 1}"
                             if first.line != key_node.start_mark.line else f"twice on line {first.line + 1}")
                    raise yaml.constructor.ConstructorError(
                        None, None, f"{key!r} is written twice in one mapping ({where}); keep one", key_node.start_mark)
        try:
            return super().construct_mapping(node, deep=deep)
        except yaml.constructor.ConstructorError as exc:  # a value it could not read: name its key
            key = next((k.value for k, v in node.value if v.start_mark is exc.problem_mark
                        and isinstance(k, yaml.ScalarNode)), None)
            if key is not None and exc.problem:
                exc.problem = f"{key}: {exc.problem}"
            raise

    def construct_object(self, node, deep=False):
        """A value YAML resolved but Python cannot make (a date past its month's end, an integer of more
        digits than Python reads) is a ``ConstructorError`` at its place, not a bare ValueError."""
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            if node.tag == "tag:yaml.org,2002:int":
                digits = sum(c.isdigit() for c in node.value)
                problem = f"a number of {digits} digits; a setting's number has at most {sys.get_int_max_str_digits()}"
            else:
                problem = f"{node.value!r} cannot be read as a YAML {node.tag.rsplit(':', 1)[-1]} ({exc})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def load_yaml(text: str, name: str = "<unicode string>") -> object:
    """YAML's data, as ``yaml.safe_load`` reads it, but a key written twice in one mapping is a
    ``yaml.YAMLError`` naming both lines; ``name``: the file, as its errors name it.

    >>> load_yaml("box: b1\\ncameras: []\\n")
    {'box': 'b1', 'cameras': []}
    >>> load_yaml("box: b1\\ncameras: []\\nbox: b2\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    yaml.constructor.ConstructorError: 'box' is written twice in one mapping (lines 1 and 3); keep one
    ...
    """
    stream = io.StringIO(text)
    stream.name = name  # what PyYAML's marks call the file ("<unicode string>" otherwise)
    return yaml.load(stream, Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader)
