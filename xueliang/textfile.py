"""Reading the files people write by hand: the edge config, the gateway config, the city's tables.

They come from whatever editor is at hand, or a pipe (``--config <(envsubst < edge.yaml)``). A UTF-8 byte order mark (Windows Notepad, Excel's
"CSV UTF-8") is dropped; another encoding (GBK from a Chinese Windows) or a folder is refused
with a reason, never a traceback; a YAML key written twice is refused, not read as its last value; a value
Python cannot make (an integer of 5,000 digits, 2026-02-30) is refused naming its key and line; a list longer
than its key allows (a zone's polygon of 100,000 points), or a mapping of more than ``MAX_KEYS`` keys, is refused at the
item or key past that, the rest unread; anchors
and aliases that stand for more than ``MAX_ALIASED`` values (a "billion laughs") are refused where they pass it; a
number YAML 1.1 reads in a base nobody means (``030``, octal 24; ``1:30``, base 60) is refused naming its key and line.
libyaml (PyYAML's C parser, where it has it) reads the text, and PyYAML's own composer the nodes, so that
these checks hold: PyYAML alone took 7-15 s over a 2 MB polygon before the config could refuse it.
"""

from __future__ import annotations

import difflib
import functools
import io
import os
import re
import select
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from xueliang.wire import GRID_PATTERN, IDENT


# a file's mistakes listed, at most, the rest counted: a 4 MB config of keys that are no field (200,000) listed each on
# a line of its own, 9 MB of them (and a key guessed at is compared with every field of the config)
SAID_AT_MOST = 20
# the patterns ids and grid codes are held to, in the words of the person who writes them
PATTERN_WORDS = {
    f"^{IDENT.pattern}$": "is not an id: write letters A-Z a-z, digits and . _ - (a letter or digit first, at most 64; "
    "it names MQTT topics, files and pages' addresses, so no Chinese, spaces or full-width letters: 东门 as dongmen)",
    GRID_PATTERN: "is not a grid code: write it as the city's grid table has it, in letters (Chinese too), digits and "
    ". _ - (a letter or digit first, at most 64; no spaces, / + # or full-width letters)",
}


def said(error: Mapping) -> str:
    """What a pydantic error says, for the person who wrote the file: an id or a grid code that does not match its
    pattern in words (``PATTERN_WORDS``), not as a regular expression.

    >>> said({"type": "string_pattern_mismatch", "input": "东门", "ctx": {"pattern": f"^{IDENT.pattern}$"},
    ...       "msg": "String should match pattern ..."})  # doctest: +ELLIPSIS
    "'东门' is not an id: write letters A-Z a-z, digits and . _ - ..."
    """
    if error["type"] == "string_pattern_mismatch" and (words := PATTERN_WORDS.get(error["ctx"]["pattern"])):
        return f"{str(error['input'])[:70]!r} {words}"
    if error["type"] in ("float_parsing", "int_parsing") and isinstance(error["input"], str):  # 10s, 3min, 30米
        return (f"{error['input'][:40]!r} is not a number: write the number alone, in the unit the setting's name "
                "ends with (_s: seconds, 3min as 180; _m: metres)")
    if error["type"] == "string_type" and isinstance(error["input"], (bool, int, float)):
        # a category code, a grid code or a password of digits written unquoted (code: 200505): pydantic said "Input
        # should be a valid string", and not why. Not shown: it may be a password
        read = "true or false (an unquoted yes, no, on, off, true or false)" if isinstance(error["input"], bool) \
            else "a number"
        return f"is read by YAML as {read}, and this setting is text: put it in quotes, as written (code: '200505')"
    if error["type"] == "list_type":  # "Input should be a valid list" said not what the file has there
        value = error["input"]
        if value is None:  # zones: with nothing under it
            return "is empty: write its items under it, each on a line of its own beginning with '- '"
        if isinstance(value, dict):  # cameras: with its first camera's keys under it, no '- '
            return "is a mapping (key: value), and this setting is a list: begin each item with '- '"
        if isinstance(value, (str, int, float)):  # types: illegal_parking
            return f"is one value, and this setting is a list: write it in brackets, [{str(value)[:40]}]"
    if error["type"] in BOUND_WORDS:
        return _out_of_range(error)
    return error["msg"].removeprefix("Value error, ")


# a number's bound, in the words of the person who writes it: pydantic said "Input should be greater than 0"
BOUND_WORDS = {"greater_than": ("gt", "more than {:g}"), "greater_than_equal": ("ge", "{:g} or more"),
               "less_than": ("lt", "less than {:g}"), "less_than_equal": ("le", "{:g} or less")}


def _out_of_range(error: Mapping) -> str:
    """A number past its field's bound (``said``), the bound in plain words; a score written as a percentage
    (``min_score: 40``, a field whose name ends in ``score``), as the fraction meant.

    >>> _out_of_range({"type": "less_than", "input": 40, "ctx": {"lt": 1}, "loc": ("detection", "min_score")})
    '40 is no score: a score is a fraction between 0 and 1 (40 % is 0.4)'
    >>> _out_of_range({"type": "greater_than_equal", "input": -5, "ctx": {"ge": 0}, "loc": ("zones", 0, "dwell_s")})
    'is -5; write 0 or more'
    """
    key, words = BOUND_WORDS[error["type"]]
    written = error["input"]  # a number, or its text (YAML 1.1 reads 1e300, with no dot, as text)
    try:
        value, shown = float(written), f"{written:g}" if isinstance(written, (int, float)) else str(written)[:40]
    except (TypeError, ValueError):  # a bound of another kind (a date's)
        return error["msg"]
    if str(error["loc"][-1] if error["loc"] else "").endswith("score") and 1 < value <= 100:
        return f"{shown} is no score: a score is a fraction between 0 and 1 ({shown} % is {value / 100:g})"
    return f"is {shown}; write {words.format(error['ctx'][key])}"


def said_first(errors: Sequence[Mapping], model: type[BaseModel]) -> tuple[list[tuple[Mapping, str]], str | None]:
    """The first ``SAID_AT_MOST`` of ``model``'s validation errors, each with what it says (``said``; a key that is no
    field, what was meant: ``unknown_field``), and what is said of the rest (how many, and how many of them are keys
    that are no field), or None where there is no more.

    >>> from pydantic import ValidationError, create_model
    >>> Broker = create_model("Broker", __config__={"extra": "forbid"}, host=(str, ""))
    >>> try:
    ...     Broker.model_validate({"hots": "x", **{f"k{i}": 1 for i in range(24)}})
    ... except ValidationError as exc:
    ...     listed, more = said_first(exc.errors(), Broker)
    >>> len(listed), listed[0][1], more
    (20, 'not a field at the top level; did you mean host?', '... and 5 more, each a key that is no field')
    """
    listed = [(error, unknown_field(model, error["loc"]) if error["type"] == "extra_forbidden" else said(error))
              for error in errors[:SAID_AT_MOST]]
    rest = errors[SAID_AT_MOST:]
    if not rest:
        return listed, None
    unknown = sum(error["type"] == "extra_forbidden" for error in rest)
    kinds = ", each a key that is no field" if unknown == len(rest) else \
        f", {unknown:,} of them keys that are no field" if unknown else ""
    return listed, f"... and {len(rest):,} more{kinds}"


def unknown_field(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """What to say of the key at ``loc`` (a pydantic error's), which ``model``'s tree has no field for there: where a
    field of that name is elsewhere in the tree, where it belongs; else the field here (or elsewhere) spelt close to
    it; else the fields here. Installers wrote ``client_id`` beside ``broker:`` rather than under it, and
    ``dwell_secs``: all either was told was "Extra inputs are not permitted".

    >>> from pydantic import create_model
    >>> Broker = create_model("Broker", host=(str, ""), client_id=(str, ""))
    >>> Http = create_model("Http", host=(str, ""), port=(int, 8080))
    >>> Config = create_model("Config", broker=(Broker, Broker()), http=(Http, Http()))
    >>> unknown_field(Config, ["client_id"])
    'not a field at the top level; it belongs under broker:'
    >>> unknown_field(Config, ["host"])
    'not a field at the top level; it belongs under broker: or under http:'
    >>> unknown_field(Config, ["broker", "clientid"]), unknown_field(Config, ["brokr"])
    ('not a field here; did you mean client_id?', 'not a field at the top level; did you mean broker?')
    >>> unknown_field(Config, ["http", "clientid"])
    'not a field here; did you mean client_id, under broker: at the top level?'
    >>> unknown_field(Config, ["broker", "端口"])
    'not a field here; the fields here are host, client_id'
    """
    *at, key = loc
    here, owner = tuple(k for k in at if isinstance(k, str)), _model_at(model, at)
    plain = "not a field here" if here else "not a field at the top level"
    if owner is None:  # a place that is no model's
        return plain
    key = str(key)
    places = [(path, fields) for path, fields in _fields_in(model) if path != here]
    if belongs := [path for path, fields in places if key in fields]:
        return f"{plain}; it belongs {' or '.join(dict.fromkeys(_under(path, here) for path in belongs))}"
    words = key.lower()[:100]  # compared with every field: a key may be a kilobyte long
    if close := difflib.get_close_matches(words, list(owner.model_fields), n=1):
        return f"{plain}; did you mean {close[0]}?"
    elsewhere: dict[str, tuple[str, ...]] = {}
    for path, fields in places:  # a field in several places: said at the first, the nearest the top
        elsewhere.update((field, path) for field in fields if field not in elsewhere)
    if close := difflib.get_close_matches(words, list(elsewhere), n=1):
        return f"{plain}; did you mean {close[0]}, {_under(elsewhere[close[0]], here)}?"
    return f"{plain}; the fields here are {', '.join(owner.model_fields)}"


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The models a field's type holds (``Broker``, ``list[Zone]``, ``Location | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model whose fields the mapping at ``loc`` holds (a list's index passed over); None where it is no model's."""
    for key in loc:
        if isinstance(key, int):
            continue
        field = model.model_fields.get(key)
        models = _models_in(field.annotation) if field is not None else []
        if not models:
            return None
        model = models[0]
    return model


@functools.cache  # a file of keys that are no field's walked the tree for each
def _fields_in(model: type[BaseModel], path: tuple[str, ...] = ()) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """Each place in ``model``'s tree (the fields' names down to it, a list's items as the list) with its fields."""
    return ((path, tuple(model.model_fields)),
            *(place for name, field in model.model_fields.items() for inner in _models_in(field.annotation)
              if inner is not model for place in _fields_in(inner, (*path, name))))


def _under(path: tuple[str, ...], here: tuple[str, ...]) -> str:
    """Where ``path`` is, said from ``here``: below it, from it (``under zones:``); else from the top."""
    if not path:
        return "at the top level"
    if path[:len(here)] == here:
        return "under " + " ".join(f"{name}:" for name in path[len(here):])
    return "under " + " ".join(f"{name}:" for name in path) + (" at the top level" if here else "")


# how long a named pipe (a FIFO) is waited on for a program to write it: one made and never written hung the command
# without a word (opening it waits for a writer); ``<(envsubst < x.yaml)`` has its writer there from the start
PIPE_WAIT_S = 5.0


class NotThere(ValueError):
    """A file named that is not there, is a folder, or cannot be read, said the one way wherever a file is named (a
    config, the city's tables, a camera's video, a picture): the path, then which. ``error``: what the system said
    (an ``IsADirectoryError`` for a folder), as ``os.strerror`` words it where it is neither.

    >>> str(NotThere(Path("/etc/xueliang"), IsADirectoryError()))
    '/etc/xueliang: is a folder; name the file'
    """

    def __init__(self, path: Path, error: OSError | ValueError):
        if isinstance(error, FileNotFoundError):
            reason = "no such file"
        elif isinstance(error, IsADirectoryError):
            reason = "is a folder; name the file"
        else:  # not ours to read, a folder on the way not ours to search, a NUL in the name
            reason = f"cannot be read ({getattr(error, 'strerror', None) or error})"
        super().__init__(f"{path}: {reason}")


def there(path: Path) -> os.stat_result:
    """``path``'s status, where it is there and no folder (a file, a pipe, a device); else ``NotThere`` saying which.

    >>> there(Path("/no/such.yaml"))
    Traceback (most recent call last):
    xueliang.textfile.NotThere: /no/such.yaml: no such file
    """
    try:
        status = path.stat()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise NotThere(path, exc) from None
    if stat.S_ISDIR(status.st_mode):
        raise NotThere(path, IsADirectoryError())
    return status


def read_text(path: Path, max_bytes: int | None = None) -> str:
    """The file's text; ValueError saying what is wrong and what to do (``NotThere``; more than ``max_bytes``, where
    given; a named pipe no program writes to, ``PIPE_WAIT_S`` on).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.yaml"
    >>> _ = p.write_bytes("# 东门\\nbox: b1\\n".encode("gbk"))
    >>> read_text(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: ...t.yaml: not UTF-8 text (byte 0xb6 at offset 2); save the file as UTF-8
    """
    size = -1 if max_bytes is None else max_bytes + 1  # no more than the bound, of a file that has no end too
    try:
        if stat.S_ISFIFO(there(path).st_mode):
            data = _read_pipe(path, sys.maxsize if size < 0 else size)
        else:
            with path.open("rb") as f:
                data = f.read(size)
    except OSError as exc:  # not ours to read; gone since it was looked at
        raise NotThere(path, exc) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{path}: more than {max_bytes:,} bytes; a file written by hand is a fraction of that")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                         "save the file as UTF-8") from None


def folder_of(path: Path) -> Path:
    """The folder the relative paths a file names are read from: the file's own; the folder the command runs in for one
    read from a pipe (``--config <(envsubst < gateway.yaml)`` is /dev/fd/63: ``tables: city.yaml`` was looked for as
    /dev/fd/city.yaml); the file's behind a descriptor that names one (``--config /dev/stdin < gateway.yaml``).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); (folder / "gateway.yaml").touch()
    >>> folder_of(folder / "gateway.yaml") == folder
    True
    >>> read, write = os.pipe()
    >>> folder_of(Path(f"/dev/fd/{read}")) == Path.cwd()
    True
    >>> os.close(read); os.close(write)
    """
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError:  # not there, or out of reach: said where it is read
        return path.parent
    if not regular:
        return Path.cwd()
    if path.absolute().parts[1:2] in (("dev",), ("proc",)):
        return Path(os.path.realpath(path)).parent
    return path.parent


def _read_pipe(path: Path, size: int) -> bytes:
    """Up to ``size`` bytes of the pipe at ``path``, to its writer's end; ValueError where no program writes to it
    within ``PIPE_WAIT_S``. Opened without waiting, a pipe with no writer reads as ended; with a writer that has
    written nothing yet, as "try again"."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        chunks: list[bytes] = []
        got, written, until = 0, False, time.monotonic() + PIPE_WAIT_S
        while got < size:
            try:
                chunk = os.read(fd, min(size - got, 1 << 16))
            except BlockingIOError:  # a writer, slow: waited on as a file's reader waits on its disk
                written = True
                select.select([fd], [], [])
                continue
            if chunk:
                chunks.append(chunk)
                got, written = got + len(chunk), True
            elif written:  # its writer is done
                break
            elif time.monotonic() < until:
                time.sleep(0.05)
            else:
                raise ValueError(f"{path}: a named pipe (FIFO) no program is writing to (waited {PIPE_WAIT_S:g} s); "
                                 "start the program that writes it first, or name the file itself")
        return b"".join(chunks)
    finally:
        os.close(fd)


# the values all aliases stand for together, at most: a camera with its zones repeated by alias, each with a few
# more, is a few hundred; 6 kB of aliases of aliases (1,000 cameras of 1,000 zones) took 24 s to refuse, and 60 kB
# would have taken 40 min
MAX_ALIASED = 100_000
# the keys of one mapping, at most: a camera's, a zone's, a category's hold a few dozen; 200,000 keys that are no field
# (2.9 MB) took 4 s to read before the config refused each, and the tables, up to 64 MiB, would take a minute and a half
MAX_KEYS = 1_000
# what a config says of a mapping past ``MAX_KEYS``, after where and how many
MANY_KEYS = "a mapping written by hand holds a few dozen: write many of a kind as a list"
# YAML 1.1's integers a person writes meaning another number: a leading zero (030: octal, 24) and a colon (1:30: base
# 60, 90, or 1.5 hours in a field of seconds?). Hexadecimal (0x1E) and binary (0b11) say what they are
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


class TooLong(yaml.MarkedYAMLError):
    """A list longer than its key allows (``load_yaml``'s ``longest``), or a mapping of more than ``MAX_KEYS`` keys
    (``what``: "keys"), refused at the item or key past that. ``loc``: its
    place as pydantic names one (``("cameras", 0, "zones", 2, "polygon")``); ``partial``: the document on the way
    to it, each mapping there with the plain values read before (a camera's id, written before its zones), to
    name the place by."""

    def __init__(self, loc: tuple, partial: dict, limit: int, mark: yaml.Mark, what: str = "items"):
        self.loc, self.partial, self.limit, self.what = loc, partial, limit, what
        super().__init__(problem=f"{'.'.join(map(str, loc)) or 'the top level'}: more than {limit:,} {what}",
                         problem_mark=mark)


# libyaml's events, PyYAML's composer (hooked below) on them: PyYAML's scanner and parser are its slowest part (the
# events of a 2 MB polygon: 4 s, libyaml's 0.2 s)
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _Parser(CParser, Composer):
        def __init__(self, stream):
            CParser.__init__(self, stream)
            Composer.__init__(self)

        get_single_node, check_node, get_node = Composer.get_single_node, Composer.check_node, Composer.get_node
else:  # PyYAML's own, as yaml.SafeLoader
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


class _UniqueKeys(_Parser, SafeConstructor, Resolver):
    """PyYAML's safe loader, refusing a key written twice in one mapping: it keeps the last one silently, and a
    camera with ``zones:`` pasted twice (the second list empty) loaded with no zones. The keys compared are those
    written in the mapping (``written``, kept as it is composed): a merge (``<<: *anchor``) copies the anchor's
    pairs into its mapping's, and into the anchor's own where that merges another, in place, before or after the
    check, and an override of a merged key is no key written twice. A list under a key of ``longest`` stops
    at the item past its bound, a mapping at its key past ``MAX_KEYS`` (``TooLong``). Aliases are counted by the values they stand for (``MAX_ALIASED``)."""

    def __init__(self, stream, longest: Mapping[str, int]):
        _Parser.__init__(self, stream)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.longest = longest
        self._way: list[tuple[yaml.Node | None, object]] = []  # (parent, key node or index) down to this node
        self._values: dict[int, int] = {}  # by node: the values it stands for, itself, what is in it, its aliases'
        self._aliased = 0  # the values all aliases read so far stand for

    def compose_node(self, parent, index):
        key = self._way[-1][1] if isinstance(index, int) and self._way else None  # what the list is under
        if isinstance(key, yaml.ScalarNode) and index >= self.longest.get(key.value, index + 1):
            self._too_long(self.longest[key.value], "items")
        if index is None and isinstance(parent, yaml.MappingNode) and len(parent.value) >= MAX_KEYS:  # a key
            self._too_long(MAX_KEYS, "keys", parent)
        alias = self.peek_event() if self.check_event(yaml.AliasEvent) else None
        self._way.append((parent, index))
        try:
            node = super().compose_node(parent, index)
        finally:
            self._way.pop()
        if alias is None:  # its parts are composed, their aliases counted in theirs
            parts = node.value if isinstance(node, yaml.SequenceNode) else \
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
            self._values[id(node)] = 1 + sum(self._values.get(id(n), 1) for n in parts)
            return node
        self._aliased += self._values.get(id(node), 1)  # an alias of what is still being composed: itself
        if self._aliased > MAX_ALIASED:  # a copy of each is made where it is read, and checked
            raise yaml.composer.ComposerError(
                None, None, f"its anchors and aliases (&{alias.anchor}, *{alias.anchor}) stand for more than "
                f"{MAX_ALIASED:,} values by here; a configuration written by hand repeats a few: write them out",
                alias.start_mark)
        return node

    def _too_long(self, limit: int, what: str, mapping: yaml.MappingNode | None = None):
        """TooLong at the next event, a list's or ``mapping``'s (its plain values read so far: a zone's id)."""
        way = self._way[1:]  # the document's own (None, None) first
        raise TooLong(tuple(i.value if isinstance(i, yaml.ScalarNode) else i for _, i in way),
                      _partial(way + [(mapping, None)] if mapping else way), limit, self.peek_event().start_mark, what)

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
        digits than Python reads) is a ``ConstructorError`` at its place, not a bare ValueError; so is a number in
        a base nobody means (``030``: YAML 1.1's octal, 24; ``dwell_s: 030`` was a dwell of 24 s)."""
        if node.tag == "tag:yaml.org,2002:int" and _OCTAL.fullmatch(node.value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value} is read by YAML as an octal number, {super().construct_object(node)}; "
                f"write it without the leading zero, or quote it ('{node.value}') where it is a name", node.start_mark)
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and _SEXAGESIMAL.fullmatch(node.value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value} is read by YAML as a number in base 60, {super().construct_object(node)} "
                "(minutes and seconds, or hours and minutes?); write the number itself, or quote it where it is "
                "text", node.start_mark)
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as exc:
            if node.tag == "tag:yaml.org,2002:int":
                digits = sum(c.isdigit() for c in node.value)
                problem = f"a number of {digits} digits; a setting's number has at most {sys.get_int_max_str_digits()}"
            else:
                problem = f"{node.value!r} cannot be read as a YAML {node.tag.rsplit(':', 1)[-1]} ({exc})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def _partial(way: list[tuple[yaml.Node, object]]) -> dict:
    """The document along ``way`` (``_UniqueKeys._way``): each mapping with its plain values read so far, each list
    with the item on the way at its index (those before it as empty mappings)."""
    made = []
    for parent, index in way:
        if isinstance(parent, yaml.MappingNode):
            made.append({k.value: v.value for k, v in parent.value
                         if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)})
        else:
            made.append([{} for _ in parent.value])
    for (outer, (_, index)), inner in zip(zip(made, way), made[1:]):
        if isinstance(outer, dict):
            outer[index.value] = inner
        else:
            outer.append(inner)
    return made[0] if made else {}


def load_yaml(text: str, name: str = "<unicode string>", longest: Mapping[str, int] | None = None) -> object:
    """YAML's data, as ``yaml.safe_load`` reads it, but a key written twice in one mapping is a
    ``yaml.YAMLError`` naming both lines; ``name``: the file, as its errors name it. A list under a key named in
    ``longest`` with more items than it says there is ``TooLong`` at the first item past them, read no further; so
    is a mapping of more than ``MAX_KEYS`` keys at the key past them.
    Collections nested too deeply for the composer are a RecursionError.

    >>> load_yaml("box: b1\\ncameras: []\\n")
    {'box': 'b1', 'cameras': []}
    >>> load_yaml("box: b1\\ncameras: []\\nbox: b2\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    yaml.constructor.ConstructorError: 'box' is written twice in one mapping (lines 1 and 3); keep one
    ...
    >>> load_yaml("cameras:\\n  - id: c1\\n    polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]\\n", longest={"polygon": 3})
    Traceback (most recent call last):
    xueliang.textfile.TooLong: cameras.0.polygon: more than 3 items
      in "<unicode string>", line 3, column 39
    >>> load_yaml("box: b1\\ncameras:\\n\\t- id: gate\\n")
    Traceback (most recent call last):
    yaml.scanner.ScannerError: a tab: YAML indents with spaces only; replace the tabs with spaces (two a level)
      in "<unicode string>", line 3, column 1
    >>> load_yaml("".join(f"k{i}: 1\\n" for i in range(2000)))
    Traceback (most recent call last):
    xueliang.textfile.TooLong: the top level: more than 1,000 keys
      in "<unicode string>", line 1001, column 1
    """
    stream = io.StringIO(text)
    stream.name = name  # what PyYAML's marks call the file ("<unicode string>" otherwise)
    loader = _UniqueKeys(stream, longest or {})
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:  # libyaml's bound on nesting (1,000 levels): PyYAML's is Python's recursion's
        if exc.problem == "exceeded maximum nesting depth":
            raise RecursionError(exc.problem) from None
        mark = exc.problem_mark
        if mark is not None and "".join(text.split("\n")[mark.line:mark.line + 1])[mark.column:mark.column + 1] == "\t":
            # an editor's tab: "found character that cannot start any token" said nothing of it
            exc.context, exc.context_mark = None, None
            exc.problem = "a tab: YAML indents with spaces only; replace the tabs with spaces (two a level)"
        raise
    finally:
        loader.dispose()
