"""Every bad setting, path or server ends in one line naming it, never in a traceback.

Each test runs the real ``signdigits`` (or ``celery``) command as a subprocess, against
real SQLite files, a real PostgreSQL and a real Valkey server. Exit codes: 2 for a
value that can never work (Click's code for usage errors), 1 for a request that failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import make_env, run_cli

# Root reads and writes any file; without these two capabilities file modes apply to it.
UNPRIVILEGED = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
                if os.geteuid() == 0 else [])


def one_line_error(result, code: int, *needles: str) -> str:
    """The error line, after checking it is the only output and names ``needles``."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert result.returncode == code, (result.returncode, lines[0])
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def sqlite_with_jobs(path: Path, *jobs: dict) -> str:
    """A migrated SQLite file holding ``jobs`` (Job columns), each with ten pending images."""
    return database_with_jobs(f"sqlite:///{path}", *jobs)


def database_with_jobs(url: str, *jobs: dict) -> str:
    """``url`` migrated, holding ``jobs`` too (Job columns), each with ten pending images."""
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.migrate import upgrade
    from signdigits.db.models import Job
    from signdigits.db.session import session_factory

    upgrade(url)
    with session_factory(url).begin() as session:
        for columns in jobs:
            job = Job(**{"id": uuid.uuid4().hex, "root": "/photos", "threshold": 0.5,
                         "batch_size": 10, "total_images": 10, "total_batches": 1,
                         "model_version": "test", "inline": False, **columns})
            create_job(session, job=job)
            add_manifest(session, job_id=job.id, rows=[(0, f"{n}.jpg") for n in range(10)])
    return url


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("ALLOWED_ROOTS", "/data", "'/data'"),
        ("DATABASE_URL", "postgresq://me:hunter2@db/sd", "'postgresq://me:***@db/sd'"),
        ("DATABASE_URL", "sqlite//sd.db", "'sqlite//sd.db'"),
        ("BATCH_SIZE", "abc", "'abc'"),
        ("BROKER_URL", "http://me:hunter2@127.0.0.1:1/0", "'http://me:***@127.0.0.1:1/0'"),
        # Found by fuzzing: accepted, then a traceback or 500 (timedelta and socket
        # timeouts overflowed), or a root each process resolved in its own folder.
        ("STALL_SECONDS", "9" * 20, f"'{'9' * 20}'"),
        ("PREDICT_TIMEOUT", "inf", "'inf'"),
        ("ALLOWED_ROOTS", '["relative"]', """'["relative"]'"""),
    ],
)
def test_a_bad_setting_is_one_line_naming_variable_and_value(variable, value, shown, tmp_path):
    settings = {"database_url": f"sqlite:///{tmp_path / 'sd.db'}", variable.lower(): value}
    env = make_env(**settings)
    for command in (["status"], ["submit", str(tmp_path)]):
        result = run_cli(*command, env=env, cwd=tmp_path)
        line = one_line_error(result, 2, f"SIGNDIGITS_{variable}={shown}", "expected")
        assert "hunter2" not in line
    assert not (tmp_path / "sd.db").exists()  # nothing recorded, not even a database


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("redis://127.0.0.1:70000/0", "from 1 to 65535"),
        ("redis://:hunter2/x@127.0.0.1:6379/0", "must be %-escaped"),
        ("redis://127.0.0.1:6379/abc", "must be a number"),
        ("redis://127.0.0.1:6379/²", "must be a number"),
        ("redis://127.0.0.1:0/0", "port 0"),
    ],
)
def test_a_redis_url_that_would_fail_at_the_first_connect_is_refused_up_front(value, reason,
                                                                              tmp_path):
    """Until checked here, each was a traceback from kombu or redis-py inside the command."""
    env = make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}", broker_url=value)
    for command in (["status"], ["submit", str(tmp_path)]):
        line = one_line_error(run_cli(*command, env=env, cwd=tmp_path), 2,
                              "SIGNDIGITS_BROKER_URL=", reason)
        assert "hunter2" not in line
    assert not (tmp_path / "sd.db").exists()


@pytest.mark.parametrize("command", [["status"], ["results", "latest"], ["resume", "latest"],
                                     ["cancel", "latest"]])
def test_read_only_commands_never_create_a_database(command, tmp_path, redis_url):
    missing = tmp_path / "nonexistent" / "dir" / "sd.db"
    env = make_env(database_url=f"sqlite:///{missing}", broker_url=redis_url)
    one_line_error(run_cli(*command, env=env, cwd=tmp_path), 1, str(missing))
    assert not missing.parent.parent.exists()


def test_read_only_commands_never_migrate_an_empty_postgres_schema(tmp_path):
    from tests.conftest import fresh_postgres_schema

    with fresh_postgres_schema() as url:
        result = run_cli("status", env=make_env(database_url=url), cwd=tmp_path)
        one_line_error(result, 1, "holds no signdigits tables")
        from sqlalchemy import create_engine, inspect

        engine = create_engine(url)
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
        engine.dispose()


def test_unreachable_broker_is_refused_before_a_job_is_recorded(tmp_path):
    from signdigits.stack.valkey import free_port

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"not looked at")
    database = tmp_path / "sd.db"
    url = sqlite_with_jobs(database)
    broker = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    result = run_cli("submit", str(photos), cwd=tmp_path,
                     env=make_env(database_url=url, broker_url=broker))
    line = one_line_error(result, 1, "SIGNDIGITS_BROKER_URL")
    assert "hunter2" not in line and "cannot reach the broker" in line
    assert _job_count(url) == 0  # no failed job left behind


def test_a_broker_port_that_accepts_and_never_answers_is_a_clear_line_not_a_hang(tmp_path):
    """A listening socket nobody reads: kombu's connect deadline alone never fired."""
    import socket

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"not looked at")
    url = sqlite_with_jobs(tmp_path / "sd.db")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        for broker, command in (
                (f"redis://127.0.0.1:{port}/0", ["submit", str(photos)]),
                (f"redis://127.0.0.1:{port}/0", ["ready", "signdigits@nowhere"]),
                (f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none", ["submit", str(photos)])):
            env = make_env(database_url=url, broker_url=broker)
            line = one_line_error(run_cli(*command, cwd=tmp_path, env=env, timeout=60), 1,
                                  "cannot reach the broker")
            assert "Timeout" in line
            # `ready` records nothing: saying so had made no sense.
            assert line.endswith("nothing was recorded") == (command[0] == "submit"), line
    assert _job_count(url) == 0


def _job_count(url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from signdigits.db.models import Job

    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(Job))
    engine.dispose()
    return count


def _as_unprivileged(*args: str, env: dict[str, str], cwd: Path):
    return subprocess.run([*UNPRIVILEGED, sys.executable, "-m", "signdigits", *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_read_only_sqlite_file_submit_and_cancel_change_nothing(tmp_path, redis_url):
    database = tmp_path / "sd.db"
    url = sqlite_with_jobs(database, {})
    database.chmod(0o444)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"never read")
    env = make_env(database_url=url, broker_url=redis_url)
    one_line_error(_as_unprivileged("submit", str(photos), env=env, cwd=tmp_path), 1,
                   str(database), "readonly")
    one_line_error(_as_unprivileged("cancel", "latest", env=env, cwd=tmp_path), 1,
                   str(database), "readonly")
    database.chmod(0o644)
    assert _job_count(url) == 1
    status = run_cli("status", "latest", env=env, cwd=tmp_path)
    # The job is as it was: not cancelled (the recorded job never had a producer).
    assert status.returncode == 0 and "cancelled" not in status.stdout, status.stdout


def test_run_in_a_folder_it_cannot_write(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        # The default database lives in the user's data folder: make that the locked one.
        env = {**make_env(), "XDG_DATA_HOME": str(locked)}
        result = _as_unprivileged("run", str(tmp_path), env=env, cwd=locked)
        one_line_error(result, 1, str(locked / "signdigits" / "signdigits.db"),
                       "SIGNDIGITS_DATABASE_URL")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_results_to_a_missing_folder_writes_nothing(tmp_path):
    url = sqlite_with_jobs(tmp_path / "sd.db", {})
    target = tmp_path / "nonexistent" / "x.csv"
    result = run_cli("results", "latest", "--format", "csv", "--output", str(target),
                     env=make_env(database_url=url), cwd=tmp_path)
    one_line_error(result, 1, str(target))
    assert not target.parent.exists()


def test_usage_errors_exit_2_and_failures_exit_1(tmp_path):
    url = sqlite_with_jobs(tmp_path / "sd.db", {})
    env = make_env(database_url=url)
    one_line_error(run_cli("results", "latest", "--format", "xml", env=env, cwd=tmp_path), 2,
                   "--format")
    one_line_error(run_cli("status", "no-such-job", env=env, cwd=tmp_path), 1, "no-such-job")


@pytest.mark.parametrize("command", ["run", "submit", "predict"])
@pytest.mark.parametrize("value", ["nan", "inf", "1.5", "-0.1"])
def test_a_threshold_outside_0_to_1_is_named_as_such(command, value, tmp_path):
    # NaN passed typer's own range check and then failed it as "not <= 1".
    env = make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}")
    result = run_cli(command, "--threshold", value, str(tmp_path), env=env, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "'--threshold': must be a number from 0 to 1" in result.stderr, result.stderr
    assert not (tmp_path / "sd.db").exists()


@pytest.mark.parametrize("bench", ["bench", "bench-web"])
def test_a_bench_given_a_bad_database_or_an_imageless_source_stops_before_it_starts(
        bench, tmp_path):
    """Both were tracebacks, the source's once the workers were up."""
    (tmp_path / "notes.txt").write_text("no images here")
    env = make_env(batch_size="8")
    one_line_error(run_cli(bench, "--database", "mysql://me:hunter2@db/sd", env=env,
                           cwd=tmp_path), 2, "--database 'mysql://me:***@db/sd'", "expected")
    one_line_error(run_cli(bench, "--source", str(tmp_path), env=env, cwd=tmp_path), 2,
                   "no images to copy")
    one_line_error(run_cli(bench, env=make_env(batch_size="x"), cwd=tmp_path), 2,
                   "SIGNDIGITS_BATCH_SIZE='x'")


def test_predict_with_a_bad_setting_is_one_line_and_names_are_escaped(tmp_path):
    one_line_error(run_cli("predict", "x.jpg", env=make_env(batch_size="x"), cwd=tmp_path), 2,
                   "SIGNDIGITS_BATCH_SIZE='x'")
    odd = tmp_path / "a\x1b[31m.jpg"
    odd.write_bytes(b"not an image")
    result = run_cli("predict", str(odd), env=make_env(), cwd=tmp_path)
    assert result.returncode == 1 and "\x1b" not in result.stdout + result.stderr
    assert "a\\x1b[31m.jpg: error:" in result.stderr


def test_status_says_when_it_shows_only_the_newest_jobs(tmp_path):
    from signdigits.db.models import utcnow

    now = utcnow()
    url = sqlite_with_jobs(tmp_path / "sd.db", *(
        {"created_at": now - timedelta(minutes=n)} for n in range(51)))
    result = run_cli("status", env=make_env(database_url=url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the 50 newest of 51 jobs" in result.stdout


def test_a_cancelled_job_shows_the_rate_of_the_images_classified(tmp_path):
    """2 images classified in the job's first 10 s, 8 cancelled 20 s in: 0.2 images/s."""
    from sqlalchemy import select, update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.models import Image, ImageStatus, Job, utcnow
    from signdigits.db.session import session_factory

    created = utcnow() - timedelta(seconds=20)
    url = sqlite_with_jobs(tmp_path / "sd.db", {"created_at": created})
    with session_factory(url).begin() as session:
        session.execute(
            update(Image).where(Image.path.in_(["0.jpg", "1.jpg"]))
            .values(status=ImageStatus.DONE, digit=1, confidence=0.9, below_threshold=False,
                    finished_at=created + timedelta(seconds=10)))
        for job_id in session.scalars(select(Job.id)):
            refresh_batch_counts(session, job_id=job_id)  # what a worker's store does
    env = make_env(database_url=url)
    cancel = run_cli("cancel", "latest", env=env, cwd=tmp_path)
    assert cancel.returncode == 0, cancel.stderr
    result = run_cli("status", "latest", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if "cancelled" in line]
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[7] == "0.2", row  # the img/s column; counting the cancelled ones gave 0.5


def test_cancel_refuses_a_job_that_already_ended_and_leaves_it_as_it_was(tmp_path):
    from sqlalchemy import select, update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.models import Image, ImageStatus, Job, utcnow
    from signdigits.db.session import session_factory

    url = sqlite_with_jobs(tmp_path / "sd.db", {"submitted_at": utcnow()})
    with session_factory(url).begin() as session:
        session.execute(update(Image).values(status=ImageStatus.DONE, digit=1, confidence=0.9,
                                             below_threshold=False, finished_at=utcnow()))
        refresh_batch_counts(session, job_id=session.scalar(select(Job.id)))
    env = make_env(database_url=url)
    one_line_error(run_cli("cancel", "latest", env=env, cwd=tmp_path), 1, "already ended")
    status = run_cli("status", "latest", env=env, cwd=tmp_path)
    assert "cancelled" not in status.stdout and " done " in status.stdout, status.stdout


def test_a_job_ref_no_job_can_have_is_refused_and_never_picks_the_only_job(tmp_path):
    """'' had matched every id as a prefix (`cancel ''` cancelled the only job), and a
    name that is not UTF-8 was a traceback from the database driver."""
    url = sqlite_with_jobs(tmp_path / "sd.db", {})
    env = make_env(database_url=url)
    for ref in ("", "\udcff", "a_b", "0" * 33):
        for command in ("status", "cancel", "results"):
            one_line_error(run_cli(command, ref, env=env, cwd=tmp_path), 1, "no job")
    status = run_cli("status", "latest", env=env, cwd=tmp_path)
    assert "cancelled" not in status.stdout and "submission interrupted" in status.stdout


def test_a_symlink_loop_as_folder_or_model_is_one_line(tmp_path, redis_url):
    """Path.resolve() raises RuntimeError on a loop, which no error check caught."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    env = make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}", broker_url=redis_url)
    one_line_error(run_cli("submit", str(tmp_path / "a"), env=env, cwd=tmp_path), 1,
                   "no such folder")
    one_line_error(run_cli("predict", "x.jpg", env={**env, "SIGNDIGITS_MODEL_PATH": str(
        tmp_path / "a")}, cwd=tmp_path), 1, "Too many levels of symbolic links")


def test_a_job_of_one_photo_says_where_one_photo_is_read(tmp_path, redis_url):
    """`submit photo.jpg` said only "not a folder": the person meant the photo read."""
    (tmp_path / "photo.jpg").write_bytes(b"not looked at")
    env = make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}", broker_url=redis_url)
    one_line_error(run_cli("submit", str(tmp_path / "photo.jpg"), env=env, cwd=tmp_path), 1,
                   "photo.jpg: not a folder", "signdigits predict FILE")


def test_a_folder_whose_own_name_is_not_utf8_is_named_in_one_line(tmp_path, redis_url):
    """The job's root is text: the database driver's UnicodeEncodeError had named nothing."""
    import os

    folder = os.fsdecode(os.fsencode(tmp_path) + b"/photos\xff")
    os.mkdir(folder)
    (Path(folder) / "a.jpg").write_bytes(b"not looked at")
    url = sqlite_with_jobs(tmp_path / "sd.db")
    env = make_env(database_url=url, broker_url=redis_url)
    one_line_error(run_cli("submit", folder, env=env, cwd=tmp_path), 1, "photos",
                   "own name is not UTF-8")
    assert _job_count(url) == 0


def test_flower_without_credentials_outside_development_is_refused(tmp_path, redis_url):
    from signdigits.stack.valkey import free_port

    env = make_env(environment="production", broker_url=redis_url)
    # Before this fix Flower started and answered 200 to anyone: the timeout ends it.
    result = run_cli("flower", "--address", "0.0.0.0", "--port", str(free_port()), env=env,
                     cwd=tmp_path, timeout=60)
    one_line_error(result, 2, "SIGNDIGITS_FLOWER_BASIC_AUTH")


def test_celery_command_without_a_broker_url_refuses(tmp_path):
    # `inspect ping`: before this fix it asked whatever Redis answers on 127.0.0.1:6379.
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "signdigits.worker", "inspect", "ping",
         "--timeout", "1"],
        env=make_env(), cwd=Path(__file__).resolve().parent.parent, capture_output=True,
        text=True, timeout=120, stdin=subprocess.DEVNULL)
    one_line_error(result, 2, "SIGNDIGITS_BROKER_URL is not set")
