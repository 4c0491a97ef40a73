"""Adapting to a new population, measured: review N -> adapt -> accuracy on the rest.

    .venv/bin/python -m signdigits.bench.adapt_loop FOLDER [--reviews 10,25,50,100]
        [--work DIR] [--dataset DIR]

FOLDER holds ``<digit>/<frame number>.jpg`` photos of one population (the foreign photos'
``modi`` or ``cyril``). Frames close in number are near-duplicates, so the split is by
number: the first half of each digit's frames is the "new photos" job, the second half
only scores.

1. The new photos run as a job (``signdigits run``, embedded Valkey and workers, SQLite in
   the work folder), at the default threshold.
2. ``signdigits serve`` (basic auth) serves it; this module, in a person's place, reviews
   over the HTTP API: the review queue first (below the threshold, lowest confidence
   first), then the other photos lowest confidence first, answering each with its
   folder's digit, until N are reviewed.
3. ``signdigits adapt latest --out NAME-N`` (timed), for each N in turn (reviews add up).
4. The shipped model and each adapted one on the second half; the dataset's unseen
   signers before and after, as ``adapt`` scored them. One Markdown table.

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
from pathlib import Path

from signdigits.bench.arguments import default_dataset
from signdigits.bench.review_loop import CLI, REVIEWER, run, say


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

    def order(self) -> list[dict]:
        """The queue's images, then every other classified one, lowest confidence first."""
        queue = self.http("GET", "/api/jobs/latest/review?limit=500")["items"]
        seen = {item["id"] for item in queue}
        rest = self.http("GET", "/api/jobs/latest/images?order=confidence&status=done"
                         "&limit=500")["items"]
        return queue + [item for item in rest if item["id"] not in seen]

    def review(self, items: list[dict], truth: dict[str, int]) -> int:
        """Answer each with its true digit; how many the model had wrong."""
        wrong = 0
        for item in items:
            digit = truth[item["path"]]
            self.http("POST", f"/api/images/{item['id']}/review", {"digit": digit})
            wrong += digit != item["digit"]
        return wrong

    def stop(self) -> None:
        os.killpg(self.server.pid, signal.SIGINT)
        self.server.wait(60)


def held_accuracy(models: dict[str, Path], folder: Path, truth_of: dict[str, int]) -> dict:
    """name -> (right, images) on the held half; the hands found once for every model."""
    import numpy as np

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.photo import read_photo
    from signdigits.serving.reader import HandReader

    hands = models_dir(get_settings().hand_models_dir)
    paths = sorted(truth_of)
    finder = HandFinder(hands)
    found = [finder.find(read_photo(folder / p).image) for p in paths]
    truth = np.asarray([truth_of[p] for p in paths])
    scores = {}
    for name, path in models.items():
        reader = HandReader.from_folder(Classifier(path), hands)
        answers = [r.answer for r in reader.classify(found)]
        digits = np.asarray([-1 if a is None else a.prediction.digit for a in answers])
        scores[name] = (int((digits == truth).sum()), len(truth))
    return scores


def main(argv: list[str] | None = None) -> None:
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    parser = argparse.ArgumentParser(prog="python -m signdigits.bench.adapt_loop",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="<digit>/<frame>.jpg photos of a population")
    parser.add_argument("--reviews", default="10,25,50,100", help="N, comma-separated")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: temp)")
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.reviews.split(",") if n.strip()})
    work = args.work or Path(tempfile.mkdtemp(prefix="signdigits-adapt-loop-"))
    name = args.folder.name
    new, held = split_frames(args.folder, work)
    say(f"{name}: {len(new)} new photos (job), {len(held)} held out; work folder {work}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNDIGITS_")}
    env.update(SIGNDIGITS_DATABASE_URL=f"sqlite:///{work / 'results.db'}",
               SIGNDIGITS_MODELS_DIR=str(work / "models"))
    run(env, *CLI, "run", str(work / "new"))
    reviewer = Reviewer(env, work)
    rows = []
    try:
        order, done, wrong = reviewer.order(), 0, 0
        for n in counts:
            wrong += reviewer.review(order[done:n], new)
            done = min(n, len(order))
            started = time.monotonic()
            run(env, *CLI, "adapt", "latest", "--out", f"{name}-{n}", "--data",
                str(args.dataset))
            seconds = time.monotonic() - started
            model = next((work / "models").glob(f"{name}-{n}-*.keras"))
            evaluation = read_model_info(model).metadata["evaluation"]
            rows.append((n, done, wrong, seconds, model, evaluation))
    finally:
        reviewer.stop()
    scores = held_accuracy({"shipped": shipped_model_path(),
                            **{str(r[0]): r[4] for r in rows}}, work / "held", held)
    right, total = scores["shipped"]
    print(f"\n{name}: {len(new)} photos in the job, {len(held)} held out (second half of "
          f"each digit's frames); shipped model on the held half: {right}/{total} "
          f"({right / total:.2%})")
    print("| reviews | model wrong on | adapt | held half after | studio unseen before | after |")
    print("|---|---|---|---|---|---|")
    for n, done, was_wrong, seconds, _, evaluation in rows:
        right, total = scores[str(n)]
        print(f"| {done} | {was_wrong} | {seconds:.0f} s | {right}/{total} ({right / total:.2%}) "
              f"| {evaluation['test_before']['accuracy']:.2%} "
              f"| {evaluation['test']['accuracy']:.2%} |")


if __name__ == "__main__":
    main()
