"""Execution-provider probing on faked Linux, Windows and macOS machines (no GPU needed).

Each case fakes ``sys.platform``, the onnxruntime build (package, available providers, the
CUDA major it was compiled against) and the library loader (which names load), then checks
the provider list, the one-line note and the error an explicit device gets.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from proc_ml.errors import ModelError
from proc_ml.runtime import providers as prov

CPU, CUDA, TRT = prov.CPU, prov.CUDA, prov.TENSORRT
DML, COREML = prov.DIRECTML, prov.COREML

LINUX_CUDA13 = {"libcuda.so.1", "libcublasLt.so.13", "libcudart.so.13", "libcudnn.so.9",
                "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"}
WINDOWS_CUDA13 = {"nvcuda.dll", "cublasLt64_13.dll", "cudart64_13.dll", "cudnn64_9.dll",
                  "onnxruntime_providers_shared.dll", "onnxruntime_providers_cuda.dll"}


class FakeDriver:
    """The three CUDA driver API calls the probe makes, answering like ``libcuda``."""

    def __init__(self, version: int, gpus: int):
        self.version, self.gpus = version, gpus

    def cuInit(self, flags):
        return 0

    def cuDriverGetVersion(self, ref):
        ref._obj.value = self.version
        return 0

    def cuDeviceGetCount(self, ref):
        ref._obj.value = self.gpus
        return 0


class FakeMachine:
    """A loader that knows which library file names exist; records every load attempt."""

    def __init__(self, present, driver_version=13000, gpus=1):
        self.present = set(present)
        self.driver = FakeDriver(driver_version, gpus)
        self.attempts: list[str] = []

    def load(self, name, global_scope=False):
        base = os.path.basename(name)
        self.attempts.append(base)
        if base not in self.present:
            raise OSError(f"{base}: cannot open shared object file: No such file or directory")
        return self.driver if base in ("libcuda.so.1", "nvcuda.dll") else object()


@pytest.fixture
def machine(monkeypatch):
    """``machine(platform, package, available, present, cuda_major=13, ...)`` -> FakeMachine."""
    def make(platform, package, available, present, cuda_major=13, **driver):
        fake = FakeMachine(present, **driver)
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.setattr(prov, "_ort_info", lambda: prov.OrtInfo(
            package, "1.31.1", tuple(available), cuda_major, "/site-packages/onnxruntime/capi"))
        monkeypatch.setattr(prov, "_load_library", fake.load)
        monkeypatch.setattr(prov, "_preload_pip_cuda", lambda: None)
        prov.clear_probe_cache()
        return fake

    yield make
    prov.clear_probe_cache()


GPU_BUILD = ("onnxruntime-gpu", (TRT, CUDA, CPU))


# -- Linux ----------------------------------------------------------------------------------
def test_linux_cuda13_machine_runs_on_cuda(machine):
    fake = machine("linux", *GPU_BUILD, LINUX_CUDA13)
    assert prov.resolve_providers("auto") == [CUDA, CPU]
    assert prov.resolve_providers("cuda") == [CUDA, CPU]
    assert prov.provider_note("auto") == f"{CUDA}: auto chose CUDA (1 GPU(s), CUDA 13)"
    assert prov.cuda_status() == (True, "1 GPU(s), CUDA 13")
    # the provider library is loaded by path from onnxruntime's capi folder, after its deps
    assert fake.attempts.index("libonnxruntime_providers_cuda.so") > fake.attempts.index(
        "libcudnn.so.9")


def test_linux_cuda12_seat_gets_a_major_mismatch_reason(machine):
    machine("linux", *GPU_BUILD, {"libcuda.so.1", "libcublasLt.so.12", "libcudart.so.12",
                                  "libcudnn.so.9"}, driver_version=12040)
    assert prov.resolve_providers("auto") == [CPU]
    note = prov.provider_note("auto")
    assert note.startswith(f"{CPU}: auto found no usable GPU provider (CUDA: CUDA major mismatch")
    assert "needs CUDA 13 (libcublasLt.so.13 not found)" in note
    assert "this machine has CUDA 12 (libcublasLt.so.12)" in note
    with pytest.raises(ModelError, match="CUDA is not usable: CUDA major mismatch"):
        prov.resolve_providers("cuda")


def test_linux_driver_older_than_the_build_is_named(machine):
    machine("linux", *GPU_BUILD, LINUX_CUDA13, driver_version=12080)
    with pytest.raises(ModelError, match=r"driver supports CUDA up to 12\.8 but this "
                                         r"onnxruntime-gpu 1\.31\.1 build needs CUDA 13"):
        prov.resolve_providers("cuda")


def test_linux_without_driver_never_touches_the_provider_library(machine):
    fake = machine("linux", *GPU_BUILD, LINUX_CUDA13 - {"libcuda.so.1"})
    assert prov.resolve_providers("auto") == [CPU]
    assert prov.provider_note("auto") == (f"{CPU}: auto found no usable GPU provider "
                                          f"(CUDA: no NVIDIA driver (libcuda.so.1 not found))")
    assert fake.attempts == ["libcuda.so.1"]


def test_linux_missing_runtime_and_missing_cudnn(machine):
    machine("linux", *GPU_BUILD, {"libcuda.so.1"})
    assert "the CUDA 13 runtime is missing (libcublasLt.so.13 not found)" in prov.cuda_status()[1]
    machine("linux", *GPU_BUILD, LINUX_CUDA13 - {"libcudnn.so.9"})
    assert prov.cuda_status() == (False, "cuDNN 9 is missing (libcudnn.so.9 not found): install "
                                         "it, or pip install 'onnxruntime-gpu[cudnn]' "
                                         "(docs/install.md)")


def test_build_without_a_recorded_cuda_version_skips_the_version_checks(machine):
    """onnxruntime-gpu < 1.21 does not record its CUDA version: the provider library decides."""
    fake = machine("linux", *GPU_BUILD, {"libcuda.so.1", "libonnxruntime_providers_shared.so",
                                         "libonnxruntime_providers_cuda.so"}, cuda_major=None)
    assert prov.cuda_status() == (True, "1 GPU(s)")
    assert not any("cublas" in n or "cudnn" in n for n in fake.attempts)


def test_linux_no_gpu_and_broken_provider_library(machine):
    machine("linux", *GPU_BUILD, LINUX_CUDA13, gpus=0)
    assert prov.cuda_status() == (False, "no NVIDIA GPU found")
    machine("linux", *GPU_BUILD, LINUX_CUDA13 - {"libonnxruntime_providers_cuda.so"})
    usable, reason = prov.cuda_status()
    assert not usable and reason.startswith("the CUDA provider library cannot load "
                                            "(libonnxruntime_providers_cuda.so:")


def test_tensorrt_only_when_asked_and_present(machine):
    machine("linux", *GPU_BUILD, LINUX_CUDA13 | {"libnvinfer.so.10",
                                                  "libonnxruntime_providers_tensorrt.so"})
    assert prov.resolve_providers("tensorrt") == [TRT, CUDA, CPU]
    assert prov.resolve_providers("auto") == [CUDA, CPU]        # auto never builds TRT engines
    machine("linux", *GPU_BUILD, LINUX_CUDA13)
    with pytest.raises(ModelError, match=r"TensorRT is not usable: TensorRT 10 is missing "
                                         r"\(libnvinfer\.so\.10 not found\)"):
        prov.resolve_providers("tensorrt")
    assert prov.resolve_providers("auto") == [CUDA, CPU]


def test_cpu_only_build_says_so(machine):
    fake = machine("linux", "onnxruntime", (CPU,), set())
    assert prov.resolve_providers("auto") == [CPU]
    assert prov.provider_note("auto") == (f"{CPU}: auto found no GPU provider in this onnxruntime "
                                          f"build (onnxruntime 1.31.1)")
    with pytest.raises(ModelError, match=r"has no CUDA provider: install onnxruntime-gpu"):
        prov.resolve_providers("cuda")
    assert fake.attempts == []


# -- Windows --------------------------------------------------------------------------------
def test_windows_cuda13_uses_the_dll_names(machine):
    fake = machine("win32", *GPU_BUILD, WINDOWS_CUDA13)
    assert prov.resolve_providers("auto") == [CUDA, CPU]
    assert {"nvcuda.dll", "cublasLt64_13.dll", "cudart64_13.dll", "cudnn64_9.dll",
            "onnxruntime_providers_cuda.dll"} <= set(fake.attempts)
    assert not any(name.endswith(".so") or ".so." in name for name in fake.attempts)


def test_windows_cuda12_seat_gets_a_major_mismatch_reason(machine):
    machine("win32", *GPU_BUILD, {"nvcuda.dll", "cublasLt64_12.dll", "cudart64_12.dll"},
            driver_version=12060)
    with pytest.raises(ModelError) as err:
        prov.resolve_providers("cuda")
    assert "needs CUDA 13 (cublasLt64_13.dll not found) but this machine has CUDA 12 " \
           "(cublasLt64_12.dll)" in str(err.value)


def test_windows_directml_build(machine):
    build = ("onnxruntime-directml", (DML, CPU))
    machine("win32", *build, {"d3d12.dll", "DirectML.dll"})
    assert prov.resolve_providers("auto") == [DML, CPU]
    assert prov.provider_note("auto").startswith(f"{DML}: auto chose DirectML")
    machine("win32", *build, {"DirectML.dll"})
    assert prov.resolve_providers("auto") == [CPU]
    with pytest.raises(ModelError, match=r"DirectML is not usable: the DirectX 12 runtime "
                                         r"cannot load \(d3d12\.dll\)"):
        prov.resolve_providers("directml")


def test_windows_gpu_build_without_driver_falls_back_quietly(machine):
    fake = machine("win32", *GPU_BUILD, WINDOWS_CUDA13 - {"nvcuda.dll"})
    assert prov.resolve_providers("auto") == [CPU]
    assert "no NVIDIA driver (nvcuda.dll not found)" in prov.provider_note("auto")
    assert fake.attempts == ["nvcuda.dll"]


# -- macOS ----------------------------------------------------------------------------------
def test_macos_uses_coreml(machine):
    fake = machine("darwin", "onnxruntime", (COREML, "AzureExecutionProvider", CPU), set(),
                   cuda_major=None)
    assert prov.resolve_providers("auto") == [COREML, CPU]
    assert prov.resolve_providers("coreml") == [COREML, CPU]
    assert prov.provider_note("auto").startswith(f"{COREML}: auto chose CoreML")
    with pytest.raises(ModelError, match="CUDA is not usable: this onnxruntime build "
                                         r"\(onnxruntime 1\.31\.1\) has no CUDA provider"):
        prov.resolve_providers("cuda")
    with pytest.raises(ModelError, match="DirectML is not usable"):
        prov.resolve_providers("directml")
    assert fake.attempts == []


def test_coreml_listed_off_macos_is_not_used(machine):
    machine("linux", "onnxruntime", (COREML, CPU), set(), cuda_major=None)
    assert prov.resolve_providers("auto") == [CPU]
    with pytest.raises(ModelError, match="CoreML exists on macOS only"):
        prov.resolve_providers("coreml")


# -- API ------------------------------------------------------------------------------------
def test_unknown_device_and_cpu(machine):
    machine("linux", *GPU_BUILD, LINUX_CUDA13)
    for call in (prov.resolve_providers, prov.provider_note):
        with pytest.raises(ModelError, match="device must be one of auto, cpu, cuda, tensorrt, "
                                             "directml, coreml, got 'gpu'"):
            call("gpu")
    assert prov.resolve_providers("cpu") == [CPU]
    assert prov.provider_note("cpu") == f"{CPU}: device 'cpu'"


def test_probes_run_once_per_process(machine):
    fake = machine("linux", *GPU_BUILD, LINUX_CUDA13)
    first = prov.resolve_providers("auto")
    attempts = len(fake.attempts)
    for _ in range(3):
        assert prov.resolve_providers("auto") == first
        prov.provider_note("auto")
    assert len(fake.attempts) == attempts


def test_real_probe_prints_nothing():
    """On this machine, for real: every device's note and resolution is silent."""
    code = ("from proc_ml.runtime.providers import DEVICES, provider_note, resolve_providers\n"
            "from proc_ml.errors import ModelError\n"
            "for d in DEVICES:\n"
            "    note = provider_note(d)\n"
            "    assert '\\n' not in note\n"
            "    try:\n"
            "        resolve_providers(d)\n"
            "    except ModelError:\n"
            "        pass\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""

