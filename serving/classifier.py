"""A loaded model ready to classify batches: used by ``predict``, the workers and ``bench``.

Two runtimes run the same artifact: ONNX Runtime (``runtime="onnx"``, the default:
:mod:`serving.onnx_runtime`, which never imports TensorFlow) and TensorFlow (the
``.keras`` archive, for comparison and for training-side tools). Neither is fork-safe, so
a :class:`Classifier` is built in the process that uses it (after Celery forks), never at
import time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signdigits.serving.artifact import (
    ArtifactError,
    ModelInfo,
    read_model_info,
    resolve_model_path,
)
from signdigits.serving.model_input import FEATURE_COUNT


@dataclass(frozen=True)
class Prediction:
    digit: int
    class_index: int
    confidence: float
    probabilities: list[float]  # indexed by digit 0-9
    # Unlike every hand the model trained on (serving.familiar): read below any threshold.
    unfamiliar: bool = False


def import_tensorflow():
    """Import TensorFlow with its C++ start-up lines (oneDNN, CPU features) kept off stderr.

    They are printed before TensorFlow reads any log-level setting and would bury our
    one-line messages; if the import fails, what it printed is replayed.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def configure_tensorflow(threads: int) -> None:
    """Limit TensorFlow's thread pools (0 keeps its default: all cores)."""
    tf = import_tensorflow()
    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised in this process; keep its pools


def load_tensorflow_forward(path: Path, threads: int):
    """The ``.keras`` archive as one traced TensorFlow function: (N, features) ->
    ((N, 10) probabilities, (N,) unfamiliar or None), as :func:`load_onnx_forward`."""
    configure_tensorflow(threads)
    import keras
    import tensorflow as tf

    import signdigits.serving.familiar  # noqa: F401 - registers the graph's last layer

    model = keras.saving.load_model(path, compile=False)
    # One traced graph for every batch size: model.predict per call is slower and leaks.
    traced = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, FEATURE_COUNT], tf.float32)],
        reduce_retracing=True,
    )

    def forward(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        found = traced(batch)
        if isinstance(found, (list, tuple)):
            return found[0].numpy(), found[1].numpy().reshape(-1) > 0.5
        return found.numpy(), None

    return forward


class Classifier:
    def __init__(self, model_path: Path | None = None, *, threads: int = 0,
                 runtime: str = "onnx") -> None:
        self.info: ModelInfo = read_model_info(resolve_model_path(model_path))
        self.runtime = runtime
        self.served_path = self.info.served_file(runtime)
        if runtime == "onnx":
            from signdigits.serving.onnx_runtime import load_onnx_forward

            self._forward = load_onnx_forward(self.info, self.served_path, threads)
        else:
            self._forward = load_tensorflow_forward(self.served_path, threads)
        # Columns of the model's output reordered so that column d is digit d.
        self._digit_order = np.argsort(np.asarray(self.info.class_to_digit))
        self._check_graph_shape()

    def _check_graph_shape(self) -> None:
        """One blank hand through the graph, so that a graph the class table does not
        describe is refused here: a worker with it loaded and then failed every batch."""
        try:
            shape = self.probabilities(np.zeros((1, FEATURE_COUNT), np.float32)).shape
        except Exception as exc:  # noqa: BLE001 - each runtime raises its own kind
            detail = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ArtifactError(f"{self.served_path}: its graph does not take {FEATURE_COUNT} "
                                f"hand features ({exc.__class__.__name__}: {detail})") from None
        if shape != (1, len(self.info.class_to_digit)):
            raise ArtifactError(f"{self.served_path}: its graph gives {shape[1:]} outputs per "
                                f"image, its class table names {len(self.info.class_to_digit)}")

    def warm_up(self, largest_batch: int = 1) -> None:
        """Trace the compiled call and size its buffers, so the first real batch is fast."""
        for size in sorted({1, largest_batch}):
            self.probabilities(np.zeros((size, FEATURE_COUNT), np.float32))

    @property
    def feature_count(self) -> int:
        return FEATURE_COUNT

    @property
    def version(self) -> str:
        return self.info.version

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, features) hands -> (N, 10) class probabilities, model order."""
        return self._read(features)[0]

    def _read(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, unfamiliar): all familiar from a graph that does not say."""
        if len(features) == 0:
            return np.zeros((0, len(self.info.class_to_digit)), np.float32), np.zeros(0, bool)
        probs, unfamiliar = self._forward(np.ascontiguousarray(features, dtype=np.float32))
        return probs, np.zeros(len(probs), bool) if unfamiliar is None else unfamiliar

    def classify(self, features: np.ndarray) -> list[Prediction]:
        probs, unfamiliar = self._read(features)
        table = self.info.class_to_digit
        by_digit = probs[:, self._digit_order]
        predictions = []
        for row, digit_row, far in zip(probs, by_digit, unfamiliar, strict=True):
            index = int(row.argmax())
            predictions.append(
                Prediction(
                    digit=table[index],
                    class_index=index,
                    confidence=float(row[index]),
                    probabilities=[round(float(p), 6) for p in digit_row],
                    unfamiliar=bool(far),
                )
            )
        return predictions
