"""Execution-provider choice for onnxruntime: a GPU provider only when it can really run.

Devices (``DEVICES``): ``cpu``; ``cuda`` and ``tensorrt`` (NVIDIA, Linux and Windows,
onnxruntime-gpu); ``directml`` (any DirectX 12 GPU, Windows, onnxruntime-directml);
``coreml`` (macOS, the standard onnxruntime wheel); ``auto`` = the first usable of CUDA,
DirectML, CoreML, else the CPU. TensorRT is never picked by ``auto``: it builds an engine
for every new input shape (minutes), and proc-ml's grids change shape from one building to
the next; ask for it by name for fixed-shape batch work.

onnxruntime lists a provider as "available" when the build contains it, not when it can
run: onnxruntime-gpu lists CUDA on a laptop without an NVIDIA GPU, then prints red
"Failed to load library libonnxruntime_providers_cuda.so" lines when a session asks for
it. So every GPU provider is probed quietly first, in this process, with ``ctypes``: the
NVIDIA driver (``libcuda.so.1`` / ``nvcuda.dll``) and its GPU count, the CUDA runtime of
the major version the build was compiled against (``libcublasLt.so.13`` /
``cublasLt64_13.dll``; a CUDA 12 seat with a CUDA 13 build gets a "CUDA major mismatch"
reason naming both), cuDNN 9, then the provider library itself. A failed load is a Python
``OSError`` here, so nothing is printed; the reason becomes one line in the error (explicit
device) or in :func:`provider_note` (``auto``). Each probe runs once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import io
import os
import sys
from dataclasses import dataclass

from ..errors import ModelError

DEVICES = ("auto", "cpu", "cuda", "tensorrt", "directml", "coreml")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DIRECTML = "DmlExecutionProvider"
COREML = "CoreMLExecutionProvider"

#: device -> onnxruntime provider name
PROVIDERS = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT, "directml": DIRECTML,
             "coreml": COREML}
#: device -> the provider list a session gets (the CPU last: it runs what the others cannot)
PROVIDER_LISTS = {"cpu": (CPU,), "cuda": (CUDA, CPU), "tensorrt": (TENSORRT, CUDA, CPU),
                  "directml": (DIRECTML, CPU), "coreml": (COREML, CPU)}
#: what ``auto`` tries, in order (TensorRT left out: see the module docstring)
AUTO_ORDER = ("cuda", "directml", "coreml")
#: devices that run on an NVIDIA GPU (what a Ray "GPU" resource stands for)
NVIDIA_DEVICES = ("cuda", "tensorrt")
LABELS = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "TensorRT", "directml": "DirectML",
          "coreml": "CoreML"}
#: cuDNN major version onnxruntime-gpu >= 1.19 is built against (checked for >= 1.21 builds,
#: the ones that record their CUDA version)
CUDNN_MAJOR = 9
#: TensorRT major version onnxruntime-gpu >= 1.19 is built against
TENSORRT_MAJOR = 10


@dataclass(frozen=True)
class ProviderStatus:
    """Whether ``device``'s provider can run here, and why (one line)."""
    device: str
    provider: str
    usable: bool
    reason: str


@dataclass(frozen=True)
class OrtInfo:
    """What the installed onnxruntime build is."""
    package: str                  # onnxruntime, onnxruntime-gpu, onnxruntime-directml ...
    version: str
    available: tuple              # ort.get_available_providers()
    cuda_major: int | None        # CUDA major the build needs (onnxruntime-gpu), else None
    capi_dir: str                 # folder of the provider libraries


def _ort_info() -> OrtInfo:
    import onnxruntime as ort

    package, cuda = "onnxruntime", ""
    with contextlib.suppress(ImportError):
        from onnxruntime.capi import build_and_package_info as info
        package = getattr(info, "package_name", package)
        cuda = getattr(info, "cuda_version", "") or ""
    cuda = getattr(ort, "cuda_version", None) or cuda
    major = int(cuda.split(".")[0]) if cuda and cuda.split(".")[0].isdigit() else None
    return OrtInfo(package, ort.__version__, tuple(ort.get_available_providers()), major,
                   os.path.join(os.path.dirname(ort.__file__), "capi"))


def _system() -> str:
    """linux / windows / macos (from ``sys.platform``, read at call time)."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return sys.platform


def _load_library(name: str, global_scope: bool = False):
    """``ctypes`` load of a shared library; a missing one raises ``OSError`` (nothing printed).

    Windows: ``winmode=0`` is LoadLibrary's standard search order (PATH included), which is
    how onnxruntime itself finds the CUDA DLLs; a bare name is looked up, a path is loaded.
    """
    if _system() == "windows":
        return ctypes.CDLL(name, winmode=0)
    return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL if global_scope else ctypes.DEFAULT_MODE)


#: library file names per platform
_NAMES = {
    "linux": {"driver": "libcuda.so.1", "cublaslt": "libcublasLt.so.{major}",
              "cudart": "libcudart.so.{major}", "cudnn": "libcudnn.so.{major}",
              "nvinfer": "libnvinfer.so.{major}", "shared": "libonnxruntime_providers_shared.so",
              "provider": "libonnxruntime_providers_{name}.so"},
    "windows": {"driver": "nvcuda.dll", "cublaslt": "cublasLt64_{major}.dll",
                "cudart": "cudart64_{major}.dll", "cudnn": "cudnn64_{major}.dll",
                "nvinfer": "nvinfer_{major}.dll", "shared": "onnxruntime_providers_shared.dll",
                "provider": "onnxruntime_providers_{name}.dll", "d3d12": "d3d12.dll",
                "directml": "DirectML.dll"},
}


def _name(system: str, kind: str, **fields) -> str:
    return _NAMES[system][kind].format(**fields)


def _try_load(name: str, global_scope: bool = False) -> str | None:
    """None when ``name`` loads, else the loader's first line."""
    try:
        _load_library(name, global_scope)
    except OSError as exc:
        return _first_line(exc)
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _preload_pip_cuda() -> None:
    """Load CUDA libraries shipped as ``nvidia-*`` pip packages, if any, without printing."""
    if importlib.util.find_spec("nvidia") is None:
        return
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            preload(directory="")
        except Exception:  # noqa: BLE001 - best effort; the ctypes probe decides
            pass


def _driver(system: str) -> tuple[bool, str, int]:
    """``(ok, reason, driver CUDA version as 1000*major + 10*minor)``."""
    name = _name(system, "driver")
    try:
        driver = _load_library(name)
    except OSError:
        return False, f"no NVIDIA driver ({name} not found)", 0
    version, count = ctypes.c_int(0), ctypes.c_int(0)
    if driver.cuInit(0) != 0:
        return False, "the NVIDIA driver reports no usable GPU (cuInit failed)", 0
    if driver.cuDriverGetVersion(ctypes.byref(version)) != 0:
        version.value = 0
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return False, "no NVIDIA GPU found", version.value
    return True, f"{count.value} GPU(s)", version.value


def _cuda_text(driver_version: int) -> str:
    return f"{driver_version // 1000}.{driver_version % 1000 // 10}"


def _installed_cuda_major(system: str, exclude: int) -> tuple[int, str] | None:
    """Another CUDA major whose cuBLASLt loads here (the mismatch case), newest first."""
    for major in (14, 13, 12, 11):
        if major == exclude:
            continue
        name = _name(system, "cublaslt", major=major)
        if _try_load(name) is None:
            return major, name
    return None


def _probe_cuda(info: OrtInfo, system: str) -> tuple[bool, str]:
    if system == "macos":
        return False, "CUDA does not exist on macOS (use device coreml or cpu)"
    if system not in _NAMES:
        return False, f"no CUDA probe for platform '{sys.platform}'"
    ok, reason, driver_version = _driver(system)
    if not ok:
        return False, reason
    _preload_pip_cuda()
    major = info.cuda_major
    if major is not None:
        for kind in ("cublaslt", "cudart"):
            name = _name(system, kind, major=major)
            if _try_load(name) is None:
                continue
            other = _installed_cuda_major(system, major)
            if other is not None:
                return False, (f"CUDA major mismatch: this {info.package} {info.version} build needs "
                               f"CUDA {major} ({name} not found) but this machine has CUDA "
                               f"{other[0]} ({other[1]}); install the onnxruntime-gpu build for "
                               f"CUDA {other[0]} or the CUDA {major} runtime (docs/install.md)")
            return False, (f"the CUDA {major} runtime is missing ({name} not found): install "
                           f"CUDA {major} and cuDNN {CUDNN_MAJOR}, or pip install "
                           f"'onnxruntime-gpu[cuda,cudnn]' (docs/install.md)")
        if driver_version and driver_version // 1000 < major:
            return False, (f"CUDA major mismatch: the NVIDIA driver supports CUDA up to "
                           f"{_cuda_text(driver_version)} but this {info.package} {info.version} "
                           f"build needs CUDA {major}: update the driver (docs/install.md)")
    # Builds that record their CUDA version (onnxruntime-gpu >= 1.21) all use cuDNN 9; older
    # ones may use cuDNN 8, so for them the provider library's own load decides.
    cudnn = _name(system, "cudnn", major=CUDNN_MAJOR)
    if major is not None and _try_load(cudnn) is not None:
        return False, (f"cuDNN {CUDNN_MAJOR} is missing ({cudnn} not found): install it, or "
                       f"pip install 'onnxruntime-gpu[cudnn]' (docs/install.md)")
    error = _load_provider(info, system, "cuda")
    if error:
        return False, f"the CUDA provider library cannot load ({error})"
    cuda = f", CUDA {major}" if major is not None else ""
    return True, f"{reason}{cuda}"


def _load_provider(info: OrtInfo, system: str, name: str) -> str | None:
    shared = os.path.join(info.capi_dir, _name(system, "shared"))
    return (_try_load(shared, global_scope=True)
            or _try_load(os.path.join(info.capi_dir, _name(system, "provider", name=name))))


def _probe_tensorrt(info: OrtInfo, system: str) -> tuple[bool, str]:
    cuda = provider_status("cuda")
    if not cuda.usable:
        return False, f"TensorRT runs on CUDA, which is not usable: {cuda.reason}"
    nvinfer = _name(system, "nvinfer", major=TENSORRT_MAJOR)
    if _try_load(nvinfer) is not None:
        return False, (f"TensorRT {TENSORRT_MAJOR} is missing ({nvinfer} not found): install "
                       f"it (docs/install.md) or use device cuda")
    error = _load_provider(info, system, "tensorrt")
    if error:
        return False, f"the TensorRT provider library cannot load ({error})"
    return True, f"TensorRT {TENSORRT_MAJOR} on {cuda.reason}"


def _probe_directml(info: OrtInfo, system: str) -> tuple[bool, str]:
    if system != "windows":
        return False, "DirectML exists on Windows only"
    for kind, what in (("d3d12", "the DirectX 12 runtime"), ("directml", "DirectML")):
        name = _name(system, kind)
        local = os.path.join(info.capi_dir, name)
        if _try_load(local if os.path.isfile(local) else name) is not None:
            return False, f"{what} cannot load ({name})"
    return True, "DirectX 12 GPU through DirectML"


def _probe_coreml(info: OrtInfo, system: str) -> tuple[bool, str]:
    if system != "macos":
        return False, "CoreML exists on macOS only"
    return True, "Apple GPU / Neural Engine through CoreML (unsupported layers run on the CPU)"


_PROBES = {"cuda": _probe_cuda, "tensorrt": _probe_tensorrt, "directml": _probe_directml,
           "coreml": _probe_coreml}
_INSTALL_HINTS = {
    "cuda": "install onnxruntime-gpu (Linux / Windows x86_64)",
    "tensorrt": "install onnxruntime-gpu (Linux / Windows x86_64)",
    "directml": "install onnxruntime-directml (Windows)",
    "coreml": "CoreML comes with the standard onnxruntime wheel on macOS",
}


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise ModelError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")


@functools.lru_cache(maxsize=None)
def provider_status(device: str) -> ProviderStatus:
    """Whether ``device`` (not ``auto``) can run here; probed once per process."""
    _check_device(device)
    if device == "auto":
        raise ModelError("provider_status needs a concrete device, not 'auto'")
    provider = PROVIDERS[device]
    if device == "cpu":
        return ProviderStatus(device, provider, True, "always available")
    info = _ort_info()
    if provider not in info.available:
        return ProviderStatus(device, provider, False,
                              f"this onnxruntime build ({info.package} {info.version}) has no "
                              f"{LABELS[device]} provider: {_INSTALL_HINTS[device]}")
    usable, reason = _PROBES[device](info, _system())
    return ProviderStatus(device, provider, usable, reason)


def clear_probe_cache() -> None:
    """Forget the probes (tests; a driver installed while the process runs)."""
    provider_status.cache_clear()


def cuda_status() -> tuple[bool, str]:
    """``(usable, reason)``: whether onnxruntime's CUDA provider can load and see a GPU."""
    status = provider_status("cuda")
    return status.usable, status.reason


def resolve_device(device: str = "auto") -> str:
    """The concrete device ``device`` runs on: ``auto`` -> the first usable of AUTO_ORDER or
    ``cpu``; an explicit device that is not usable raises ``ModelError`` with the reason."""
    _check_device(device)
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return next((d for d in AUTO_ORDER if provider_status(d).usable), "cpu")
    status = provider_status(device)
    if not status.usable:
        raise ModelError(f"device '{device}' requested but {LABELS[device]} is not usable: "
                         f"{status.reason} (use --device auto or cpu)")
    return device


def resolve_providers(device: str = "auto") -> list[str]:
    """The onnxruntime provider list for ``device`` (see :func:`resolve_device`)."""
    return list(PROVIDER_LISTS[resolve_device(device)])


def provider_note(device: str = "auto") -> str:
    """One line: which provider ``device`` runs on and why a GPU provider was not used.

    Never raises for a valid device (an unusable explicit device is described, not refused),
    never prints; e.g. ``CPUExecutionProvider: auto found no usable GPU provider (CUDA: no
    NVIDIA driver (libcuda.so.1 not found))``.
    """
    _check_device(device)
    if device == "cpu":
        return f"{CPU}: device 'cpu'"
    if device != "auto":
        status = provider_status(device)
        if status.usable:
            return f"{status.provider}: device '{device}' ({status.reason})"
        return f"{status.provider} not usable for device '{device}': {status.reason}"
    available = _ort_info().available
    skipped = []
    for candidate in AUTO_ORDER:
        status = provider_status(candidate)
        if status.usable:
            tail = f"; skipped {'; '.join(skipped)}" if skipped else ""
            return f"{status.provider}: auto chose {LABELS[candidate]} ({status.reason}){tail}"
        if status.provider in available:
            skipped.append(f"{LABELS[candidate]}: {status.reason}")
    if skipped:
        return f"{CPU}: auto found no usable GPU provider ({'; '.join(skipped)})"
    info = _ort_info()
    return (f"{CPU}: auto found no GPU provider in this onnxruntime build "
            f"({info.package} {info.version})")
