"""``xueliang gateway --backup FILE``: a copy of the gateway's SQLite database made while it writes cases holds every
case committed before the backup began, passes ``gateway --check``, and a backup that cannot be written (a full disk,
a read-only folder) leaves nothing under FILE or beside it. ``cp`` of a running gateway's file copied a database whose
last writes were still in its write-ahead log, and nothing said how else to do it."""

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from gateway.config import TABLES_DIR, load_tables
from gateway.ingest import Ingest
from gateway.storage import Store
from xueliang import services, wire
from xueliang.cli import main as cli
from xueliang.mqtt import make_client

from .conftest import wait_until
from .test_gateway import JPEG, NOW, TOPIC, payload
from .test_workflow import database_url  # noqa: F401 (a fixture)


def backup(tmp_path, target, database=None) -> int:
    (tmp_path / "gateway.yaml").write_text(f"database: {database or f'sqlite:///{tmp_path}/gateway.sqlite'}\n")
    return cli(["gateway", "--config", str(tmp_path / "gateway.yaml"), "--backup", str(target)])


def incident(i: int) -> tuple[str, bytes]:
    return TOPIC, payload(incident_id=f"i-{i}", location={"lat": 39.0 + i * 0.01, "lon": 117.0})


def cases_in(path) -> set[str]:
    """The incidents that opened a case in the SQLite file at ``path``, read as a backup is (a gateway writing it)."""
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        return {i for (i,) in db.execute("SELECT incident_id FROM case_incidents WHERE how = 'opened'")}


def checked(tmp_path, copy) -> None:
    """The copy passes ``gateway --check`` (read, never changed, nothing left beside it) and is an SQLite file alone."""
    (tmp_path / "restored.yaml").write_text(f"database: sqlite:///{copy}\n")
    was = copy.read_bytes()
    assert cli(["gateway", "--config", str(tmp_path / "restored.yaml"), "--check"]) == 0
    assert copy.read_bytes() == was
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]
    with contextlib.closing(sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_backup_of_a_gateway_writing_cases_holds_every_case_committed_before_it_and_passes_check(tmp_path, capsys):
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: NOW)
    assert ingest.handle(wire.evidence_topic("box-1", "gate", "i-0"), JPEG) == "evidence"
    committed, stop = [], threading.Event()

    def writing():
        for i in range(100_000):
            if stop.wait(0.002):  # a busy gateway's pace, leaving this process's other thread (the backup) its turns
                return
            assert ingest.handle(*incident(i)) == "case_created"
            committed.append(f"i-{i}")

    writer = threading.Thread(target=writing)
    writer.start()
    try:
        wait_until(lambda: len(committed) >= 10, 20, message="cases written")
        before = set(committed)
        (tmp_path / "backups").mkdir()
        assert backup(tmp_path, tmp_path / "backups" / "gateway-1.sqlite") == 0
        during = len(committed)
    finally:
        stop.set()
        writer.join()
    assert during > len(before)  # the gateway wrote on: a backup holds none of its writes back
    copy = tmp_path / "backups" / "gateway-1.sqlite"
    held = cases_in(copy)
    assert before <= held <= set(committed)
    out, err = capsys.readouterr()
    assert out.startswith(f"backed up database {tmp_path}/gateway.sqlite to {copy} (") and "checked): " in out
    assert f": {len(held):,} case(s), 1 evidence picture(s) and photo(s) (" in out and "nothing else to copy" in out
    checked(tmp_path, copy)
    store.close()


@pytest.mark.slow
def test_a_backup_of_a_running_gateway_process_fed_by_a_broker_holds_what_it_committed_before(tmp_path, broker):
    """The gateway as a city runs it, a box sending it incidents through Mosquitto all along the backup."""
    database = tmp_path / "gateway.sqlite"
    http_port = services.free_port()
    (tmp_path / "gateway.yaml").write_text(f"broker: {{host: 127.0.0.1, port: {broker.port}}}\n"
                                           f"database: sqlite:///{database}\nhttp: {{port: {http_port}}}\n")
    gateway = services.xueliang(["gateway", "--config", str(tmp_path / "gateway.yaml")], tmp_path / "gateway.log")
    box, stop, sent = make_client("box-1"), threading.Event(), []
    try:
        services.wait_port(http_port, gateway, "gateway", timeout=30)
        box.connect("127.0.0.1", broker.port)
        box.loop_start()

        def sending():
            for i in range(100_000):
                if stop.wait(0.01):
                    return
                now = time.time()
                box.publish(TOPIC, payload(incident_id=f"i-{i}", location={"lat": 39.0 + i * 0.01, "lon": 117.0},
                                           started_at=wire.iso(now - 30), observed_at=wire.iso(now)), qos=1)
                sent.append(i)

        sender = threading.Thread(target=sending)
        sender.start()
        try:
            wait_until(lambda: len(cases_in(database)) >= 30, 30, message="cases committed by the gateway")
            before = cases_in(database)
            (tmp_path / "backup").mkdir()
            run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml"),
                                  "--backup", str(tmp_path / "backup" / "b.sqlite")], capture_output=True, text=True,
                                 timeout=60)
            after = cases_in(database)
        finally:
            stop.set()
            sender.join()
        assert run.returncode == 0, run.stderr[-2000:]
        assert after > before  # still writing: cases came in during the backup
        held = cases_in(tmp_path / "backup" / "b.sqlite")
        assert before <= held <= after
        assert f": {len(held):,} case(s), " in run.stdout
    finally:
        box.loop_stop()
        gateway.terminate()
        gateway.wait(30)
    checked(tmp_path, tmp_path / "backup" / "b.sqlite")


def a_gateway_database(tmp_path, pictures: int = 0) -> bytes:
    """A closed gateway database of ``pictures`` evidence pictures of 100 kB each; its bytes."""
    with Store(f"sqlite:///{tmp_path}/gateway.sqlite") as store:
        for i in range(pictures):
            store.add_evidence(f"{i:064x}", os.urandom(100_000), f"i-{i}", "box-1", "gate", NOW)
    return (tmp_path / "gateway.sqlite").read_bytes()


@pytest.mark.parametrize("how, says", [
    ("there already", "--backup {file}: is there already (it was left as it is): name a new file, as each day's own"),
    ("the database", "--backup {file}: is the database itself ({database}): name a file of its own"),
    ("a link to the database", "--backup {file}: is the database itself ({database}): name a file of its own"),
    ("a folder", "--backup {file}: is a folder: name the file to make in it ({file}/gateway-YYYY-MM-DD.sqlite)"),
    ("in no folder", "--backup {file}: no folder {file.parent}: make it, or name a file in a folder that is there"),
    ("of no database", "no database at {database}: the gateway makes it at its first start; check the config's "
                       "database (nothing was made)"),
])
def test_a_backup_refused_says_why_in_one_line_and_leaves_everything_as_it_was(tmp_path, capsys, how, says):
    database, file = tmp_path / "gateway.sqlite", tmp_path / "copy.sqlite"
    was = a_gateway_database(tmp_path) if how != "of no database" else None
    if how == "there already":
        file.write_bytes(b"yesterday's")
    elif how == "the database":
        file = database
    elif how == "a link to the database":
        file.symlink_to(database)
    elif how == "a folder":
        file.mkdir()
    elif how == "in no folder":
        file = tmp_path / "unmounted" / "copy.sqlite"
    listed = sorted([*tmp_path.rglob("*"), tmp_path / "gateway.yaml"])
    assert backup(tmp_path, file) == 2
    assert capsys.readouterr() == ("", f"error: {says.format(file=file, database=database)}\n")
    assert sorted(tmp_path.rglob("*")) == listed and (was is None or database.read_bytes() == was)
    if how == "there already":
        assert file.read_bytes() == b"yesterday's"


def test_a_postgresql_database_is_backed_up_with_pg_dump_which_is_named_without_its_password(tmp_path, capsys):
    assert backup(tmp_path, tmp_path / "copy.dump", "postgresql+psycopg://xl:s3cret@127.0.0.1:9/city") == 2
    assert capsys.readouterr().err == (
        "error: database postgresql+psycopg://xl:***@127.0.0.1:9/city: --backup copies an SQLite file; back "
        "PostgreSQL up with its own tool: pg_dump --format=custom --file FILE 'postgresql://xl@127.0.0.1:9/city' (the "
        "password from PGPASSWORD or ~/.pgpass; restore with pg_restore)\n")
    assert not (tmp_path / "copy.dump").exists()


@pytest.mark.parametrize("how, says", [
    ("on a full disk", "cannot be written (database or disk is full); nothing was left there"),
    ("read-only", "cannot be written (Read-only file system); nothing was made"),
])
def test_a_backup_that_cannot_be_written_leaves_nothing_under_its_name_or_beside_it(tmp_path, capsys, how, says):
    from .test_outbox_full import mounted_tmpfs

    was = a_gateway_database(tmp_path, pictures=5)  # 500 kB of pictures: a copy that does not fit in 256 kB
    with contextlib.contextmanager(mounted_tmpfs)(tmp_path, "256k", "disk", ",ro" if how == "read-only" else "") as disk:
        assert backup(tmp_path, disk / "copy.sqlite") == 2
        assert capsys.readouterr() == ("", f"error: --backup {disk}/copy.sqlite: {says}\n")
        assert list(disk.iterdir()) == []
    assert (tmp_path / "gateway.sqlite").read_bytes() == was


def test_a_damaged_backup_restored_is_refused_by_check_which_the_gateway_would_serve(tmp_path, capsys):
    """A backup copied back with one bit of a page flipped (a disk, a copy between machines): the gateway starts on it
    and serves it, and only a department's list (500) and each batch of ingest (malformed) fail. ``--check`` on the
    restored file said it was fit to run (exit 0); it runs SQLite's quick check (reading every page), as the backup checked its copy."""
    a_gateway_database(tmp_path)
    assert backup(tmp_path, tmp_path / "copy.sqlite") == 0
    data = bytearray((tmp_path / "copy.sqlite").read_bytes())
    size = int.from_bytes(data[16:18], "big")
    root = {name: page for name, page in sqlite3.connect(tmp_path / "copy.sqlite").execute(
        "SELECT name, rootpage FROM sqlite_master")}["ix_cases_department"]
    data[(root - 1) * size + 3] ^= 0x04  # its cell count: a page SQLite cannot read
    restored = tmp_path / "restored" / "gateway.sqlite"
    restored.parent.mkdir()
    restored.write_bytes(bytes(data))
    (tmp_path / "restored.yaml").write_text(f"database: sqlite:///{restored}\n")
    capsys.readouterr()
    assert cli(["gateway", "--config", str(tmp_path / "restored.yaml"), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: database {restored}: damaged (SQLite's quick check: ") and "Page " in err, err
    assert err.count("\n") == 1, err  # one line, as each error (SQLite's report has a line of its own for its database)
    assert err.rstrip().endswith("restore it from a backup, or move it away for a new one to begin; it was left as it "
                                 "is"), err
    assert restored.read_bytes() == data and sorted(p.name for p in restored.parent.iterdir()) == [restored.name]


def a_restored_backup(tmp_path, cases_before: int = 3, cases_after: int = 3):
    """A gateway's database backed up by ``--backup`` after ``cases_before`` cases, the gateway going on to
    ``cases_before + cases_after`` (then lost), and the backup copied back as the restore says: the restored file and
    the time its backup was made."""
    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: NOW)
    for i in range(cases_before):
        assert ingest.handle(*incident(i)) == "case_created"
    before = time.time()
    assert backup(tmp_path, tmp_path / "backup.sqlite") == 0
    for i in range(cases_before, cases_before + cases_after):
        assert ingest.handle(*incident(i)) == "case_created"
    # the lost gateway's numbers went on past the backup's; its own file was not marked
    assert max(c["id"] for c in store.list_cases()) == cases_before + cases_after
    with contextlib.closing(sqlite3.connect(tmp_path / "gateway.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
    store.close()
    restored = tmp_path / "restored" / "gateway.sqlite"
    restored.parent.mkdir()
    restored.write_bytes((tmp_path / "backup.sqlite").read_bytes())
    with contextlib.closing(sqlite3.connect(restored)) as db:
        (mark,) = db.execute("PRAGMA user_version").fetchone()
    made = mark * 60.0  # the backup's time, marked in minutes since 1970
    assert before - 61 <= made <= time.time()
    return restored, made


def test_a_restored_backup_numbers_its_cases_past_any_the_lost_gateway_gave_even_after_a_restart(tmp_path):
    """The drill: a backup held cases 1-21, the lost gateway reached 36, the restored one numbered new incidents 22,
    23, ...: the departments' notices and phone calls about case 22 named another incident. Its first case now takes
    ``first_id`` (a restart before it changes nothing), and the cases after it follow it."""
    from gateway.restore import first_id
    from gateway.numbering import backup_mark

    restored, made = a_restored_backup(tmp_path)
    for _ in range(2):  # started, stopped before its first case, started again
        with Store(f"sqlite:///{restored}") as store, store.begin() as db:
            assert backup_mark(db) == (made, 3)
    later = made + 3600  # an hour after the backup
    store = Store(f"sqlite:///{restored}")
    ingest = Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: later)
    assert ingest.handle(*incident(10)) == "case_created"
    assert ingest.handle(*incident(11)) == "case_created"
    floor = first_id("cases", 3, made, later)
    assert floor == 3 + 100_000 + 60
    assert [c["id"] for c in store.list_cases()][:2] == [floor + 1, floor]
    with store.begin() as db:
        assert backup_mark(db) is None  # cleared with its first case: the next go on from it, the start says nothing
    store.close()
    store = Store(f"sqlite:///{restored}")
    assert Ingest(store, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: later + 86_400).handle(
        *incident(12)) == "case_created"
    assert max(c["id"] for c in store.list_cases()) == floor + 2
    store.close()


def one_of_each(store, i: int, now: float) -> None:
    """A row of each table whose ids a reader outside meets (``numbering.RENUMBERED``): a case an operator judged a
    false alarm (a suppression) and a dead letter."""
    from gateway.verdicts import Verdict, judge
    from gateway.workflow import Role

    tables = load_tables(TABLES_DIR / "demo.yaml")
    assert Ingest(store, tables, clock=lambda: now).handle(*incident(i)) == "case_created"
    judge(store, tables, max(c["id"] for c in store.list_cases()), Verdict.FALSE_ALARM, Role.OPERATOR,
          "operator:centre", now, lambda row: True)
    store.dead_letter(f"xl/v1/box-{i}/incident", "refused", f"message {i}".encode(), now)


def ids_outside(store) -> tuple[set[int], set[int], set[int]]:
    """The ids of the suppressions, the dead letters and the cases."""
    from gateway.verdicts import listed

    return ({s["id"] for s in listed(store, lifted=True)}, {d["id"] for d in store.list_dead_letters(1000)},
            {c["id"] for c in store.list_cases()})


def test_a_restored_backup_gives_no_suppression_or_dead_letter_the_id_of_one_the_lost_gateway_gave(tmp_path):
    """Ids a reader outside meets besides a case's: a suppression's (the box's list and its log, ``POST
    /suppressions/{id}/lift``, the case page's 屏蔽 #N) and a dead letter's (``GET /dead-letters`` and its pages). The
    lost gateway's after the backup were given again by the restored one, to other rows (suppression 3: another
    region of another camera). Numbered past the lost gateway's as its cases are, whichever row comes first (here a
    dead letter, before any case), each table from its own last."""
    from gateway.restore import first_id

    store = Store(f"sqlite:///{tmp_path}/gateway.sqlite")
    for i in range(2):
        one_of_each(store, i, NOW)
    backed_up = ids_outside(store)
    assert backup(tmp_path, tmp_path / "backup.sqlite") == 0
    for i in range(2, 4):
        one_of_each(store, i, NOW)
    lost = [after - before for after, before in zip(ids_outside(store), backed_up)]
    assert all(len(given) == 2 for given in lost), lost
    store.close()
    restored = tmp_path / "restored" / "gateway.sqlite"
    restored.parent.mkdir()
    restored.write_bytes((tmp_path / "backup.sqlite").read_bytes())
    with contextlib.closing(sqlite3.connect(restored)) as db:
        made = db.execute("PRAGMA user_version").fetchone()[0] * 60.0

    later = made + 3600
    store = Store(f"sqlite:///{restored}")
    store.dead_letter("xl/v1/box-9/incident", "refused", b"the first on the restored file", later)
    for i in range(4, 6):
        one_of_each(store, i, later)
    store.close()
    store = Store(f"sqlite:///{restored}")  # started again: the tables go on from where they are
    one_of_each(store, 6, later + 60)
    new = [after - before for after, before in zip(ids_outside(store), backed_up)]
    store.close()
    for name, given, again in zip(("suppressions", "dead_letters", "cases"), lost, new):
        assert not given & again, (name, sorted(given), sorted(again))
        assert min(again) == first_id(name, max(given) - 2, made, later), (name, sorted(again))
    assert len(new[1]) == 4 and len(new[0]) == len(new[2]) == 3, new


def test_the_start_and_check_on_a_restored_backup_say_its_time_and_last_case_and_a_backup_of_it_keeps_them(
        tmp_path, caplog, capsys):
    """What a restored file lacks is said by ``--check`` (the file unchanged) and at the start; a backup made of it
    before its first case (an operator's copy of what was restored) keeps the earlier time: the numbers the lost
    gateway gave since are the same. A database never backed up says nothing and numbers from 1."""
    import logging

    from gateway.restore import backup_made, first_id
    from gateway.check import start_warnings

    restored, made = a_restored_backup(tmp_path, cases_before=2)
    (tmp_path / "restored.yaml").write_text(f"database: sqlite:///{restored}\n")
    was = restored.read_bytes()
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert cli(["gateway", "--config", str(tmp_path / "restored.yaml"), "--check"]) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith("  database: migration ") and "; 2 cases, 2 open, 2 of them overdue; the last, case 2, " \
        f"created 2026-01-01T08:00:00+08:00; 0 evidence pictures; restored from {backup_made(made)}, nothing " \
        "numbered on it yet" in said, said
    assert f"database {restored}: a backup made at " in caplog.text and "its last case 2: cases after that " \
        "time are not in it" in caplog.text and "new cases are numbered from 10000" in caplog.text, caplog.text
    assert restored.read_bytes() == was
    store = Store(f"sqlite:///{restored}")
    with store.begin() as db:
        (said,) = start_warnings(db, load_tables(TABLES_DIR / "demo.yaml"), restored, made + 120)
    assert said.startswith(f"database {restored}: a backup made at ") and \
        f"new cases are numbered from {first_id('cases', 2, made, made + 120)} on" in said
    assert backup(tmp_path, tmp_path / "again.sqlite", f"sqlite:///{restored}") == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "again.sqlite")) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (int(made // 60),)
    store.close()
    fresh = Store(f"sqlite:///{tmp_path}/new.sqlite")  # a database never backed up: nothing said, numbered from 1
    with fresh.begin() as db:
        assert start_warnings(db, load_tables(TABLES_DIR / "demo.yaml"), "new.sqlite", NOW) == []
    ingest = Ingest(fresh, load_tables(TABLES_DIR / "demo.yaml"), clock=lambda: NOW)
    assert ingest.handle(*incident(0)) == "case_created"
    assert [c["id"] for c in fresh.list_cases()] == [1]
    fresh.close()


def restored_at(tmp_path, database: str, given: str) -> int:
    (tmp_path / "gateway.yaml").write_text(f"database: {database}\n")
    return cli(["gateway", "--config", str(tmp_path / "gateway.yaml"), "--restored-at", given])


@pytest.mark.slow  # 2.5 s: a database on the session's PostgreSQL, pg_dump and pg_restore
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_dump_restored_numbers_past_the_lost_gateway_once_told_its_time(tmp_path, capsys, database_url):
    """pg_restore puts each sequence back where the dump left it, and the restored gateway gave the lost one's numbers
    again to other incidents (case 6 twice), unless someone ran three ``setval`` lines by hand before its start.
    ``gateway --restored-at TIME`` (the dump's header line, pasted) moves cases, suppressions and dead letters on as a
    marked SQLite backup numbers them (``first_id``); run again, no number goes back or jumps again."""
    from gateway.restore import backup_time, first_id

    libpq = database_url.replace("+psycopg", "")
    store = Store(database_url)
    for i in range(5):
        one_of_each(store, i, NOW)
    store.close()
    dump = tmp_path / "gateway.dump"
    subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), libpq], check=True)
    store = Store(database_url)
    for i in range(5, 8):  # the lost gateway's
        one_of_each(store, i, NOW)
    lost = ids_outside(store)
    store.close()
    subprocess.run(["pg_restore", "--clean", "--if-exists", "--dbname", libpq, str(dump)], check=True)
    (header,) = [line for line in subprocess.run(["pg_restore", "-l", str(dump)], check=True, capture_output=True,
                                                 text=True).stdout.splitlines() if "Archive created at" in line]
    made, began = backup_time(header, time.time()), time.time()
    assert restored_at(tmp_path, database_url, header) == 0
    ended = time.time()
    said = capsys.readouterr().out.splitlines()
    assert said[0] == f"database {database_url}: restored from a backup made at " \
        f"{datetime.fromtimestamp(made, wire.CITY_TZ):%Y-%m-%d %H:%M:%S} (Beijing time)", said
    store = Store(database_url)
    one_of_each(store, 8, time.time())
    names = ("suppressions", "dead_letters", "cases")  # as ids_outside gives them
    new = dict(zip(names, (after - before for after, before in zip(ids_outside(store), lost))))
    store.close()
    assert [line.split(":")[0].strip() for line in said[1:]] == ["cases", "suppressions", "dead_letters"], said
    for name, line in zip(("cases", "suppressions", "dead_letters"), said[1:]):
        (id_,) = new[name]
        assert first_id(name, 5, made, began) <= id_ <= first_id(name, 5, made, ended), (name, id_)
        assert line == f"  {name}: its last in the backup 5, numbered from {id_} on (the next was 6)", line

    assert restored_at(tmp_path, database_url, header) == 0  # again: the rows made since are not the backup's
    again = capsys.readouterr().out.splitlines()[1:]
    assert all(": its last in the backup 5, numbered from " in line for line in again), again
    store = Store(database_url)
    one_of_each(store, 9, time.time())
    for name, after in zip(names, ids_outside(store)):
        moved = max(after) - max(new[name])  # on by the minutes since, never back, never past the lost gateway again
        assert 1 <= moved <= 1 + first_id(name, 0, began, time.time()) - first_id(name, 0, began, began), (name, moved)
    store.close()


@pytest.mark.parametrize("database, given, says", [
    ("sqlite:///{tmp}/gateway.sqlite", "2026-12-07 18:40:12", "database {tmp}/gateway.sqlite: an SQLite file: "
     "--restored-at is for a PostgreSQL database pg_restore put back; a copy --backup made is marked with its time, "
     "and numbers past the lost gateway's on its own (nothing was changed)"),
    ("postgresql+psycopg://xl:s3cret@127.0.0.1:9/city", "yesterday", "--restored-at 'yesterday': time 'yesterday' is "
     "not a real time: Invalid isoformat string: 'yesterday'; write the dump's time as its header says it (pg_restore "
     "-l FILE | grep 'Archive created at'), or as 2026-12-07T18:40:12 (Beijing time); nothing was changed"),
    ("postgresql+psycopg://xl:s3cret@127.0.0.1:9/city", "2099-01-01T08:00:00", "--restored-at '2099-01-01T08:00:00': "
     "2099-01-01 08:00:00 (Beijing time) is later than now: a dump is made before it is restored; write its time as "
     "its header says it (pg_restore -l FILE | grep 'Archive created at'); nothing was changed"),
    ("postgresql+psycopg://xl:s3cret@127.0.0.1:9/city", "; Archive created at 2026-12-07 18:40:12 PST", "--restored-at "
     "'; Archive created at 2026-12-07 18:40:12 PST': its zone PST is not known here (UTC and CST, China's, are): "
     "write it with its zone's offset (2026-12-07T18:40:12+08:00 for Beijing); nothing was changed"),
])
def test_restored_at_refused_says_why_and_changes_nothing(tmp_path, capsys, database, given, says):
    database = database.format(tmp=tmp_path)
    assert restored_at(tmp_path, database, given) == 2
    assert capsys.readouterr() == ("", f"error: {says.format(tmp=tmp_path)}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.yaml"]


def test_restored_at_a_postgresql_that_does_not_answer_says_so(tmp_path, capsys):
    assert restored_at(tmp_path, "postgresql+psycopg://xl:s3cret@127.0.0.1:9/city", "2026-12-07 18:40:12 CST") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: database postgresql+psycopg://xl:***@127.0.0.1:9/city: ") and "\n" not in err[:-1]


def test_the_time_of_a_dump_is_read_as_its_header_writes_it_or_as_a_person_does():
    from gateway.restore import backup_time

    now = 1_796_000_000  # 2026-11-30
    beijing = 1_796_000_000 - 10 * 86400
    written = datetime.fromtimestamp(beijing, wire.CITY_TZ).strftime("%Y-%m-%d %H:%M:%S")
    utc = datetime.fromtimestamp(beijing, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    assert {backup_time(t, now) for t in (f";     Archive created at {written} CST", f"{written} CST", written,
                                         written.replace(" ", "T"), f"{written}+08", f"{utc} UTC",
                                         f"; Archive created at {utc} GMT")} == {beijing}
