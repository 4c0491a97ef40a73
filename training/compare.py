"""``compare JOB... --model NAME``: a candidate beside the serving model, before a promote.

Three views, each scored by both models on the same features:

- the jobs' reviewed hands, read as ``adapt`` reads them (training.job_photos: one per
  photo reviewed as a whole, one per hand answered in a photo reviewed hand by hand): the
  only labels this population has (a candidate adapted on them has seen them: its figure
  there is a fit, not a forecast);
- the dataset's test signers, which neither model was fitted on: the studio must not drop;
- the jobs' other photos, unlabelled: how many answers would change, and which (the
  Models page shows them as a grid of thumbnails).

The result is stored in the candidate's registry row (``figures.comparison``). The serving
model is refused as a candidate: compared with itself, it would overwrite the comparison
its page shows with "0 answers would change".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.registry import classified_images, find_model, promoted_model, set_figures
from signdigits.files.names import printable
from signdigits.serving.artifact import ArtifactError, ModelInfo
from signdigits.training.adapt_jobs import Stage, reviewed_photos
from signdigits.training.job_photos import left_out_text, read_job_photos
from signdigits.training.registry import (
    RegistryError,
    registered_path,
    serving_model_info,
    training_data_of,
)

CHANGED_KEPT = 500  # changed images stored with the comparison (the count is exact)


def _digits(info: ModelInfo, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    table = np.asarray(info.class_to_digit)
    return table[probs.argmax(axis=1)], probs.max(axis=1)


def _probabilities(settings: Settings, info: ModelInfo) -> Callable[[np.ndarray], np.ndarray]:
    from signdigits.serving.classifier import Classifier

    classifier = Classifier(info.path, runtime=settings.runtime)
    return lambda x: classifier.probabilities(x) if len(x) else np.zeros((0, 10))


def compare_jobs(settings: Settings, sessions: sessionmaker[Session], job_ids: list[str], *,
                 model: str, data: Path | None, allowed_roots: list[Path],
                 stage: Stage | None = None) -> dict[str, Any]:
    from signdigits.training.data import load_labelled

    with sessions() as session:
        row = find_model(session, model)
        promoted = promoted_model(session)
        if promoted is not None and promoted.version == row.version:
            raise RegistryError(f"{row.name} is the model serving now: nothing to compare it "
                                "with")
        candidate = _read(registered_path(settings, row))
        try:
            serving = serving_model_info(settings, session)
        except ArtifactError as exc:
            raise RegistryError(f"the serving model cannot be read: {exc}") from None
        if serving.version == candidate.version:  # the default model, registered by name
            raise RegistryError(f"{row.name} is the model serving now: nothing to compare it "
                                "with")
        reviewed = reviewed_photos(settings, session, job_ids, allowed_roots=allowed_roots,
                                   stage=stage)
        scored = set(reviewed.image_ids)
        others = [(image, job, None) for image, job in classified_images(session, job_ids=job_ids)
                  if image.id not in scored]
    new, old = _probabilities(settings, candidate), _probabilities(settings, serving)
    result: dict[str, Any] = {"jobs": job_ids, "candidate": candidate.version,
                              "serving": serving.version}

    truth = np.array([d for d in reviewed.digits if d is not None], dtype=int)
    result["reviewed"] = {
        # "images": the hands scored, as the Models page reads it; "photos": theirs.
        "images": int(len(truth)), "hands": int(len(truth)), "photos": reviewed.photos,
        "left_out": reviewed.left_out,
        "serving_right": int((_digits(serving, old(reviewed.x))[0] == truth).sum()),
        "candidate_right": int((_digits(candidate, new(reviewed.x))[0] == truth).sum()),
    }

    data = data or training_data_of(candidate) or training_data_of(serving)
    if data is not None:
        dataset = load_labelled(data, progress=(lambda n, t: stage("reading the dataset", n, t))
                                if stage else None)
        groups = (candidate.metadata.get("split") or {}).get("test_groups") or []
        test = dataset.subset(np.flatnonzero(np.isin(dataset.groups, groups)))
        found = test.found
        digits = test.digits  # the dataset's own class order, not either model's
        result["test_split"] = {
            "images": int(len(test)), "data": str(data),
            "serving_right": int((_digits(serving, old(test.x[found]))[0]
                                  == digits[found]).sum()),
            "candidate_right": int((_digits(candidate, new(test.x[found]))[0]
                                    == digits[found]).sum()),
        }

    with sessions() as session:
        photos = read_job_photos(
            others, total=len(others), hand_models=_hand_models(settings),
            max_bytes=settings.max_file_bytes, allowed_roots=allowed_roots,
            max_pixels=settings.max_image_pixels, max_hands=settings.max_hands,
            progress=(lambda n, t: stage("reading the other photos", n, t)) if stage else None)
        paths = {image.id: image.path for image, _, _ in others}
    before, before_conf = _digits(serving, old(photos.x))
    after, after_conf = _digits(candidate, new(photos.x))
    changed = [{"image_id": image_id, "path": paths[image_id], "serving": int(b),
                "serving_confidence": round(float(bc), 4), "candidate": int(a),
                "candidate_confidence": round(float(ac), 4)}
               for image_id, b, bc, a, ac in zip(photos.image_ids, before, before_conf, after,
                                                 after_conf, strict=True) if a != b]
    threshold = candidate.default_threshold
    result["others"] = {"images": len(photos), "left_out": photos.left_out,
                        "changed": len(changed),
                        "candidate_below_threshold": int((after_conf < threshold).sum()),
                        "serving_below_threshold": int(
                            (before_conf < serving.default_threshold).sum())}
    result["changed"] = changed[:CHANGED_KEPT]
    with sessions.begin() as session:
        set_figures(session, find_model(session, row.version), comparison=result)
    return result


def _read(path: Path) -> ModelInfo:
    from signdigits.serving.artifact import read_model_info

    try:
        return read_model_info(path)
    except ArtifactError as exc:
        raise RegistryError(str(exc)) from None


def _hand_models(settings: Settings) -> Path:
    from signdigits.serving.hands.models import models_dir

    return models_dir(settings.hand_models_dir)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What `compare` prints: one line per view, then the changed images."""
    lines = [f"candidate {result['candidate']} against serving {result['serving']}"]
    reviewed = result["reviewed"]
    photos, left = reviewed["photos"], left_out_text(reviewed["left_out"])
    lines.append(f"reviewed hands ({reviewed['hands']} from {photos} photo{'s' * (photos != 1)})"
                 f": serving {reviewed['serving_right']} "
                 f"right, candidate {reviewed['candidate_right']} right"
                 + (f"; left out: {left}" if left else ""))
    if "test_split" in result:
        test = result["test_split"]
        n = max(test["images"], 1)
        lines.append(f"dataset test signers ({test['images']}): serving "
                     f"{test['serving_right'] / n:.2%}, candidate "
                     f"{test['candidate_right'] / n:.2%}")
    others = result["others"]
    lines.append(f"other photos ({others['images']}): {others['changed']} answers would "
                 f"change; below the threshold: serving {others['serving_below_threshold']}, "
                 f"candidate {others['candidate_below_threshold']}")
    for change in result["changed"]:
        lines.append(f"  image {change['image_id']} {printable(change['path'])}: "
                     f"{change['serving']} ({change['serving_confidence']:.2f}) -> "
                     f"{change['candidate']} "
                     f"({change['candidate_confidence']:.2f})")
    return lines
