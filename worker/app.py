"""The worker's Celery app: ``celery -A signdigits.worker ...`` finds :data:`app` here.

Only configuration is imported; the model and the database engine are created per child
process in :mod:`worker.context`, after the fork.
"""

from __future__ import annotations

from signdigits.broker.app import create_app
from signdigits.worker import lost
from signdigits.worker.reconciler import Reconciler

app = create_app()
app.conf.imports = ("signdigits.worker.tasks", "signdigits.worker.predict",
                    "signdigits.worker.webhook")
# Every worker repairs the queue from the manifest: lost batches re-sent, a dead worker's
# given back (worker/reconciler.py says why every worker, and how one does each pass).
app.steps["worker"].add(Reconciler)
# A pool process that died mid-task: one line in the log, not billiard's traceback.
lost.install()
