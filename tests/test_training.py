"""Training data layouts, the artifact, and training end to end.

The signer split's rules, the digest, the training rows and scoring in a model's class
order are the unit tier's (``tests/unit/test_training_data.py``). Training folders here
link whole signers of the dataset (``link_signers``), so their hand features come from
the shared cache after the first run; a test that needs a cold cache sets its own
``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from signdigits.serving.artifact import ArtifactError, read_model_info, shipped_model_path
from signdigits.serving.model_input import PREPROCESS_VERSION
from signdigits.training.data import (
    SOURCE_STRIDE,
    DataError,
    load_digit_folders,
    load_sources,
)
from signdigits.training.labels import NPY_CLASS_TO_DIGIT
from tests.conftest import link_signers, make_env, run_cli
from tests.waiting import wait_until


@pytest.mark.parametrize("saved_by", ["export-reviews", "a spreadsheet"])
def test_an_export_groups_its_photos_by_job_and_counter_run(saved_by, dataset, tmp_path):
    """Each job's photos get runs of their original names' counter; jobs never share one.
    A spreadsheet's save (a BOM, ";" between cells) was a KeyError traceback."""
    import csv

    base = tmp_path / "base"
    base_photos = len(link_signers(dataset, base, [5]))
    export = tmp_path / "export"
    rows = []
    for n, (digit, counter, job) in enumerate([(1, 100, "a"), (2, 101, "a"), (1, 300, "a"),
                                               (3, 102, "b"), (4, 103, "b")]):
        source = next((dataset / str(digit)).iterdir())
        name = f"{job}-{n}-photo.jpg"  # the export's own name: no counter in it
        (export / str(digit)).mkdir(parents=True, exist_ok=True)
        (export / str(digit) / name).write_bytes(source.read_bytes())
        rows.append({"file": f"{digit}/{name}", "job": job, "path": f"x/IMG_{counter}.JPG"})
    spreadsheet = saved_by == "a spreadsheet"
    with (export / "reviews.csv").open("w", newline="",
                                       encoding="utf-8-sig" if spreadsheet else "utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "job", "path"],
                                delimiter=";" if spreadsheet else ",")
        writer.writeheader()
        writer.writerows(rows)
    loaded = load_sources([base, export])
    assert base_photos == 10 and len(loaded) == 15 and loaded.names[10].startswith("1:")
    assert np.array_equal(loaded.groups[:10], load_digit_folders(base).groups)
    assert set(loaded.groups[:10].tolist()) == {0}  # one signer: 0 to 9 in a row
    group = {name.split("/")[-1]: int(g) for name, g in zip(loaded.names, loaded.groups,
                                                              strict=True) if name[:2] == "1:"}
    assert min(group.values()) >= SOURCE_STRIDE
    assert group["a-0-photo.jpg"] == group["a-1-photo.jpg"]  # 100 -> 101, digit rises
    assert group["a-2-photo.jpg"] != group["a-0-photo.jpg"]  # counter jumps to 300
    assert group["b-3-photo.jpg"] == group["b-4-photo.jpg"]
    assert group["b-3-photo.jpg"] != group["a-1-photo.jpg"]  # 101 -> 102, but another job


def test_an_export_manifest_of_another_shape_is_refused_in_one_line(dataset, tmp_path):
    photos = len(link_signers(dataset, tmp_path / "export", [6]))
    (tmp_path / "export" / "reviews.csv").write_text("name,digit\nx.jpg,3\n")
    with pytest.raises(DataError, match="reviews.csv: not the manifest export-reviews"):
        load_sources([tmp_path / "export"])
    (tmp_path / "export" / "reviews.csv").write_text("file,job,path\n")  # no rows: valid
    assert len(load_sources([tmp_path / "export"])) == photos > 0


def test_shipped_model_is_self_describing():
    from signdigits.serving.hands.features import FEATURES_VERSION
    from signdigits.serving.hands.models import MODEL_FILES

    info = read_model_info(shipped_model_path())
    assert list(info.class_to_digit) == list(NPY_CLASS_TO_DIGIT)
    meta = info.metadata
    for key in ("data_digest", "evaluation", "training_command", "version", "default_threshold",
                "temperature", "calibration", "recipe", "split"):
        assert key in meta, key
    # What reaches the classifier: the landmarks of the pinned hand models, as features of
    # this version (a reader with other models refuses it: test below).
    assert meta["hand_models"] == {name: pinned for name, (_, pinned) in MODEL_FILES.items()}
    assert meta["features_version"] == FEATURES_VERSION
    assert meta["preprocess_version"] == PREPROCESS_VERSION == 4 and meta["input_shape"] == [265]
    assert meta["training_command"].startswith("signdigits train") and "--cv 5" in \
        meta["training_command"]
    assert meta["evaluation"]["cross_validation"]["folds"] == 5
    assert meta["calibration"]["on"] == "5-fold out-of-fold"
    assert meta["evaluation"]["test"]["images"] > 200
    assert meta["split"]["by"] == "signer" and meta["split"]["test_groups"]
    assert meta["multiply_adds_per_image"] == 265 * 10 + 265 * meta["familiarity"]["references"]
    assert meta["familiarity"]["references"] == 256 and meta["familiarity"]["test_unfamiliar"] == 0


def _pair_with_metadata(tmp_path: Path, change) -> Path:
    """The shipped .keras and .onnx with the same change to both files' metadata, both
    re-versioned: a pair as another training would have written it, graphs unchanged."""
    import onnx

    from signdigits.serving.artifact import (
        METADATA_ENTRY,
        artifact_version,
        read_keras_metadata,
        write_keras_metadata,
    )

    tmp_path.mkdir(parents=True, exist_ok=True)
    keras_path = tmp_path / "pair.keras"
    keras_path.write_bytes(shipped_model_path().read_bytes())
    metadata = change(read_keras_metadata(keras_path))
    metadata["version"] = artifact_version(metadata)
    write_keras_metadata(keras_path, metadata)
    proto = onnx.load(shipped_model_path().with_suffix(".onnx"))
    entry = next(p for p in proto.metadata_props if p.key == METADATA_ENTRY)
    entry.value = json.dumps(metadata)
    keras_path.with_suffix(".onnx").write_bytes(proto.SerializeToString())
    return keras_path


def test_a_model_trained_on_other_hand_models_is_refused_by_the_reader(dataset, tmp_path):
    """Its features came from other landmarks than this reader's finder places: every
    answer would be read off the wrong numbers."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.reader import HandReader

    def other_landmarks(meta):
        return {**meta, "hand_models": {**meta["hand_models"],
                                        "hand_landmark_lite.tflite": "0" * 64}}

    models = default_models_dir()
    same = _pair_with_metadata(tmp_path / "same", lambda meta: {**meta, "note": "re-versioned"})
    HandReader.from_folder(Classifier(same), models)  # the pair as built here is served...
    other = _pair_with_metadata(tmp_path / "other", other_landmarks)
    with pytest.raises(ArtifactError, match="trained on landmarks of other hand models"):
        HandReader.from_folder(Classifier(other), models)  # ... unless its hand models differ
    photo = next((dataset / "3").iterdir())
    result = run_cli("predict", "--model", str(other), str(photo), env=make_env(),
                     cwd=tmp_path)
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 1 and line.startswith("error: ") and "retrain it" in line, line


def test_model_without_table_is_refused(tmp_path):
    stripped = tmp_path / "stripped.keras"
    with zipfile.ZipFile(shipped_model_path()) as src, zipfile.ZipFile(stripped, "w") as dst:
        for name in src.namelist():
            if name != "signdigits.json":
                dst.writestr(name, src.read(name))
    with pytest.raises(ArtifactError, match="class-index -> digit table"):
        read_model_info(stripped)
    result = run_cli("predict", "--model", str(stripped), str(tmp_path / "x.jpg"),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode != 0
    assert "table" in result.stderr


def test_a_model_file_replaced_in_place_is_read_again(tmp_path):
    """A long-running serve kept the first read forever (cached by path): jobs submitted
    after the model was replaced recorded the old model's version and threshold."""
    served = shipped_model_path()
    keras, onnx = tmp_path / "live.keras", tmp_path / "live.onnx"
    keras.write_bytes(served.read_bytes())
    onnx.write_bytes(served.with_suffix(".onnx").read_bytes())
    assert read_model_info(keras).version == read_model_info(served).version
    replacement = tmp_path / "new.onnx"
    replacement.write_bytes(b"not the graph that was there")
    replacement.replace(onnx)
    with pytest.raises(ArtifactError, match="live.onnx: not an ONNX model"):
        read_model_info(keras)


def test_a_model_path_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "m.keras")
    with pytest.raises(ArtifactError, match="m.keras: not a regular file"):
        read_model_info(tmp_path / "m.keras")  # it blocked forever in the zip reader
    (tmp_path / "m.keras").unlink()
    (tmp_path / "m.keras").write_bytes(shipped_model_path().read_bytes())
    os.mkfifo(tmp_path / "m.onnx")
    with pytest.raises(ArtifactError, match="m.onnx: not a regular file"):
        read_model_info(tmp_path / "m.keras")


def _with_metadata(tmp_path: Path, change) -> Path:
    """The shipped archive with its metadata changed and re-versioned, as a forger would."""
    from signdigits.serving.artifact import artifact_version

    made = tmp_path / "changed.keras"
    with zipfile.ZipFile(shipped_model_path()) as src, zipfile.ZipFile(made, "w") as dst:
        for name in src.namelist():
            if name != "signdigits.json":
                dst.writestr(name, src.read(name))
        metadata = change(json.loads(src.read("signdigits.json")))
        if isinstance(metadata, dict):
            metadata["version"] = artifact_version(metadata)
        raw = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
        dst.writestr("signdigits.json", raw)
    return made


@pytest.mark.parametrize(("change", "refusal"), [
    (lambda m: [m], "not a JSON object"),
    (lambda m: b"\xff\xfe{}", "not a JSON object"),
    (lambda m: b"[" * 200_000, "not a JSON object"),
    (lambda m: {**m, "class_to_digit": [float(d) for d in m["class_to_digit"]]},
     "class_to_digit"),
    (lambda m: {**m, "class_to_digit": ["0", *m["class_to_digit"][1:]]}, "class_to_digit"),
    (lambda m: {**m, "default_threshold": "high"}, "default_threshold"),
    (lambda m: {**m, "default_threshold": float("nan")}, "default_threshold"),
    (lambda m: {**m, "default_threshold": 1.5}, "default_threshold"),
], ids=["list", "not-utf8", "nested", "float-digits", "string-digit", "string-threshold",
        "nan", "1.5"])
def test_model_metadata_of_the_wrong_shape_is_refused_by_name(change, refusal, tmp_path):
    """Each was a TypeError or AttributeError, or a NaN threshold that flags nothing."""
    with pytest.raises(ArtifactError, match=refusal):
        read_model_info(_with_metadata(tmp_path, change))


def test_train_and_evaluate_end_to_end_on_a_tiny_subset(dataset, tmp_path):
    """Four signers: one each for validation and test, two trained on (50 steps)."""
    link_signers(dataset, tmp_path / "data", range(4))
    model = tmp_path / "tiny.keras"
    result = run_cli("train", "--data", str(tmp_path / "data"), "--epochs", "50",
                     "--out", str(model), env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    said = result.stdout + result.stderr
    assert "split by signer (seed 7): train 20, validation 10, test 10 images" in said
    info = read_model_info(model)
    meta = info.metadata
    assert meta["training_command"].startswith("signdigits train")
    assert meta["split"]["by"] == "signer" and len(meta["split"]["test_groups"]) == 1
    assert meta["recipe"]["epochs"] == 50 and meta["calibration"]["on"] == "validation"
    assert len(meta["photos_digest"]) == 64  # evaluate finds the test split by it
    # Trained on the training photos' hands as served: one row a photo with a hand.
    assert meta["history"]["hands"] == meta["split"]["train_images"] == 20
    report = tmp_path / "report"
    # SIGNDIGITS_MODEL_PATH, as predict and the workers read it (evaluate scored the shipped
    # model instead, and never said which one it scored).
    result = run_cli("evaluate", "--data", str(tmp_path / "data"), "--report", str(report),
                     env=make_env(model_path=str(model)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    said = result.stdout + result.stderr
    assert f"(version {info.version})" in said
    assert "the model's test split: 10 images" in said
    assert "Warning" not in said and "warn" not in said.lower(), said  # matplotlib's legend
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("accuracy=")
    figures = json.loads((report / "figures.json").read_text())
    # The same test signer, scored by train and by evaluate alike.
    assert float(last.split("=")[1]) == figures["accuracy"] == meta["evaluation"]["test"][
        "accuracy"]
    assert figures["images"] == 10 and set(figures["per_digit"]) == {str(d) for d in range(10)}
    assert figures["accuracy"] >= 0.5, figures  # a model that learnt something of the hands
    for name in ("confusion.png", "learning_curves.png", "selective_accuracy.png",
                 "selective_accuracy.csv"):
        assert (report / name).stat().st_size > 0, name

    # Other signers than its training's: all of them scored, a test split refused.
    link_signers(dataset, tmp_path / "others", [10])
    result = run_cli("evaluate", "--data", str(tmp_path / "others"), "--report",
                     str(tmp_path / "r2"), env=make_env(model_path=str(model)), cwd=tmp_path)
    assert result.returncode == 0 and "evaluating on all 10 images" in result.stderr
    result = run_cli("evaluate", "--data", str(tmp_path / "others"), "--split", "test",
                     env=make_env(model_path=str(model)), cwd=tmp_path)
    line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert line.startswith("error: --split test needs the data the model was trained on"), line


@pytest.mark.parametrize("name", ["noext", "m.h5", "served.onnx", "adir.keras", "afile/m.keras"])
def test_a_train_out_that_cannot_be_written_is_refused_before_training(name, tmp_path):
    """Each was found out after the whole training; served.onnx deleted the served graph
    beside a working served.keras and overwrote it with a Keras archive."""
    served = shipped_model_path()
    (tmp_path / "served.keras").write_bytes(served.read_bytes())
    (tmp_path / "served.onnx").write_bytes(served.with_suffix(".onnx").read_bytes())
    (tmp_path / "adir.keras").mkdir()
    (tmp_path / "afile").write_text("a file where a folder is needed")
    before = (tmp_path / "served.onnx").read_bytes()
    result = run_cli("train", "--data", str(tmp_path / "no-data-needed"), "--epochs", "1",
                     "--out", str(tmp_path / name), env=make_env(), cwd=tmp_path)
    [line] = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2) and line.startswith(f"error: --out {tmp_path / name}")
    assert (tmp_path / "served.onnx").read_bytes() == before


def test_training_on_too_few_signers_says_so(dataset, tmp_path):
    """It was Keras's "decay_steps must be > 0" (the split had left no training images)."""
    link_signers(dataset, tmp_path / "data", [0])
    for extra in sorted((tmp_path / "data").rglob("*.*"))[1:]:
        extra.unlink()
    result = run_cli("train", "--data", str(tmp_path / "data"), "--epochs", "1",
                     "--out", str(tmp_path / "m.keras"), env=make_env(), cwd=tmp_path)
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "1 images of 1 signers leave no training or validation images" in line, line


def test_an_unreadable_file_in_labelled_data_is_named_in_one_line(dataset, tmp_path):
    """It was a traceback from the decoding thread, for train, cv and evaluate. Nothing is
    cached for the folder: the photo fixed, it is read again."""
    link_signers(dataset, tmp_path / "data", [0])
    (tmp_path / "data" / "3" / "broken.jpg").write_bytes(b"not a photo")
    cache = tmp_path / "cache"
    for command in (["train", "--out", str(tmp_path / "m.keras")], ["cv"], ["evaluate"]):
        result = run_cli(*command, "--data", str(tmp_path / "data"),
                         env={**make_env(), "XDG_CACHE_HOME": str(cache)}, cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and "3/broken.jpg: not an image" in line, line
    assert not list(cache.rglob("*.npz"))
    assert not (tmp_path / "m.keras").exists()


def test_a_hand_finding_process_that_dies_is_one_line(dataset, tmp_path):
    """A spawned process killed (as the OOM killer would) while it finds hands: it was
    BrokenProcessPool's traceback. A cold cache, so that the hands are being found."""
    link_signers(dataset, tmp_path / "data", range(10))
    env = {**make_env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "signdigits", "evaluate", "--data", str(tmp_path / "data"),
               "--report", str(tmp_path / "report")]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        finder = wait_until(lambda: _spawned_child(process), timeout=60,
                            message="a process finding hands")
        os.kill(finder, signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    [line] = stderr.strip().splitlines()
    assert process.returncode == 1, stderr
    assert line.startswith(f"error: {tmp_path / 'data'}: a process finding the hands died"), line
    assert not list((tmp_path / "cache").rglob("*.npz"))


def _spawned_child(process: subprocess.Popen) -> int | None:
    """A child of ``process`` that multiprocessing spawned as a pool worker."""
    if process.poll() is not None:
        raise AssertionError(f"exited {process.returncode} first: {process.stderr.read()}")
    children = [pid for task in Path(f"/proc/{process.pid}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            return pid
    return None
