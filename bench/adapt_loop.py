"""Adapting to a new population, measured: review N -> adapt -> accuracy on the rest.

    .venv/bin/python -m signdigits.bench.adapt_loop FOLDER [--reviews 10,25,50,100]
        [--order all] [--work DIR] [--dataset DIR]

FOLDER holds ``<digit>/<frame number>.jpg`` photos of one population (the foreign photos'
``modi`` or ``cyril``). Frames close in number are near-duplicates, so the split is by
number: the first half of each digit's frames is the "new photos" job, the second half
only scores.

1. The new photos run as a job (``signdigits run``, embedded Valkey and workers, SQLite in
   the work folder), at the default threshold.
2. For each --order, on its own copy of the job's database: ``signdigits serve`` (basic
   auth) serves it; this module, in a person's place, takes the photos in that order
   (:data:`ORDERS`, computed once from the job's rows with db.review_order) and posts
   each one's folder digit over the HTTP API, until N are reviewed or the order has no
   photo left (today's queue shows only below-threshold photos).
3. ``signdigits adapt latest --out NAME-ORDER-N`` (timed), for each N in turn (reviews
   add up).
4. The shipped model and each adapted one on the second half (right, and wrong at or
   above the model's own default threshold: the mistakes no queue of uncertain photos
   shows); the dataset's unseen signers before and after, as ``adapt`` scored them.
   One Markdown table.

The adapted models are experiments in the work folder's registry, never shipped.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from signdigits.bench.arguments import default_dataset
from signdigits.bench.review_loop import CLI, REVIEWER, run, say

ORDERS = {
    "confidence": "below the threshold, lowest confidence first",
    "queue": "below the threshold, db.review_order (the review page's queue)",
    "spot": "the queue with a spot check above the threshold every "
            "db.review_order.SPOT_EVERY-th (with_spot_checks)",
    "all": "the queue, then every other photo lowest confidence first",
}


@dataclass(frozen=True)
class Shown:
    id: int
    path: str
    digit: int | None
    sure: bool  # at or above the job's threshold


def plan(database: Path, order: str) -> list[Shown]:
    """The job's classified photos in the order a person sees them, by one of ORDERS
    (computed from the job's rows as the queue's query does, once, before any review)."""
    from sqlalchemy import select

    from signdigits.db.models import Image, ImageStatus
    from signdigits.db.review_order import Candidate, hand_shape, review_order, with_spot_checks
    from signdigits.db.session import session_factory

    with session_factory(f"sqlite:///{database}")() as session:
        rows = session.execute(select(Image).where(Image.status == ImageStatus.DONE)
                               ).scalars().all()
    shown = {r.id: Shown(r.id, r.path, r.digit, not r.below_threshold) for r in rows}
    candidates = {r.id: Candidate(r.id, r.confidence or 0.0, hand_shape(r.hand)) for r in rows}
    below = sorted((c for c in candidates.values() if not shown[c.id].sure),
                   key=lambda c: (c.confidence, c.id))
    sure = sorted((c for c in candidates.values() if shown[c.id].sure),
                  key=lambda c: (c.confidence, c.id))
    if order == "confidence":
        ids = [c.id for c in below]
    elif order == "spot":
        queue = review_order(below)
        ids = [i for i, _ in with_spot_checks([candidates[i] for i in queue], sure)]
    else:
        ids = review_order(below) + ([c.id for c in sure] if order == "all" else [])
    return [shown[i] for i in ids]


def split_frames(folder: Path, work: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Copies of the first half of each digit's frames in work/new, the second half in
    work/held; relative path -> digit of each."""
    new: dict[str, int] = {}
    held: dict[str, int] = {}
    for digit in range(10):
        frames = sorted((folder / str(digit)).iterdir(), key=lambda p: int(p.stem))
        half = len(frames) // 2
        for part, (name, truth) in ((frames[:half], ("new", new)),
                                    (frames[half:], ("held", held))):
            for path in part:
                target = work / name / str(digit) / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                truth[f"{digit}/{path.name}"] = digit
    return new, held


class Reviewer:
    """``signdigits serve`` and a person's answers over its HTTP API."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        from signdigits.stack.valkey import free_port

        self.port = free_port()
        password = secrets.token_urlsafe(18)
        self.auth = "Basic " + base64.b64encode(f"{REVIEWER}:{password}".encode()).decode()
        say(f"$ signdigits serve --port {self.port}")
        with open(work / "serve.log", "w") as log:
            self.server = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port), "--workers", "1"],
                env={**env, "SIGNDIGITS_WEB_AUTH": f"{REVIEWER}:{password}"}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while True:
            try:
                self.http("GET", "/api/jobs/latest")
                return
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"error: serve did not answer; see {work / 'serve.log'}") \
                        from None
                time.sleep(0.5)

    def http(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self.auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def review(self, items: list[Shown], truth: dict[str, int]) -> tuple[int, int]:
        """Answer each with its true digit; how many the model had wrong, and how many of
        those were at or above the threshold."""
        wrong = wrong_sure = 0
        for item in items:
            digit = truth[item.path]
            self.http("POST", f"/api/images/{item.id}/review", {"digit": digit})
            wrong += digit != item.digit
            wrong_sure += digit != item.digit and item.sure
        return wrong, wrong_sure

    def stop(self) -> None:
        os.killpg(self.server.pid, signal.SIGINT)
        self.server.wait(60)


def held_accuracy(models: dict[str, Path], folder: Path, truth_of: dict[str, int]) -> dict:
    """name -> (right, images, wrong at or above the model's default threshold) on the
    held half; the hands found once for every model."""
    import numpy as np

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.reader import HandReader, look

    hands = models_dir(get_settings().hand_models_dir)
    paths = sorted(truth_of)
    finder = HandFinder(hands)
    found = [look(finder, folder / p)[1] for p in paths]
    truth = np.asarray([truth_of[p] for p in paths])
    scores = {}
    for name, path in models.items():
        reader = HandReader.from_folder(Classifier(path), hands)
        answers = [r.answer for r in reader.classify(found)]
        digits = np.asarray([-1 if a is None else a.prediction.digit for a in answers])
        sure = np.asarray([a is not None and a.prediction.confidence
                           >= reader.classifier.info.default_threshold for a in answers])
        scores[name] = (int((digits == truth).sum()), len(truth),
                        int((sure & (digits != truth)).sum()))
    return scores


def copy_database(source: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(source) as old, sqlite3.connect(target) as new:
        old.backup(new)


def adapt_in_order(env: dict[str, str], args: argparse.Namespace, work: Path, order: str,
                   new: dict[str, int], counts: list[int]) -> list[tuple]:
    """Review in ``order`` on a copy of the job's database, adapting at each N: one row
    (order, N, reviewed, wrong, wrong and sure, seconds or None, model or None, evaluation)
    each; when the order has no photo left, or none with a hand among those reviewed, no
    new adapt (the previous model, or the shipped one, stands)."""
    from signdigits.serving.artifact import read_model_info

    database = work / f"results-{order}.db"
    copy_database(work / "results.db", database)
    env = {**env, "SIGNDIGITS_DATABASE_URL": f"sqlite:///{database}"}
    items = plan(database, order)
    say(f"order {order}: {len(items)} photos to show ({sum(i.sure for i in items)} above "
        f"the threshold)")
    reviewer = Reviewer(env, work)
    rows: list[tuple] = []
    done = wrong = wrong_sure = 0
    model, evaluation = None, None
    try:
        for n in counts:
            batch = items[done:n]
            seconds = None
            if batch:
                more, more_sure = reviewer.review(batch, new)
                done, wrong, wrong_sure = done + len(batch), wrong + more, wrong_sure + more_sure
                started = time.monotonic()
                out = f"{args.folder.name}-{order}-{n}"
                try:
                    run(env, *CLI, "adapt", "latest", "--out", out, "--data", str(args.dataset))
                except SystemExit as failed:  # photos without a hand teach nothing
                    if "no reviewed photo with one hand" not in str(failed):
                        raise
                    say(f"order {order}, {done} reviews: no photo with a hand to adapt on")
                else:
                    seconds = time.monotonic() - started
                    model = next((work / "models").glob(f"{out}-*.keras"))
                    evaluation = read_model_info(model).metadata["evaluation"]
            rows.append((order, n, done, wrong, wrong_sure, seconds, model, evaluation))
    finally:
        reviewer.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    from signdigits.serving.artifact import shipped_model_path

    parser = argparse.ArgumentParser(prog="python -m signdigits.bench.adapt_loop",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="<digit>/<frame>.jpg photos of a population")
    parser.add_argument("--reviews", default="10,25,50,100", help="N, comma-separated")
    parser.add_argument("--order", default="all",
                        help="comma-separated, each on its own copy of the job: "
                             + "; ".join(f"{k}: {v}" for k, v in ORDERS.items())
                             + " (default: all)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: temp)")
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.reviews.split(",") if n.strip()})
    orders = [o.strip() for o in args.order.split(",") if o.strip()]
    if not orders or any(o not in ORDERS for o in orders):
        parser.error(f"argument --order: choose among {', '.join(ORDERS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="signdigits-adapt-loop-"))
    name = args.folder.name
    new, held = split_frames(args.folder, work)
    say(f"{name}: {len(new)} new photos (job), {len(held)} held out; work folder {work}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNDIGITS_")}
    env.update(SIGNDIGITS_DATABASE_URL=f"sqlite:///{work / 'results.db'}",
               SIGNDIGITS_MODELS_DIR=str(work / "models"))
    run(env, *CLI, "run", str(work / "new"))
    rows = [row for order in orders
            for row in adapt_in_order(env, args, work, order, new, counts)]
    scores = held_accuracy({"shipped": shipped_model_path(),
                            **{str(r[6]): r[6] for r in rows if r[6] is not None}},
                           work / "held", held)
    right, total, sure = scores["shipped"]
    print(f"\n{name}: {len(new)} photos in the job, {len(held)} held out (second half of "
          f"each digit's frames); shipped model on the held half: {right}/{total} "
          f"({right / total:.2%}), {sure} wrong at or above its threshold")
    print("| order | reviews | the model was wrong on (above the threshold) | adapt "
          "| held half after | wrong above the threshold | studio unseen before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for order, n, done, was_wrong, was_sure, seconds, model, evaluation in rows:
        right, total, sure = scores[str(model) if model is not None else "shipped"]
        time_taken = "-" if seconds is None else f"{seconds:.0f} s"
        before, after = ((f"{evaluation['test_before']['accuracy']:.2%}",
                          f"{evaluation['test']['accuracy']:.2%}") if evaluation else ("-", "-"))
        print(f"| {order} | {done} of {n} | {was_wrong} ({was_sure}) | {time_taken} "
              f"| {right}/{total} ({right / total:.2%}) | {sure} | {before} | {after} |")


if __name__ == "__main__":
    main()
