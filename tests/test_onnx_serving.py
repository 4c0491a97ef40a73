"""Serving with ONNX Runtime: parity with TensorFlow, the exported graph, refused pairs,
and no TensorFlow in a worker or in ``predict``.

Real hand features of the dataset's photos, a model trained for real (tiny), real worker
processes and real ``signdigits`` subprocesses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from signdigits.serving.artifact import (
    METADATA_ENTRY,
    ArtifactError,
    read_model_info,
    shipped_model_path,
)
from tests.conftest import (
    REPO,
    Stack,
    copy_sample,
    link_signers,
    make_env,
    run_cli,
    sample_images,
)

SHIPPED_KERAS = shipped_model_path()
SHIPPED_ONNX = SHIPPED_KERAS.with_suffix(".onnx")


def _features(paths: list[Path]) -> np.ndarray:
    """The served hand features of the photos where a hand is found (as training reads
    them, through the feature cache)."""
    from signdigits.training.hand_features import read_features

    x, found = read_features(paths)
    assert found.mean() > 0.9, found.mean()
    return x[found]


def test_shipped_pair_carries_one_version_and_the_table():
    from signdigits.serving.onnx_file import split_model

    props, _ = split_model(SHIPPED_ONNX.read_bytes())
    in_graph = json.loads(props[METADATA_ENTRY])
    keras_info = read_model_info(SHIPPED_KERAS)
    onnx_info = read_model_info(SHIPPED_ONNX)
    assert keras_info.version == onnx_info.version == in_graph["version"]
    assert keras_info.metadata == onnx_info.metadata == in_graph
    assert list(onnx_info.class_to_digit) == in_graph["class_to_digit"]
    # One dense layer, then the distances to the familiarity step's reference hands.
    references = in_graph["familiarity"]["references"]
    assert in_graph["multiply_adds_per_image"] == 265 * 10 + 265 * references


def test_runtimes_agree_on_200_real_photos(dataset):
    from signdigits.serving.classifier import Classifier

    photos = [path for path, _ in sample_images(dataset, per_digit=20, seed=17)]
    features = _features(photos)
    onnx = Classifier(runtime="onnx", threads=1)
    tensorflow = Classifier(runtime="tensorflow", threads=1)
    a, b = onnx.probabilities(features), tensorflow.probabilities(features)
    assert a.shape == b.shape == (len(features), 10)
    assert (a.argmax(1) == b.argmax(1)).all()
    worst = float(np.abs(a - b).max())
    assert worst <= 1e-4, worst
    digits = [(p.digit, q.digit) for p, q in zip(onnx.classify(features),
                                                   tensorflow.classify(features), strict=True)]
    assert all(x == y for x, y in digits)


@pytest.fixture(scope="module")
def tiny(dataset, tmp_path_factory) -> Path:
    """A model trained for real on four signers, 50 steps: its .keras and .onnx."""
    folder = tmp_path_factory.mktemp("tiny")
    link_signers(dataset, folder / "data", range(4))
    model = folder / "tiny.keras"
    result = run_cli("train", "--data", str(folder / "data"), "--epochs", "50",
                     "--out", str(model), env=make_env(), cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return model


def test_exported_graph_of_a_trained_model_agrees_with_keras(tiny, dataset, tmp_path):
    """On the hands of signers it never saw; ``export-onnx`` on a copy stamps a pair that
    is read as one."""
    from signdigits.serving.classifier import Classifier

    info = read_model_info(tiny)
    assert info.onnx_path == tiny.with_suffix(".onnx") and info.onnx_path.is_file()
    assert read_model_info(info.onnx_path).version == info.version
    features = _features([tmp_path / "x" / name for name in _linked(dataset, tmp_path, [20, 21])])
    a = Classifier(tiny, runtime="onnx").probabilities(features)
    b = Classifier(tiny, runtime="tensorflow").probabilities(features)
    assert a.shape == (len(features), 10) and float(np.abs(a - b).max()) <= 1e-5
    copy = tmp_path / "copy.keras"
    shutil.copyfile(tiny, copy)
    again = run_cli("export-onnx", str(copy), env=make_env(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    version = read_model_info(copy.with_suffix(".onnx")).version
    assert read_model_info(copy).version == version
    references = info.metadata["familiarity"]["references"]
    assert references == info.metadata["history"]["hands"]  # under 256: every one trained on
    adds = 265 * 10 + 265 * references
    assert f"wrote {copy.with_suffix('.onnx')} (version {version}, {adds:,} multiply-adds " \
        "per image)" in again.stdout + again.stderr


def _linked(dataset: Path, tmp_path: Path, signers: list[int]) -> list[str]:
    return list(link_signers(dataset, tmp_path / "x", signers))


def test_a_model_trained_with_another_class_order_still_maps_right(dataset, tmp_path):
    """The shipped network with its outputs reordered to digit order, and its table saying
    so: every runtime gives the same digits and confidences as the shipped model."""
    from signdigits.serving.artifact import read_keras_metadata, save_artifact
    from signdigits.serving.classifier import Classifier, import_tensorflow
    from signdigits.training.export_onnx import export_onnx

    import_tensorflow()
    import keras

    import signdigits.serving.familiar  # noqa: F401 - registers the graph's last layer

    shipped = keras.saving.load_model(SHIPPED_KERAS, compile=False)
    table = read_model_info(SHIPPED_KERAS).class_to_digit
    order = [table.index(d) for d in range(10)]  # new output k = the shipped class of digit k
    kernel, bias = shipped.get_layer("probabilities").get_weights()
    shipped.get_layer("probabilities").set_weights([kernel[:, order], bias[order]])
    metadata = {k: v for k, v in read_keras_metadata(SHIPPED_KERAS).items()
                if k not in ("version", "keras_sha256", "onnx_sha256")}
    reordered = tmp_path / "reordered.keras"
    save_artifact(shipped, reordered, {**metadata, "class_to_digit": list(range(10))})
    export_onnx(reordered)
    features = _features([tmp_path / "x" / name for name in _linked(dataset, tmp_path, [30])])
    expected = Classifier(runtime="onnx").classify(features)
    assert len({p.digit for p in expected}) > 5
    for runtime in ("onnx", "tensorflow"):
        got = Classifier(reordered, runtime=runtime).classify(features)
        assert [p.class_index for p in got] == [p.digit for p in got]
        assert [p.digit for p in got] == [p.digit for p in expected], runtime
        assert np.allclose([p.confidence for p in got], [p.confidence for p in expected],
                           atol=1e-5)


def test_a_graph_its_class_table_does_not_describe_is_refused_at_load(tmp_path):
    """A network with 5 outputs beside a 10-digit table: export-onnx wrote it, and a worker
    loaded it and then failed every batch (IndexError), predict gave a traceback."""
    from signdigits.serving.artifact import save_artifact
    from signdigits.serving.classifier import Classifier, import_tensorflow
    from signdigits.training.export_onnx import export_onnx

    import_tensorflow()
    import keras

    five = keras.Sequential([keras.Input((265,)), keras.layers.Dense(5, activation="softmax")])
    path = tmp_path / "five.keras"
    save_artifact(five, path, {"class_to_digit": list(range(10)), "default_threshold": 0.5})
    with pytest.raises(ArtifactError, match=r"five.keras: its graph gives \(5,\) outputs"):
        Classifier(path, runtime="tensorflow")
    with pytest.raises(ArtifactError, match=r"five.keras: its network gives \(5,\) outputs"):
        export_onnx(path)
    assert not path.with_suffix(".onnx").exists()


def _rewrite_onnx_metadata(source: Path, target: Path, change) -> None:
    import onnx

    proto = onnx.load(source)
    entry = next(p for p in proto.metadata_props if p.key == METADATA_ENTRY)
    metadata = json.loads(entry.value)
    change(metadata)
    entry.value = json.dumps(metadata)
    target.write_bytes(proto.SerializeToString())


def test_graph_and_metadata_that_disagree_are_refused(tiny, tmp_path):
    # Tampered metadata: the threshold changed, the version kept.
    tampered = tmp_path / "tampered.onnx"
    _rewrite_onnx_metadata(SHIPPED_ONNX, tampered,
                           lambda m: m.update(default_threshold=0.01))
    with pytest.raises(ArtifactError, match="metadata was altered"):
        read_model_info(tampered)
    # Another training's graph under the shipped metadata (version and digests included).
    shipped = json.loads(json.dumps(read_model_info(SHIPPED_ONNX).metadata))
    swapped = tmp_path / "swapped.onnx"
    _rewrite_onnx_metadata(tiny.with_suffix(".onnx"), swapped,
                           lambda m: (m.clear(), m.update(shipped)))
    with pytest.raises(ArtifactError, match="graph and metadata disagree"):
        read_model_info(swapped)
    # A pair whose halves come from different trainings.
    pair = tmp_path / "pair"
    pair.mkdir()
    shutil.copyfile(SHIPPED_KERAS, pair / "m.keras")
    shutil.copyfile(tiny.with_suffix(".onnx"), pair / "m.onnx")
    for named in ("m.keras", "m.onnx"):
        with pytest.raises(ArtifactError, match="come from different trainings"):
            read_model_info(pair / named)


def test_a_worker_and_predict_refuse_a_mismatched_pair(tiny, redis_url, tmp_path, dataset):
    pair = tmp_path / "pair"
    pair.mkdir()
    shutil.copyfile(SHIPPED_KERAS, pair / "m.keras")
    shutil.copyfile(tiny.with_suffix(".onnx"), pair / "m.onnx")
    env = make_env(broker_url=redis_url, database_url=f"sqlite:///{tmp_path / 'w.db'}",
                   model_path=str(pair / "m.keras"))
    # The command, and Celery's own entry point (what compose or a unit file may run).
    for command in (["-m", "signdigits", "worker"],
                    ["-m", "celery", "-A", "signdigits.worker", "worker", "--loglevel", "INFO"]):
        worker = subprocess.run([sys.executable, *command], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        assert worker.returncode == 1, worker.stderr[-3000:]
        last = worker.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "come from different trainings" in last, \
            worker.stderr[-3000:]
    photo = sample_images(dataset, per_digit=1)[0][0]
    result = run_cli("predict", str(photo), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "different trainings" in result.stderr


@pytest.mark.parametrize("given", [None, "0.5"], ids=["model-default", "given"])
def test_a_job_is_flagged_by_the_threshold_of_the_model_that_classified_it(
        given, redis_url, tmp_path, dataset):
    """Workers given a new model before the submitter: a threshold no one gave was the
    submitter's model's default (0.84) applied to another model's confidences."""
    from signdigits.serving.artifact import (
        artifact_version,
        read_keras_metadata,
        write_keras_metadata,
    )
    from signdigits.training.export_onnx import export_onnx

    recalibrated = tmp_path / "recalibrated.keras"  # the shipped network, another threshold
    shutil.copyfile(SHIPPED_KERAS, recalibrated)
    metadata = {**read_keras_metadata(SHIPPED_KERAS), "default_threshold": 0.9999}
    write_keras_metadata(recalibrated, {**metadata, "version": artifact_version(metadata)})
    shipped, served = read_model_info(SHIPPED_KERAS), export_onnx(recalibrated)
    assert served.version != shipped.version
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    copy_sample(dataset, tmp_path / "photos", per_digit=2)
    stack.start_worker(concurrency=1, SIGNDIGITS_MODEL_PATH=str(recalibrated))
    try:
        job_id = stack.submit(tmp_path / "photos", *(["--threshold", given] if given else []))
        stack.wait_for(job_id, timeout=120)
        rows = stack.rows(job_id)
    finally:
        stack.stop()
    threshold = float(given) if given else served.default_threshold
    assert {r.model_version for r in rows} == {served.version}
    assert all(r.below_threshold == (r.confidence < threshold) for r in rows)
    assert any(r.below_threshold != (r.confidence < shipped.default_threshold)
               for r in rows) or given, "the two thresholds flag these photos alike"


def test_onnx_runtime_without_its_graph_is_refused(tmp_path, dataset):
    shutil.copyfile(SHIPPED_KERAS, tmp_path / "alone.keras")
    photo = sample_images(dataset, per_digit=1)[0][0]
    result = run_cli("predict", "--model", str(tmp_path / "alone.keras"), str(photo),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert "no ONNX graph beside it" in result.stderr and "export-onnx" in result.stderr
    ok = run_cli("predict", "--model", str(tmp_path / "alone.keras"), str(photo),
                 env=make_env(runtime="tensorflow"), cwd=tmp_path)
    assert ok.returncode == 0 and "digit" in ok.stdout, ok.stderr[-2000:]


_BLOCK = "import sys; sys.modules.update(dict.fromkeys({mods}, None)); "


def _blocked_cli(modules: list[str], *args: str, cwd: Path, env=None):
    """``signdigits ARGS`` in a Python where ``modules`` cannot be imported."""
    code = (_BLOCK.format(mods=modules) + f"sys.argv = ['signdigits', *{list(args)!r}]; "
            "from signdigits.cli.app import app; app()")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env or make_env(),
                          stdin=subprocess.DEVNULL)


def test_predict_runs_where_tensorflow_cannot_be_imported(dataset, tmp_path):
    photos = [str(p) for p, _ in sample_images(dataset, per_digit=1)]
    result = _blocked_cli(["tensorflow", "keras"], "predict", *photos, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("digit ") == 10
    # The same, through the import log of a plain run: neither is ever imported.
    traced = subprocess.run([sys.executable, "-X", "importtime", "-m", "signdigits", "predict",
                             *photos], env=make_env(), cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert traced.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in traced.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and not imported & {"tensorflow", "keras"}


@pytest.mark.parametrize("command,blocked", [
    (["train", "--data", "."], ["tensorflow"]),
    (["export-onnx", "m.keras"], ["tf2onnx"]),
    (["evaluate", "--data", "."], ["matplotlib"]),
])
def test_training_commands_say_they_need_the_training_extra(tmp_path, command, blocked):
    result = _blocked_cli(blocked, *command, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"needs the training extra ({blocked[0]} not installed)" in lines[0]
    assert "pip install 'signdigits[training]'" in lines[0]


def _mapped_files(pid: int) -> set[str]:
    return {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if len(line.split()) >= 6}


@pytest.mark.parametrize("runtime", ["onnx", "tensorflow"])
def test_a_worker_serving_with_onnx_never_loads_tensorflow(redis_url, tmp_path, dataset, runtime):
    """Read from the pool processes' memory maps: a TensorFlow import maps its libraries.

    The TensorFlow worker is the control: the same check does find them there.
    """
    from signdigits.bench.procstat import children

    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'w.db'}", tmp_path, runtime=runtime)
    try:
        worker = stack.start_worker(concurrency=2)
        copy_sample(dataset, tmp_path / "photos", per_digit=2)
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")
        stack.wait_for(job_id)
        assert stack.counts(job_id) == {"done": 20}
        pool = children(worker.process.pid)
        assert len(pool) == 2
        for pid in pool:
            mapped = _mapped_files(pid)
            tensorflow = [name for name in mapped if "tensorflow" in name]
            assert bool(tensorflow) == (runtime == "tensorflow"), (pid, tensorflow[:3])
            assert any("onnxruntime" in name for name in mapped) == (runtime == "onnx")
        # The main process forks the pool: it must hold neither.
        assert not [n for n in _mapped_files(worker.process.pid) if "tensorflow" in n]
    finally:
        stack.stop()
    assert f"({runtime})" in worker.log.read_text()


def test_the_shipped_onnx_is_package_data():
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "*.onnx" in data["tool"]["setuptools"]["package-data"]["signdigits.serving.artifacts"]
    assert not [d for d in data["project"]["dependencies"]
                if d.startswith(("tensorflow", "matplotlib", "tf2onnx"))]
