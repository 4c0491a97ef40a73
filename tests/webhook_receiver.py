"""A real HTTP server that receives webhooks the way a careful receiver does: it checks
each one's Standard Webhooks signature itself (its own HMAC, not the code under test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "whsec_" + base64.b64encode(b"signdigits-test-webhook-key-0123456789").decode()


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: int
    signed: bool  # the signature checks out with SECRET
    event: dict
    answered: int


class Receiver:
    """``fail_first`` POSTs are answered 503; with ``hold`` set, the first POST is kept
    unanswered until ``release()`` (a worker can be killed meanwhile)."""

    def __init__(self, *, fail_first: int = 0, hold: bool = False) -> None:
        self.fail_first = fail_first
        self.received: list[Received] = []
        self.changed = threading.Condition()
        self.hold = threading.Event() if hold else None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                first = not receiver.received
                answered = 503 if len(receiver.received) < receiver.fail_first else 200
                receiver._record(self.headers, body, answered)
                if first and receiver.hold is not None:
                    receiver.hold.wait(60)
                self.send_response(answered)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/signdigits?token=t0p"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, headers, body: bytes, answered: int) -> None:
        key = base64.b64decode(SECRET.removeprefix("whsec_"))
        webhook_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        expected = base64.b64encode(hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body,
                                             hashlib.sha256).digest()).decode()
        offered = [s.partition(",")[2] for s in headers["webhook-signature"].split()
                   if s.startswith("v1,")]
        signed = any(hmac.compare_digest(expected, s) for s in offered)
        with self.changed:
            self.received.append(Received(webhook_id, int(timestamp), signed,
                                          json.loads(body), answered))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 120) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} webhooks of {count} after "
                                         f"{timeout:g} s: {self.received}")
                self.changed.wait(left)
            return list(self.received)

    def release(self) -> None:
        if self.hold is not None:
            self.hold.set()

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
