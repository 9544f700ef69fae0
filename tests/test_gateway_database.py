"""The gateway's own database broken or out of reach at start (not SQLite, cut short, of a later release, of another
making, a folder, a link to nothing, read-only, a PostgreSQL that does not answer): one line saying where, what is
wrong and what to do, exit 2, never a traceback, and the file left as it was. The commands that only read it
(``token --list``, ``gateway --check``, ``dataset export``) refuse a database that is no gateway's, empty too, and
make nothing in it; they read an older release's without upgrading it (those that write say they upgraded it)."""

import contextlib
import hashlib
import re
import sqlite3
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from gateway import storage
from gateway.api import create_app
from gateway.auth import new_token
from gateway.config import TABLES_DIR, load_tables
from gateway.schema import MIGRATIONS
from gateway.storage import DatabaseUnusable, Store, StoreClosed
from xueliang import services
from xueliang.cli import main as cli

from .test_edge_startup import read_only
from .test_workflow import (database_url, undo_migration_18, undo_migration_19, undo_migration_20,  # noqa: F401
                            undo_migration_21, undo_migration_22,
                            undo_migrations_after_3)


def a_gateway_database(path) -> None:
    Store(f"sqlite:///{path}").engine.dispose()  # closed: all of it in the file, none in a write-ahead log


def broken(path, how: str) -> None:
    if how == "a folder":
        path.mkdir()
    elif how == "a link to nothing":
        path.symlink_to(path.parent / "unmounted" / "gateway.sqlite")
    elif how in ("of another making", "another application's"):
        db = sqlite3.connect(path)
        db.executescript("CREATE TABLE cases (x); INSERT INTO cases VALUES (1);" if how == "of another making" else
                         "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'li');"
                         "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER); INSERT INTO orders VALUES (7, 1);")
        db.close()
    else:
        a_gateway_database(path)
        if how == "not SQLite":
            path.write_bytes(b"\x13" * path.stat().st_size)
        elif how == "cut short":
            path.write_bytes(path.read_bytes()[:path.stat().st_size // 2 + 100])
        elif how == "of a later release":
            db = sqlite3.connect(path)
            db.execute("INSERT INTO schema_migrations VALUES (?, 'a later release', 0)", (MIGRATIONS[-1][0] + 1,))
            db.commit()
            db.close()


LEFT = "; it was left as it is"
CASES = {
    "not SQLite": r"damaged \(file is not a database\): restore it from a backup, or move it away for a new one to "
                  "begin" + LEFT,
    "cut short": r"damaged \(database disk image is malformed\): restore it" ".*" + LEFT,
    "of a later release": f"schema version {MIGRATIONS[-1][0] + 1} is newer than this gateway's "
                          rf"\({MIGRATIONS[-1][0]}\): run a gateway of the release that made it" + LEFT,
    "of another making": r"not a gateway's database \(no such (?:table: main\.\w+|column: cases\.\w+)\): name the "
                         "gateway's, or move this one away for a new one to begin" + LEFT,
    "another application's": r"not a gateway's database \(no table cases; tables orders, users\): name the "
                             "gateway's, or move this one away for a new one to begin" + LEFT,
    "a folder": r"cannot be used \(unable to open database file; it is a folder\): let the gateway's user read and "
                "write it and its folder, with room on its disk" + LEFT,
    "a link to nothing": r"cannot be used \(unable to open database file; it is a link to .*/unmounted/gateway\.sqlite, "
                         r"which does not exist\): let the gateway's user" ".*" + LEFT,
}


@pytest.mark.parametrize("how", list(CASES))
def test_a_broken_database_is_refused_with_what_is_wrong_and_left_as_it_was(tmp_path, how):
    """A database of a later release was served as it was (its steps unknown here, what this gateway wrote could
    break it), and another application's had the gateway's tables made beside its own; the others were a traceback
    of 120 lines. Each is left as it was to the byte: the file of another making had been switched to a write-ahead
    log before it was refused (two bytes of its header, and its change counter)."""
    path = tmp_path / "gateway.sqlite"
    broken(path, how)
    was = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    with pytest.raises(DatabaseUnusable) as refused:
        Store(f"sqlite:///{path}")
    assert re.fullmatch(f"database {re.escape(str(path))}: {CASES[how]}", str(refused.value)), refused.value
    if was is not None:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == was
        assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.sqlite"]  # no write-ahead log, no journal


def test_a_read_only_database_is_refused_at_start(tmp_path):
    """It was served, and every incident failed at ingest: found at start, as the box's outbox is."""
    path = tmp_path / "gateway.sqlite"
    a_gateway_database(path)
    with read_only(path), pytest.raises(DatabaseUnusable, match=re.escape(
            f"database {path}: cannot be used (attempt to write a readonly database; ")):
        Store(f"sqlite:///{path}")


@pytest.mark.parametrize("url", ["postgresql+psycopg://xl:secret@127.0.0.1:PORT/city",
                                 # psycopg takes it as a parameter too: the gateway's error showed it
                                 "postgresql+psycopg://xl@127.0.0.1:PORT/city?password=secret&sslmode=prefer"])
def test_a_postgresql_that_does_not_answer_is_named_without_its_password(url):
    url = url.replace("PORT", str(services.free_port()))
    with pytest.raises(DatabaseUnusable, match=re.escape(f"database {url.replace('secret', '***')}: cannot be used "
                                                         "(connection failed: ")) as refused:
        Store(url)
    assert "secret" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["not SQLite", "of a later release"])
def test_the_gateway_started_on_a_broken_database_says_so_in_one_line_and_exits_2(tmp_path, how):
    path = tmp_path / "gateway.sqlite"
    broken(path, how)
    was = path.read_bytes()
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{path}\nhttp: {{port: {services.free_port()}}}\n"
                                           f"broker: {{port: {services.free_port()}}}\n")
    run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert re.fullmatch(f"error: database {re.escape(str(path))}: {CASES[how]}", line), line
    assert path.read_bytes() == was


def test_a_new_database_is_begun_with_a_write_ahead_log(tmp_path):
    """The switch comes once the file is known to be the gateway's (above), and still comes."""
    path = tmp_path / "gateway.sqlite"
    a_gateway_database(path)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


READING = {"token --list": ["token", "--list"], "token --revoke": ["token", "--revoke", "tp"],
           "dataset export": ["dataset", "export", "--since", "2026-12-01", "--out", "OUT"],
           "gateway --check": ["gateway", "--check"]}


def read_with(tmp_path, url: str, command: str) -> int:
    (tmp_path / "gateway.yaml").write_text(f"database: {url}\n")
    return cli([*(str(tmp_path / "out") if a == "OUT" else a for a in READING[command]),
                "--config", str(tmp_path / "gateway.yaml")])


@pytest.mark.parametrize("command", list(READING))
@pytest.mark.parametrize("how", ["not SQLite", "another application's", "of another making", "of a later release"])
def test_a_command_that_only_reads_refuses_a_database_that_is_no_gateways_in_one_line_and_leaves_it(
        tmp_path, capsys, how, command):
    """``gateway --check`` on another application's file (or one that is no SQLite database) was a traceback of
    SQLAlchemy's; it says what the gateway's start would, and exits 2 as a config unfit to run does. A city rolling
    back ran the older release's ``gateway --check`` on the newer release's file: it said all was well (exit 0), and
    the start it vouched for was refused."""
    path = tmp_path / "gateway.sqlite"
    broken(path, how)
    was = path.read_bytes()
    assert read_with(tmp_path, f"sqlite:///{path}", command) == 2
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert re.fullmatch(f"error: database {re.escape(str(path))}: {CASES[how]}", line), line
    assert out == "" and path.read_bytes() == was and sorted(p.name for p in tmp_path.iterdir()) == [
        "gateway.sqlite", "gateway.yaml"]


@pytest.mark.parametrize("command", ["token --list", "token --revoke", "dataset export"])
def test_a_command_that_only_reads_refuses_an_empty_database_and_makes_nothing_in_it(
        tmp_path, capsys, database_url, command):  # noqa: F811 (fixture)
    """``token --list`` given an empty file (or a new PostgreSQL database) made the gateway's tables in it, listed no
    tokens and exited 0: an installer took the wrong file for the gateway's, and it was changed. ``gateway --check``
    takes an empty file: the gateway makes its tables there."""
    path = tmp_path / "gateway.sqlite"
    url = f"sqlite:///{path}" if database_url.startswith("sqlite") else database_url
    path.write_bytes(b"")
    assert read_with(tmp_path, url, command) == 2
    assert capsys.readouterr().err == (f"error: database {path if url.startswith('sqlite') else url}: empty, not a "
                                       "gateway's database yet: the gateway makes its tables at its first start; "
                                       "check the config's database (it was left as it is)\n")
    assert path.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["gateway.sqlite", "gateway.yaml"]
    assert Store(url).made  # nothing was made there before
    if command == "token --list":
        path.write_bytes(b"")
        assert read_with(tmp_path, f"sqlite:///{path}", "gateway --check") == 0
        assert path.read_bytes() == b"" and capsys.readouterr().out.endswith(
            "\n  database: empty, no gateway's tables yet: the gateway makes them at its first start (it was left as it "
            "is)\n")


def test_gateway_check_on_a_stopped_gateways_database_leaves_nothing_beside_it(tmp_path):
    """Opened read-only, SQLite made the write-ahead log and its shared memory beside the file and could not remove
    them: ``gateway --check`` run as root before an upgrade left them root's, beside the gateway user's file."""
    path = tmp_path / "gateway.sqlite"
    a_gateway_database(path)
    was = path.read_bytes()
    assert read_with(tmp_path, f"sqlite:///{path}", "gateway --check") == 0
    assert path.read_bytes() == was and sorted(p.name for p in tmp_path.iterdir()) == ["gateway.sqlite", "gateway.yaml"]


@pytest.mark.parametrize("command", [*(c for c in READING if c != "gateway --check"), "token --name"])
def test_a_command_on_a_stopped_gateways_database_leaves_nothing_beside_it(tmp_path, capsys, command):
    """``token --list`` (and ``--revoke``, a new token, ``dataset export``) opened the database and never closed it:
    SQLite's write-ahead log and its shared memory stayed beside the file (run as root before an upgrade, root's,
    beside the gateway user's file)."""
    path = tmp_path / "gateway.sqlite"
    a_gateway_database(path)
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{path}\n")
    args = ["token", "--name", "tp", "--role", "admin"] if command == "token --name" else READING[command]
    assert cli([*(str(tmp_path / "out") if a == "OUT" else a for a in args),
                "--config", str(tmp_path / "gateway.yaml")]) == (2 if command == "token --revoke" else 0)  # no token tp
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == ["gateway.sqlite", "gateway.yaml"]


def an_older_releases_database(path, version: int) -> None:
    """The gateway's database as a release at schema ``version`` left it (3: before tokens expired, 17: two releases
    back), a token in it as that release kept it (no prefix, no expiry); closed, none of it in a write-ahead log."""
    store = Store(f"sqlite:///{path}")
    store.add_token("a" * 64, "legacy", "admin", None, None, 1_700_000_000.0)
    with store.begin() as db:
        undo_migration_22(db)
        undo_migration_21(db)
        undo_migration_20(db)
        undo_migration_19(db)
        undo_migration_18(db)
        if version == 3:
            undo_migrations_after_3(db)
        db.execute(text("DELETE FROM schema_migrations WHERE version > :v"), {"v": version})
    store.close()


def schema_version(path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]


@pytest.mark.parametrize("version", [3, 17])
def test_token_list_reads_an_older_releases_database_as_it_is_and_leaves_it_so(tmp_path, capsys, version):
    """``token --list`` on an older release's file upgraded it to this release's schema: a command that only looks
    wrote, and a city rolling back after looking found its old gateway refusing the file (its tokens made to expire
    90 days from the look, too). It lists the tokens as the file holds them, says the file is an older release's, and
    leaves it as it was."""
    path = tmp_path / "gateway.sqlite"
    an_older_releases_database(path, version)
    was = path.read_bytes()
    assert read_with(tmp_path, f"sqlite:///{path}", "token --list") == 0
    out, err = capsys.readouterr()
    assert out == "legacy\t-\tadmin\t-\tnever expires\n"
    assert err == (f"note: database {path} is at migration {version}, an older release's (this release's: "
                   f"{MIGRATIONS[-1][0]}); read as it is, nothing changed: this release's gateway upgrades it at its "
                   "start\n")
    assert path.read_bytes() == was and schema_version(path) == version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.sqlite", "gateway.yaml"]


def test_dataset_export_refuses_an_older_releases_database_and_leaves_it_as_it_is(tmp_path, capsys):
    """``dataset export`` upgraded an older release's file as ``token --list`` did; it reads this release's tables
    only, so it refuses the file, saying what to do."""
    path = tmp_path / "gateway.sqlite"
    an_older_releases_database(path, 17)
    was = path.read_bytes()
    assert read_with(tmp_path, f"sqlite:///{path}", "dataset export") == 2
    assert capsys.readouterr().err == (
        f"error: database {path} is at migration 17, an older release's (this release's: {MIGRATIONS[-1][0]}): "
        "dataset export reads this release's; start this release's gateway on it once (it upgrades the file), or "
        "export with the release that made it; it was left as it is\n")
    assert path.read_bytes() == was and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["token --revoke", "token --name"])
def test_a_token_command_that_writes_upgrades_an_older_releases_database_and_says_so(tmp_path, capsys, command):
    """A token made or revoked changes the file, so it is brought up to this release's schema first, as the gateway's
    start would: said on stderr (it was silent), for a city that may roll back (its old gateway refuses the file)."""
    path = tmp_path / "gateway.sqlite"
    an_older_releases_database(path, 3)
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{path}\n")
    args = ["token", "--revoke", "legacy"] if command == "token --revoke" else ["token", "--name", "tp", "--role",
                                                                                "admin"]
    assert cli([*args, "--config", str(tmp_path / "gateway.yaml")]) == 0
    err = capsys.readouterr().err
    assert err == (f"note: upgraded database {path} from migration 3 to {MIGRATIONS[-1][0]} before writing (a gateway "
                   "of an older release refuses it now)\n")
    assert schema_version(path) == MIGRATIONS[-1][0]
    assert cli([*args, "--config", str(tmp_path / "gateway.yaml")]) == (2 if command == "token --revoke" else 0)
    assert "upgraded" not in capsys.readouterr().err  # once


def test_a_new_token_on_a_database_not_there_makes_it_and_says_so_once(
        tmp_path, capsys, database_url):  # noqa: F811 (fixture)
    """A new token on a config whose SQLite path was mistyped (or before the gateway's first start) made a new, empty
    database without a word and put the token in it: the gateway, reading its own file, never took the token. A
    first token before the first start is an installer's right, so it is made, and said (a new PostgreSQL database,
    no gateway's tables in it yet, alike)."""
    (tmp_path / "gateway.yaml").write_text(f"database: {database_url}\n")
    new = ["token", "--name", "tp", "--role", "admin", "--config", str(tmp_path / "gateway.yaml")]
    assert cli(new) == 0
    out, err = capsys.readouterr()
    assert out.startswith("xl_")
    assert err == (f"note: no database was at {tmp_path / 'gw.sqlite'}: made a new one for this token; a gateway "
                   "reading another file will not know it\n" if database_url.startswith("sqlite") else
                   f"note: database {database_url} held no gateway's tables: made them for this token; a gateway "
                   "reading another database will not know it\n")
    assert cli(new) == 0 and capsys.readouterr().err == ""  # once


def test_a_new_token_in_an_empty_file_makes_the_gateways_tables_and_says_so(tmp_path, capsys):
    path = tmp_path / "gateway.sqlite"
    path.write_bytes(b"")
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{path}\n")
    assert cli(["token", "--name", "tp", "--role", "admin", "--config", str(tmp_path / "gateway.yaml")]) == 0
    assert capsys.readouterr().err == (f"note: database {path} held no gateway's tables: made them for this token; a "
                                       "gateway reading another database will not know it\n")
    assert schema_version(path) == MIGRATIONS[-1][0]


def cases_made(url: str) -> float:
    """Four cases made by the gateway's own ingest and actions in the database at ``url``: case 1 closed (fed back
    and closed), cases 2 and 3 dispatched on 2026-01-01 (overdue since), case 4 made now (its incident seen on
    2026-01-01: for review); one evidence picture. When case 4 was created."""
    from gateway.actions import act
    from gateway.config import TABLES_DIR, load_tables
    from gateway.ingest import Ingest
    from gateway.workflow import Action, Role
    from xueliang import wire

    from .test_gateway import JPEG, NOW, TOPIC, payload

    tables, now = load_tables(TABLES_DIR / "demo.yaml"), time.time()
    with Store(url) as store:
        ingest = Ingest(store, tables, clock=lambda: NOW)
        assert ingest.handle(wire.evidence_topic("box-1", "gate", "i-0"), JPEG) == "evidence"
        for i in range(3):
            assert ingest.handle(TOPIC, payload(incident_id=f"i-{i}", location={"lat": 39.0 + i * 0.01,
                                                                                "lon": 117.0})) == "case_created"
        for action, role in ((Action.ACKNOWLEDGE, Role.DEPARTMENT), (Action.FEEDBACK, Role.DEPARTMENT),
                             (Action.CLOSE, Role.ADMIN)):
            act(store, 1, action, role, "tp", NOW + 600, tables, lambda case: True, "done")
        assert Ingest(store, tables, clock=lambda: now).handle(TOPIC, payload(
            incident_id="i-3", location={"lat": 39.5, "lon": 117.0})) == "case_created"
        (case,) = store.list_cases(limit=1)
        assert (case["id"], case["state"]) == (4, "pending_review")  # open, on no clock
        return case["created_at"]


def test_gateway_check_says_what_the_database_holds_and_changes_nothing(
        tmp_path, capsys, database_url):  # noqa: F811 (fixture)
    """``gateway --check`` named the database "(not opened)": an operator checking a restored backup or a new install
    could not see what the gateway would serve. It says the migration, the cases (open, overdue), the last one and
    when, and the evidence pictures, read with nothing changed (an SQLite file's bytes and time as they were; a
    PostgreSQL database read in read-only transactions, its password not said)."""
    from xueliang.wire import city_iso

    last = cases_made(database_url)
    path = tmp_path / "gw.sqlite"
    url = database_url if database_url.startswith("sqlite") else database_url.replace("postgres@", "postgres:S3cr3t@")
    was = (path.read_bytes(), path.stat().st_mtime_ns) if url.startswith("sqlite") else None
    assert read_with(tmp_path, url, "gateway --check") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (f"  database: migration {MIGRATIONS[-1][0]} (this release's); 4 cases, 3 open, 2 "
                                    f"of them overdue; the last, case 4, created {city_iso(last)}; 1 evidence picture")
    assert "S3cr3t" not in out and (url.startswith("sqlite") or "postgres:***@" in out)
    if was:
        assert (path.read_bytes(), path.stat().st_mtime_ns) == was
        assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.yaml", "gw.sqlite"]


def test_gateway_check_says_an_older_releases_database_is_upgraded_at_the_start_and_leaves_it_older(tmp_path, capsys):
    path = tmp_path / "gw.sqlite"
    cases_made(f"sqlite:///{path}")
    an_older_releases_database(path, 3)  # no re-check deadline yet: a case in feedback is overdue by none
    was = (path.read_bytes(), path.stat().st_mtime_ns)
    assert read_with(tmp_path, f"sqlite:///{path}", "gateway --check") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        f"  database: migration 3, an older release's: the gateway upgrades it to {MIGRATIONS[-1][0]} at its start; 4 "
        "cases, 3 open, 2 of them overdue; the last, case 4, created ")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == was and schema_version(path) == 3


def test_a_store_closed_with_a_connection_still_out_leaves_every_commit_in_the_file_alone(tmp_path):
    """A stopping gateway closes its store while a request it did not wait for may still hold a connection: that one
    stays open, and with it the write-ahead log beside the file, which held the last commits: the file copied alone
    (a backup, a move) lacked them. The log is folded into the file first."""
    path = tmp_path / "gateway.sqlite"
    store = Store(f"sqlite:///{path}")
    store.dead_letter("xl/v1/box-1/incident/gate", "the last commit", b"{}", time.time())
    with store.engine.connect():  # still out
        store.close()
        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "gateway.sqlite").write_bytes(path.read_bytes())
    with contextlib.closing(sqlite3.connect(tmp_path / "copy" / "gateway.sqlite")) as copy:
        assert copy.execute("SELECT reason FROM dead_letters").fetchall() == [("the last commit",)]


def test_a_closed_store_refuses_any_further_use_and_opens_nothing(tmp_path, database_url):
    """A request a stopping gateway did not wait for used the store after its close: SQLAlchemy opened a new
    connection (SQLite's write-ahead log and shared memory beside the stopped gateway's file again; a connection from
    PostgreSQL's disposed pool) and its write came after the checkpoint. A closed store refuses it: the request answers
    503, nothing opened, and a transaction begun before the close commits nothing."""
    store = Store(database_url)
    token = new_token(store, "judge", "admin")
    client = TestClient(create_app(store, load_tables(TABLES_DIR / "demo.yaml")))
    with pytest.raises(StoreClosed), store.begin() as db:  # a request's, begun before the close
        db.execute(text("SELECT count(*) FROM dead_letters"))
        store.close()
        storage.dead_letter(db, "xl/v1/box-1/incident/gate", "after the close", b"{}", time.time())
    for path in ("/cases", "/ui/cases"):
        answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 503 and "the gateway is stopping" in answer.text, path
    if database_url.startswith("sqlite"):
        assert sorted(p.name for p in tmp_path.glob("gw.sqlite*")) == ["gw.sqlite"]
    else:
        others = create_engine(database_url)
        with others.connect() as db:
            assert db.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid()")).scalar() == 0
        others.dispose()
    with Store(database_url) as again:
        assert again.count_dead_letters() == 0
