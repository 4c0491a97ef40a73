"""``POST /api/predict``: one photo, classified by a worker on the predict queue.

The photo is decoded here, as the workers decode a job's files (a non-image is refused
at once); only its decoded RGB pixels travel to a worker, which finds the hands, reads
the answer's landmarks and gives the digit. When it finds no hand, or a small one, on a
photo decoded reduced, its answer says so, and the photo is decoded closer here and sent
once more, to be searched again or to have the same hands placed again on it
(:func:`serving.reader.look_again`'s rule, which a batch's worker follows). The answer
says how the photo was read, where each hand read is (box and 21 landmarks, in the
photo's own pixels) and the 224 x 224 square the landmark model read; a photo with no
hand found is
an answer too (``digit`` null, ``reading`` "no hand found"), not an error. Nothing is
stored unless ``store`` is asked: then the photo is kept under the upload folder as a
one-image job (its ``job_id`` and ``image_id`` are in the answer), which the pages show
and a reviewer can correct like any other.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import redis.asyncio
from celery import Celery
from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from signdigits.broker.app import PREDICT_QUEUE
from signdigits.broker.messages import PREDICT_TASK_NAME, predict_reply_key
from signdigits.config.settings import Settings
from signdigits.db.results import record_prediction
from signdigits.files.paths import is_image_name
from signdigits.files.reading import ImageError
from signdigits.serving.photo import Photo, read_photo
from signdigits.serving.reader import closer_is_kept, closer_look
from signdigits.web.deps import CeleryDep, RepliesDep, SessionDep, SettingsDep, StateDep
from signdigits.web.fields import Threshold
from signdigits.web.imaging import photo_message
from signdigits.web.schemas import PredictOut
from signdigits.web.state import WebState
from signdigits.web.upload_store import Upload, UploadRefused, clean_relative
from signdigits.web.uploads import store_uploads

router = APIRouter(prefix="/api", tags=["predict"])


@router.post("/predict", response_model=PredictOut, response_model_exclude_unset=True,
             summary="Classify one photo now (stored only with store=true)")
async def predict(state: StateDep, settings: SettingsDep, celery: CeleryDep,
                  replies: RepliesDep, session: SessionDep, file: Annotated[UploadFile, File()],
                  threshold: Annotated[Threshold, Form()] = None,
                  store: Annotated[bool, Form(description="keep the photo and the answer as "
                                                          "a one-image job")] = False
                  ) -> PredictOut:
    cap = settings.max_file_bytes
    data = await file.read(cap + 1)
    if len(data) > cap:
        raise HTTPException(413, f"the photo is over the {cap:,}-byte cap")
    if not data:
        raise HTTPException(400, "empty upload (0 bytes)")
    try:
        photo = await run_in_threadpool(read_photo, data, max_pixels=settings.max_image_pixels)
    except ImageError as exc:
        raise HTTPException(415, f"{file.filename or 'the upload'}: {exc}") from None
    with waiting_slot(state):
        answer = await ask_worker(celery, replies, settings, photo, threshold)
        # serving.reader.look_again, as a batch reads the photo: the worker, which has
        # every hand found (those not read too), says whether to look closer; this process,
        # which has the photo's bytes, decodes it closer and sends it once more, to be
        # searched or to have the same hands placed again on it.
        next_look = answer.get("closer")
        if next_look:
            closer = await run_in_threadpool(closer_look, data, photo,
                                             max_pixels=settings.max_image_pixels)
            # No more pixels to give: the grids the first look left are searched on the
            # same picture.
            if closer is not None or next_look.get("step") == "search":
                again = await ask_worker(celery, replies, settings, closer or photo, threshold,
                                         place=next_look.get("place"), last_look=True)
                if closer_is_kept(answer.get("found", 0), again.get("found", 0)):
                    answer = again
    if store:
        answer.update(await run_in_threadpool(_store, session, settings, file.filename or "",
                                              data, answer, threshold is None))
    return PredictOut.of(answer, photo_size=photo.original_size)


def _store(session: Session, settings: Settings, filename: str, data: bytes,
           answer: dict, threshold_from_model: bool) -> dict:
    """The photo written under the upload folder (a name the server chooses for the
    folder, the client's only as the image's path) and recorded with its answer."""
    folder = store_uploads([Upload(_image_name(filename), io.BytesIO(data))],
                           settings=settings).folder
    path = next(p for p in folder.rglob("*") if p.is_file()).relative_to(folder).as_posix()
    with session.begin():
        job_id, image_id = record_prediction(session, root=str(folder), path=path,
                                             answer=answer,
                                             threshold_from_model=threshold_from_model)
    return {"job_id": job_id, "image_id": image_id}


def _image_name(filename: str) -> str:
    """The client's name if it names an image (a camera frame may come as ``blob``).

    A name longer than a file system allows (255 bytes) would refuse the store after the
    photo was classified: past 200 bytes only its extension is kept.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if not is_image_name(base):
        return "photo.png"
    fallback = "photo" + os.path.splitext(base)[1].lower()
    try:  # 'C:x.jpg', ' .jpg': names the upload rules refuse would refuse the store too
        clean_relative(base)
    except UploadRefused:
        return fallback
    return base if len(base.encode("utf-8", "surrogatepass")) <= 200 else fallback


@contextmanager
def waiting_slot(state: WebState) -> Iterator[None]:
    """One of the ``SIGNDIGITS_PREDICT_MAX_WAITING`` places for a prediction waiting on a
    worker, or a 503 at once when all are taken: with the workers down, waiters would
    otherwise pile up for the whole timeout each, every one holding a Redis connection."""
    bound = state.settings.predict_max_waiting
    if state.predictions_waiting >= bound:
        raise HTTPException(503, f"{bound} predictions are already waiting for a worker "
                                 "(SIGNDIGITS_PREDICT_MAX_WAITING); try again later")
    state.predictions_waiting += 1
    try:
        yield
    finally:
        state.predictions_waiting -= 1


async def ask_worker(celery: Celery, replies: redis.asyncio.Redis, settings: Settings,
                     photo: Photo, threshold: float | None, *,
                     place: list[dict] | None = None, last_look: bool = False) -> dict:
    """Send the decoded photo to the predict queue and wait for the answer, up to the
    timeout. ``place``: hands found on a smaller decode, to be placed again on this one
    rather than searched for; ``last_look``: the closer look, searched in the finer tiles.

    The worker pushes its answer to a Redis list named for this request; BLPOP waits on
    it without polling, on the event loop (one pooled connection per waiter, no thread).
    A broker that is down (kombu's OperationalError, a RedisError) is the application's
    503.
    """
    reply_to = predict_reply_key(uuid.uuid4().hex)
    rgb_b64, size, original_size = photo_message(photo)
    await run_in_threadpool(  # kombu's client is synchronous; a send is one short write
        celery.send_task, PREDICT_TASK_NAME, args=[rgb_b64, size, original_size, threshold],
        kwargs={"reply_to": reply_to, **({"place": place} if place is not None else {}),
                **({"last_look": True} if last_look else {})},
        queue=PREDICT_QUEUE, ignore_result=True)
    found = await replies.blpop([reply_to], timeout=settings.predict_timeout)
    if found is None:
        raise HTTPException(503, f"no worker answered in {settings.predict_timeout:g} s "
                                 "(none is running, or all are busy: try again)")
    answer = json.loads(found[1])
    if "failed" in answer:
        raise HTTPException(503, f"the worker failed to classify it: {answer['failed']}")
    if "error" in answer:
        raise HTTPException(422, answer["error"])
    return answer
