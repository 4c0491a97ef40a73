"""Whom a real web server trusts: the names it answers to (DNS rebinding), the Origin of a
post, the case of an Authorization scheme, and how many wrong passwords one address may try.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO, make_env, wait_for_http
from tests.figures import record


@pytest.fixture(scope="module")
def served(redis_url, tmp_path_factory):
    """`signdigits serve` as a user starts it on loopback, with a broker configured (so no
    embedded workers), one configured name and a wildcard one."""
    from signdigits.stack.valkey import free_port

    tmp = tmp_path_factory.mktemp("trust")
    port = free_port()
    env = make_env(broker_url=redis_url.rsplit("/", 1)[0] + "/13",
                   web_hosts="signdigits.test, *.lan.test")
    env["XDG_DATA_HOME"] = str(tmp)
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "signdigits", "serve", "--port",
                                str(port)], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            client.port, client.tmp = port, tmp
            yield client
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
        assert "Traceback" not in output, output


def _token(page: httpx.Response) -> str:
    return page.text.split('name="csrf-token" content="')[1].split('"')[0]


def test_a_rebound_name_gets_400_and_no_token(served):
    """A page on evil.example rebound to 127.0.0.1 sends Host: evil.example."""
    for path in ("/", "/api/jobs", "/docs"):
        refused = served.get(path, headers={"Host": "evil.example"})
        assert refused.status_code == 400, (path, refused.text)
        assert "csrf-token" not in refused.text and "set-cookie" not in refused.headers
        assert refused.text.strip().count("\n") == 0
    refused = served.post("/api/jobs", json={"folder": "/etc"},
                          headers={"Host": f"evil.example:{served.port}"})
    assert refused.status_code == 400
    record("a page on a name rebound to 127.0.0.1 (Host: evil.example)",
           {"status": refused.status_code, "answer": repr(refused.text)})
    assert served.get("/healthz", headers={"Host": "evil.example"}).json() == {"ok": True}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "signdigits.test",
                                  "a.lan.test"])
def test_its_own_address_loopback_and_configured_names_are_served(served, host):
    page = served.get("/", headers={"Host": f"{host}:{served.port}"})
    assert page.status_code == 200 and _token(page)
    served.cookies.clear()


def test_a_post_whose_origin_is_another_site_is_refused(served):
    page = served.get("/")  # our cookie and its token: the browser has both
    token, own = _token(page), f"http://127.0.0.1:{served.port}"
    missing = str(served.tmp / "no-such-folder")
    try:
        for headers in ({"Origin": "http://evil.example"},
                        {"Origin": f"http://localhost:{served.port}"},  # another origin
                        {"Origin": "null"},
                        {"Referer": "http://evil.example/page"}):  # no Origin: the Referer
            refused = served.post("/api/jobs", json={"folder": missing},
                                  headers={**headers, "X-CSRF-Token": token})
            assert refused.status_code == 403, (headers, refused.text)
            assert "cross-site" in refused.json()["detail"]
        # The page's own post (the browser's flow) and one from the same page by Referer.
        for headers in ({"Origin": own}, {"Referer": f"{own}/jobs"}):
            allowed = served.post("/api/jobs", json={"folder": missing},
                                  headers={**headers, "X-CSRF-Token": token})
            assert allowed.status_code == 400 and "no-such-folder" in allowed.text, allowed.text
    finally:
        served.cookies.clear()
    # No Origin, no Referer, no cookie: a program (curl), which carries no ambient login.
    program = served.post("/api/jobs", json={"folder": missing})
    assert program.status_code == 400 and "no-such-folder" in program.text, program.text


def _basic(user: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    return {"Authorization": f"{scheme} " + base64.b64encode(f"{user}:{password}".encode())
            .decode()}


def test_auth_schemes_in_any_case_and_a_limit_on_wrong_passwords(tmp_path):
    from signdigits.config.settings import Settings
    from signdigits.web.throttle import MAX_FAILURES
    from tests.web_server import serving

    token = "t" * 20
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", environment="production",
                        web_auth="ann:a-real-secret", web_token=token)
    with serving(settings) as client:
        for scheme in ("Basic", "basic", "BASIC"):
            answer = client.get("/api/jobs", headers=_basic("ann", "a-real-secret", scheme))
            assert answer.status_code == 200, (scheme, answer.text)
        for scheme in ("Bearer", "bearer"):
            answer = client.get("/api/jobs", headers={"Authorization": f"{scheme} {token}"})
            assert answer.status_code == 200, (scheme, answer.text)
        assert client.get("/api/jobs").status_code == 401  # no credentials: not a failure

        for attempt in range(MAX_FAILURES):
            wrong = client.get("/api/jobs", headers=_basic("ann", f"guess-{attempt}"))
            assert wrong.status_code == 401, (attempt, wrong.text)
        for headers in (_basic("ann", "one-more-guess"), _basic("ann", "a-real-secret"),
                        {"Authorization": "garbage"}):
            limited = client.get("/api/jobs", headers=headers)
            assert limited.status_code == 429, limited.text
            assert 1 <= int(limited.headers["retry-after"]) <= 60
            assert "too many failed logins" in limited.json()["detail"]
        record("wrong passwords in a loop from one address",
               {"401s": MAX_FAILURES, "then": limited.status_code,
                "Retry-After s": limited.headers["retry-after"]})
        assert client.get("/healthz").status_code == 200
