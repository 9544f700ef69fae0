"""The gateway's config and the city's tables, as people write them: a file their editor saved in
another encoding, with a byte order mark, or broken, is refused with a line naming the file, never a
traceback; a byte order mark alone is no mistake."""

import re
import shutil
import subprocess
import sys

import httpx
import pytest
import yaml

from gateway.config import TABLES_DIR, GatewayConfigError, load_gateway_config, load_tables
from xueliang import services
from xueliang.textfile import load_yaml

from .conftest import wait_until


@pytest.fixture
def city(tmp_path):
    for name in ("demo.yaml", "demo-grids.csv", "demo-grids.geojson"):
        shutil.copy(TABLES_DIR / name, tmp_path / name)
    return tmp_path


def rewrite(path, encoding):
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))


@pytest.mark.parametrize("name, change, error", [
    ("demo.yaml", lambda p: rewrite(p, "gbk"), "demo.yaml: not UTF-8 text (byte 0x"),
    ("demo-grids.csv", lambda p: rewrite(p, "gbk"), "demo-grids.csv: not UTF-8 text (byte 0x"),
    ("demo-grids.geojson", lambda p: rewrite(p, "utf-16"), "demo-grids.geojson: not UTF-8 text (byte 0xff"),
    ("demo.yaml", lambda p: p.write_text("departments: [\n"), "demo.yaml: not valid YAML"),
    ("demo.yaml", lambda p: p.write_text("departments: " + "[" * 5000 + "]" * 5000), "nested too deeply"),
    ("demo.yaml", lambda p: p.write_text(p.read_text().replace("grids_csv: demo-grids.csv", "grids_csv: 5")),
     "demo.yaml: grids_csv: write a file name next to the tables, got 5"),
    ("demo-grids.csv", lambda p: (p.unlink(), p.mkdir()), "demo-grids.csv: is a folder; name the file"),
    ("demo-grids.csv", lambda p: rewrite(p, "utf-8-sig"), None),  # Excel's "CSV UTF-8"
    ("demo.yaml", lambda p: rewrite(p, "utf-8-sig"), None),  # Windows Notepad
    # grids beside grids_csv that are no list: a traceback (AttributeError: 'str' object has no attribute 'extend')
    ("demo.yaml", lambda p: p.write_text(p.read_text() + "grids: HQ\n"),
     "demo.yaml: grids: a list of grids (code, name, level, parent) beside grids_csv, or none; got str 'HQ'"),
    ("demo.yaml", lambda p: p.write_text(p.read_text() + "grids: {code: HQ}\n"), "grids: a list of grids"),
    ("demo.yaml", lambda p: p.write_text(p.read_text() + "grids:\n"), None),  # written empty: none
    # read until memory ran out
    ("demo-grids.csv", lambda p: (p.unlink(), p.symlink_to("/dev/zero")), "demo-grids.csv: more than 67,108,864 bytes"),
])
def test_a_table_file_that_cannot_be_read_is_named(city, name, change, error):
    change(city / name)
    if error is None:
        assert load_tables(city / "demo.yaml").knows("HQ-DZG-10D-07")
        return
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(city / "demo.yaml")
    assert error in str(failed.value)


@pytest.mark.parametrize("text, error", [
    ("database: [unclosed\n".encode(), "gateway.yaml: not valid YAML"),
    ("# 网关\nescalation_check_s: 5\n".encode("gbk"), "gateway.yaml: not UTF-8 text (byte 0xcd at offset 2)"),    (("escalation_check_s: " + "5" * 5000).encode(), "gateway.yaml: not valid YAML: escalation_check_s: a number "
     "of 5000 digits"),  # Python's "Exceeds the limit (4300 digits)", naming neither file nor field
    # 38 MB of allowed_hosts took 20 s to read; an edge config is bound so
    (("escalation_check_s: 5\n" + "# a comment\n" * 400_000).encode(), "gateway.yaml: more than 4,194,304 bytes; a "
     "file written by hand is a fraction of that"),
])
def test_a_gateway_config_that_cannot_be_read_is_named(tmp_path, text, error):
    (tmp_path / "gateway.yaml").write_bytes(text)
    with pytest.raises(GatewayConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        load_gateway_config(tmp_path / "gateway.yaml")


@pytest.mark.parametrize("line, error", [
    ("escalation_check_s: .inf", "escalation_check_s: Input should be a finite number"),  # ended the clock thread
    ("escalation_check_s: 1e300", "escalation_check_s: is 1e300; write 3600 or less"),
])
def test_the_clocks_period_is_a_finite_number(tmp_path, line, error):
    (tmp_path / "gateway.yaml").write_text(line + "\n")
    with pytest.raises(GatewayConfigError, match=error):
        load_gateway_config(tmp_path / "gateway.yaml")


@pytest.mark.parametrize("http, error", [
    # a page on the internet could have read the cases through a browser inside the city's network (DNS rebinding)
    ("{public_read: true}", "http.allowed_hosts: with public_read on, list the names and addresses people open the "
                            "gateway by (e.g. [gateway.city.local, 10.0.0.5]), or ['*'] for any"),
    ("{allowed_hosts: ['http://10.0.0.5:8080']}", "http.allowed_hosts.0: 'http://10.0.0.5:8080' is not a host name: "
                                                  "write the name or address alone"),
    ("{allowed_hosts: [gateway.*]}", "http.allowed_hosts.0: 'gateway.*' is not a host name"),  # an assert in Starlette
    ("{allowed_hosts: []}", "http.allowed_hosts: List should have at least 1 item"),  # every request refused
])
def test_the_host_names_the_gateway_answers_to_are_required_with_public_read_and_written_as_browsers_send_them(
        tmp_path, http, error):
    (tmp_path / "gateway.yaml").write_text(f"http: {http}\n")
    with pytest.raises(GatewayConfigError, match=re.escape(error)):
        load_gateway_config(tmp_path / "gateway.yaml")


@pytest.mark.parametrize("http, hosts", [
    ("{}", ["*"]),  # signed in only: a rebinding page's browser has no session or token of the gateway's
    ("{public_read: true, allowed_hosts: ['*']}", ["*"]),  # any, written down
    ("{public_read: true, allowed_hosts: [gateway.city.local, 10.0.0.5, '[::1]', '*.city.local']}",
     ["gateway.city.local", "10.0.0.5", "[::1]", "*.city.local"]),
])
def test_the_host_names_the_gateway_answers_to_by_default_and_as_written(tmp_path, http, hosts):
    (tmp_path / "gateway.yaml").write_text(f"http: {http}\n")
    assert load_gateway_config(tmp_path / "gateway.yaml").http.allowed_hosts == hosts


@pytest.mark.parametrize("http, error", [
    ("{jurisdiction_id: ''}", "http.jurisdiction_id: '' is not a jurisdiction id: write the one the city publishes to "
                              "Open311 clients, a domain such as tianjin.gov.cn (letters, digits and . _ -, at most "
                              "253 characters)"),
    ("{jurisdiction_id: 'tianjin gov.cn'}", "http.jurisdiction_id: 'tianjin gov.cn' is not a jurisdiction id"),
    ("{jurisdiction_id: [tianjin.gov.cn, ' xl.tianjin.gov.cn']}",
     "http.jurisdiction_id.1: ' xl.tianjin.gov.cn' is not a jurisdiction id"),  # never matched: a client's is stripped
    ("{jurisdiction_id: 'https://open311.tianjin.gov.cn/open311/v2'}",  # the endpoint, not the id
     "http.jurisdiction_id: 'https://open311.tianjin.gov.cn/open311/v2' is not a jurisdiction id"),
    ("{jurisdiction_id: " + "a" * 254 + "}",  # longer than any a client may send
     f"http.jurisdiction_id: {'a' * 60!r}... (254 characters) is not a jurisdiction id"),
    ("{jurisdiction_id: []}", "http.jurisdiction_id: List should have at least 1 item"),  # every id refused
])
def test_the_open311_jurisdiction_id_is_refused_naming_the_key_and_the_value(tmp_path, http, error):
    (tmp_path / "gateway.yaml").write_text(f"http: {http}\n")
    with pytest.raises(GatewayConfigError, match=re.escape(error)):
        load_gateway_config(tmp_path / "gateway.yaml")


@pytest.mark.parametrize("http, ids", [
    ("{}", None),  # the host name the gateway is reached by
    ("{jurisdiction_id: open311.tianjin.gov.cn}", ["open311.tianjin.gov.cn"]),  # one, written alone
    ("{jurisdiction_id: [Tianjin.gov.cn, xl_gw-2.local]}", ["Tianjin.gov.cn", "xl_gw-2.local"]),
])
def test_the_open311_jurisdiction_id_is_one_or_a_list_as_written(tmp_path, http, ids):
    (tmp_path / "gateway.yaml").write_text(f"http: {http}\n")
    assert load_gateway_config(tmp_path / "gateway.yaml").http.jurisdiction_id == ids


@pytest.mark.parametrize("http, error", [
    ("{public_url: xl.tianjin.gov.cn}", "http.public_url: 'xl.tianjin.gov.cn' is not a public URL: write the address "
                                        "clients reach the gateway by, as a browser shows it, https://xl.tianjin.gov.cn/"),
    ("{public_url: 'ftp://xl.tianjin.gov.cn/'}", "http.public_url: 'ftp://xl.tianjin.gov.cn/' is not a public URL"),
    ("{public_url: 'https://'}", "http.public_url: 'https://' is not a public URL"),  # no host
    ("{public_url: 'https://xl.tianjin.gov.cn:99999/'}", "http.public_url: 'https://xl.tianjin.gov.cn:99999/' is not"),
    ("{public_url: 'https://xl.tianjin.gov.cn/?city=tj'}", "http.public_url: 'https://xl.tianjin.gov.cn/?city=tj' is not"),
    ("{public_url: 'https://xl.tianjin.gov.cn/#top'}", "http.public_url: 'https://xl.tianjin.gov.cn/#top' is not"),
    ("{public_url: 'https://xl.tianjin.gov.cn/a b'}", "http.public_url: 'https://xl.tianjin.gov.cn/a b' is not"),
    ("{public_url: 'https://xl.tianjin.gov.cn/>; rel=x'}", "http.public_url: 'https://xl.tianjin.gov.cn/>; rel=x' is not"),
    ("{public_url: 'https://gw:S3cr3t@xl.tianjin.gov.cn/'}", "http.public_url: has a user name in it (not shown"),
    ("{public_url: ''}", "http.public_url: '' is not a public URL"),
])
def test_the_public_url_is_refused_naming_the_key_and_the_value(tmp_path, http, error):
    """Every client is handed it (Open311's ``media_url``, the next page's ``Link``): one that is no address of the
    gateway's, or breaks the header it is written into, or carries a password, is refused at start."""
    (tmp_path / "gateway.yaml").write_text(f"http: {http}\n")
    with pytest.raises(GatewayConfigError, match=re.escape(error)) as refused:
        load_gateway_config(tmp_path / "gateway.yaml")
    assert "S3cr3t" not in str(refused.value)


@pytest.mark.parametrize("http, url", [
    ("{}", None),  # the address each request came to
    ("{public_url: 'https://xl.tianjin.gov.cn/'}", "https://xl.tianjin.gov.cn/"),
    ("{public_url: 'http://[::1]:8080/xl'}", "http://[::1]:8080/xl"),  # a port and a path the proxy serves it under
])
def test_the_public_url_as_written(tmp_path, http, url):
    (tmp_path / "gateway.yaml").write_text(f"http: {http}\n")
    assert load_gateway_config(tmp_path / "gateway.yaml").http.public_url == url


@pytest.mark.slow
def test_a_running_gateway_answers_only_the_host_names_of_its_config(tmp_path, broker):
    """``http.allowed_hosts`` reaches the app the gateway serves, not only its configuration; so does
    ``http.jurisdiction_id``, Open311's."""
    port = services.free_port()
    (tmp_path / "gateway.yaml").write_text(
        f"broker: {{port: {broker.port}}}\ndatabase: sqlite:///{tmp_path}/gw.sqlite\n"
        f"http: {{port: {port}, public_read: true, allowed_hosts: [gateway.city.local], "
        "jurisdiction_id: tianjin.gov.cn}\n")
    gateway = services.xueliang(["gateway", "--config", str(tmp_path / "gateway.yaml")], tmp_path / "gateway.log")
    try:
        services.wait_port(port, gateway, "gateway", timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/cases", headers={"Host": "gateway.city.local"}).json() == []
        refused = httpx.get(f"http://127.0.0.1:{port}/cases")  # Host: 127.0.0.1:PORT, not listed
        assert (refused.status_code, refused.text) == (400, "Invalid host header")
        open311 = {jid: httpx.get(f"http://127.0.0.1:{port}/open311/v2/services.json", headers={
            "Host": "gateway.city.local"}, params={"jurisdiction_id": jid}).status_code
            for jid in ("tianjin.gov.cn", "gateway.city.local")}
        assert open311 == {"tianjin.gov.cn": 200, "gateway.city.local": 404}
    finally:
        gateway.terminate()
        gateway.wait(10)


@pytest.mark.parametrize("radius, error", [
    (".inf", "category 'illegal_parking' merge_radius_m: Input should be a finite number"),
    # every case of the category in the city joined one
    ("1e300", "category 'illegal_parking' merge_radius_m: is 1e300; write 1000 or less"),
    ("3000", "category 'illegal_parking' merge_radius_m: is 3000; write 1000 or less"),
    ("1000", None),
    ("0", None),
])
def test_a_categorys_merge_radius_is_finite_and_at_most_a_kilometre(city, radius, error):
    path = city / "demo.yaml"
    text = path.read_text().replace("service_level: 1h\n", f"service_level: 1h\n    merge_radius_m: {radius}\n", 1)
    path.write_text(text)
    if error is None:
        assert load_tables(path).categories[0].merge_radius_m == float(radius)
        return
    with pytest.raises(GatewayConfigError, match=error):
        load_tables(path)


@pytest.mark.parametrize("level, error", [
    ("99999999999999999999 working days", "category 'illegal_parking' service_level: '99999999999999999999 working days' is longer "
     "than 366 days"),  # each case's deadline counted days for 2 s, overflowed: every incident a dead letter
    ("999999999 days", "is longer than 366 days"),
    ("367 d", "is longer than 366 days"),
    ("366 working days", None),
    ("2000 working hours", None),
    # every case overdue when it opens, escalated at once
    ("0s", "category 'illegal_parking' service_level: '0s' gives no time at all"),
    ("0 working days", "gives no time at all"),
    ("0.5h", None),
])
def test_a_service_level_is_at_most_a_year_and_more_than_nothing(city, level, error):
    path = city / "demo.yaml"
    path.write_text(path.read_text().replace("service_level: 1h\n", f"service_level: {level}\n", 1))
    if error is None:
        assert load_tables(path).categories[0].service_level == level
        return
    with pytest.raises(GatewayConfigError, match=error):
        load_tables(path)


@pytest.mark.slow
def test_the_cli_prints_the_line_and_exits_2(tmp_path):
    (tmp_path / "gateway.yaml").write_bytes("# 网关\n".encode("gbk"))
    run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "gateway.yaml: not UTF-8 text" in run.stderr


@pytest.mark.parametrize("change, error", [
    (lambda csv: csv + "HQ-DZG-10D-07,重复,grid,HQ-XYM\n", "grid 'HQ-DZG-10D-07' appears twice in the grid table"),
    # its parent left out: no route of its street applied, no operator of its street or of the centre saw its cases
    (lambda csv: csv + "HQ-XYM-01-02,西于庄第1社区第2网格,grid,\n", "demo.yaml: grids 'HQ' and 'HQ-XYM-01-02' have "
     "no parent: the grid tree has one root, the command centre's (cases of grids it does not know and overdue "
     "re-checks go there); write the parent of each grid but the root"),
    (lambda csv: csv.replace("HQ,红桥区,district,", "HQ,红桥区,district,HQ-DZG"),
     "grid 'HQ': its parents go round in a circle (HQ -> HQ-DZG -> HQ); the tree needs a root"),
    (lambda csv: csv.replace("HQ,红桥区,district,", "HQ,红桥区,district,HQ"), "(HQ -> HQ)"),
])
def test_a_grid_tree_with_a_code_twice_a_circle_or_two_roots_is_refused(city, change, error):
    """Both loaded before: the second row's parent replaced the first's (routes and scopes followed it),
    and a tree with no root has no centre for the cases of grids it does not know."""
    path = city / "demo-grids.csv"
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(city / "demo.yaml")
    assert error in str(failed.value)


def test_a_department_twice_is_refused(city):
    path = city / "demo.yaml"
    path.write_text(path.read_text().replace("  - id: sanitation\n", "  - id: traffic-police\n    name: 交警\n"
                                             "  - id: sanitation\n"))
    with pytest.raises(GatewayConfigError, match="department 'traffic-police' appears twice"):
        load_tables(path)


@pytest.mark.parametrize("change, error", [
    # the extra cell had no column: the error named a list index and a key None
    (lambda csv: csv.replace("HQ-DZG-10D,丁字沽十段社区,", "HQ-DZG-10D,丁字沽,十段社区,"),
     "demo-grids.csv row 4: 5 columns, the header has 4 (code,name,level,parent)"),
    (lambda csv: csv.replace("HQ-DZG,丁字沽街道,street,HQ\n", "HQ-DZG,,street,HQ\n"),
     "demo-grids.csv row 3 column name: String should have at least 1 character"),
    # a space after the code, as a spreadsheet keeps one: said as a regular expression
    (lambda csv: csv.replace("HQ-DZG,丁字沽街道,street,HQ\n", "HQ-DZG ,丁字沽街道,street,HQ\n"),
     "demo-grids.csv row 3 column code: 'HQ-DZG ' is not a grid code: write it as the city's grid table has it, in "
     "letters (Chinese too), digits and . _ - (a letter or digit first, at most 64; no spaces, / + # or full-width "
     "letters)"),
    # the header in Chinese or capitals: every column "Field required" and "Extra inputs are not permitted"
    (lambda csv: csv.replace("code,name,level,parent", "编码,名称,级别,上级"),
     "demo-grids.csv row 1: the header is 编码,名称,级别,上级; write code,name,level,parent (in English, lower case)"),
    (lambda csv: csv.replace("code,name,level,parent", "Code, Name, Level, Parent"),
     "demo-grids.csv row 1: the header is Code, Name, Level, Parent; write code,name,level,parent"),
    (lambda csv: csv.replace("HQ-DZG,丁字沽街道,street,HQ\n", "\nHQ-DZG,丁字沽街道\n"),  # a blank row counts
     "demo-grids.csv row 4 column level: Input should be a valid string"),
    # a root written without its last comma: the missing cell is empty, as before
    (lambda csv: csv.replace("HQ,红桥区,district,\n", "HQ,红桥区,district\n"), None),
])
def test_a_grid_table_row_is_named_by_its_row_and_column(city, change, error):
    path = city / "demo-grids.csv"
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    if error is None:
        assert load_tables(city / "demo.yaml").centre == "HQ"
        return
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(city / "demo.yaml")
    assert error in str(failed.value)


@pytest.mark.parametrize("name, old, new, error", [
    ("demo-grids.csv", "HQ-DZG,丁字沽街道,", "HQ-DZG,丁字沽街道\u202e,",
     "demo-grids.csv row 3 column name: '丁字沽街道\\u202e' has control or invisible formatting characters (U+202E)"),
    ("demo.yaml", "name: 交警大队", 'name: "交警\\u200f大队"', "department 'traffic-police' name: '交警\\u200f大队' has control"),
    ("demo.yaml", 'code: "200505"', 'code: "2005\\a05"', "category 'illegal_parking' code: '2005\\x0705' has control"),
    ("demo-grids.csv", "HQ-DZG,丁字沽街道,", "HQ-DZG,丁字沽　街道,", None),  # a full-width space is a name's own
])
def test_a_name_the_pages_show_with_control_or_bidi_characters_is_refused(city, name, old, new, error):
    """A right-to-left override in a grid's name reversed its code after it on the pages (网格1 (1G-1C-1S-D))."""
    path = city / name
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    if error is None:
        assert load_tables(city / "demo.yaml").grid_name("HQ-DZG") == "丁字沽　街道"
        return
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(city / "demo.yaml")
    assert error in str(failed.value)


def test_the_http_host_and_port_are_named_when_the_gateway_cannot_listen():
    from gateway.config import Http
    from gateway.service import listen

    with pytest.raises(GatewayConfigError, match=r"http.host '999.1.1.1': not an address"):
        listen(Http(host="999.1.1.1"))
    with listen(Http(port=0)) as taken:
        port = taken.getsockname()[1]
        taken.listen()
        with pytest.raises(GatewayConfigError, match=rf"http.port {port}: cannot listen on 127.0.0.1:{port} "
                                                     r"\(Address already in use\)"):
            listen(Http(port=port))


@pytest.mark.slow
def test_a_gateway_whose_http_port_is_taken_stops_before_it_joins_the_shared_subscription(tmp_path, broker):
    """It used to subscribe first (a persistent session, 7 days) and fail at the port after: the broker
    then kept every other message of the city for a session nobody would resume."""
    import socket

    import paho.mqtt.client as mqtt

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        (tmp_path / "gateway.yaml").write_text(
            f"broker: {{host: 127.0.0.1, port: {broker.port}, client_id: second-gw}}\n"
            f"database: sqlite:///{tmp_path}/gateway.sqlite\nhttp: {{host: 127.0.0.1, port: {port}}}\n")
        run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml")],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"error: {tmp_path / 'gateway.yaml'}: http.port {port}: cannot listen" in run.stderr
    connected = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="second-gw", protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, flags, rc, p: connected.append(flags.session_present)
    client.connect("127.0.0.1", broker.port, clean_start=False)
    client.loop_start()
    try:
        wait_until(lambda: connected, 10, message="connected to the broker")
    finally:
        client.disconnect()
        client.loop_stop()
    assert connected == [False]  # the broker holds no session of that gateway


@pytest.mark.parametrize("broker, error", [
    ("{username: " + "g" * 129 + "}", "broker.username: String should have at most 128 characters"),
    ("{username: " + "g" * 128 + "}", None),
    ("{username: " + "g" * 200 + ", client_id: gw-1}", "broker.username: String should have at most 128"),
])
def test_the_name_a_gateway_signs_its_acknowledgements_with_fits_the_ack_schema(tmp_path, broker, error):
    """A 130-character user name was accepted; every acknowledgement then broke the ack schema, was
    never sent, and the boxes resent everything until their outboxes were full."""
    from xueliang import wire

    (tmp_path / "gateway.yaml").write_text(f"broker: {broker}\n")
    if error is not None:
        with pytest.raises(GatewayConfigError, match=error):
            load_gateway_config(tmp_path / "gateway.yaml")
        return
    identity = load_gateway_config(tmp_path / "gateway.yaml").broker.identity
    assert wire.decode_ack(wire.encode_ack(identity, 1767225600.0, {"0" * 20: "case_created"}))


@pytest.mark.parametrize("text, error", [
    ("database: not-a-url\n", "database: is not a database URL (not shown: it may hold a password); write sqlite:///PATH"),
    ("database: mysql://u@127.0.0.1/x\n", "database: the driver for 'mysql' is not installed (No module named 'MySQLdb')"),
    ("database: nosuchdb://x\n", "database: 'nosuchdb' is not a database SQLAlchemy knows"),
    ("broker: {tls_ca: /nonexistent/ca.crt}\n", "broker.tls_ca: no such file '/nonexistent/ca.crt'"),
    ("broker: {tls_ca: TABLES}\n", "is not a CA certificate in PEM"),
    ("broker: {host: ''}\n", "broker.host: String should have at least 1 character"),
    ("- broker\n- database\n", "gateway.yaml: expected a mapping with broker, database, http and tables"),
])
def test_a_gateway_config_mistake_found_at_start_is_named_by_its_field(tmp_path, text, error):
    """Each was a traceback from SQLAlchemy or paho (the CA file named neither itself nor its field)."""
    (tmp_path / "gateway.yaml").write_text(text.replace("TABLES", str(TABLES_DIR / "demo.yaml")))
    with pytest.raises(GatewayConfigError) as failed:
        load_gateway_config(tmp_path / "gateway.yaml")
    assert error in str(failed.value)



@pytest.mark.parametrize("text, error", [
    ("client_id: gw-1\n", "gateway.yaml: client_id: not a field at the top level; it belongs under broker:"),
    ("broker: {clientid: gw-1}\n", "broker.clientid: not a field here; did you mean client_id?"),
    ("host: 10.0.0.5\n", "host: not a field at the top level; it belongs under broker: or under http:"),
    ("http: {public_read: true, allowed_hosts: ['*'], database: 'sqlite://'}\n",
     "http.database: not a field here; it belongs at the top level"),
    ("escalation_check: 5\n", "escalation_check: not a field at the top level; did you mean escalation_check_s?"),
])
def test_a_gateway_config_field_misspelt_or_in_the_wrong_place_is_named_with_what_was_meant(tmp_path, text, error):
    """Each was "Extra inputs are not permitted", the field it belongs under or was meant for unsaid."""
    (tmp_path / "gateway.yaml").write_text(text)
    with pytest.raises(GatewayConfigError) as failed:
        load_gateway_config(tmp_path / "gateway.yaml")
    assert error in str(failed.value)


def test_a_config_or_tables_of_many_keys_that_are_no_field_lists_twenty_and_counts_the_rest(city, tmp_path):
    """A 4 MB file of such keys (200,000) was refused with each named: a message of 9 MB, on one line."""
    keys = "".join(f"junk_{i}: 1\n" for i in range(150))
    (tmp_path / "gateway.yaml").write_text("client_id: gw-1\n" + keys)
    tables = city / "demo.yaml"
    tables.write_text(tables.read_text(encoding="utf-8") + keys, encoding="utf-8")
    for load, path in ((load_gateway_config, tmp_path / "gateway.yaml"), (load_tables, tables)):
        with pytest.raises(GatewayConfigError) as failed:
            load(path)
        said = str(failed.value)
        more = 151 - 20 if load is load_gateway_config else 150 - 20
        assert said.count(": not a field") == 20 and said.endswith(f"; ... and {more} more, each a key that is no "
                                                                   "field"), said[-300:]
    assert str(failed.value).startswith(f"{tables}: junk_0: not a field at the top level")


def test_a_config_or_tables_mapping_of_more_than_1000_keys_is_refused_at_the_key_past_them(city, tmp_path):
    """200,000 keys in one mapping (2.9 MB) took 4 s to read before the config refused each as no field; the tables
    (64 MiB allowed) would have taken a minute and a half."""
    keys = "".join(f"junk_{i}: 1\n" for i in range(20_000))
    (tmp_path / "gateway.yaml").write_text("client_id: gw-1\n" + keys)
    tables = city / "demo.yaml"
    text = tables.read_text(encoding="utf-8")
    tables.write_text(text.replace("    service_level: 1h\n", "    service_level: 1h\n" + keys.replace("j", "    j"), 1),
                      encoding="utf-8")
    first = text[:text.index("    service_level: 1h\n")].count("\n") + 1  # the first category's service_level
    for load, path, said, line in ((load_gateway_config, tmp_path / "gateway.yaml", "", 1_001),
                                   (load_tables, tables, "category 'illegal_parking': ", first + 996)):
        with pytest.raises(GatewayConfigError) as refused:
            load(path)
        assert str(refused.value) == (f"{path}: {said}more than 1,000 keys in one mapping (read up to line {line}); "
                                      "a mapping written by hand holds a few dozen: write many of a kind as a list")


@pytest.mark.parametrize("old, new, error", [
    ("service_level: 1h", "servce_level: 1h", "category 'illegal_parking' servce_level: not a field here; did you mean service_level?"),
    ("service_level: 1h", "service_level: 1h\n    merge_radius: 30", "category 'illegal_parking' merge_radius: not a field here; did you mean merge_radius_m?"),
    ("departments:", "working_hour: 09:00-18:00\ndepartments:",
     "working_hour: not a field at the top level; did you mean working_hours?"),
])
def test_a_table_field_misspelt_is_named_with_what_was_meant(city, old, new, error):
    path = city / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(path)
    assert error in str(failed.value)

@pytest.mark.parametrize("url, says", [
    ("postgres ql://gw:S3cr3t-PW@127.0.0.1/city", "is not a database URL (not shown"),  # was the URL, password and all
    ("postgresql+psycopg://gw:S3cr3t-PW@127.0.0.1:54x2/city", "is not a database URL (not shown"),  # int()'s words
    # SQLAlchemy ends the password at its first @: the rest of it was taken for the host, and the gateway's error
    # showed it twice (the URL with "***" for the password's first part, and the host the driver could not find)
    ("postgresql+psycopg://gw:S3cr3t@PW-tail@127.0.0.1:1/city",
     "names a host with an @ in it (not shown: it may be part of a password); percent-encode an @ in the password"),
])
def test_a_database_url_refused_at_start_is_named_without_its_password(tmp_path, capsys, url, says):
    from xueliang.cli import main

    (tmp_path / "gateway.yaml").write_text(f"database: {url!r}\n")
    assert main(["gateway", "--config", str(tmp_path / "gateway.yaml")]) == 2
    said = capsys.readouterr().err
    assert f"gateway.yaml: database: {says}" in said and "S3cr3t" not in said and "PW-tail" not in said, said


def test_a_ca_file_and_a_database_url_that_work_are_taken(tmp_path):
    import subprocess as sp

    sp.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out",
            str(tmp_path / "ca.crt"), "-days", "1", "-subj", "/CN=test-ca"], check=True, capture_output=True)
    (tmp_path / "gateway.yaml").write_text(f"broker: {{tls_ca: {tmp_path / 'ca.crt'}}}\n"
                                           "database: postgresql+psycopg://gw@127.0.0.1/city\n")
    config = load_gateway_config(tmp_path / "gateway.yaml")
    assert config.broker.tls_ca == tmp_path / "ca.crt" and config.database.startswith("postgresql+psycopg")


@pytest.mark.parametrize("change, error", [
    # a typo of HQ-XYM: the route never applied, and garbage there went to the category's department
    (lambda y: y.replace("grid: HQ-XYM,", "grid: HQ-XYN,"), "route garbage/HQ-XYN: grid 'HQ-XYN' is not in the grid tree"),
    # a filter, a report or Open311 by code found only the first
    (lambda y: y.replace('code: "200102"', 'code: "200505"'), "code '200505' is category 'illegal_parking''s too"),
    # a day off and a working day at once: the workday won, silently, and deadlines ran through the holiday
    (lambda y: y + 'workdays: ["2026-09-27", "2026-10-01"]\n', "demo.yaml: 2026-10-01 in both holidays and workdays; "
     "a day is one or the other"),
    # a route added below the old one to change it: the first was taken, the new one ignored
    (lambda y: y.replace("department: city-management}\n", "department: city-management}\n"
                         "  - {type: garbage, grid: HQ-XYM, department: sanitation}\n"),
     "route garbage/HQ-XYM is written twice (to 'city-management' and 'sanitation'); keep one"),
])
def test_a_route_to_an_unknown_grid_or_twice_or_a_category_code_twice_is_refused(city, change, error):
    path = city / "demo.yaml"
    text = path.read_text()
    assert change(text) != text
    path.write_text(change(text))
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(path)
    assert error in str(failed.value)


@pytest.mark.parametrize("csv", ["", "code,name,level,parent\n", "code,name,level,parent\n\n\n"])
def test_a_grid_table_without_rows_says_so(city, csv):
    """It said a boundary in the GeoJSON was not in the grid tree."""
    (city / "demo-grids.csv").write_text(csv)
    with pytest.raises(GatewayConfigError) as failed:
        load_tables(city / "demo.yaml")
    assert "demo-grids.csv: no grids; write the header code,name,level,parent" in str(failed.value)


@pytest.mark.slow
@pytest.mark.parametrize("text, error", [
    ("database: mysql://u@127.0.0.1/x\n", "database: the driver for 'mysql' is not installed"),
    ("broker: {tls_ca: /nonexistent/ca.crt}\n", "broker.tls_ca: no such file '/nonexistent/ca.crt'"),
    ("http: {host: 999.1.1.1, port: 8080}\n", "http.host '999.1.1.1': not an address of this machine"),
])
def test_the_cli_names_the_file_and_field_and_exits_2_without_a_traceback(tmp_path, text, error):
    (tmp_path / "gateway.yaml").write_text(f"database: sqlite:///{tmp_path}/gw.sqlite\n" * ("database" not in text) + text)
    run = subprocess.run([sys.executable, "-m", "xueliang", "gateway", "--config", str(tmp_path / "gateway.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"error: {tmp_path / 'gateway.yaml'}: " in run.stderr and error in run.stderr


@pytest.mark.parametrize("text, key, where", [
    ("database: sqlite:///a.sqlite\nhttp: {port: 8080}\ndatabase: sqlite:///b.sqlite\n", "database", "lines 1 and 3"),
    # a mapping written on one line, as the README writes broker and http: the check compared lines, and the
    # gateway listened on the second port without a word
    ("database: sqlite:///a.sqlite\nhttp: {host: 127.0.0.1, port: 8080, port: 9090}\n", "port", "twice on line 2")])
def test_a_yaml_key_written_twice_in_the_gateway_config_is_refused_saying_where(tmp_path, text, key, where):
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(GatewayConfigError, match=rf"not valid YAML: '{key}' is written twice in one mapping "
                                                 rf"\({where}\); keep one"):
        load_gateway_config(path)


def test_a_merged_key_overridden_is_no_key_written_twice(tmp_path):
    """``<<: *anchor`` copies the anchor's pairs into the mapping's in place; where a mapping merging a deeper one
    was read first, the deeper one's override of its own merge was refused as a key written twice."""
    text = "a: &a {x: 1}\nb:\n  c: &c {<<: *a, x: 2}\nd: {<<: *c, y: 3}\n"
    assert load_yaml(text) == yaml.safe_load(text)


def test_a_gateway_config_printed_whole_shows_no_password():
    """A config in a log line or a traceback's locals is printed by its repr: the broker's password and the database
    URL (its password) are left out of it."""
    from gateway.config import GatewayConfig
    from edge.config import Broker as EdgeBroker

    config = GatewayConfig.model_validate({"database": "postgresql+psycopg://gw:S3cr3t-PW@db/city",
                                           "broker": {"username": "gw", "password": "S3cr3t-PW"}})
    assert "S3cr3t-PW" not in repr(config) and "S3cr3t-PW" not in str(config) and "username='gw'" in repr(config)
    assert config.database.endswith("@db/city") and config.broker.password == "S3cr3t-PW"
    assert "S3cr3t-PW" not in repr(EdgeBroker(username="box-1", password="S3cr3t-PW"))


@pytest.mark.parametrize("old, new, missing", [
    ("type: illegal_parking", "type: illegal_parkng", "illegal_parking"),  # misspelt: every parked car a dead letter
    ("type: camera_fault\n", "type: camera_faults\n", "camera_fault"),
])
def test_a_type_xueliangs_boxes_send_without_a_category_is_said_when_the_tables_load(city, caplog, old, new, missing):
    path = city / "demo.yaml"
    load_tables(path)
    assert "no category" not in caplog.text
    path.write_text(path.read_text().replace(old, new))
    load_tables(path)
    assert f"{path}: no category for {missing}, which xueliang's boxes send: each such incident will be set aside " \
        "as a dead letter (categories: " in caplog.text


def test_a_gateway_brokers_host_with_a_port_in_it_is_refused(tmp_path):
    (tmp_path / "gateway.yaml").write_text("broker: {host: '10.0.0.10:8883'}\n")
    with pytest.raises(GatewayConfigError, match=re.escape(": broker.host: '10.0.0.10:8883' has a port in it: write the "
                                                           "host alone (10.0.0.10) and port: 8883")):
        load_gateway_config(tmp_path / "gateway.yaml")


def test_gateway_check_says_what_the_config_and_tables_set_or_what_is_wrong(city, capsys):
    """The centre had no way to check tables it edited but to restart the gateway on them."""
    from xueliang.cli import main

    config = city / "gateway.yaml"
    config.write_text(f"broker: {{username: gw-1, password: S3cr3t}}\ndatabase: sqlite:///{city}/gw.sqlite\n"
                      "tables: demo.yaml\ndead_letter_days: 30\nwaiting_pictures_mb: 256\n")
    assert main(["gateway", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{config}: broker 127.0.0.1:1883 as gw-1, database sqlite:///{city}/gw.sqlite, "
                          f"http 127.0.0.1:8080\n  host names served * (allowed_hosts); Open311 "
                          "jurisdiction_id the host name it is reached by, its media_url under the address each "
                          "request came to\n"
                          f"  tables {city / 'demo.yaml'}: 5 department(s), 8 "
                          "grid(s) under HQ, 1 route(s)\n    illegal_parking: 200505 机动车乱停放 -> 交警大队 "
                          "(traffic-police), 1h\n")
    assert out.endswith("\n  working hours 09:00-18:00 on working days (4 holiday(s), 0 weekend day(s) worked)\n"
                        "  a camera's new cases: 20 within an hour dispatched, those past them held for review "
                        "(new_cases_per_camera_hour)\n"
                        "  dead letters kept 30 days (dead_letter_days), their payloads 1024 MB at most "
                        "(dead_letter_mb): older ones deleted, and past it the oldest\n"
                        "  pictures: 8 an incident at most; a box's no event has named yet 5,000 and 256 MB at most "
                        "(waiting_pictures_mb), each set aside as a dead letter after 60 min unnamed\n"
                        f"  database: none at {city}/gw.sqlite yet: the gateway makes it at its first start (nothing "
                        "was made)\n")
    assert "S3cr3t" not in out
    # a PostgreSQL that does not answer: refused as the start refuses it, its password not said
    config.write_text("database: postgresql+psycopg://gw:S3cr3t@127.0.0.1:1/city\ntables: demo.yaml\n")
    assert main(["gateway", "--config", str(config), "--check"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: database postgresql+psycopg://gw:***@127.0.0.1:1/city: cannot be "
                                        "used (connection failed: "), err
    assert "S3cr3t" not in err
    config.write_text("tables: demo.yaml\nhttp: {allowed_hosts: [gw.city.example], jurisdiction_id: [city.example, "
                      "xl.city.example], public_url: 'https://xl.city.example/gw/'}\n")
    assert main(["gateway", "--config", str(config), "--check"]) == 0
    assert ("\n  host names served gw.city.example (allowed_hosts); Open311 jurisdiction_id city.example or "
            "xl.city.example, its media_url under https://xl.city.example/gw/ (public_url)\n") in capsys.readouterr().out
    (city / "demo-grids.csv").write_text((city / "demo-grids.csv").read_text() + "HQ-X,某网格,grid,\n")
    assert main(["gateway", "--config", str(config), "--check"]) == 2
    assert "error: " in capsys.readouterr().err


@pytest.mark.parametrize("text", ["- broker\n- database\n", "42\n", "gateway.yaml\n"])
def test_a_config_or_tables_file_that_is_no_mapping_says_what_it_should_hold(tmp_path, text):
    """pydantic's "Input should be a valid dictionary or instance of GatewayConfig" was all it said."""
    written = tmp_path / "written.yaml"
    written.write_text(text)
    with pytest.raises(GatewayConfigError, match=f"^{re.escape(str(written))}: expected a mapping with broker, "
                       "database, http and tables$"):
        load_gateway_config(written)
    with pytest.raises(GatewayConfigError, match=f"^{re.escape(str(written))}: expected a mapping with departments "
                       "and categories$"):
        load_tables(written)


@pytest.mark.parametrize("text", ["", "# the city's gateway\n", "\n\n"])
def test_an_empty_config_file_is_refused_not_run_on_the_demo_city(tmp_path, text):
    """An emptied config (a copy cut off, a deploy that wrote nothing) passed `--check` and ran the demo city's tables
    and the default database: a city's cases sent to the demo's departments."""
    written = tmp_path / "gateway.yaml"
    written.write_text(text)
    with pytest.raises(GatewayConfigError, match=f"^{re.escape(str(written))}: empty \\(or comments only\\): write "
                       "the city's tables and database at least"):
        load_gateway_config(written)
