"""proc-ml: procedural content generation joined with deep learning for DCC pipelines.

Data flow: ``proc_ml.procedural`` generates labelled buildings -> ``exporters`` write
dataset files -> ``trainers`` fit a model -> ONNX export -> ``proc_ml.runtime`` runs it
inside a DCC adapter or a batch job.  Everything on the inference side imports numpy and
onnxruntime only.
"""

import os

__version__ = "0.1.0"

# onnxruntime (1.31 on Linux) writes a device id and a telemetry database under
# ~/.cache/Microsoft/DeveloperTools when it is imported, unless this is set: proc-ml writes
# nothing outside the folders it is given. A value already set is kept (docs/install.md).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

#: Version of the on-disk dataset formats documented in docs/formats.md.
FORMAT_VERSION = 1
