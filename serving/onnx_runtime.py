"""The model run by ONNX Runtime: what the workers, ``predict`` and ``bench`` use by default.

No TensorFlow, Keras or custom layers: the ONNX graph holds the whole served computation.
The session is built in the process that uses it (after Celery forks), from the bytes
whose digest was just checked against the artifact's metadata, so the graph that runs is
the one the version names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from signdigits.serving.artifact import ArtifactError, ModelInfo
from signdigits.serving.onnx_file import split_model


def load_onnx_forward(info: ModelInfo, path: Path, threads: int
                      ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """A function (N, features) float32 -> ((N, 10) class probabilities, (N,) whether each
    hand is unlike the training hands, or None from a graph without that output).

    ``threads`` > 0 fixes the intra-op pool (1: no pool threads at all, as each worker
    process runs one batch at a time); 0 keeps ONNX Runtime's default (all cores).
    """
    import onnxruntime as ort

    data = path.read_bytes()
    if split_model(data)[1] != info.metadata.get("onnx_sha256"):
        raise ArtifactError(f"{path}: the ONNX graph changed since its metadata was read; "
                            "refused")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The memory pattern pre-plans one block per batch shape seen: with it a worker
    # process peaked ~50 MB higher (196 against 147 MB after batches of 1 and 64, ONNX
    # Runtime alone), for no speed this machine could tell apart.
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # warnings about unused initialisers are not ours to show
    # Pool threads that spin between operators take CPU the other worker process (or the
    # decoder) needs on a machine with as many processes as cores; they sleep instead.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = [output.name for output in session.get_outputs()[:2]]

    def forward(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        found = session.run(outputs, {input_name: batch})
        return found[0], (found[1].reshape(-1) > 0.5 if len(found) > 1 else None)

    return forward
