"""The worker commands: a worker, whether one is ready, and Flower to watch them."""

from __future__ import annotations

import os
import sys

import typer

from signdigits.cli.console import USAGE, fail
from signdigits.cli.preflight import database_for_writing, require_broker, settings_or_fail
from signdigits.config.network import is_loopback


def worker(
    concurrency: int | None = typer.Option(None, min=1, max=256,
                                           help="processes (default: setting)"),
    hostname: str | None = typer.Option(None, "--hostname", "-n", help="node name, e.g. w1@%h"),
    loglevel: str = typer.Option("INFO", help="Celery log level"),
) -> None:
    """A Celery worker with task events on (same as `celery -A signdigits.worker worker -E`)."""
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.hands.models import HandModelsError
    from signdigits.serving.served import check_served_models
    from signdigits.stack.workers import worker_command

    settings = settings_or_fail()
    require_broker(settings)
    try:  # before anything starts: a worker without its models must take no batch
        check_served_models(settings)
    except (ArtifactError, HandModelsError) as exc:
        fail(str(exc))
    database_for_writing(settings)
    name = hostname or "signdigits@%h"
    _refuse_a_name_in_use(settings, name)
    command = worker_command(concurrency=concurrency or settings.concurrency, name=name,
                             loglevel=loglevel)
    os.execv(sys.executable, command)


def _refuse_a_name_in_use(settings, name: str) -> None:
    """One line, before anything starts, when a live worker has this node name: the
    default, signdigits@%h, is the same for two workers started on one host."""
    from celery.utils.nodenames import default_nodename, host_format

    from signdigits.broker.app import create_app
    from signdigits.broker.liveness import name_taken

    node = host_format(default_nodename(name))  # as Celery names it: "foo" is celery@foo
    try:
        other = name_taken(create_app(settings), node)
    except Exception:  # noqa: BLE001 - an unreachable broker: the worker says so itself
        return
    if other is not None:
        fail(f"a worker named {node} is already running (pid {other.get('pid')}); two of one "
             "name take each other's batches back: start this one with -n another@%h",
             code=USAGE)


def ready(
    node: str = typer.Argument(..., help="worker node name, e.g. signdigits@host"),
    timeout: float = typer.Option(10.0, min=0.1, help="seconds to wait for its reply"),
) -> None:
    """Exit 0 only if the worker answers and all its processes have the model loaded."""
    settings = settings_or_fail()
    require_broker(settings)
    from signdigits.broker.app import create_app
    from signdigits.cli.console import output
    from signdigits.cli.preflight import check_broker
    from signdigits.worker.readiness import ask_models_loaded

    # One that never answers outlasted --timeout.
    check_broker(settings, timeout=timeout, writes=False)

    status = ask_models_loaded(create_app(settings), name=node, timeout=timeout)
    if status is None:
        fail(f"{node}: no reply in {timeout:g} s (not running, or another broker)", code=1)
    loaded, processes = status
    if not processes or loaded < processes:
        fail(f"{node}: {loaded} of {processes} processes have the model loaded (not ready)",
             code=1)
    output.print(f"{node}: ready, {loaded} of {processes} processes have the model loaded")


def flower(
    port: int = typer.Option(5555, min=1, max=65535, help="port to listen on"),
    address: str = typer.Option("127.0.0.1", help="address to listen on"),
) -> None:
    """Celery's monitoring UI for this broker (basic auth from SIGNDIGITS_FLOWER_BASIC_AUTH)."""
    settings = settings_or_fail()
    require_broker(settings)
    if not settings.flower_basic_auth and (settings.environment != "development"
                                          or not is_loopback(address)):
        # Flower shows every task's arguments and can shut workers down: never open.
        fail(f"flower on {address} needs SIGNDIGITS_FLOWER_BASIC_AUTH=user:password "
             f"(SIGNDIGITS_ENVIRONMENT={settings.environment})", code=USAGE)
    # Flower itself, with /metrics and /healthcheck closed and its memory capped.
    from signdigits.stack.flower import flower_command

    command = flower_command(address=address, port=port)
    if settings.flower_basic_auth:
        # Flower reads FLOWER_* variables; on its command line `ps` would show the password.
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
    os.execv(sys.executable, command)
