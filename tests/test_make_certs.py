"""deploy/make_certs.sh: a CA and a broker certificate, made once, whole, for the broker's name or address."""

import contextlib
import grp
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from xueliang.services import DEPLOY, free_port

from .test_outbox_full import fill, mounted_tmpfs

FILES = ["ca.crt", "ca.key", "server.crt", "server.key"]


def make_certs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DEPLOY / "make_certs.sh"), *args], capture_output=True, text=True, timeout=60)


def verifies(certs, *how: str) -> bool:
    return subprocess.run(["openssl", "verify", *how, "-CAfile", str(certs / "ca.crt"), str(certs / "server.crt")],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_folder_that_holds_a_ca_is_refused_and_the_ca_kept(tmp_path):
    """Run again on the same folder, it made a new CA over the old: no box trusting the old one trusted the broker."""
    certs = tmp_path / "certs 证书"
    assert make_certs(str(certs)).returncode == 0
    before = {name: (certs / name).read_bytes() for name in FILES}
    again = make_certs(str(certs))
    assert again.returncode == 2 and f"error: {certs}: holds the CA and the broker's certificate: nothing to make" \
        in again.stderr, again.stderr
    assert {name: (certs / name).read_bytes() for name in FILES} == before
    assert sorted(p.name for p in certs.iterdir()) == FILES
    assert make_certs().returncode == 2  # no folder: its usage, not "$1: unbound variable"


@pytest.mark.slow
def test_the_brokers_certificate_is_issued_again_by_the_ca_kept_never_writing_over_a_key(tmp_path):
    """A folder holding any of the four files was refused: the broker's certificate for another address needed a new
    folder, and a new CA that no box trusted."""
    certs = tmp_path / "certs 证书"
    assert make_certs(str(certs)).returncode == 0
    kept = {name: (certs / name).read_bytes() for name in ["ca.crt", "ca.key", "server.key"]}
    first = (certs / "ca.crt").read_bytes()
    (certs / "server.crt").unlink()
    again = make_certs(str(certs), "10.0.0.10")
    assert again.returncode == 0 and again.stdout == f"{certs}: made server.crt for 10.0.0.10\n", again.stderr
    assert {name: (certs / name).read_bytes() for name in kept} == kept  # the broker's key too
    assert verifies(certs, "-verify_ip", "10.0.0.10") and sorted(p.name for p in certs.iterdir()) == FILES
    for name in ["server.crt", "server.key"]:
        (certs / name).unlink()
    assert make_certs(str(certs)).returncode == 0 and (certs / "server.key").read_bytes() != kept["server.key"]
    assert (certs / "ca.crt").read_bytes() == first and verifies(certs, "-verify_hostname", "localhost")


@pytest.mark.parametrize("held, error", [
    (["ca.crt"], "holds ca.crt without its pair"),  # the CA's key kept apart: nothing can be signed here
    (["server.key"], "holds the broker's files without the CA that signed them: name a new folder"),
    (["server.crt", "server.key"], "holds the broker's files without the CA that signed them"),
])
def test_a_folder_whose_files_no_ca_here_can_sign_for_is_refused_untouched(tmp_path, held, error):
    for name in held:
        (tmp_path / name).write_text(name)
    run = make_certs(str(tmp_path))
    assert run.returncode == 2 and f"error: {tmp_path}: {error}" in run.stderr, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == held and all((tmp_path / n).read_text() == n for n in held)


@pytest.mark.slow
@pytest.mark.slow
def test_a_ca_key_that_is_not_its_certificates_signs_nothing_and_is_kept(tmp_path):
    """Its broker certificate would verify against no CA the boxes trust; and the key stays as it was."""
    certs = tmp_path / "certs"
    assert make_certs(str(certs)).returncode == 0
    for name in ["server.crt", "server.key", "ca.key"]:
        (certs / name).unlink()
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", str(certs / "ca.key")], check=True,
                   capture_output=True)
    other = (certs / "ca.key").read_bytes()
    run = make_certs(str(certs))
    assert run.returncode == 2 and "key values mismatch" in run.stderr, run.stderr
    assert sorted(p.name for p in certs.iterdir()) == ["ca.crt", "ca.key"] and (certs / "ca.key").read_bytes() == other


@pytest.mark.slow
@pytest.mark.parametrize("host, check", [("10.0.0.10", "-verify_ip"), ("broker.example", "-verify_hostname")])
def test_the_certificate_names_the_brokers_address_as_an_address_and_its_name_as_a_name(tmp_path, host, check):
    """An address was written as a DNS name (DNS:10.0.0.10), which no TLS client connecting to the address takes."""
    assert make_certs(str(tmp_path / "certs"), host).returncode == 0
    assert verifies(tmp_path / "certs", check, host) and verifies(tmp_path / "certs", "-verify_ip", "127.0.0.1")
    assert make_certs(str(tmp_path / "bad"), "a,DNS:evil.example").returncode == 2  # no names slipped in


@pytest.mark.slow
def test_on_a_full_disk_it_says_so_and_leaves_no_empty_certificate(tmp_path):
    """It left four empty files (openssl's errors thrown away), which the broker read as its certificate."""
    with contextlib.contextmanager(mounted_tmpfs)(tmp_path, "64k") as disk:
        fill(disk)
        run = make_certs(str(disk / "certs"))
        assert run.returncode == 2 and f"error: {disk}/certs" in run.stderr, run.stderr
        assert list((disk / "certs").iterdir()) == []
        (disk / "filler").unlink()
        assert make_certs(str(disk / "certs")).returncode == 0 and verifies(disk / "certs")


@pytest.mark.slow
def test_the_brokers_key_is_read_by_mosquitto_as_it_runs_once_it_dropped_root(tmp_path):
    """Mosquitto 2.0, started as root as Debian's unit does, reads its certificates as the ``mosquitto`` user: the
    key made 0600 root's stopped the deploy broker at its start ("Unable to load server key file ... Permission
    denied"), an outsider administrator's first step as README says it. The tests' brokers run as root (``user
    root``) and never met it."""
    if os.geteuid() != 0 or subprocess.run(["getent", "passwd", "mosquitto"], capture_output=True).returncode:
        pytest.skip("needs root and Debian's mosquitto user")
    folder = Path(tempfile.mkdtemp(prefix="xl-certs-", dir="/tmp"))  # pytest's folders are root's alone
    try:
        folder.chmod(0o755)
        assert make_certs(str(folder / "certs")).returncode == 0
        key = (folder / "certs" / "server.key").stat()
        assert (grp.getgrgid(key.st_gid).gr_name, stat.S_IMODE(key.st_mode)) == ("mosquitto", 0o640)
        port = free_port()
        (folder / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\ncafile {folder}/certs/ca.crt\ncertfile {folder}/certs/server.crt\n"
            f"keyfile {folder}/certs/server.key\nallow_anonymous true\n")
        broker = subprocess.Popen(["mosquitto", "-c", str(folder / "mosquitto.conf")], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            for _ in range(50):  # until it listens, or it stopped
                served = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile",
                                         str(folder / "certs" / "ca.crt"), "-t", "t", "-m", "m"], capture_output=True,
                                        text=True, timeout=20)
                if served.returncode == 0 or broker.poll() is not None:
                    break
                time.sleep(0.2)
        finally:
            broker.terminate()
            said = broker.communicate(timeout=10)[0]
        assert served.returncode == 0, said
    finally:
        shutil.rmtree(folder)
