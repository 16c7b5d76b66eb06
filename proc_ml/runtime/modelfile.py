"""An ONNX file's header without onnx or onnxruntime: IR version, opsets, producer and
``metadata_props``, and which onnxruntime releases load it.

``read_header`` decodes the few top-level fields of the ``ModelProto`` protobuf message it
needs (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto: ``ir_version`` 1,
``producer_name`` 2, ``producer_version`` 3, ``doc_string`` 6, ``graph`` 7 (skipped),
``opset_import`` 8, ``metadata_props`` 14) and skips everything else, so ``proc-ml info``
describes a model even where the installed onnxruntime is too old to load it.

``ORT_LIMITS`` is the one table of what each onnxruntime release loads; the exporter's
``--target-ort`` / ``--portable`` and ``proc-ml info`` read it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError

#: ``(release, newest ai.onnx opset, newest IR version)`` each onnxruntime release loads, from
#: onnxruntime's compatibility table (https://onnxruntime.ai/docs/reference/compatibility.html);
#: a release between two rows is read as the row below it, one after the last as the last
#: (it loads at least that). Measured with proc-ml models: docs/onnx.md.
ORT_LIMITS = (((1, 14), 18, 8), ((1, 15), 19, 9), ((1, 16), 19, 9), ((1, 17), 20, 9),
              ((1, 18), 21, 10))
#: ``proc-ml export onnx --portable``: the oldest onnxruntime the file must load in.
PORTABLE_ORT = "1.16"


def ort_limits(release: str) -> tuple[int, int]:
    """``(opset, ir_version)``: the newest the onnxruntime ``release`` (e.g. "1.16") loads."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)?\s*", str(release))
    if not match:
        raise ModelError(f"--target-ort must be an onnxruntime version such as 1.16, "
                         f"got '{release}'")
    version = (int(match.group(1)), int(match.group(2)))
    oldest = ORT_LIMITS[0][0]
    if version < oldest:
        raise ModelError(f"--target-ort {release}: proc-ml targets onnxruntime "
                         f"{oldest[0]}.{oldest[1]} or newer")
    return next((opset, ir) for v, opset, ir in reversed(ORT_LIMITS) if v <= version)


def oldest_ort(opset: int, ir_version: int) -> str | None:
    """The oldest onnxruntime release of ``ORT_LIMITS`` that loads a file of this opset and IR
    version; ``None`` when it is newer than the table's last row."""
    for (major, minor), max_opset, max_ir in ORT_LIMITS:
        if opset <= max_opset and ir_version <= max_ir:
            return f"{major}.{minor}"
    return None


@dataclass
class ModelHeader:
    ir_version: int = 0
    opsets: dict = field(default_factory=dict)     # domain ("" = ai.onnx) -> version
    producer_name: str = ""
    producer_version: str = ""
    doc_string: str = ""
    props: dict = field(default_factory=dict)      # metadata_props

    @property
    def opset(self) -> int:
        """The ai.onnx opset."""
        return int(self.opsets.get("", self.opsets.get("ai.onnx", 0)))


def read_header(path: str | os.PathLike) -> ModelHeader:
    """The header fields of the ONNX file ``path`` (``ModelError`` when it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    data = path.read_bytes()
    header = ModelHeader()
    try:
        for number, value in _fields(data):
            if number == 1:
                header.ir_version = value
            elif number == 2:
                header.producer_name = value.decode("utf-8", "replace")
            elif number == 3:
                header.producer_version = value.decode("utf-8", "replace")
            elif number == 6:
                header.doc_string = value.decode("utf-8", "replace")
            elif number == 8:
                entry = dict(_fields(value))
                header.opsets[entry.get(1, b"").decode("utf-8", "replace")] = int(entry.get(2, 0))
            elif number == 14:
                entry = dict(_fields(value))
                header.props[entry.get(1, b"").decode("utf-8", "replace")] = \
                    entry.get(2, b"").decode("utf-8", "replace")
    except (ValueError, IndexError, AttributeError):
        raise ModelError(f"{path}: not an ONNX model (the file is not a ModelProto)") from None
    if header.ir_version <= 0 or not header.opsets:
        raise ModelError(f"{path}: not an ONNX model (no IR version or opset in the file)")
    return header


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes):
    """``(field number, value)`` of a protobuf message: ints for varints, bytes for
    length-delimited fields; fixed-width fields are skipped."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            pos += 8
            continue
        elif wire == 5:
            pos += 4
            continue
        else:
            raise ValueError(f"wire type {wire}")
        if number == 0:
            raise ValueError("field number 0")
        yield number, value
