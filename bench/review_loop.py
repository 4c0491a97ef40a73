"""The review loop, measured: flag -> review -> export -> retrain -> accuracy on new signers.

    .venv/bin/python -m signdigits.bench.review_loop [--threshold 0.9] [--work DIR]
        [--control] [--epochs 120] [--dataset DIR]

1. The signers the shipped model never trained on (the test split of training/data.py's
   split_by_signer, with the seed the artifact records) are cut in two halves at random
   (seed 1): "new photos" and "evaluation". The evaluation half is used for nothing but
   the final figures.
2. The new photos run as a job through the real pipeline (``signdigits run``, embedded
   Valkey and workers, a SQLite file in the work folder) at --threshold.
3. ``signdigits serve`` (basic auth as user review-loop-bench) serves the job; this
   module, standing in for a person, takes the review queue over the HTTP API and posts
   each below-threshold image's true digit (its folder's name).
4. ``signdigits export-reviews``, then ``signdigits train --data DATASET --data EXPORT``
   (the shipped model's recipe and seed: the dataset's split is the shipped model's, so
   the training signers are the shipped model's plus the export's), under nice -n 10.
   With --control, also ``train --data DATASET`` alone (the same recipe retrained without
   the export), to tell the export's effect from retraining's own variation.
5. The shipped model and the retrained one(s) on the evaluation half: accuracy, and
   coverage (share at or above the threshold) with the accuracy of those, at --threshold
   and at each model's own default threshold.

Needs the training extra (TensorFlow). With the shipped recipe's epochs each training
takes ~20 minutes on 2 cores; --epochs 1 goes through the whole loop in ~2 minutes (to
check it, not to measure). Prints timestamped steps, the job's summary, then a Markdown
table, one row a model (the retrained rows here from --epochs 1)::

    | model | accuracy | coverage at T | accuracy of covered | default threshold D | ...
    |---|---|---|---|---|---|---|
    | shipped (8e2a3e05e8a40dcb) | 100.00% (141/141) | 99.29% (140) | 100.00% | 0.92 | ...
    | retrained with the export (923f5b7fce6a5903) | 35.46% (50/141) | 0.00% (0) | - | ...
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from signdigits.bench.arguments import default_dataset, positive_int

CLI = [sys.executable, "-m", "signdigits"]
REVIEWER = "review-loop-bench"  # the basic-auth user: each review records it


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def run(env: dict[str, str], *command: str, nice: bool = False) -> str:
    """A command to its end, its output; one line and exit 1 if it fails."""
    say("$ " + " ".join(command[2:] if command[:2] == tuple(CLI[:2]) else command))
    full = (["nice", "-n", "10"] if nice else []) + list(command)
    done = subprocess.run(full, env=env, text=True, capture_output=True)
    if done.returncode:
        sys.exit(f"error: {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return (done.stdout + done.stderr).strip()


def split_unseen(dataset: Path, meta: dict):
    """Step 1: the dataset's (path, digit) files, their signer groups, and the signers the
    shipped model never trained on in two halves: (new photos, evaluation)."""
    import numpy as np

    from signdigits.training.data import file_signer_groups, list_labelled_files, split_by_signer

    recipe = meta["recipe"]
    files = list_labelled_files(dataset)
    groups = file_signer_groups(files)
    _, _, test_idx = split_by_signer(groups, seed=recipe["seed"],
                                     val_fraction=recipe["val_fraction"],
                                     test_fraction=recipe["test_fraction"])
    unseen = sorted({int(g) for g in groups[test_idx]})
    if unseen != meta["split"]["test_groups"]:
        sys.exit("error: the dataset's test signers differ from the shipped model's record")
    halves = np.random.default_rng(1).permutation(unseen)
    return files, groups.tolist(), (set(halves[: len(halves) // 2]),
                                    set(halves[len(halves) // 2:]))


def link_folder(files, groups: list, folder: Path, chosen: set) -> dict[str, int]:
    """Hard links to the chosen signers' photos in digit folders; relative path -> digit."""
    truth = {}
    for (path, digit), group in zip(files, groups, strict=True):
        if group in chosen:
            target = folder / str(digit) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
            truth[f"{digit}/{path.name}"] = digit
    return truth


def review_over_http(env: dict[str, str], work: Path, truth: dict[str, int]) -> str:
    """Step 3: ``signdigits serve``, and each below-threshold image of the latest job
    answered with its true digit over the API; the job's id."""
    from signdigits.stack.valkey import free_port

    port = free_port()
    password = secrets.token_urlsafe(18)
    serve_env = {**env, "SIGNDIGITS_WEB_AUTH": f"{REVIEWER}:{password}"}
    auth = "Basic " + base64.b64encode(f"{REVIEWER}:{password}".encode()).decode()

    def http(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    say(f"$ signdigits serve --port {port}")
    with open(work / "serve.log", "w") as log:
        server = subprocess.Popen([*CLI, "serve", "--port", str(port), "--workers", "1"],
                                  env=serve_env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                http("GET", "/api/jobs/latest")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"error: serve did not answer; see {work / 'serve.log'}")
                time.sleep(0.5)
        queue = http("GET", "/api/jobs/latest/review?limit=500")
        fixed, stored = 0, {}
        for item in queue["items"]:
            digit = truth[item["path"]]
            stored = http("POST", f"/api/images/{item['id']}/review", {"digit": digit})
            fixed += digit != item["digit"]
        say(f"reviewed {stored.get('queue_reviewed', 0)} of {queue['total']} below-threshold "
            f"images as {stored.get('reviewer', '-')}; the model's digit was wrong on {fixed}")
        return queue["job"]
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(60)


def retrain(env: dict[str, str], args: argparse.Namespace, work: Path, recipe: dict,
            export: Path) -> dict[str, Path]:
    """Step 4's training(s) with the shipped model's recipe: name -> the model's file."""
    # The shipped model's whole recipe: each option it records (an older or newer recipe
    # may lack one; then the training command's default stands).
    options = ["--epochs", str(args.epochs or recipe["epochs"]), "--seed", str(recipe["seed"])]
    for name in ("architecture", "members", "augmentation"):
        if name in recipe:
            options += [f"--{name}", str(recipe[name])]
    models = {}
    started = time.monotonic()
    run(env, *CLI, "train", "--data", str(args.dataset), "--data", str(export), *options,
        "--out", str(work / "with-export.keras"), nice=True)
    say(f"trained with the export in {time.monotonic() - started:.0f} s")
    models["retrained with the export"] = work / "with-export.keras"
    if args.control:
        started = time.monotonic()
        run(env, *CLI, "train", "--data", str(args.dataset), *options,
            "--out", str(work / "control.keras"), nice=True)
        say(f"trained the control in {time.monotonic() - started:.0f} s")
        models["retrained without it (control)"] = work / "control.keras"
    return models


def evaluate(models: dict[str, Path], folder: Path, truth_of: dict[str, int], *,
             signers: int, threshold: float) -> None:
    """Step 5: every model on the evaluation signers, as a Markdown table. The hands are
    found once (the same for every model); a photo without one counts as wrong, with
    confidence 0, as the workers store it."""
    import numpy as np

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier, configure_tensorflow
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.photo import read_photo
    from signdigits.serving.reader import HandReader

    configure_tensorflow(0)
    hands = models_dir(get_settings().hand_models_dir)
    paths = sorted(truth_of)
    finder = HandFinder(hands)
    found = [finder.find(read_photo(folder / p).image) for p in paths]
    truth = np.asarray([truth_of[p] for p in paths])
    print(f"\nevaluation: {signers} signers never trained on, {len(paths)} images "
          f"({sum(map(bool, found))} with a hand found); review threshold {threshold}")
    print("| model | accuracy | coverage at T | accuracy of covered | default threshold D "
          "| coverage at D | accuracy of covered at D |")
    print("|---|---|---|---|---|---|---|")
    for name, path in models.items():
        reader = HandReader.from_folder(Classifier(path), hands)
        answers = [r.answer for r in reader.classify(found)]
        digits = np.asarray([-1 if a is None else a.prediction.digit for a in answers])
        confidence = np.asarray([0.0 if a is None else a.prediction.confidence
                                 for a in answers])
        right = digits == truth
        cells = [f"{right.mean():.2%} ({right.sum()}/{len(right)})"]
        for limit in (threshold, reader.classifier.info.default_threshold):
            covered = confidence >= limit
            if limit != threshold:
                cells.append(f"{limit:.2f}")
            cells += [f"{covered.mean():.2%} ({covered.sum()})",
                      f"{right[covered].mean():.2%}" if covered.any() else "-"]
        print(f"| {name} ({reader.classifier.info.version}) | " + " | ".join(cells) + " |")


def threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected 0 to 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.review_loop",
        description="The review loop, measured: a job on new signers, its below-threshold "
                    "images reviewed over the HTTP API, exported, the model retrained with "
                    "them, and every model's accuracy on other new signers.")
    parser.add_argument("--dataset", type=Path, default=default_dataset(),
                        help="digit folders 0-9 (default: the shared dataset)")
    parser.add_argument("--threshold", type=threshold, default=0.9,
                        help="the job's threshold: images below it are reviewed (default: 0.9)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/signdigits-review-loop"),
                        help="a new (or empty) folder for the job's files, database and "
                             "models (default: /tmp/signdigits-review-loop)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="default: the shipped recipe's")
    parser.add_argument("--control", action="store_true",
                        help="also retrain without the export (a second training)")
    args = parser.parse_args(argv)
    args.dataset, args.work = args.dataset.resolve(), args.work.resolve()
    if not args.dataset.is_dir():
        parser.error(f"argument --dataset: {args.dataset}: no such folder")
    if args.work.exists() and (not args.work.is_dir() or any(args.work.iterdir())):
        parser.error(f"argument --work: {args.work} is not empty (choose a new folder)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SIGNDIGITS_DATABASE_URL": f"sqlite:///{work / 'loop.db'}"}
    env.pop("SIGNDIGITS_BROKER_URL", None)
    env.pop("SIGNDIGITS_MODEL_PATH", None)  # the shipped model classifies the job

    # 1. The unseen signers, in two halves.
    shipped = read_model_info(shipped_model_path())
    files, groups, (new_groups, eval_groups) = split_unseen(args.dataset, shipped.metadata)
    new_truth = link_folder(files, groups, work / "new-photos", new_groups)
    eval_truth = link_folder(files, groups, work / "evaluation", eval_groups)
    say(f"unseen signers: {len(new_groups) + len(eval_groups)}; new photos: "
        f"{len(new_groups)} signers, {len(new_truth)} images; evaluation: "
        f"{len(eval_groups)} signers, {len(eval_truth)} images")

    # 2. The new photos through the real pipeline.
    summary = run(env, *CLI, "run", str(work / "new-photos"), "--threshold",
                  str(args.threshold), nice=True)
    print("\n".join(line for line in summary.splitlines()[-12:] if line.strip()))

    # 3. Review the below-threshold images over the HTTP API, with their true digits.
    job_id = review_over_http(env, work, new_truth)

    # 4. Export and retrain.
    print(run(env, *CLI, "export-reviews", job_id, "--out", str(work / "export")))
    models = {"shipped": shipped_model_path(),
              **retrain(env, args, work, shipped.metadata["recipe"], work / "export")}

    # 5. Every model on the evaluation signers.
    evaluate(models, work / "evaluation", eval_truth, signers=len(eval_groups),
             threshold=args.threshold)


if __name__ == "__main__":
    main()
