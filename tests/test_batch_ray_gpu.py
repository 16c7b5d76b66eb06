"""The Ray executor asks Ray for GPUs when the batch's device runs on one.

The GPU share is a pure function (checked without Ray); one test runs real actors on a
local Ray that advertises a fake GPU (``ray.init(num_gpus=1)`` works on a CPU machine):
the actors are created with ``num_gpus`` and see the GPU Ray gave them
(``ray.get_gpu_ids()``, ``CUDA_VISIBLE_DEVICES``), while a CPU batch is created as before.
That one starts Ray (about 30 s on a 2-core machine), so it is marked slow.
"""

from __future__ import annotations

import logging

import pytest

from proc_ml.batch import OK
from proc_ml.batch import ray_executor
from proc_ml.batch.assets import Limits
from proc_ml.batch.ray_executor import RayExecutor, gpus_per_actor
from proc_ml.batch.runner import BatchSettings, run_batch
from proc_ml.batch.worker import WorkerSpec
from proc_ml.errors import ModelError, ProcMLError


def _local_onnxruntime(monkeypatch, device: str):
    """What ``resolve_device`` answers on the driver machine: ``device`` for auto; CUDA and
    TensorRT usable when ``device`` is cuda, none of them when it is cpu."""
    usable = {"cpu", device} | ({"tensorrt"} if device == "cuda" else set())

    def fake(wanted="auto"):
        if wanted == "auto":
            return device
        if wanted not in usable:
            raise ModelError(f"device '{wanted}' requested but it is not usable: faked")
        return wanted
    monkeypatch.setattr(ray_executor, "resolve_device", fake)


@pytest.mark.parametrize("workers, gpus, share", [
    (1, 1, 1.0), (2, 1, 0.5), (4, 1, 0.25), (3, 1, 0.3333), (3, 2, 0.5), (2, 4, 1.0),
    (5, 2, 0.3333), (8, 8, 1.0)])
def test_gpu_share_packs_every_worker(monkeypatch, workers, gpus, share):
    _local_onnxruntime(monkeypatch, "cuda")
    for device in ("cuda", "auto", "tensorrt"):
        got = gpus_per_actor(device, float(gpus), workers, local=True)
        assert got == share
        assert int(1 / got + 1e-6) * gpus >= workers        # every actor finds room


def test_cpu_devices_never_ask_for_gpus(monkeypatch):
    _local_onnxruntime(monkeypatch, "cuda")
    for device in ("cpu", "directml", "coreml"):
        assert gpus_per_actor(device, 4.0, 2, local=True) == 0.0
    assert gpus_per_actor("auto", 0.0, 2, local=True) == 0.0          # no GPU in the cluster
    _local_onnxruntime(monkeypatch, "cpu")                             # onnxruntime here: CPU only
    assert gpus_per_actor("auto", 1.0, 2, local=True) == 0.0
    assert gpus_per_actor("auto", 1.0, 2, local=False) == 0.5         # the cluster's workers decide


def test_gpu_devices_without_gpus_are_one_line_errors(monkeypatch):
    _local_onnxruntime(monkeypatch, "cuda")
    with pytest.raises(ProcMLError, match="device 'cuda' needs a GPU but the Ray cluster has none"):
        gpus_per_actor("cuda", 0.0, 2, local=True)
    _local_onnxruntime(monkeypatch, "cpu")
    with pytest.raises(ModelError, match="device 'cuda' requested but it is not usable"):
        gpus_per_actor("cuda", 1.0, 2, local=True)
    assert gpus_per_actor("cuda", 1.0, 2, local=False) == 0.5


def test_explicit_share_is_checked(monkeypatch):
    _local_onnxruntime(monkeypatch, "cuda")
    assert gpus_per_actor("cuda", 1.0, 4, local=True, gpus_per_worker=0.25) == 0.25
    assert gpus_per_actor("cuda", 2.0, 2, local=True, gpus_per_worker=1) == 1.0
    with pytest.raises(ProcMLError, match="do not fit on the cluster's 1 GPU"):
        gpus_per_actor("cuda", 1.0, 3, local=True, gpus_per_worker=0.5)
    with pytest.raises(ProcMLError, match=r"must be in \(0, 1\]"):
        gpus_per_actor("cuda", 1.0, 1, local=True, gpus_per_worker=1.5)


class FakeRay:
    """``ray.cluster_resources()`` / ``ray.nodes()`` of a one-node Ray with ``gpus`` GPUs."""

    def __init__(self, gpus: float):
        self.gpus = gpus

    def cluster_resources(self) -> dict:
        return {"CPU": 4.0, **({"GPU": self.gpus} if self.gpus else {})}

    def nodes(self) -> list:
        return [{"NodeID": "local"}]


def _options(device: str, gpus: float, workers: int = 2) -> dict:
    spec = WorkerSpec("proc_ml.batch.parts:open_parts", "model.onnx", {"device": device}, Limits())
    return RayExecutor(spec, workers=workers)._actor_options(FakeRay(gpus), started_here=True)


def test_actor_options_carry_num_gpus_only_for_gpu_devices(monkeypatch):
    _local_onnxruntime(monkeypatch, "cuda")
    assert _options("cuda", 1) == {"num_cpus": 1, "max_restarts": 0, "num_gpus": 0.5}
    assert _options("auto", 2) == {"num_cpus": 1, "max_restarts": 0, "num_gpus": 1.0}
    assert _options("auto", 0) == {"num_cpus": 1, "max_restarts": 0}
    assert _options("cpu", 2) == {"num_cpus": 1, "max_restarts": 0}
    _local_onnxruntime(monkeypatch, "cpu")
    assert _options("auto", 2) == {"num_cpus": 1, "max_restarts": 0}


@pytest.fixture(scope="module")
def ray_with_a_fake_gpu():
    ray = pytest.importorskip("ray")
    ray_executor.import_ray()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
    yield ray
    ray.shutdown()


def _run(tmp_path, name, model, meshes, device):
    executor = RayExecutor(WorkerSpec("proc_ml.batch.parts:open_parts", str(model),
                                      {"device": device}, Limits()), workers=2, timeout=120)
    settings = BatchSettings(str(meshes), str(tmp_path / name), model=str(model), workers=2,
                             executor="ray", progress=False)
    report = run_batch(settings, executor=executor)
    return executor, report


@pytest.mark.slow
def test_ray_actors_get_and_see_the_gpu(ray_with_a_fake_gpu, tmp_path, tiny_massing_unet_onnx,
                                        monkeypatch):
    from test_batch import generate_meshes

    meshes = generate_meshes(tmp_path / "gen", 2, seed=5)
    _local_onnxruntime(monkeypatch, "cuda")       # the driver believes CUDA works here

    executor, report = _run(tmp_path, "gpu", tiny_massing_unet_onnx, meshes, "auto")
    assert executor.actor_options == {"num_cpus": 1, "max_restarts": 0, "num_gpus": 0.5}
    assert len(executor.devices) == 2
    for info in executor.devices:                 # Ray gave each actor the (fake) GPU 0
        assert info["gpu_ids"] == ["0"] and info["cuda_visible_devices"] == "0"
        assert info["note"].startswith(("CUDAExecutionProvider", "CPUExecutionProvider"))
    assert "0.5 GPU each" in report.executor
    assert report.counts.get(OK) == 6 and not report.failures

    executor, report = _run(tmp_path, "cpu", tiny_massing_unet_onnx, meshes, "cpu")
    assert executor.actor_options == {"num_cpus": 1, "max_restarts": 0}
    for info in executor.devices:
        assert info["gpu_ids"] == [] and not info["cuda_visible_devices"]
        assert info["note"] == "CPUExecutionProvider: device 'cpu'"
    assert report.counts.get(OK) == 6 and "GPU" not in report.executor
