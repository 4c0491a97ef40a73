"""``signdigits serve``: the web application and HTTP API, with the embedded stack if needed."""

from __future__ import annotations

import os

import typer

from signdigits.cli.console import USAGE, console, fail


def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, min=1, max=65535, help="port to listen on"),
    workers: int | None = typer.Option(None, min=1, max=64,
                                help="worker processes of the embedded stack"),
    flower: bool = typer.Option(False, "--flower", help="start Flower on the same broker "
                                "(same user and password as the web), linked from job pages"),
    flower_port: int = typer.Option(5555, min=1, max=65535, help="Flower's port"),
) -> None:
    """The web pages and HTTP API; with no SIGNDIGITS_BROKER_URL, Valkey and workers too.

    Prints the broker's address (password masked). Runs until Ctrl-C, then stops
    everything it started (pending images stay recorded).
    """
    from signdigits.cli.preflight import database_for_writing, settings_or_fail
    from signdigits.config.messages import masked_password
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.hands.models import HandModelsError
    from signdigits.serving.served import check_served_models
    from signdigits.stack.local import LocalStack
    from signdigits.stack.processes import StackError, stop_on_termination
    from signdigits.web.auth import StartRefused, check_can_start
    from signdigits.web.serve_start import repair_in_background

    settings = settings_or_fail()
    try:  # missing credentials are a setting to fix, as for `flower`: the usage code
        check_can_start(settings, host=host)
    except StartRefused as exc:
        fail(str(exc), code=USAGE)
    try:  # the embedded workers (or /try's, elsewhere) read photos with these
        check_served_models(settings)
    except (ArtifactError, HandModelsError) as exc:
        fail(str(exc))
    flower_auth = _flower_auth(settings, host=host) if flower else None
    _check_can_listen(host, port)
    if flower:
        _check_can_listen(host, flower_port)
    database_for_writing(settings)
    _check_can_store_uploads(settings)
    stack = None
    if not settings.broker_url:
        stack = LocalStack(broker_url=None, database_url=settings.database_url,
                           concurrency=workers or settings.concurrency,
                           name=f"serve-{os.getpid()}@%h")
    stop_on_termination()
    flower_process = None
    try:
        if stack is not None:
            # Its workers read the upload folder themselves (same machine, same user), so
            # an upload's photos need not travel in the messages nor fit their cap. Not
            # with allowed roots set: the workers would refuse the upload folder.
            settings = settings.model_copy(update={
                "broker_url": stack.start(),
                "upload_inline": settings.upload_inline and bool(settings.allowed_roots)})
        console.print(f"broker: {masked_password(settings.broker_url or '')}"
                      + (" (embedded, a new password each start)" if stack else ""),
                      markup=False)
        if stack is None:
            _warn_if_broker_silent(settings)
        if flower:
            flower_process, settings = _start_flower(settings, host=host, port=flower_port,
                                                     basic_auth=flower_auth)
        # Uploads and walks a killed serve left behind: removed, or finished (one line each).
        repair_in_background(settings, say=lambda line: console.print(line, markup=False))
        died = _run_server(settings, host=host, port=port, stack=stack)
        if died:
            fail(f"{died}; stopping the web server (pending images stay recorded: the "
                 "next `signdigits serve` or `run` on this database continues them, as "
                 "does `signdigits resume JOB`)", code=1)
    except StackError as exc:
        fail(str(exc), code=1)
    except KeyboardInterrupt:
        pass
    finally:
        if flower_process is not None:
            flower_process.stop()
        if stack is not None:
            with console.status("stopping workers and the embedded broker"):
                stack.stop()
    console.print("stopped")


def _warn_if_broker_silent(settings) -> None:
    """One line when the configured broker does not answer: the pages still serve, but
    submissions, predictions and the workers' figures wait for it (the first sign had been
    a 503 on the first submit)."""
    from signdigits.cli.preflight import broker_silence

    silence = broker_silence(settings)
    if silence is not None:
        console.print(f"warning: {silence}; the pages serve, but submissions and predictions "
                      "are refused (503) until it answers", markup=False, highlight=False)


def _flower_auth(settings, *, host: str) -> str | None:
    """Flower's ``user:password``: its own setting, else the web's, so that one login
    opens both. None (open) only where the web may be open too: development, loopback."""
    from signdigits.config.network import is_loopback

    secret = settings.flower_basic_auth or settings.web_auth
    if secret is not None:
        return secret.get_secret_value()
    if settings.environment == "development" and is_loopback(host):
        return None
    fail(f"serve --flower on {host} needs SIGNDIGITS_WEB_AUTH or "
         "SIGNDIGITS_FLOWER_BASIC_AUTH=user:password (Flower takes no bearer token)",
         code=USAGE)


def _start_flower(settings, *, host: str, port: int, basic_auth: str | None):
    """Flower on the broker the web uses, and the settings with its link for the pages."""
    import tempfile
    from pathlib import Path

    from signdigits.stack.flower import FlowerProcess
    from signdigits.stack.processes import StackError

    log = Path(tempfile.mkstemp(prefix="signdigits-flower-", suffix=".log")[1])
    process = FlowerProcess(broker_url=settings.broker_url, address=host, port=port,
                            basic_auth=basic_auth, log=log)
    if problem := process.wait_listening():
        process.stop()
        raise StackError(problem)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else (
        f"[{host}]" if ":" in host else host)
    url = f"http://{shown}:{port}"
    who = "the web's user and password" if basic_auth else "no password: development only"
    console.print(f"Flower at {url}/ ({who})", markup=False)
    return process, settings.model_copy(update={"flower_url": url})


def _check_can_listen(host: str, port: int) -> None:
    """One line, before Valkey and the workers start, for an address taken or not ours.

    uvicorn finds out only once everything else is up, and says it in its own log format.
    """
    import socket

    try:  # every address asyncio's create_server binds, with its socket options
        for family, kind, proto, _, address in socket.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
    except OSError as exc:
        fail(f"cannot listen on {host} port {port}: {exc.strerror or exc}")


def _check_can_store_uploads(settings) -> None:
    """One line now, rather than a 503 for every upload once the server is up.

    Creates nothing (the folder is made by the first upload, as before). A folder the
    user named that cannot be written refuses the start; the default one, beside no
    SQLite file, only gets a warning: a server that is never sent uploads needs none.
    """
    from signdigits.web.upload_store import upload_root

    root = upload_root(settings)
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    else:
        return
    if settings.upload_dir is not None:
        fail(f"uploads folder {root} (SIGNDIGITS_UPLOAD_DIR): {problem}")
    console.print(f"warning: uploads folder {root}: {problem}; uploads will be refused "
                  "(set SIGNDIGITS_UPLOAD_DIR)", markup=False)


def _run_server(settings, *, host: str, port: int, stack) -> str | None:
    """Serve until Ctrl-C; or until the embedded stack dies, returning why.

    Without the watch, a crashed embedded worker left a web server that accepted jobs
    and predictions which nothing would ever classify.
    """
    import asyncio

    import uvicorn

    from signdigits.web.app import create_app

    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    what = "embedded Valkey and workers" if stack else settings.broker_url.split("@")[-1]
    died: list[str] = []

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:  # bound: the address printed is one that answers
                console.print(f"signdigits web at {url} (API docs {url}docs; {what}); "
                              "Ctrl-C stops it", markup=False)
                if stack is not None:
                    self._watch = asyncio.create_task(self.watch_stack())

        async def watch_stack(self) -> None:
            while not self.should_exit:
                await asyncio.sleep(1)
                if problem := stack.failure():
                    died.append(problem)
                    self.should_exit = True

    # lifespan off: the app has no start-up or shut-down handlers, and uvicorn's lifespan
    # task, cancelled by the Ctrl-C it re-raises after shutting down, logged a traceback.
    config = uvicorn.Config(create_app(settings, host=host), host=host, port=port,
                            log_level="warning", timeout_graceful_shutdown=3,
                            access_log=False, lifespan="off")
    Server(config).run()  # a port already taken: uvicorn logs it and exits 1
    return died[0] if died else None
