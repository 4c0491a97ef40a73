"""The settings' messages: each bad ``SIGNDIGITS_*`` value is one line naming the variable,
the value (secrets and passwords masked) and what is expected.

The commands' exit codes and that they print only this line are the integration tier's
(``tests/test_cli_errors.py``); the wording, the masking and the renamed variable are
checked here, on the settings alone.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from signdigits.config.settings import (
    Settings,
    SettingsInvalid,
    absolute_sqlite_url,
    checked_database_url,
    describe_validation_error,
    get_settings,
    is_placeholder,
    masked_password,
    shown_value,
)

DB = "expected sqlite:///path/to/file.db or postgresql://user:password@host/database"


@pytest.mark.parametrize(("variables", "message"), [
    ({"BATCH_SIZE": "abc"},
     "SIGNDIGITS_BATCH_SIZE='abc': expected an integer (images per Celery task)"),
    ({"BATCH_SIZE": "0"},
     "SIGNDIGITS_BATCH_SIZE='0': expected a number at least 1 (images per Celery task)"),
    ({"BATCH_SIZE": "5000"},
     "SIGNDIGITS_BATCH_SIZE='5000': expected a number at most 4096 (images per Celery task)"),
    ({"THRESHOLD": "1.5"}, "SIGNDIGITS_THRESHOLD='1.5': expected a number at most 1.0 "
                           "(default confidence threshold; unset: the model's)"),
    ({"INLINE": "maybe"}, "SIGNDIGITS_INLINE='maybe': expected true or false "
                          "(ship image bytes inside the messages)"),
    ({"RUNTIME": "torch"}, "SIGNDIGITS_RUNTIME='torch': expected 'onnx' or 'tensorflow'"),
    ({"VISIBILITY_TIMEOUT": "1"}, "SIGNDIGITS_VISIBILITY_TIMEOUT='1': expected a number at "
     "least 5 (seconds before Redis redelivers an unacknowledged task)"),
    ({"MAX_ATTEMPTS": "0"}, "SIGNDIGITS_MAX_ATTEMPTS='0': expected a number at least 1 "
                            "(tries per batch before its rows get errors)"),
    # Found by fuzzing: accepted, then overflows in timedelta and socket timeouts.
    ({"STALL_SECONDS": "9" * 20}, f"SIGNDIGITS_STALL_SECONDS='{'9' * 20}': expected a number "
     "at most 2592000 (no progress this long: job is stalled)"),
    ({"PREDICT_TIMEOUT": "inf"}, "SIGNDIGITS_PREDICT_TIMEOUT='inf': expected a number at "
     "most 3600.0 (seconds POST /api/predict waits for a worker)"),
    ({"PREDICT_TIMEOUT": "0"}, "SIGNDIGITS_PREDICT_TIMEOUT='0': expected a number more "
     "than 0.0 (seconds POST /api/predict waits for a worker)"),
    ({"PREDICT_MAX_WAITING": "0"}, "SIGNDIGITS_PREDICT_MAX_WAITING='0': expected a number "
     "at least 1 (predictions POST /api/predict lets wait at once)"),
    ({"DATABASE_URL": "sqlite//sd.db"}, f"SIGNDIGITS_DATABASE_URL='sqlite//sd.db': {DB}"),
    ({"DATABASE_URL": "sqlite:///:memory:"},
     f"SIGNDIGITS_DATABASE_URL='sqlite:///:memory:': {DB} (a file path)"),
    ({"DATABASE_URL": "postgresq://me:hunter2@db/sd"},
     f"SIGNDIGITS_DATABASE_URL='postgresq://me:***@db/sd': {DB}"),
    ({"BROKER_URL": "http://me:hunter2@127.0.0.1:1/0"},
     "SIGNDIGITS_BROKER_URL='http://me:***@127.0.0.1:1/0': expected a Redis URL such as "
     "redis://:password@host:6379/0 (schemes: redis, rediss, redis+socket, sentinel)"),
    ({"ALLOWED_ROOTS": '["relative"]'},
     """SIGNDIGITS_ALLOWED_ROOTS='["relative"]': expected absolute paths, without NUL bytes"""),
    ({"ALLOWED_ROOTS": "/data"}, """SIGNDIGITS_ALLOWED_ROOTS='/data': expected a JSON list of """
     """folders such as ["/data"] (Expecting value: line 1 column 1 (char 0))"""),
    ({"WEB_HOSTS": "a.example:8000"}, "SIGNDIGITS_WEB_HOSTS='a.example:8000': expected host "
     "names such as signdigits.example.com or *.example.com, without a port; not "
     "'a.example:8000'"),
    ({"WEB_HOSTS": '["a.example"'}, """SIGNDIGITS_WEB_HOSTS='["a.example"': expected a """
     "JSON list or a comma list of host names"),
    ({"BATCH_SIZE": "abc", "CONCURRENCY": "0"},  # every bad variable, on one line
     "SIGNDIGITS_BATCH_SIZE='abc': expected an integer (images per Celery task); "
     "SIGNDIGITS_CONCURRENCY='0': expected a number at least 1 (worker processes per worker)"),
], ids=lambda v: "+".join(v) if isinstance(v, dict) else None)
def test_a_bad_variable_is_one_line_naming_it_its_value_and_what_is_expected(
        variables, message, monkeypatch):
    for name, value in variables.items():
        monkeypatch.setenv(f"SIGNDIGITS_{name}", value)
    with pytest.raises(SettingsInvalid) as refused:
        get_settings()
    assert str(refused.value) == message
    assert "\n" not in message and "hunter2" not in message


@pytest.mark.parametrize(("url", "reason"), [
    ("redis://127.0.0.1:70000/0", "the port is not a number from 1 to 65535"),
    ("redis://127.0.0.1:abc/0", "the port is not a number from 1 to 65535"),
    ("redis://:hunter2/x@127.0.0.1:6379/0", "must be %-escaped"),
    ("redis://127.0.0.1:6379/abc", "the database after the host must be a number (0-15), "
                                   "not 'abc'"),
    ("redis://127.0.0.1:6379/²", "must be a number"),
    ("redis://127.0.0.1:0/0", "port 0 is no port"),
    # An empty port: redis-py quietly connected to 6379, someone else's server perhaps.
    ("redis://:hunter2@127.0.0.1:/0", "the port after ':' is empty"),
    ("redis://[::1]:/0", "the port after ':' is empty"),
])
def test_a_redis_url_that_would_fail_at_the_first_connect_is_refused(url, reason, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_BROKER_URL", url)
    with pytest.raises(SettingsInvalid) as refused:
        get_settings()
    assert str(refused.value).startswith("SIGNDIGITS_BROKER_URL=")
    assert reason in str(refused.value) and "hunter2" not in str(refused.value)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@host:6380/15",
                                 "redis://127.0.0.1/0", "redis://[::1]:6379",
                                 "redis+socket:///run/valkey.sock", "sentinel://host:26379"])
def test_good_redis_urls_are_taken(url, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_BROKER_URL", url)
    assert get_settings().broker_url == url


@pytest.mark.parametrize("unset", ["", "   "])
def test_an_empty_broker_url_is_unset(unset, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_BROKER_URL", unset)
    assert get_settings().broker_url is None


@pytest.mark.parametrize(("value", "taken"), [
    ("development", "development"), ("production", "production"),
    ("Production", "production"), (" PRODUCTION ", "production"),
    ("dev", None), ("staging", None), ("", None),
])
def test_the_environment_is_development_or_production_only(value, taken, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_ENVIRONMENT", value)
    if taken:
        assert get_settings().environment == taken
    else:
        with pytest.raises(SettingsInvalid, match=r"SIGNDIGITS_ENVIRONMENT=.*: expected "
                                                  r"'development' or 'production'$"):
            get_settings()


def test_unset_the_environment_is_development(monkeypatch):
    assert get_settings().environment == "development"


@pytest.mark.parametrize("field", ["web_auth", "web_token", "flower_basic_auth"])
def test_secrets_are_secret_strings_never_shown(field):
    settings = Settings(**{field: "admin:hunter2"})
    assert isinstance(getattr(settings, field), SecretStr)
    assert getattr(settings, field).get_secret_value() == "admin:hunter2"
    secret = getattr(settings, field)
    for shown in (repr(settings), str(settings), settings.model_dump_json(),
                  shown_value(field, secret), shown_value(field, "admin:hunter2")):
        assert "hunter2" not in shown


@pytest.mark.parametrize(("field", "value", "shown"), [
    ("web_auth", "admin:hunter2", "'admin:***'"),
    ("flower_basic_auth", "flower:hunter2", "'flower:***'"),
    ("web_token", "hunter2", "'***'"),
    ("web_token", "tok:hunter2", "'tok:***'"),
    ("web_auth", None, "unset"),
    ("database_url", "postgresql://me:hunter2@db/sd", "'postgresql://me:***@db/sd'"),
    ("broker_url", "redis://:hunter2@host:6379/0", "'redis://:***@host:6379/0'"),
    ("batch_size", "abc", "'abc'"),
])
def test_shown_value_masks_secrets_and_passwords(field, value, shown):
    assert shown_value(field, value) == shown


@pytest.mark.parametrize("bad", [1234, ["admin:hunter2"], {"admin": "hunter2"}])
@pytest.mark.parametrize("field", ["web_auth", "web_token", "flower_basic_auth"])
def test_a_secret_of_the_wrong_type_is_named_and_masked(field, bad):
    with pytest.raises(ValidationError) as refused:
        Settings(**{field: bad})
    message = describe_validation_error(refused.value)
    assert message.startswith(f"SIGNDIGITS_{field.upper()}=") and "expected text" in message
    assert "hunter2" not in message and "1234" not in message


@pytest.mark.parametrize(("secret", "placeholder"), [
    ("admin:changeme", True), ("admin:CHANGEME", True), ("admin:", True),
    ("admin:password", True), ("admin:secret", True), ("admin:change-me", True),
    ("admin:hunter2", False), ("changeme:hunter2", False), (None, False),
])
def test_placeholder_passwords(secret, placeholder):
    assert is_placeholder(SecretStr(secret) if secret else None) is placeholder


def test_a_placeholder_flower_password_is_refused_outside_development(monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_FLOWER_BASIC_AUTH", "admin:changeme")
    assert get_settings().flower_basic_auth is not None  # development: taken
    get_settings.cache_clear()
    monkeypatch.setenv("SIGNDIGITS_ENVIRONMENT", "production")
    with pytest.raises(SettingsInvalid) as refused:
        get_settings()
    assert str(refused.value) == ("SIGNDIGITS_FLOWER_BASIC_AUTH holds a placeholder password "
                                  "(SIGNDIGITS_ENVIRONMENT=production: set a real one)")


def test_tf_threads_is_read_as_model_threads_with_a_one_line_warning(monkeypatch, capsys):
    monkeypatch.setenv("SIGNDIGITS_TF_THREADS", "3")
    assert get_settings().model_threads == 3
    assert capsys.readouterr().err == ("warning: SIGNDIGITS_TF_THREADS is deprecated; use "
                                       "SIGNDIGITS_MODEL_THREADS (it is read for now)\n")
    get_settings()  # the settings are read once a process: so is the warning
    assert capsys.readouterr().err == ""


def test_model_threads_wins_over_tf_threads_and_warns_of_nothing_alone(monkeypatch, capsys):
    monkeypatch.setenv("SIGNDIGITS_MODEL_THREADS", "2")
    assert get_settings().model_threads == 2
    assert capsys.readouterr().err == ""
    get_settings.cache_clear()
    monkeypatch.setenv("SIGNDIGITS_TF_THREADS", "3")
    assert get_settings().model_threads == 2
    assert "SIGNDIGITS_TF_THREADS is deprecated" in capsys.readouterr().err


def test_a_bad_tf_threads_is_named_by_the_variable_that_was_set(monkeypatch, capsys):
    monkeypatch.setenv("SIGNDIGITS_TF_THREADS", "abc")
    with pytest.raises(SettingsInvalid) as refused:
        get_settings()
    assert str(refused.value) == ("SIGNDIGITS_TF_THREADS='abc': expected an integer (model "
                                  "threads per worker process, either runtime (0: all))")
    assert capsys.readouterr().err.count("\n") == 1  # the warning, one line


@pytest.mark.parametrize("url", ["postgresql+psycopg://me:hun@ter2@db/sd",
                                 "postgresql+psycopg://me:hun/ter2@db/sd",
                                 "redis://:hun@ter2@127.0.0.1:6379/0",
                                 "redis://:hun\nter2@127.0.0.1:6379/0"])
def test_a_password_with_an_unescaped_at_or_slash_is_masked_whole(url):
    from signdigits.db.session import shown_url

    for shown in (shown_value("database_url", url), shown_value("broker_url", url)):
        assert "ter2" not in shown and "***@" in shown
    if url.startswith("postgresql"):
        assert shown_url(url) == "postgresql+psycopg://me:***@db/sd"


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://user:pw@host/0", "redis://user:***@host/0"),
    ("redis://host:6379/0", "redis://host:6379/0"),  # no password: nothing to hide
    ("postgresql://me@db/sd", "postgresql://me@db/sd"),
    ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
])
def test_masked_password(url, masked):
    assert masked_password(url) == masked


@pytest.mark.parametrize(("url", "checked"), [
    ("postgresql://me@db/sd", "postgresql+psycopg://me@db/sd"),
    ("postgres://me@db/sd", "postgresql+psycopg://me@db/sd"),
    ("postgresql+psycopg://me@db/sd", "postgresql+psycopg://me@db/sd"),
    ("sqlite:////abs/sd.db", "sqlite:////abs/sd.db"),
])
def test_database_urls_as_sqlalchemy_takes_them(url, checked):
    assert checked_database_url(url) == checked


@pytest.mark.parametrize("url", ["postgresql+psycopg2://me@db/sd", "mysql://me@db/sd",
                                 "sqlite://", "sqlite:///:memory:", "sqlite//sd.db", ""])
def test_database_urls_no_command_can_use_are_refused(url):
    with pytest.raises(ValueError, match="expected sqlite:///path/to/file.db"):
        checked_database_url(url)


def test_a_relative_sqlite_path_is_made_absolute(monkeypatch):
    monkeypatch.chdir("/")
    assert absolute_sqlite_url("sqlite:///sd.db") == "sqlite:////sd.db"
    assert absolute_sqlite_url("sqlite:///sd.db?mode=ro") == "sqlite:////sd.db?mode=ro"
    for kept in ("sqlite:////abs/sd.db", "sqlite:///:memory:", "postgresql://me@db/x"):
        assert absolute_sqlite_url(kept) == kept
