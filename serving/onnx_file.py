"""Read an ONNX file's ``metadata_props`` and a digest of its graph, without ``onnx``.

Serving installs ONNX Runtime but not the ``onnx`` package (the converter's), so the
artifact's metadata is read here from the protobuf wire format directly: a ModelProto is
a sequence of top-level fields, ``metadata_props`` is field 14 (repeated key/value
string pairs). Every other top-level field (the graph, opsets, producer) is fed, bytes
as they are in the file, to a SHA-256: the digest of what runs, whatever the metadata
says. The exporter computes the same digest with this same function.
"""

from __future__ import annotations

import hashlib

METADATA_PROPS = 14  # ModelProto.metadata_props
_KEY, _VALUE = 1, 2  # StringStringEntryProto.key, .value


class OnnxFileError(ValueError):
    """Not a readable ONNX ModelProto."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise OnnxFileError("truncated or malformed protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview):
    """(field number, wire type, start, value start, end) of each top-level field."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(data, pos)
            value_start = pos
        elif wire == 1:
            value_start, end = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(data, pos)
            end = value_start + length
        elif wire == 5:
            value_start, end = pos, pos + 4
        else:
            raise OnnxFileError(f"unsupported protobuf wire type {wire}")
        if number == 0 or end > len(data):
            raise OnnxFileError("truncated or malformed protobuf field")
        yield number, wire, start, value_start, end
        pos = end


def split_model(data: bytes) -> tuple[dict[str, str], str]:
    """(metadata_props as a dict, SHA-256 hex of every other top-level field)."""
    view = memoryview(data)
    props: dict[str, str] = {}
    digest = hashlib.sha256()
    saw_graph = False
    for number, wire, start, value_start, end in _fields(view):
        if number == METADATA_PROPS and wire == 2:
            entry = {_KEY: "", _VALUE: ""}
            for sub, sub_wire, _, sub_start, sub_end in _fields(view[value_start:end]):
                if sub in entry and sub_wire == 2:
                    entry[sub] = bytes(view[value_start + sub_start:value_start + sub_end]).decode(
                        "utf-8", errors="replace")
            props[entry[_KEY]] = entry[_VALUE]
        else:
            saw_graph = saw_graph or number == 7  # ModelProto.graph
            digest.update(view[start:end])
    if not saw_graph:
        raise OnnxFileError("no graph inside")
    return props, digest.hexdigest()
