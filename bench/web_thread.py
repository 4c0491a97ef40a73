"""The web app served by uvicorn in a thread of this process: for benchmarks and tests.

One way, with a deadline: a copy without one spun for ever when uvicorn could not bind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from signdigits.config.settings import Settings


@contextmanager
def web_in_thread(settings: Settings, *, timeout: float = 30.0) -> Iterator[str]:
    """``create_app(settings)`` under uvicorn on a free loopback port; its base URL.

    The database must be migrated already. Stopped (and its thread joined) on leaving.
    """
    import uvicorn

    from signdigits.stack.valkey import free_port
    from signdigits.web.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True, name="web")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn exited at start (port {port} taken?)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start in {timeout:g} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
