"""What travels on the queue: the task's registered name and the name people see.

The producer sends by name and never imports the worker (which would pull in the model's
dependencies); the worker registers its task under the same constant. Writing the name
twice would let one side be renamed without the other, and every message would then be
refused as an unregistered task.
"""

from __future__ import annotations

TASK_NAME = "signdigits.classify_batch"
# One photo from the web's /try page or POST /api/predict, on a queue of its own. Its
# arguments: rgb_b64 (the RGB bytes serving.photo.read_photo decoded, base64), size (their
# width and height), original_size (the photo's own), threshold, reply_to. The answer:
# worker/predict.py.
PREDICT_TASK_NAME = "signdigits.predict_image"


def predict_reply_key(request_id: str) -> str:
    """The Redis list a prediction's answer is pushed to, and the web waits on (BLPOP).

    Not Celery's result backend: with one configured, every task sent (each batch too)
    subscribes the sender to a result channel, which the pipeline has no use for.
    """
    return f"signdigits-predict-reply:{request_id}"


def display_name(job_id: str, batch: int) -> str:
    """The name Flower and the worker logs show for one batch's task."""
    return f"classify_batch job={job_id[:8]} batch={batch}"

# A job's webhook, once it ended: args (job id, attempts made so far). On the batch
# queue, consumed by the same workers (worker/webhook.py).
WEBHOOK_TASK_NAME = "signdigits.deliver_webhook"
