"""The ONNX graph of a ``.keras`` artifact, written beside it with the same metadata.

Keras 3's ``model.export(format="onnx")`` (tf2onnx under the TensorFlow backend, opset
17, the conversion the runtime comparison in issue 17 measured) turns the served graph
(one dense layer and a softmax over the hand features) into one ONNX graph that ONNX
Runtime runs without TensorFlow. The artifact's metadata then gains the
digest of each file, the graph's multiply-adds per image and a new ``version`` covering
all of it, and is written into both files: the archive's ``signdigits.json`` entry and
the ONNX ``metadata_props``. Before anything is replaced, the graph must agree with Keras
on random features to 1e-5, else the export fails.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from signdigits.serving.artifact import (
    METADATA_ENTRY,
    ArtifactError,
    ModelInfo,
    artifact_version,
    keras_digest,
    read_keras_metadata,
    read_model_info,
    write_keras_metadata,
)
from signdigits.serving.model_input import FEATURE_COUNT, NUM_CLASSES
from signdigits.serving.onnx_file import split_model

OPSET = 17
TOLERANCE = 1e-5


def export_onnx(keras_path: Path, *, opset: int = OPSET) -> ModelInfo:
    """Write ``keras_path`` with suffix ``.onnx`` and stamp both files with one version."""
    import onnx

    from signdigits.serving.classifier import import_tensorflow

    import_tensorflow()
    import keras

    keras_path = Path(keras_path)
    metadata = read_keras_metadata(keras_path)
    import signdigits.serving.familiar  # noqa: F401 - registers the graph's last layer

    model = keras.saving.load_model(keras_path, compile=False)
    # Features of real hands lie within a few units of 0 (distances over palm size,
    # cosines): random ones in [-2, 2] exercise the whole graph.
    probe = (np.random.default_rng(0).random((16, FEATURE_COUNT), np.float32) * 4 - 2)
    step = next((layer for layer in model.layers if layer.name == "familiarity"), None)
    if step is not None:  # random features are all unfamiliar: the references are not
        mean, scale, references, _ = (np.asarray(w) for w in step.get_weights())
        probe = np.concatenate([probe, (mean + references.T[:16] / scale).astype(np.float32)])
    try:
        # Every output (the familiarity step's second too), the probabilities first.
        found = model(probe, training=False)
        outputs = [np.asarray(o) for o in (found if isinstance(found, (list, tuple))
                                           else [found])]
        expected = outputs[0]
    except Exception as exc:  # noqa: BLE001 - Keras raises what the layers raise
        raise ArtifactError(f"{keras_path}: its model does not take {FEATURE_COUNT} hand "
                            f"features ({exc.__class__.__name__})") from None
    if expected.shape != (len(probe), NUM_CLASSES):
        raise ArtifactError(f"{keras_path}: its network gives {expected.shape[1:]} outputs "
                            f"per image, the class table names {NUM_CLASSES}")
    with tempfile.TemporaryDirectory(prefix="signdigits-onnx-") as tmp:
        raw = Path(tmp) / "graph.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's numpy-2 deprecation noise
            model.export(raw, format="onnx", opset_version=opset, verbose=False)
        proto = onnx.load(raw)
    del proto.metadata_props[:]
    proto.doc_string = f"signdigits: {FEATURE_COUNT} hand features -> 10 class probabilities"
    graph_digest = split_model(proto.SerializeToString())[1]
    with zipfile.ZipFile(keras_path) as archive:
        archive_digest = keras_digest(archive)
    metadata = {k: v for k, v in metadata.items() if k != "version"}
    metadata.update({
        "keras_sha256": archive_digest,
        "onnx_sha256": graph_digest,
        "onnx": {"opset": opset, "producer": f"{proto.producer_name} {proto.producer_version}"},
        "multiply_adds_per_image": multiply_adds(proto),
    })
    metadata["version"] = artifact_version(metadata)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_ENTRY, _dumps(metadata)
    data = proto.SerializeToString()
    if split_model(data) != ({METADATA_ENTRY: entry.value}, graph_digest):
        raise ArtifactError("the ONNX file's digest changed when its metadata was added")
    _check_agreement(data, probe, outputs)
    onnx_path = keras_path.with_suffix(".onnx")
    partial = onnx_path.with_suffix(".tmp.onnx")
    partial.write_bytes(data)
    write_keras_metadata(keras_path, metadata)
    partial.replace(onnx_path)
    return read_model_info(keras_path)


def _dumps(metadata: dict[str, Any]) -> str:
    import json

    return json.dumps(metadata, indent=2, sort_keys=True)


def _check_agreement(data: bytes, probe: np.ndarray, expected: list[np.ndarray]) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe})
    if len(got) != len(expected):
        raise ArtifactError(f"the ONNX graph has {len(got)} outputs, Keras {len(expected)}; "
                            "not exported")
    worst = max(float(np.abs(g.reshape(e.shape) - e).max())
                for g, e in zip(got, expected, strict=True))
    if worst > TOLERANCE:
        raise ArtifactError(f"the ONNX graph disagrees with Keras by {worst:.2e} (> "
                            f"{TOLERANCE:.0e}) on random features; not exported")


def multiply_adds(proto) -> int:
    """Multiply-adds per image of the graph's Conv, MatMul and Gemm nodes.

    Shapes come from ONNX shape inference (batch dimension left out); element-wise
    operations, pooling and the softmax are not counted (they are a few percent).
    """
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    weights = {t.name: numpy_helper.to_array(t).shape for t in inferred.graph.initializer}
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights:
            out = shapes.get(node.output[0]) or []
            height, width = (out[2], out[3]) if len(out) == 4 else (None, None)
            if height is not None and width is not None:
                total += int(np.prod(weights[node.input[1]])) * height * width
        elif node.op_type in ("MatMul", "Gemm") and node.input[1] in weights:
            rows = shapes.get(node.input[0]) or []
            per_image = int(np.prod([d for d in rows[1:-1] if d])) if len(rows) > 2 else 1
            total += int(np.prod(weights[node.input[1]])) * per_image
    return total
