"""Training data layouts, the artifact, and training end to end.

The signer split's rules and scoring in a model's class order are the unit tier's
(``tests/unit/test_training_data.py``).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from signdigits.serving.artifact import ArtifactError, read_model_info, shipped_model_path
from signdigits.training.data import (
    SOURCE_STRIDE,
    DataError,
    load_digit_folders,
    load_npy,
    load_sources,
    save_npy,
)
from signdigits.training.labels import NPY_CLASS_TO_DIGIT
from tests.conftest import copy_sample, make_env, run_cli


@pytest.mark.parametrize("saved_by", ["export-reviews", "a spreadsheet"])
def test_an_export_groups_its_photos_by_job_and_counter_run(saved_by, dataset, tmp_path):
    """Each job's photos get runs of their original names' counter; jobs never share one.
    A spreadsheet's save (a BOM, ";" between cells) was a KeyError traceback."""
    import csv

    base = tmp_path / "base"
    copy_sample(dataset, base, per_digit=1, seed=4)
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
    assert len(loaded) == 15 and loaded.names[10].startswith("1:")
    assert np.array_equal(loaded.groups[:10], load_digit_folders(base).groups)
    group = {name.split("/")[-1]: int(g) for name, g in zip(loaded.names, loaded.groups,
                                                              strict=True) if name[:2] == "1:"}
    assert min(group.values()) >= SOURCE_STRIDE
    assert group["a-0-photo.jpg"] == group["a-1-photo.jpg"]  # 100 -> 101, digit rises
    assert group["a-2-photo.jpg"] != group["a-0-photo.jpg"]  # counter jumps to 300
    assert group["b-3-photo.jpg"] == group["b-4-photo.jpg"]
    assert group["b-3-photo.jpg"] != group["a-1-photo.jpg"]  # 101 -> 102, but another job


def test_an_export_manifest_of_another_shape_is_refused_in_one_line(dataset, tmp_path):
    copy_sample(dataset, tmp_path / "export", per_digit=1)
    (tmp_path / "export" / "reviews.csv").write_text("name,digit\nx.jpg,3\n")
    with pytest.raises(DataError, match="reviews.csv: not the manifest export-reviews"):
        load_sources([tmp_path / "export"])
    (tmp_path / "export" / "reviews.csv").write_text("file,job,path\n")  # no rows: valid
    assert len(load_sources([tmp_path / "export"])) == 10


def test_folder_and_npy_layouts_give_the_same_inputs(dataset, tmp_path):
    copy_sample(dataset, tmp_path / "folders", per_digit=3)
    from_folders = load_digit_folders(tmp_path / "folders")
    save_npy(from_folders, tmp_path / "npy")
    from_npy = load_npy(tmp_path / "npy")
    assert np.array_equal(from_folders.x, from_npy.x)
    assert np.array_equal(from_folders.classes, from_npy.classes)
    assert np.array_equal(from_folders.groups, from_npy.groups)
    # Y.npy uses the dataset's class order, not digits: folder 0 is class index 1.
    y = np.load(tmp_path / "npy" / "Y.npy")
    zero = [i for i, n in enumerate(from_folders.names) if n.startswith("0/")][0]
    assert y[zero].argmax() == NPY_CLASS_TO_DIGIT.index(0) == 1
    assert from_npy.digits.tolist() == [int(n.split("/")[0]) for n in from_npy.names]


def test_names_with_line_breaks_survive_the_npy_layout(tmp_path):
    """A name with a line break shifted every later name, and now failed the length check
    of convert's own output."""
    from signdigits.training.data import LabelledImages

    names = ["a\nb.jpg", "c\u2028d\r.jpg", "plain.jpg"]
    save_npy(LabelledImages(np.zeros((3, 64, 64), np.float32), np.arange(3), np.arange(3),
                            names), tmp_path)
    assert load_npy(tmp_path).names == ["a\\nb.jpg", "c\u2028d\\r.jpg", "plain.jpg"]


def _npy_spoilt(folder: Path, how: str) -> None:
    x, y = np.load(folder / "X.npy"), np.load(folder / "Y.npy")
    if how == "empty":
        np.save(folder / "X.npy", x[:0])
        np.save(folder / "Y.npy", y[:0])
    elif how == "truncated":
        (folder / "X.npy").write_bytes((folder / "X.npy").read_bytes()[:1000])
    elif how == "strings":
        np.save(folder / "X.npy", np.full(x.shape, "a"))
    elif how == "nan":
        x[0, 0, 0] = np.nan
        np.save(folder / "X.npy", x)
    elif how == "zero-y":
        np.save(folder / "Y.npy", np.zeros_like(y))
    elif how in ("short-groups", "long-groups"):
        groups = np.load(folder / "groups.npy")
        np.save(folder / "groups.npy", groups[:5] if how == "short-groups"
                else np.concatenate([groups, groups]))


@pytest.mark.parametrize(("how", "message"), [
    ("empty", "X.npy: holds no images"), ("truncated", "X.npy: cannot read it"),
    ("strings", "X.npy: expected numbers"), ("nan", "X.npy: pixel values"),
    ("zero-y", "Y.npy: each row must be one-hot"), ("short-groups", "groups.npy: expected 20"),
    ("long-groups", "groups.npy: expected 20"),
])
def test_a_spoilt_npy_layout_is_refused_by_name(how, message, dataset, tmp_path):
    """Tracebacks (empty, truncated, strings, long groups) or a quiet wrong training (a
    short groups.npy dropped images, a zero Y made every label class 0, NaN pixels)."""
    copy_sample(dataset, tmp_path / "folders", per_digit=2)
    save_npy(load_digit_folders(tmp_path / "folders"), tmp_path / "npy")
    load_npy(tmp_path / "npy")  # sound before it is spoilt
    _npy_spoilt(tmp_path / "npy", how)
    with pytest.raises(DataError, match=message):
        load_npy(tmp_path / "npy")


def test_shipped_model_is_self_describing():
    info = read_model_info(shipped_model_path())
    assert list(info.class_to_digit) == list(NPY_CLASS_TO_DIGIT)
    meta = info.metadata
    for key in ("input_shape", "preprocess_version", "data_digest", "evaluation",
                "training_command", "version", "default_threshold"):
        assert key in meta, key
    assert meta["evaluation"]["test"]["images"] > 200


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
    copy_sample(dataset, tmp_path / "data", per_digit=6)
    model = tmp_path / "tiny.keras"
    result = run_cli("train", "--data", str(tmp_path / "data"), "--epochs", "2",
                     "--out", str(model), env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch 2/2" in result.stderr
    info = read_model_info(model)
    assert info.metadata["training_command"].startswith("signdigits train")
    assert info.metadata["split"]["by"] == "signer"
    report = tmp_path / "report"
    # SIGNDIGITS_MODEL_PATH, as predict and the workers read it (evaluate scored the shipped
    # model instead, and never said which one it scored).
    result = run_cli("evaluate", "--data", str(tmp_path / "data"), "--report", str(report),
                     env=make_env(model_path=str(model)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"(version {info.version})" in result.stdout + result.stderr
    assert "the model's test split" in result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("accuracy=") and 0 <= float(last.split("=")[1]) <= 1
    for name in ("confusion.png", "learning_curves.png", "selective_accuracy.png",
                 "selective_accuracy.csv"):
        assert (report / name).stat().st_size > 0, name
    figures = json.loads((report / "figures.json").read_text())
    assert set(figures["per_digit"]) == {str(d) for d in range(10)}


def test_convert_command_writes_the_npy_layout(dataset, tmp_path):
    copy_sample(dataset, tmp_path / "data", per_digit=2)
    result = run_cli("convert", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "npy"),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "npy" / "X.npy").shape == (20, 64, 64)
    assert np.load(tmp_path / "npy" / "Y.npy").shape == (20, 10)


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
    copy_sample(dataset, tmp_path / "data", per_digit=1)
    for extra in sorted((tmp_path / "data").rglob("*.*"))[1:]:
        extra.unlink()
    result = run_cli("train", "--data", str(tmp_path / "data"), "--epochs", "1",
                     "--out", str(tmp_path / "m.keras"), env=make_env(), cwd=tmp_path)
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "1 images of 1 signers leave no training or validation images" in line, line


def test_an_unreadable_file_in_labelled_data_is_named_in_one_line(dataset, tmp_path):
    """It was a traceback from the decoding thread, for convert, train, cv and evaluate."""
    copy_sample(dataset, tmp_path / "data", per_digit=1)
    (tmp_path / "data" / "3" / "broken.jpg").write_bytes(b"not a photo")
    for command in (["convert", "--out", str(tmp_path / "npy")], ["evaluate"]):
        result = run_cli(*command, "--data", str(tmp_path / "data"), env=make_env(),
                         cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and "3/broken.jpg: not an image" in line, line
    assert not (tmp_path / "npy" / "X.npy").exists()
