"""Every event of a batch's task names it after its job and batch, whatever Flower sees first.

The flake this guards against: Flower listed a job's first batch as
``signdigits.classify_batch`` because the producer's ``task-sent`` event, published just
after the message, reached it after the worker's ``task-received``. That Celery's event
state then keeps the name is checked in ``tests/unit/test_task_events.py``.
"""

from __future__ import annotations

import shutil

from signdigits.broker.app import create_app
from signdigits.broker.events import TaskEvents
from signdigits.broker.messages import display_name
from signdigits.config.settings import Settings
from tests.conftest import make_env, run_cli, sample_images


def test_task_sent_events_carry_the_display_name(redis_url, dataset, tmp_path):
    broker_url = redis_url.rsplit("/", 1)[0] + "/15"
    app = create_app(Settings(broker_url=broker_url))
    photos = tmp_path / "photos"
    photos.mkdir()
    for n, (path, _) in enumerate(sample_images(dataset, 1)[:3]):
        shutil.copyfile(path, photos / f"{n}.jpg")
    with TaskEvents(app) as events:  # no worker: the three tasks are only sent
        submitted = run_cli("submit", str(photos), "--batch-size", "1", cwd=tmp_path,
                            env=make_env(broker_url=broker_url,
                                         database_url=f"sqlite:///{tmp_path / 'sd.db'}"))
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.split()[0]
        sent = []
        for n in range(3):
            events.wait_for(job_id, n, until=lambda seen: "sent" in seen, timeout=30)
            sent += [e for e in events.events_of(job_id, n) if e["type"] == "task-sent"]
    with app.connection_for_write() as connection:
        connection.default_channel.client.delete("signdigits")  # the three unconsumed tasks
    assert sorted(e["name"] for e in sent) == [display_name(job_id, n) for n in range(3)]
