"""How much work the broker holds now: messages queued per queue, and delivered but not
yet acknowledged (what ``GET /metrics`` reports as queued and running)."""

from __future__ import annotations

from celery import Celery

from signdigits.broker.app import PREDICT_QUEUE, QUEUE, glance_deadlines


def queue_depths(app: Celery) -> tuple[dict[str, int], int]:
    """(queue name -> messages waiting, messages delivered and not yet acknowledged)."""
    with app.connection_for_write(transport_options=glance_deadlines()) as connection:
        channel = connection.default_channel
        client = channel.client
        depths = {}
        for queue in (QUEUE, PREDICT_QUEUE):
            keys = dict.fromkeys(channel._q_for_pri(queue, step) for step in channel.priority_steps)
            depths[queue] = sum(int(client.llen(key)) for key in keys)
        return depths, int(client.hlen(channel.unacked_key))
