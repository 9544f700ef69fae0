"""A case's entity tag, and If-Match read as RFC 9110 reads it: how an API client acts only on the case it last read.

The tag is ``actions.version`` (what a person decides an action on: state, department, level, deadlines, the time asked
for), the guard a case page's form already carries. It is sent strong (``"…"``, not ``W/"…"``): If-Match compares
strongly (RFC 9110 §13.1.1, §8.8.3.2), so a weak tag would match no If-Match at all. It is strong for that use alone:
the body of ``GET /cases/{id}`` also changes without it (a merged incident, a note, a photo, ``overdue`` with the
time), and differs by reader (another case a department may not see is "another case" to it), which a byte-exact
validator would count; nothing keeps or ranges that body (``Cache-Control: no-store``, ``Vary: Authorization,
Cookie``, no Range), If-None-Match is never answered 304 from it, and a tag that changed with every merged incident
would refuse a busy kerb's actions every few minutes.
"""

from __future__ import annotations

import re

from gateway.actions import version

# one element of If-Match's list and the comma after it (RFC 9110 §5.6.1: empty elements and spaces are allowed; a
# comma may be inside a tag, so the list is read tag by tag, not split); etagc is %x21 / %x23-7E / obs-text
ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([!#-~\x80-\xff]*)"[ \t]*)?(,|\Z)')


def etag(case: dict) -> str:
    """The ``ETag`` of ``case`` as the API sends it: its ``version``, quoted (a strong tag)."""
    return f'"{version(case)}"'


def if_match(value: str) -> frozenset[str] | None:
    """The versions an If-Match field ``value`` accepts: None for ``*`` (any: the case exists), else the strong tags
    it lists (a weak one never matches: If-Match compares strongly). ValueError where it is neither (RFC 9110
    §13.1.1: the condition is then false). Several If-Match lines are one list, joined with commas (§5.3).

    >>> sorted(if_match('"a", W/"b",, "c,d"')), if_match(' * '), if_match('W/"b"')
    (['a', 'c,d'], None, frozenset())
    >>> if_match('abc')
    Traceback (most recent call last):
    ...
    ValueError: not an entity tag at 'abc' (a tag is quoted: "...")
    """
    if value.strip(" \t") == "*":
        return None
    tags, at = set(), 0
    while True:
        found = ELEMENT.match(value, at)
        if found is None:
            raise ValueError(f"not an entity tag at {value[at:at + 40]!r} (a tag is quoted: \"...\")")
        if found[2] is not None and found[1] is None:
            tags.add(found[2])
        if found[3] == "":
            return frozenset(tags)
        at = found.end()
