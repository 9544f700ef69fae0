"""Mistakes an installer makes in the edge config, the gateway config and the city's tables, each refused at load with
a line that names its place (camera, zone, field; the file and key) and says what to write, never a traceback."""

import shutil

import pytest

from edge.config import ConfigError, load_config
from gateway.config import TABLES_DIR, GatewayConfigError, load_gateway_config, load_tables

EDGE = """\
box: office-3
broker: {host: 127.0.0.1, port: 1883}
cameras:
  - id: gate
    url: rtsp://admin:pw@10.0.0.5:554/Streaming/Channels/101
    grid: HQ-DZG-10D-07
    zones:
      - id: kerb
        types: [illegal_parking]
        polygon: [[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]
        dwell_s: 30
"""


@pytest.fixture
def city(tmp_path):
    for name in ("demo.yaml", "demo-grids.csv", "demo-grids.geojson"):
        shutil.copy(TABLES_DIR / name, tmp_path / name)
    (tmp_path / "gateway.yaml").write_text("database: sqlite:///gateway.sqlite\ntables: demo.yaml\n")
    return tmp_path


def edge_refused(tmp_path, text: str) -> str:
    path = tmp_path / "edge.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    return str(refused.value)


def test_the_example_loads(tmp_path, city):
    (tmp_path / "edge.yaml").write_text(EDGE)
    assert load_config(tmp_path / "edge.yaml").cameras[0].zones[0].dwell_s == 30
    assert load_tables(load_gateway_config(city / "gateway.yaml").tables).category("spill") is not None


@pytest.mark.parametrize("old, new, said", [
    # YAML reads an unquoted code or password of digits as a number: "Input should be a valid string" said not why
    ("grid: HQ-DZG-10D-07", "grid: 1007", "camera 'gate' grid: is read by YAML as a number, and this setting is "
     "text: put it in quotes, as written"),
    ("port: 1883}", "port: 1883, username: office-3, password: 123456}", "broker password: is read by YAML as a number"),
    ("port: 1883}", "port: 1883, username: office-3, password: yes}", "broker password: is read by YAML as true or "
     "false (an unquoted yes, no, on, off, true or false), and this setting is text: put it in quotes"),
])
def test_an_edge_config_mistake_is_said_in_its_place(tmp_path, old, new, said):
    assert old in EDGE
    message = edge_refused(tmp_path, EDGE.replace(old, new))
    assert said in message
    assert "123456" not in message  # a password is never shown


@pytest.mark.parametrize("old, new, said", [
    ('code: "200505"', "code: 200505", "category 'illegal_parking' code: is read by YAML as a number, and this setting is text"),
    ("name: 环卫所", "name: 110", "department 'sanitation' name: is read by YAML as a number"),
])
def test_a_tables_mistake_is_said_in_its_place(city, old, new, said):
    tables = city / "demo.yaml"
    assert old in tables.read_text()
    tables.write_text(tables.read_text().replace(old, new))
    with pytest.raises(GatewayConfigError) as refused:
        load_tables(tables)
    assert said in str(refused.value)


@pytest.mark.parametrize("old, new", [
    ("      - id: kerb", "\t- id: kerb"),  # "found character that cannot start any token"
    ("    zones:", "\tzones:"),
])
def test_a_tab_in_a_config_is_said_as_a_tab(tmp_path, old, new):
    message = edge_refused(tmp_path, EDGE.replace(old, new))
    assert "a tab: YAML indents with spaces only; replace the tabs with spaces" in message
    assert f'line {EDGE.splitlines().index(old) + 1}, column 1' in message


def test_a_tab_in_the_tables_is_said_as_a_tab(city):
    tables = city / "demo.yaml"
    tables.write_text(tables.read_text().replace("  - id: sanitation", "\t- id: sanitation"))
    with pytest.raises(GatewayConfigError, match="not valid YAML: a tab: YAML indents with spaces only"):
        load_tables(tables)


def test_a_tls_ca_that_names_a_folder_is_said_to_be_one(tmp_path, city):
    """It was "no such file '/etc/xueliang'", of a folder that is there."""
    text = EDGE.replace("rtsp://admin", "rtsps://admin").replace("    grid:", f"    tls_ca: {tmp_path}\n    grid:", 1)
    assert f"camera 'gate' tls_ca: '{tmp_path}' is a folder; name the CA certificate file in it (the one that signed " \
        "the camera's)" in edge_refused(tmp_path, text)
    config = city / "gateway.yaml"
    config.write_text(config.read_text() + f"broker: {{host: 127.0.0.1, port: 8883, tls_ca: {city}}}\n")
    with pytest.raises(GatewayConfigError, match=f"broker.tls_ca: '{city}' is a folder; name the CA certificate file"):
        load_gateway_config(config)


@pytest.mark.parametrize("http, said", [
    # passed --check, printed as "http 0.0.0.0:8080:8080"; the start said it was no address of this machine
    ("{host: '0.0.0.0:8080'}", "http.host: '0.0.0.0:8080' has a port in it: write the address alone (0.0.0.0) and "
     "port: 8080"),
    ("{host: 'http://0.0.0.0', port: 8080}", "http.host: 'http://0.0.0.0' is a URL: write the address the gateway "
     "listens on alone"),
])
def test_an_http_host_with_its_port_or_scheme_in_it_is_refused(city, http, said):
    config = city / "gateway.yaml"
    config.write_text(config.read_text() + f"http: {http}\n")
    with pytest.raises(GatewayConfigError) as refused:
        load_gateway_config(config)
    assert said in str(refused.value)


def test_a_sqlite_database_under_a_tilde_is_refused(city):
    """``~`` is a shell's: the gateway took it for a folder named ``~`` in the folder it was started in, as the edge's
    data_dir did before it was refused."""
    config = city / "gateway.yaml"
    config.write_text("database: sqlite:///~/xueliang/gateway.sqlite\ntables: demo.yaml\n")
    with pytest.raises(GatewayConfigError, match="database: '~/xueliang/gateway.sqlite': ~ is no home folder here "
                       r"\(the gateway would make a folder named ~ where it is started\); write the whole path, e.g. "
                       "sqlite:////"):
        load_gateway_config(config)


@pytest.mark.parametrize("config, tables, said", [
    # "{city}: is a folder; name the file", and not which file
    ("tables: .\n", None, "{city}: is a folder; name the file (named by tables: in the gateway's config)"),
    ("tables: citty.yaml\n", None, "{city}/citty.yaml: no such file (named by tables: in the gateway's config)"),
    ("tables: demo.yaml\n", ("grids_geojson: demo-grids.geojson", "grids_geojson: ."),
     "{city}: is a folder; name the file (named by grids_geojson: in demo.yaml)"),
    ("tables: demo.yaml\n", ("grids_csv: demo-grids.csv", "grids_csv: grids.csv"),
     "{city}/grids.csv: no such file (named by grids_csv: in demo.yaml)"),
])
def test_a_file_the_config_or_tables_name_that_is_not_there_is_said_with_its_key(city, config, tables, said):
    (city / "gateway.yaml").write_text(f"database: sqlite:///gateway.sqlite\n{config}")
    if tables:
        (city / "demo.yaml").write_text((city / "demo.yaml").read_text().replace(*tables))
    with pytest.raises(GatewayConfigError) as refused:
        load_tables(load_gateway_config(city / "gateway.yaml").tables)
    assert str(refused.value) == said.format(city=city)


POLYGON = "[[0.80, 0.03], [0.97, 0.03], [0.97, 0.22], [0.80, 0.22]]"


@pytest.mark.parametrize("old, new, said", [
    # "Input should be a valid list", of each
    ("    zones:\n", "    zones:\n    # none yet\n", "camera 'gate' zones: is empty: write its items under it"),
    ("types: [illegal_parking]", "types: illegal_parking", "camera 'gate' zone 'kerb' types: is one value, and this "
     "setting is a list: write it in brackets, [illegal_parking]"),
    ("      - id: kerb\n", "        id: kerb\n", "camera 'gate' zones: is a mapping (key: value), and this setting is "
     "a list: begin each item with '- '"),
    # "Input should be a valid tuple", for each of its 8 numbers
    (POLYGON, "[0.80, 0.03, 0.97, 0.03, 0.97, 0.22, 0.80, 0.22]", "1 error(s)\n  camera 'gate' zone 'kerb' polygon: "
     "write each point as [x, y] in a list of them, [[0.80, 0.03], [0.97, 0.03], ...]; got '0.8' and the like"),
    (POLYGON, '["0.80,0.03", "0.97,0.03", "0.97,0.22"]', "camera 'gate' zone 'kerb' polygon: write each point as "
     "[x, y]"),
])
def test_a_list_written_as_something_else_is_said_so(tmp_path, old, new, said):
    assert old in EDGE
    text = EDGE.replace(old, new)
    if "zones:\n    # none yet" in text:
        text = text.split("    # none yet\n")[0] + "    # none yet\n"
    assert said in edge_refused(tmp_path, text)


@pytest.mark.parametrize("text", ["", "# the city's tables\n"])
def test_empty_tables_are_said_to_be_empty(city, text):
    (city / "demo.yaml").write_text(text)
    with pytest.raises(GatewayConfigError, match="demo.yaml: empty \\(or comments only\\): write the city's "
                       "departments and categories at least"):
        load_tables(city / "demo.yaml")


@pytest.mark.parametrize("old, new, said", [
    # "Input should be less than 1": a score written as a percentage
    ("broker:", "detection: {min_score: 40}\nbroker:", "detection min_score: 40 is no score: a score is a fraction "
     "between 0 and 1 (40 % is 0.4)"),
    ("broker:", "detection: {litter_min_score: '35'}\nbroker:", "detection litter_min_score: 35 is no score"),
    # "Input should be greater than 0", "... less than or equal to 65535": the bound in plain words, the value shown
    ("dwell_s: 30", "dwell_s: 0", "camera 'gate' zone 'kerb' dwell_s: is 0; write more than 0"),
    ("port: 1883", "port: 188300", "broker port: is 188300; write 65535 or less"),
])
def test_a_number_past_its_bound_is_said_in_plain_words(tmp_path, old, new, said):
    assert old in EDGE
    assert said in edge_refused(tmp_path, EDGE.replace(old, new, 1))


def test_a_tables_number_past_its_bound_is_said_in_plain_words(city):
    tables = city / "demo.yaml"
    tables.write_text(tables.read_text().replace("service_level: 1h", "service_level: 1h\n    merge_radius_m: -30", 1))
    with pytest.raises(GatewayConfigError, match="merge_radius_m: is -30; write 0 or more"):
        load_tables(tables)


@pytest.mark.parametrize("detection, said", [
    # "model 'ssd' not found": which of the two models was meant?
    ("{model: ssd}", "detection model: model 'ssd' not found under "),
    # a litter model misspelt on a box with no litter zone yet: refused now, not when the first one is drawn
    ("{litter_model: litter}", "detection litter_model: model 'litter' not found under "),
    # globbed: whichever model came first was loaded, and 'car' was said to be no class of model '*'
    ("{model: '*'}", "detection model: model '*' not found under "),
    ("{model: 'litter_*'}", "detection model: model 'litter_*' not found under "),
])
def test_a_model_that_is_none_is_said_with_its_field(tmp_path, detection, said):
    from edge.detector import load_detectors

    (tmp_path / "edge.yaml").write_text(EDGE.replace("broker:", f"detection: {detection}\nbroker:", 1))
    with pytest.raises(ConfigError) as refused:
        load_detectors(load_config(tmp_path / "edge.yaml"))
    assert said in str(refused.value)
    assert "known models: ['litter_yolov8n_320', 'ssd_mobilenet_v2_coco']" in str(refused.value)


def test_a_camera_file_that_is_not_there_or_a_folder_is_refused_by_check(tmp_path, monkeypatch):
    """``edge --check`` passed it with exit 0, a file's name mistyped. Not refused at load: the box starts without it,
    and says the camera cannot be read until it is there (a pipe another program makes at its own start)."""
    from edge.config import check_files

    monkeypatch.chdir(tmp_path)
    (tmp_path / "videos").mkdir()
    (tmp_path / "gate.mp4").touch()
    text = EDGE.replace("rtsp://admin:pw@10.0.0.5:554/Streaming/Channels/101", "gate.mp4")
    (tmp_path / "edge.yaml").write_text(text)
    check_files(load_config(tmp_path / "edge.yaml"))  # there: no word
    for url, said in [
        ("gate.mp", f"camera 'gate' url: gate.mp: no such file (a relative path is read from the folder the box starts "
         f"in: {tmp_path}); a url that is no rtsp:// address names a video file, or a pipe whose program is started "
         "first"),
        (f"{tmp_path}/gate.mp", f"camera 'gate' url: {tmp_path}/gate.mp: no such file; a url that is no rtsp://"),
        (f"{tmp_path}/videos", f"camera 'gate' url: {tmp_path}/videos: is a folder; name the file; a url that"),
    ]:
        (tmp_path / "edge.yaml").write_text(text.replace("gate.mp4", url))
        config = load_config(tmp_path / "edge.yaml")  # loads: the box may start before the file is there
        with pytest.raises(ConfigError) as refused:
            check_files(config, "edge.yaml")
        assert str(refused.value).startswith("edge.yaml: 1 error(s)\n  ") and said in str(refused.value)


def test_a_data_dir_the_box_cannot_keep_its_outbox_in_is_refused_by_check(tmp_path, monkeypatch, capsys):
    """``edge --check`` said the config was fine and exit 0, and the start then stopped at once: ``error: data_dir ...:
    cannot keep the outbox there (Not a directory)`` (a folder named under a file; a read-only disk alike)."""
    from xueliang.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").touch()
    for data_dir, said in [
        (f"{tmp_path}/afile/edge", f"data_dir {tmp_path}/afile/edge: cannot keep the outbox there (Not a directory: "
         f"{tmp_path}/afile)"),
        ("afile", f"data_dir afile: cannot keep the outbox there (Not a directory: afile; a relative path is read from "
         f"the folder the box starts in: {tmp_path})"),
    ]:
        (tmp_path / "edge.yaml").write_text(EDGE + f"data_dir: {data_dir}\n")
        assert main(["edge", "--config", "edge.yaml", "--check"]) == 2
        assert said in capsys.readouterr().err
    (tmp_path / "edge.yaml").write_text(EDGE + f"data_dir: {tmp_path}/new/edge\n")  # made at the start: fine
    assert main(["edge", "--config", "edge.yaml", "--check"]) == 0
    assert not (tmp_path / "new").exists()


def test_check_says_a_camera_with_no_zones_detects_nothing(tmp_path):
    """Allowed (its picture is watched for faults, its zones drawn later on its first picture), and ``--check`` said
    "0 zone(s)" and exit 0: an installer took it for a camera at work."""
    from xueliang.cli import edge_summary

    (tmp_path / "edge.yaml").write_text(EDGE.split("    zones:")[0] + "  - {id: yard, url: 'rtsp://10.0.0.6/s1', "
                                        "grid: HQ-DZG-10D-07}\n")
    lines = edge_summary(load_config(tmp_path / "edge.yaml"), "edge.yaml").splitlines()
    assert lines[1:] == [
        "  camera gate: rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101, grid HQ-DZG-10D-07, 0 zone(s)",
        "    no zones: it detects nothing until zones are drawn; until then it is watched for faults only (down, "
        "frozen, covered, moved)",
        "  camera yard: rtsp://10.0.0.6/s1, grid HQ-DZG-10D-07, 0 zone(s)",
        "    no zones: it detects nothing until zones are drawn; until then it is watched for faults only (down, "
        "frozen, covered, moved)"]


@pytest.mark.parametrize("old, new, said", [
    # "categories.2.service_level": the third, counted from 0; a category is found by its type
    ("service_level: 1 working day", "service_level: 1 workday", "category 'spill' service_level: "),
    ("name: 雪亮工程运维", "name: 雪亮工程运维\n    phone: 12345", "department 'video-maintenance' phone: not a field here"),
    # its id is what is wrong: counted from 1, and its other name said
    ("  - id: sanitation", "  - id: 环卫", "department #2 (name '环卫所') id: '环卫' is not an id"),
    ("  - type: garbage", "  - type: Garbage", "category #2 (code '200102') type: "),
])
def test_a_tables_entry_is_named_as_a_person_finds_it(city, old, new, said):
    tables = city / "demo.yaml"
    assert old in tables.read_text()
    tables.write_text(tables.read_text().replace(old, new, 1))
    with pytest.raises(GatewayConfigError) as refused:
        load_tables(tables)
    assert f"demo.yaml: {said}" in str(refused.value)
