"""The webhook's rules that need no server: the signature and which URLs are called."""

from __future__ import annotations

import pytest

from signdigits.config.webhooks import (
    WebhookRefused,
    check_webhook_url,
    shown_url,
    signature,
    signing_key,
)


def test_the_signature_is_the_standard_webhooks_specifications_own_example():
    # The specification's published vector: any of its libraries verifies what we send.
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert signature(key, message_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330,
                     body=b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_secret_is_whsec_base64_or_bare_base64_of_24_bytes_or_more():
    assert signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == signing_key(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    with pytest.raises(ValueError, match="base64"):
        signing_key("whsec_not base64!")
    with pytest.raises(ValueError, match="at least 24"):
        signing_key("whsec_c2hvcnQ=")


@pytest.mark.parametrize("url, reason", [
    ("ftp://example.org/hook", "only http:// and https://"),
    ("http:///hook", "only http:// and https://"),
    ("http://169.254.169.254/latest/meta-data/", "link-local or cloud metadata"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fd00:ec2::254]/hook", "metadata"),
    ("http://0.0.0.0/hook", "not an address"),
    # http.client refuses these at every attempt, and a lone surrogate cannot be stored.
    ("http://127.0.0.1/a b", "cannot hold spaces"),
    ("http://127.0.0.1/\ud800", "unpaired surrogates"),
    ("http://127.0.0.1/x\x00", "control characters"),
])
def test_urls_never_called(url, reason):
    with pytest.raises(WebhookRefused, match=reason):
        check_webhook_url(url, allowed_hosts=[], production=False)


def test_private_addresses_only_in_development_or_when_named():
    assert check_webhook_url("http://127.0.0.1:9/h", allowed_hosts=[], production=False)
    with pytest.raises(WebhookRefused, match="private or loopback"):
        check_webhook_url("http://127.0.0.1:9/h", allowed_hosts=[], production=True)
    with pytest.raises(WebhookRefused, match="private or loopback"):
        check_webhook_url("http://10.1.2.3/h", allowed_hosts=[], production=True)
    assert check_webhook_url("http://127.0.0.1:9/h", allowed_hosts=["127.0.0.1"],
                             production=True)
    # IPv6's loopback, in its reserved ::/8, is a loopback like 127.0.0.1 (it was "not an
    # address a server can be called on").
    assert check_webhook_url("http://[::1]:9/h", allowed_hosts=[], production=False)
    with pytest.raises(WebhookRefused, match="private or loopback"):
        check_webhook_url("http://[::1]:9/h", allowed_hosts=[], production=True)


def test_allowed_hosts_limit_every_call_before_any_lookup():
    with pytest.raises(WebhookRefused, match="not in SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS"):
        check_webhook_url("https://hooks.example.org/x", allowed_hosts=["127.0.0.1"],
                          production=False)
    # A name pattern matches without resolving (resolve=False: no lookup here).
    check_webhook_url("https://a.hooks.example.org/x", allowed_hosts=["*.hooks.example.org"],
                      production=True, resolve=False)
    # Listed or not, the metadata address is never called.
    with pytest.raises(WebhookRefused, match="metadata"):
        check_webhook_url("http://169.254.169.254/", allowed_hosts=["169.254.169.254"],
                          production=False)


def test_the_shown_url_keeps_no_credentials_or_query():
    assert shown_url("https://u:tok@h.example:8443/p/q?key=abc#f") == "https://h.example:8443/p/q"


def test_the_event_names_every_model_that_read_the_job():
    """A model promoted while the job ran: the event names both, each with its images and
    the threshold it flagged them by; `model_version` and `threshold` stay the submit's."""
    import json
    from datetime import UTC, datetime

    from signdigits.db.models import Job, JobState
    from signdigits.db.progress import JobSummary
    from signdigits.worker.thresholds import ModelRead
    from signdigits.worker.webhook import event_body

    created = datetime(2027, 1, 1, tzinfo=UTC)
    job = Job(id="a" * 32, root="/photos", threshold=0.95, threshold_from_model=True,
              model_version="v1", created_at=created)
    summary = JobSummary(job=job, state=JobState.DONE, total=10, pending=0, done=10, errors=0,
                         cancelled=0, below_threshold=3, stalled=False, last_finished=created)
    data = json.loads(event_body(summary, [ModelRead("v2", 6, 0.6),
                                           ModelRead("v1", 4, 0.95)]))["data"]
    assert data["models"] == [{"version": "v2", "images": 6, "threshold": 0.6},
                              {"version": "v1", "images": 4, "threshold": 0.95}]
    assert (data["model_version"], data["threshold"]) == ("v1", 0.95)
