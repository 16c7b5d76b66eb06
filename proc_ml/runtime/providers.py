"""Execution-provider choice for onnxruntime: CUDA only when it can really load.

onnxruntime-gpu lists ``CUDAExecutionProvider`` as available on every machine, then prints
red "Failed to load library libonnxruntime_providers_cuda.so" lines when a session asks for
it on a machine without the CUDA libraries or a GPU. So ``auto`` first probes quietly in
this process: load the provider library and its dependencies with ``ctypes`` (the loader
error becomes a Python exception, nothing is printed), then ask the driver for a device.
The probe runs once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import io
import os

from ..errors import ModelError

DEVICES = ("auto", "cuda", "cpu")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """``(usable, reason)``: whether onnxruntime's CUDA provider can load and see a GPU."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False, f"this onnxruntime build ({ort.__version__}) has no CUDA provider"
    _preload_pip_cuda(ort)
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    try:
        ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_cuda.so"))
    except OSError as exc:
        return False, f"CUDA libraries cannot load ({_first_line(exc)})"
    return _driver_has_device()


def _preload_pip_cuda(ort) -> None:
    """Load CUDA libraries shipped as ``nvidia-*`` pip packages, if any, without printing."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None or importlib.util.find_spec("nvidia") is None:
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            preload(directory="")
        except Exception:  # noqa: BLE001 - best effort; the ctypes probe decides
            pass


def _driver_has_device() -> tuple[bool, str]:
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False, "no NVIDIA driver (libcuda.so.1 not found)"
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return False, "the NVIDIA driver reports no usable GPU"
    if count.value < 1:
        return False, "no GPU found"
    return True, f"{count.value} GPU(s)"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def resolve_providers(device: str = "auto") -> list[str]:
    """The provider list for ``device``: auto -> CUDA if usable else CPU; cuda -> CUDA or error."""
    if device not in DEVICES:
        raise ModelError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")
    if device == "cpu":
        return [CPU]
    usable, reason = cuda_status()
    if usable:
        return [CUDA, CPU]
    if device == "cuda":
        raise ModelError(f"device 'cuda' requested but CUDA is not usable: {reason} "
                         f"(use --device auto or cpu)")
    return [CPU]
