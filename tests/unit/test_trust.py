"""Who the web trusts, as pure rules: the names it answers to, whose Origin is its own,
how many wrong passwords an address may try, and the settings that configure them."""

from __future__ import annotations

import pytest

from signdigits.config.settings import Settings, default_upload_dir
from signdigits.web.auth import _names_host
from signdigits.web.hosts import allowed_hosts
from signdigits.web.throttle import LoginThrottle


@pytest.mark.parametrize(("bound", "configured", "expected"), [
    ("127.0.0.1", [], ["localhost", "127.0.0.1", "[::1]"]),
    ("::1", [], ["localhost", "127.0.0.1", "[::1]"]),
    ("127.0.0.2", ["sd.lan"], ["localhost", "127.0.0.1", "[::1]", "127.0.0.2", "sd.lan"]),
    ("192.168.1.5", [], ["192.168.1.5"]),  # no loopback name reaches a LAN address
    ("fe80::1", ["*.lan"], ["[fe80::1]", "*.lan"]),
    ("Box.LAN", [], ["box.lan"]),
    # Bound everywhere, credentials are required, which a rebound name never carries.
    ("0.0.0.0", [], ["*"]),
    ("::", ["sd.example"], ["localhost", "127.0.0.1", "[::1]", "sd.example"]),
])
def test_the_names_a_server_answers_to(bound, configured, expected):
    assert allowed_hosts(bound, configured) == expected


@pytest.mark.parametrize(("source", "host", "same"), [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
    ("http://127.0.0.1:8000/jobs/1?x=y", "127.0.0.1:8000", True),  # a Referer
    ("https://sd.example", "sd.example", True),  # default ports on both sides
    ("https://sd.example", "sd.example:443", True),
    ("http://SD.example:80", "sd.example", True),
    ("http://[::1]:8000", "[::1]:8000", True),
    ("http://evil.example", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8001", "127.0.0.1:8000", False),  # another port: another origin
    ("https://sd.example", "sd.example:80", False),
    ("null", "127.0.0.1:8000", False),  # a sandboxed frame or a file: page
    ("ftp://127.0.0.1:8000", "127.0.0.1:8000", False),
    ("http://127.0.0.1:99999", "127.0.0.1:8000", False),
])
def test_an_origin_is_ours_only_when_it_names_the_host(source, host, same):
    assert _names_host(source, host) is same


def test_failed_logins_past_the_limit_wait_for_the_oldest_to_age():
    throttle = LoginThrottle(max_failures=3, window=60)
    for second in (0, 10, 20):
        assert throttle.retry_after("a", second) == 0
        throttle.failed("a", second)
    assert throttle.retry_after("a", 30) == 30  # the failure at 0 ages out at 60
    assert throttle.retry_after("b", 30) == 0  # per address
    assert throttle.retry_after("a", 59.5) == 1
    assert throttle.retry_after("a", 60) == 0  # one slot free again
    throttle.failed("a", 60)
    assert throttle.retry_after("a", 61) == 9  # now the one at 10 decides
    assert throttle.retry_after("a", 200) == 0 and len(throttle) == 0  # forgotten


def test_the_throttle_remembers_a_bounded_number_of_addresses():
    throttle = LoginThrottle(max_failures=1, window=60, max_clients=100)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", n / 1000)
    assert len(throttle) <= 100
    assert throttle.retry_after("10.0.3.231", 1) > 0  # the newest are the ones kept


@pytest.mark.parametrize(("value", "hosts"), [
    ("sd.example", ["sd.example"]),
    ("sd.example, *.LAN ,", ["sd.example", "*.lan"]),
    ('["sd.example", "[::1]"]', ["sd.example", "[::1]"]),
    ("", []),
])
def test_web_hosts_is_a_json_or_comma_list(value, hosts, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_WEB_HOSTS", value)
    assert Settings().web_hosts == hosts


def test_uploads_without_sqlite_go_to_the_users_data_folder(tmp_path, monkeypatch):
    from signdigits.web.upload_store import upload_root

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "..")
    settings = Settings(database_url="postgresql://u@127.0.0.1/test")
    assert default_upload_dir() == tmp_path / "signdigits" / "uploads"
    assert upload_root(settings) == (tmp_path / "signdigits" / "uploads").resolve()
