"""The README, the only manual a city's IT person and an installer read, against the code it describes: the Layout
names every module, the command table's flags are the parser's, and the help says what the README says."""

import re

from xueliang.cli import main

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


def help_of(capsys, *command: str) -> str:
    try:
        main([*command, "--help"])
    except SystemExit:
        pass
    return " ".join(capsys.readouterr().out.split())


def test_the_command_tables_flags_are_the_parsers(capsys):
    """Each row's ``--flag`` is one its command takes (a flag renamed in the code, the README still showing it)."""
    for row in readme_section("Command line").splitlines():
        if found := re.match(r"\| `xueliang (dataset export|[\w-]+)", row):
            command = found.group(1).split()
            flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", row.split("|")[1]))
            taken = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_of(capsys, *command)))
            assert flags <= taken, f"xueliang {' '.join(command)}: {sorted(flags - taken)} not in its --help"


def test_gateway_check_help_says_the_database_is_read(capsys):
    """As the README says it: --check reads the database, never changes it (its last line says what it holds); the
    help said the database was not touched."""
    said = help_of(capsys, "gateway")
    assert "the database is read, never changed" in said and "database and port are not touched" not in said
