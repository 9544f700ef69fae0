"""The secure broker's accounts: one file of Mosquitto's dynamic-security plugin (deploy/mosquitto/mosquitto.conf)
that holds every account's password hash and what it may publish, receive and subscribe to.

Why the plugin and not Mosquitto's ``acl_file``: Mosquitto 2.0's ``acl_file`` checks publishing and delivery but lets
any account SUBSCRIBE to anything (its source: "FIXME - implement ACL subscription strings"), shared subscriptions
included. A box's account that joined the gateways' group (``$share/gateway/xl/v1/+/+/incident``) was handed its share
of every box's messages, each then refused delivery and dropped: with k such accounts beside g gateways, about
k/(k+g) of the city's incidents were lost on each try, no dead letter, no log line. The plugin checks each
subscription against the account's own list and refuses the rest (SUBACK 0x87, Not authorized).

The plugin has no per-user patterns (the ``acl_file``'s ``%u``), so each account has its own role, made here from its
kind; the plugin reads the file at the broker's start only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from xueliang import wire

KINDS = ("box", "gateway", "centre", "department")
ITERATIONS = 101  # Mosquitto's own, for its password file and the plugin's accounts alike
SALT_BYTES = 12  # the plugin refuses an account whose salt is of another length (it is then unknown: refused)
GATEWAY_READS = (wire.INCIDENT_SUBSCRIPTION, wire.EVIDENCE_SUBSCRIPTION, wire.STATUS_SUBSCRIPTION)
NOTHING = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True}


class AccountError(ValueError):
    """An account that cannot be made as asked, or a file that is not the broker's accounts."""


def acls(kind: str, name: str, grids: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """What an account of ``kind`` may do, as the plugin's ACLs; anything else is refused.

    A **box** writes only under its own prefix and reads and subscribes to its acknowledgements and suppressions; a
    **gateway** reads every box's incidents, evidence and status through the gateways' shared subscriptions only, and
    writes acknowledgements, suppressions, dispatches and escalations; a **centre** reads the overdue notices of its
    ``grids`` (all without); a **department** reads the cases dispatched to it.

    >>> [(a["acltype"], a["topic"]) for a in acls("box", "box-1") if a["acltype"] == "subscribeLiteral"]
    [('subscribeLiteral', 'xl/v1/box-1/ack'), ('subscribeLiteral', 'xl/v1/box-1/suppressions')]
    >>> [a["topic"] for a in acls("department", "sanitation")]
    ['xl/v1/dispatch/sanitation', 'xl/v1/dispatch/sanitation']
    >>> acls("box", "box/+")
    Traceback (most recent call last):
    ...
    xueliang.brokeraccounts.AccountError: box account 'box/+' is not a safe topic level (letters, digits, . _ -; at most 64)
    """
    try:
        wire.topic_level(name, f"{kind} account")
        for grid in grids:
            wire.topic_level(grid, "grid")
    except wire.WireError as e:
        raise AccountError(str(e)) from None
    if grids and kind != "centre":
        raise AccountError(f"{kind} account {name!r}: only a centre's account reads the notices of chosen grids")
    root = wire.ROOT
    if kind == "box":
        if name in ("dispatch", "escalations"):
            raise AccountError(f"box account {name!r}: {root}/{name}/ is the gateways' (no box may be called so)")
        send = [wire.status_topic(name), f"{root}/{name}/+/incident", f"{root}/{name}/+/evidence/+"]
        hear = [wire.ack_topic(name), wire.suppressions_topic(name)]
        return _acls(send=send, receive=hear, subscribe=hear)
    if kind == "gateway":
        return _acls(send=[f"{root}/+/ack", f"{root}/+/suppressions", f"{root}/dispatch/#", f"{root}/escalations/#"],
                     receive=list(GATEWAY_READS), subscribe=[wire.SHARE_GROUP + topic for topic in GATEWAY_READS])
    if kind == "centre":
        notices = [wire.escalation_topic(grid) for grid in grids] or [f"{root}/escalations/#"]
        return _acls(receive=notices, subscribe=notices if grids else [], subscribe_within=[] if grids else notices)
    if kind == "department":
        return _acls(receive=[wire.dispatch_topic(name)], subscribe=[wire.dispatch_topic(name)])
    raise AccountError(f"account kind {kind!r} is none of {', '.join(KINDS)}")


def _acls(send=(), receive=(), subscribe=(), subscribe_within=()) -> list[dict[str, Any]]:
    return ([{"acltype": "publishClientSend", "topic": t, "allow": True} for t in send]
            + [{"acltype": "publishClientReceive", "topic": t, "allow": True} for t in receive]
            + [{"acltype": "subscribeLiteral", "topic": t, "allow": True} for t in subscribe]
            + [{"acltype": "subscribePattern", "topic": t, "allow": True} for t in subscribe_within])


def hashed(password: str, salt: bytes) -> dict[str, Any]:
    """The plugin's fields for ``password``: PBKDF2-HMAC-SHA512 of it with ``salt``, as Mosquitto checks it.

    >>> hashed("pw", bytes(12))["password"][:16], hashed("pw", bytes(12))["iterations"]
    ('bzN2Qihm3+awXnpv', 101)
    """
    if not password:
        raise AccountError("the password is empty")
    if len(salt) != SALT_BYTES:
        raise AccountError(f"a salt is {SALT_BYTES} bytes, not {len(salt)}")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return {"salt": base64.b64encode(salt).decode(), "password": base64.b64encode(digest).decode(),
            "iterations": ITERATIONS}


def empty() -> dict[str, Any]:
    """A file with no account: everything refused."""
    return {"defaultACLAccess": dict(NOTHING), "clients": [], "groups": [], "roles": []}


def with_account(accounts: dict[str, Any], kind: str, name: str, password: str, salt: bytes,
                 grids: tuple[str, ...] = ()) -> dict[str, Any]:
    """``accounts`` with the account ``name`` of ``kind`` added, or made again (its kind, grids and password as given
    now), its role named after it. The others are left as they are.

    >>> accounts = with_account(empty(), "box", "box-1", "pw", bytes(12))
    >>> accounts = with_account(accounts, "gateway", "box-1", "pw2", bytes(12))
    >>> [(c["username"], c["textname"], c["roles"]) for c in accounts["clients"]]
    [('box-1', 'gateway', [{'rolename': 'box-1'}])]
    """
    role = {"rolename": name, "acls": acls(kind, name, grids)}
    client = {"username": name, "textname": kind, **hashed(password, salt), "roles": [{"rolename": name}]}
    if grids:
        client["textdescription"] = "grids " + " ".join(grids)
    return {**accounts, "clients": [c for c in accounts.get("clients", []) if c.get("username") != name] + [client],
            "roles": [r for r in accounts.get("roles", []) if r.get("rolename") != name] + [role]}


def made(accounts: dict[str, Any], kind: str, name: str, grids: tuple[str, ...] = ()) -> str:
    """What ``with_account(accounts, kind, name, ...)`` does, in words: a new account made, or one there made again
    (a new password; its kind or a centre's grids as given now).

    >>> accounts = with_account(empty(), "centre", "cc", "pw", bytes(12), ("A",))
    >>> made(accounts, "box", "box-1"), made(accounts, "centre", "cc", ("A",))
    ("box account 'box-1' made", "centre account 'cc': password changed")
    >>> made(accounts, "centre", "cc")
    "centre account 'cc': password changed, its grids now all"
    >>> made(accounts, "gateway", "cc")
    "account 'cc' made again as gateway (it was a centre's), a new password"
    """
    before = next((c for c in accounts.get("clients", []) if c.get("username") == name), None)
    if before is None:
        return f"{kind} account {name!r} made"
    if before.get("textname") != kind:
        return f"account {name!r} made again as {kind} (it was a {before.get('textname')}'s), a new password"
    said = f"{kind} account {name!r}: password changed"
    if before.get("textdescription", "").removeprefix("grids ").split() != list(grids):
        said += f", its grids now {' '.join(grids) or 'all'}"
    return said


def without_account(accounts: dict[str, Any], name: str) -> dict[str, Any]:
    """``accounts`` without ``name`` (it can no longer log in), or AccountError if it has none of that name."""
    if not any(c.get("username") == name for c in accounts.get("clients", [])):
        raise AccountError(f"no account {name!r} to remove")
    return {**accounts, "clients": [c for c in accounts["clients"] if c.get("username") != name],
            "roles": [r for r in accounts.get("roles", []) if r.get("rolename") != name]}


def read(path: Path) -> dict[str, Any]:
    """The accounts in ``path``, an empty set where there is no file yet."""
    if not path.exists():
        return empty()
    try:
        accounts = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AccountError(f"{path} is not the broker's accounts (JSON): {e}") from None
    if not isinstance(accounts, dict) or not isinstance(accounts.get("clients", []), list):
        raise AccountError(f"{path} is not the broker's accounts: no list of clients")
    return accounts


def write(path: Path, accounts: dict[str, Any]) -> None:
    """Write ``accounts`` in place of ``path`` whole (a new file beside it, then renamed): its owner and mode as the
    file had them, a new one readable by its owner and group only (the broker's group where there is one)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as f:
            json.dump(accounts, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            old = path.stat()
            os.chmod(tmp, old.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, old.st_uid, old.st_gid)
        elif os.geteuid() == 0:
            import grp
            try:
                os.chown(tmp, 0, grp.getgrnam("mosquitto").gr_gid)
            except KeyError:
                pass
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def make(path: Path, kind: str, name: str, password: str, grids: tuple[str, ...] = ()) -> str:
    """Add (or make again) one account in the file at ``path``; what was done, in words (``made``)."""
    accounts = read(path)
    write(path, with_account(accounts, kind, name, password, secrets.token_bytes(SALT_BYTES), grids))
    return made(accounts, kind, name, grids)
