"""The README, the only manual a city's IT person and an installer read, against the code it describes: the Layout
names every module, and the command table's flags are the parser's."""

import re

from .conftest import REPO


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_layout_names_every_module():
    """A module split off (characters from gateway.config, tally from ingest) was left out of the Layout, and the
    reader looking for the log's escaping or the dead letters' minute found no file named."""
    layout = readme_section("Layout")
    named = set(re.findall(r"[a-z_0-9]+", layout))
    for package in ("edge", "gateway", "xueliang"):
        modules = {p.stem for p in (REPO / package).glob("*.py")} - {"__init__", "__main__"}
        assert not modules - named, f"{package}/ modules the README's Layout does not name: {sorted(modules - named)}"
