"""The hand models: which files, where they live, and how set-up fetches them.

MediaPipe's palm detector and hand-landmark models (Apache-2.0) ship inside the
``mediapipe`` 0.10.21 wheel on PyPI (later releases no longer carry them). The package
itself is never installed (its pins, numpy<2 and protobuf<5, clash with ours): set-up
downloads the pinned wheel with pip, takes the three ``.tflite`` files out, and checks each
against the SHA-256 pinned here, so a changed upload is refused rather than served. At run
time the files are only read from disk, never downloaded.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

WHEEL = "mediapipe==0.10.21"
# name in the served folder -> (member of the wheel, SHA-256 of its bytes). The lite
# models search (the full palm detector costs 1.3x the time and found no more hands on the
# foreign photos); the full landmark model places the points the classifier reads, once a
# hand is found: 2.1x a lite pass, for 4 fewer studio photos misread out of fold and one
# fewer on the test split (docs/model.md, "What was tried").
MODEL_FILES = {
    "palm_detection_lite.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
    ),
    "hand_landmark_lite.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
    ),
    "hand_landmark_full.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
}
PALM_MODEL = "palm_detection_lite.tflite"
LANDMARK_MODEL = "hand_landmark_lite.tflite"  # is there a hand, and roughly where
PLACING_MODEL = "hand_landmark_full.tflite"  # the points of a hand kept, as read
FETCH_COMMAND = "signdigits fetch-hand-models"


class HandModelsError(RuntimeError):
    """The hand models are missing or not the pinned ones; the message says what to run."""


def default_models_dir() -> Path:
    """Beside the installation (the venv, or the image's Python): one copy per install."""
    return Path(sys.prefix) / "share" / "signdigits" / "hands"


def models_dir(configured: Path | None) -> Path:
    return configured or default_models_dir()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_models(folder: Path) -> dict[str, str]:
    """name -> SHA-256 of each served file; HandModelsError if one is missing or altered."""
    found = {}
    for name, (_member, pinned) in MODEL_FILES.items():
        path = folder / name
        if not path.is_file():
            raise HandModelsError(f"hand model {path} is missing: run `{FETCH_COMMAND}`")
        digest = sha256_of(path)
        if digest != pinned:
            raise HandModelsError(f"hand model {path} is not the pinned file (sha256 "
                                  f"{digest[:12]}..., expected {pinned[:12]}...): run "
                                  f"`{FETCH_COMMAND}` again")
        found[name] = digest
    return found


def models_present(folder: Path) -> bool:
    try:
        check_models(folder)
    except HandModelsError:
        return False
    return True


def fetch_models(folder: Path, *, say: Callable[[str], None] = lambda _: None) -> None:
    """Download the pinned wheel with pip, check and install its three model files.

    pip uses the index the user configured (a mirror works); only the files whose hashes
    match the pins are installed, each written whole under a temporary name first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="signdigits-hands-") as scratch:
        say(f"downloading {WHEEL} (36 MB) for its hand models ...")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--dest", scratch, WHEEL]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(scratch).glob("mediapipe-*.whl"))
        if done.returncode != 0 or not wheels:
            detail = (done.stderr.strip().splitlines() or ["no wheel for this platform"])[-1]
            raise HandModelsError(f"could not download {WHEEL}: {detail}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name, (member, pinned) in MODEL_FILES.items():
                data = wheel.read(member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != pinned:
                    raise HandModelsError(f"{member} in {wheels[0].name} has sha256 "
                                          f"{digest}, not the pinned {pinned}: not installed")
                partial = folder / f".{name}.partial"
                partial.write_bytes(data)
                partial.replace(folder / name)
                say(f"installed {folder / name} (sha256 {digest[:12]}..., checked)")
    # What the files came from, for a person looking in the folder.
    (folder / "SOURCE.txt").write_text(
        f"From the {WHEEL} wheel on PyPI (Apache-2.0, Google LLC), checked against the "
        "SHA-256 pinned in signdigits/serving/hands/models.py.\n")

