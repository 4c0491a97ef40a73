"""``broker/events.py``'s rules on made-up events (no broker): a batch's history, the
completions counted against an expected number, the seconds per phase; and how Celery's
event state (Flower's) names a batch's task whatever event arrives first."""

from __future__ import annotations

import time

import pytest
from celery.events.state import State

from signdigits.broker.app import create_app
from signdigits.broker.events import TaskEvents, job_and_batch, phases
from signdigits.broker.messages import display_name
from signdigits.config.settings import Settings

RESULT = ("{'job_id': 'j1', 'batch': 0, 'classified': 8, 'errors': 0, 'skipped': False, "
          "'seconds': {'claim': 0.01, 'decode_and_model': 0.3, 'store': 0.1}}")


@pytest.fixture
def events() -> TaskEvents:
    return TaskEvents(create_app(Settings(broker_url="redis://127.0.0.1:1/0")))


def _event(kind: str, task: str, **fields) -> dict:
    return {"type": f"task-{kind}", "uuid": task, "timestamp": time.time(), **fields}


def test_a_batch_history_is_its_tasks_events_in_order(events):
    events.handle(_event("sent", "t1", args="['j1', 0]", name=display_name("j1", 0)))
    events.handle(_event("sent", "t2", args="['j1', 1]"))
    events.handle(_event("received", "t1", args="['j1', 0]"))
    events.handle(_event("started", "t1"))  # no args: known by its task id
    events.handle(_event("retried", "t1", exception="OperationalError()"))
    events.handle(_event("received", "t1", args="['j1', 0]"))  # delivered again
    events.handle(_event("succeeded", "t1", result=RESULT, runtime=0.4))
    events.handle({"type": "worker-heartbeat", "hostname": "w@h"})  # not a task's
    assert events.of("j1", 0) == ["sent", "received", "started", "retried", "received",
                                  "succeeded"]
    assert events.of("j1", 1) == ["sent"] and events.of("j2", 0) == []
    assert events.events_of("j1", 0)[0]["name"] == display_name("j1", 0)
    seen = events.wait_for("j1", 0, lambda seen: "succeeded" in seen, timeout=0)
    assert seen[-1] == "succeeded"


def test_waiting_for_a_batch_fails_naming_it_and_what_it_saw(events):
    events.handle(_event("received", "t1", args="['j1', 3]"))
    with pytest.raises(AssertionError, match=r"batch 3 of job j1: events \['received'\] "
                                             r"after 0.01 s"):
        events.wait_for("j1", 3, lambda seen: "succeeded" in seen, timeout=0.01)


@pytest.mark.parametrize(("args", "where"), [
    ("['0f3a', 2]", ("0f3a", 2)),
    ("('0f3a', 2)", ("0f3a", 2)),
    ("['0f3a', 12, {'7': {'data': 'iVBORw0KGgoAAAANSUhEUgAA...", ("0f3a", 12)),  # --inline, cut
    ("['0f3a', 2, None]", ("0f3a", 2)),
    ("['../../etc', 'passwd']", None),  # a forged message: no batch of ours
    ("[<Exploit object at 0x7f>, 0]", None),
    ("['0f3a', 2.5]", None),
    ("['0f3a']", None),
    ("[]", None), ("", None), (None, None), (["0f3a", 2], None),
])
def test_job_and_batch_from_the_args_an_event_carries(args, where):
    assert job_and_batch(args) == where


def test_completions_are_counted_against_the_number_expected(events):
    assert not events.wait(0)
    events.handle(_event("succeeded", "t1", result=RESULT, runtime=0.4))
    events.handle(_event("failed", "t2", exception="RuntimeError('poisoned')"))
    events.handle(_event("succeeded", "t1", result=RESULT, runtime=0.4))  # the same task
    assert events.finished == 2 and not events.wait(0)  # nothing expected yet
    events.expect(3)
    assert not events.wait(0) and events.finished_at is None
    events.handle(_event("succeeded", "t3", result=RESULT, runtime=0.6))
    assert events.wait(0) and events.finished_at is not None
    assert events.succeeded == {"t1", "t3"} and events.failed == {"t2": "RuntimeError('poisoned')"}


def test_an_expected_count_already_reached_is_done_at_once(events):
    for task in ("t1", "t2"):
        events.handle(_event("succeeded", task, result=RESULT, runtime=0.1))
    before = time.perf_counter()
    events.expect(2)
    assert events.wait(0) and events.finished_at <= before  # when the last one ended


def test_task_seconds_sum_the_runtime_and_each_phase_of_succeeded_tasks(events):
    events.handle(_event("succeeded", "t1", result=RESULT, runtime=0.4))
    events.handle(_event("succeeded", "t2", result=RESULT, runtime=0.6))
    events.handle(_event("succeeded", "t3", result="{'seconds': {'cut sh", runtime=0.5))
    events.handle(_event("failed", "t4", exception="x", runtime=9.0))
    assert events.task_seconds == pytest.approx(
        {"runtime": 1.5, "claim": 0.02, "decode_and_model": 0.6, "store": 0.2})


@pytest.mark.parametrize(("result", "seconds"), [
    (RESULT, {"claim": 0.01, "decode_and_model": 0.3, "store": 0.1}),
    ("{'seconds': {'store': 1}}", {"store": 1.0}),
    ("{'skipped': True}", {}),  # a batch with nothing left to do
    ("{'seconds': 'soon'}", {}),
    ("{'seconds': {'store': 'slow'}}", {}),
    ("[1, 2]", {}), ("None", {}), ("{'seconds': {'cut sh", {}), ("os.system('x')", {}),
    (None, {}), ({"seconds": {"store": 1}}, {}),  # events carry a repr, not the value
])
def test_phases_from_a_tasks_result(result, seconds):
    assert phases(result) == seconds


def test_without_history_only_completions_are_kept(events):
    quiet = TaskEvents(events.app, history=False)
    quiet.handle(_event("received", "t1", args="['j1', 0]"))
    quiet.handle(_event("succeeded", "t1", result=RESULT, runtime=0.4))
    assert quiet.of("j1", 0) == [] and quiet.finished == 1
    with pytest.raises(ValueError, match="no history"):
        quiet.wait_for("j1", 0, lambda seen: True, timeout=0)


def test_only_its_own_hello_tells_a_listener_it_is_subscribed(events):
    other = TaskEvents(events.app)
    hello = {"type": "signdigits-listener-ready"}
    events.handle({**hello, "listener": "someone else"})
    assert not events.subscribed
    events.handle({**hello, "listener": events.listener_id})
    assert events.subscribed and not other.subscribed


def test_the_name_does_not_depend_on_which_event_arrives_first():
    """Celery's event state (Flower's) fed the order that produced the flake: the
    producer's ``task-sent`` reaching it after the worker's ``task-received``."""
    app = create_app(Settings(broker_url="redis://127.0.0.1:1/0"))
    message = app.amqp.create_task_message(
        "task-1", "signdigits.classify_batch", ["job", 0], {}, create_sent_event=True,
        shadow=display_name("job", 0),
    )
    state = State()
    state.event({"type": "task-received", "uuid": "task-1", "name": display_name("job", 0),
                 "hostname": "w@h", "timestamp": 2.0, "local_received": 2.0, "clock": 2})
    state.event({**message.sent_event, "type": "task-sent", "hostname": "producer@h",
                 "timestamp": 1.0, "local_received": 2.1, "clock": 3})
    assert state.tasks["task-1"].name == display_name("job", 0)
