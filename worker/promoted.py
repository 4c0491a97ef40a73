"""Serving the promoted model: a worker process switches between batches, no restart.

Each batch's claim reads which model is promoted (db.registry.promoted_model, one
indexed query in the claim's own transaction); when that is not the model this process
serves, :func:`follow_promoted` loads the registered pair from SIGNDIGITS_MODELS_DIR,
checks it as a worker's start does, and serves it from this batch on. Nothing promoted
means the configured model (SIGNDIGITS_MODEL_PATH, else the shipped one). Every row
records the version that read it (``images.model_version``), so a switch mid-job shows.

A model this process cannot load (its file not on this machine, another hand model) is
logged once a minute and the model it has keeps serving: a batch is never failed for it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from signdigits.config.settings import Settings
from signdigits.db.registry import Promoted, model_file

if TYPE_CHECKING:
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.reader import HandReader, ReaderFinder

log = logging.getLogger(__name__)

KEEP_LOADED = 4  # classifiers kept per process: a rollback is then no load at all
RETRY_SECONDS = 60.0  # a model that failed to load is tried again after this long


@dataclass
class LoadedModels:
    """This process's classifiers by version, and the versions it could not load."""

    default_version: str
    default_path: Path
    warm_up: int  # the largest batch the classifier is given (worker.context's part)
    loaded: OrderedDict[str, Classifier] = field(default_factory=OrderedDict)
    failed_at: dict[str, float] = field(default_factory=dict)


class WorkerContext(Protocol):
    """What of worker.context.WorkerContext this module uses (importing it is a cycle)."""

    settings: Settings
    reader: HandReader
    models: LoadedModels

    @property
    def finders(self) -> ReaderFinder: ...

    @property
    def classifier(self) -> Classifier: ...


def follow_promoted(ctx: WorkerContext, promoted: Promoted | None) -> None:
    """Serve ``promoted`` (None: the default model) from now on, if it can be loaded."""
    models = ctx.models
    version = promoted.version if promoted is not None else models.default_version
    if version == ctx.classifier.version:
        return
    classifier = models.loaded.get(version)
    if classifier is None:
        failed = models.failed_at.get(version)
        if failed is not None and time.monotonic() - failed < RETRY_SECONDS:
            return
        path = (model_file(ctx.settings.registry_dir, promoted.file) if promoted is not None
                else models.default_path)
        try:
            classifier = _load(ctx, path, version)
        except Exception as exc:  # noqa: BLE001 - any failure: keep serving what we have
            models.failed_at[version] = time.monotonic()
            log.error("cannot serve model %s from %s (%s: %s); still serving %s", version,
                      path, exc.__class__.__name__, exc, ctx.classifier.version)
            return
    _serve(ctx, classifier)


def _load(ctx: WorkerContext, path: Path, version: str) -> Classifier:
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.served import check_trained_on

    classifier = Classifier(path, threads=ctx.settings.model_threads,
                            runtime=ctx.settings.runtime)
    if classifier.version != version:
        raise ArtifactError(f"{path} holds version {classifier.version}, the registry "
                            f"says {version}")
    check_trained_on(classifier.info, ctx.finders.model_hashes, ctx.finders.folder)
    classifier.warm_up(ctx.models.warm_up)
    return classifier


def _serve(ctx: WorkerContext, classifier: Classifier) -> None:
    from signdigits.serving.reader import HandReader

    models = ctx.models
    old = ctx.classifier
    models.loaded[old.version] = old
    models.loaded[classifier.version] = classifier
    models.loaded.move_to_end(classifier.version)
    while len(models.loaded) > KEEP_LOADED:
        models.loaded.popitem(last=False)
    models.failed_at.pop(classifier.version, None)
    ctx.reader = HandReader(classifier, ctx.finders)
    log.warning("now serving model %s (was %s)", classifier.version, old.version)
