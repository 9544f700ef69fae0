"""deploy/make_certs.sh: a CA and a broker certificate, made once, whole, for the broker's name or address."""

import contextlib
import subprocess

import pytest

from xueliang.services import DEPLOY

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
    assert again.returncode == 2 and f"error: {certs}/ca.key exists: name a new folder" in again.stderr, again.stderr
    assert {name: (certs / name).read_bytes() for name in FILES} == before
    assert sorted(p.name for p in certs.iterdir()) == FILES
    assert make_certs().returncode == 2  # no folder: its usage, not "$1: unbound variable"


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
