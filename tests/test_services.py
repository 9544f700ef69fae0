"""xueliang.services: ports for the real servers the demo and the tests start."""

import socket

import pytest

from xueliang import services


def test_free_ports_lie_below_the_ephemeral_range_are_bindable_and_never_repeat():
    """Outgoing connections take their local port from the ephemeral range: a server port drawn there
    can be taken before the server binds it (a gateway failed in CI with "address already in use")."""
    high = services.ephemeral_low()
    ports = [services.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < high for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # nothing holds it


def test_processes_side_by_side_give_ports_from_shares_that_never_meet(monkeypatch):
    """Two test workers each start servers: a port one has just given and not yet bound must never be
    given by the other."""
    shares = []
    for index in (0, 1):
        monkeypatch.setattr(services, "_share", (0, 1))
        services.share_ports(index, 2)
        shares.append({services.free_port() for _ in range(100)})
    assert shares[0] and shares[1] and max(shares[0]) < min(shares[1])
    with pytest.raises(ValueError):
        services.share_ports(2, 2)


def test_the_ephemeral_range_is_read_from_the_kernel_or_defaults(tmp_path):
    (tmp_path / "range").write_text("40000\t60999\n")
    assert services.ephemeral_low(str(tmp_path / "range")) == 40000
    assert services.ephemeral_low(str(tmp_path / "missing")) == 32768
