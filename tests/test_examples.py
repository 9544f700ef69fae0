"""Every config the repository shows a reader passes ``--check`` as written: the README's edge and gateway examples
(what an installer copies first) and the configs ``xueliang demo`` writes. A field renamed or a default bounded
after the README was written fails here, not on a street office's box."""

import re
import subprocess

import pytest

from xueliang.cli import main
from xueliang.demo import fixture_cameras, write_configs

from .conftest import REPO


def readme_yaml() -> dict[str, str]:
    """The README's YAML examples by the command that checks them: an edge config names its ``box``, a gateway's its
    ``database``."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    found = {}
    for block in blocks:
        kind = ("edge" if re.search(r"^box:", block, re.M)
                else "gateway" if re.search(r"^database:", block, re.M) else None)
        assert kind and kind not in found, f"a README YAML example this test does not know how to check:\n{block}"
        found[kind] = block
    assert set(found) == {"edge", "gateway"}, found.keys()
    return found


def test_the_readme_edge_example_passes_check(tmp_path, capsys):
    (tmp_path / "edge.yaml").write_text(readme_yaml()["edge"])
    assert main(["edge", "--config", str(tmp_path / "edge.yaml"), "--check"]) == 0, capsys.readouterr().err
    assert "camera campus-gate" in capsys.readouterr().out


def test_the_readme_gateway_example_passes_check(tmp_path, monkeypatch, capsys):
    """As an installer runs it: the config beside the repository's ``gateway/`` (its ``tables`` is relative to the
    config's folder), its broker's ``ca.crt`` in the folder the command runs in."""
    (tmp_path / "gateway").symlink_to(REPO / "gateway")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=city CA", "-keyout", str(tmp_path / "ca.key"), "-out",
                    str(tmp_path / "ca.crt")], check=True, capture_output=True, timeout=60)
    (tmp_path / "gateway.yaml").write_text(readme_yaml()["gateway"])
    monkeypatch.chdir(tmp_path)
    assert main(["gateway", "--config", "gateway.yaml", "--check"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "broker 10.0.0.10:8883 as gateway-1" in out
    assert out.endswith("\n  database: none at data/gateway/gateway.sqlite yet: the gateway makes it at its first start "
                        "(nothing was made)\n")
    assert not (tmp_path / "data").exists()  # the check made no database


@pytest.mark.parametrize("which", ["edge", "gateway"])
def test_the_demos_configs_pass_check(tmp_path, which, capsys):
    edge, gateway = write_configs(tmp_path, 1883, 8080, fixture_cameras())
    assert main([which, "--config", str(edge if which == "edge" else gateway), "--check"]) == 0, capsys.readouterr().err
