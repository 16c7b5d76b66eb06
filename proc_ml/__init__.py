"""proc-ml: procedural content generation joined with deep learning for DCC pipelines.

Data flow: ``proc_ml.procedural`` generates labelled buildings -> ``exporters`` write
dataset files -> ``trainers`` fit a model -> ONNX export -> ``proc_ml.runtime`` runs it
inside a DCC adapter or a batch job.  Everything on the inference side imports numpy and
onnxruntime only.
"""

__version__ = "0.1.0"

#: Version of the on-disk dataset formats documented in docs/formats.md.
FORMAT_VERSION = 1
