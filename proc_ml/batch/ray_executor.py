"""Ray executor: the same work items on a pool of Ray actors, each holding one model session.

Without ``address`` the command starts a private local Ray (``num_cpus=workers``, no
dashboard, no usage stats, bound to 127.0.0.1) and shuts it down at the end; with
``address`` it joins an existing cluster. Actors read each asset (and the model) by path,
so on a cluster those paths must be on storage every node mounts at the same place; the
results (output bytes) come back to the driver, which writes OUT and the manifest exactly
as the local executor does. Time limits are enforced by killing and replacing the actor.

GPUs: Ray gives an actor a GPU only when it asks for one (``num_gpus``), and then sets
``CUDA_VISIBLE_DEVICES`` in the actor to the GPU(s) it was given. When the batch's device
(``options["device"]``, one of ``proc_ml.runtime.DEVICES``) runs on an NVIDIA GPU, every
actor asks for ``1/k`` of a GPU, ``k = ceil(workers / GPUs in the cluster)``: one whole GPU
each when there are at least as many GPUs as workers, else ``k`` actors share each GPU (a
fraction of ``1/k`` packs exactly ``k`` actors on a GPU, so the pool always fits and never
waits for resources; proc-ml's models are small, several sessions share a GPU well).
``gpus_per_worker`` overrides the share. Which devices ask:

* ``cuda`` / ``tensorrt``: always; a cluster without GPUs is an error (one line);
* ``auto``: when the cluster has GPUs and, for a one-node Ray (the local Ray this command
  starts, or one already running in this process), when onnxruntime here can use CUDA
  (``resolve_device("auto") == "cuda"``); on a multi-node cluster the workers' machines
  decide, so GPUs are requested whenever the cluster has some;
* ``cpu``, ``directml``, ``coreml``: never (Ray's GPU resource counts NVIDIA GPUs), and the
  actors are created exactly as before (``num_cpus=1``).

Each actor reports the GPU ids Ray gave it and its provider note
(``proc_ml.runtime.providers.provider_note``); :meth:`RayExecutor.describe` names them.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Iterable, Iterator

from ..errors import ProcMLError
from ..runtime.providers import NVIDIA_DEVICES, provider_note, resolve_device
from .assets import one_line
from .items import ItemResult, WorkItem
from .worker import WorkerSpec, failed_result


class BatchActorImpl:
    """The actor body (wrapped with ``ray.remote`` at run time, so importing is Ray-free)."""

    def __init__(self, spec: WorkerSpec):
        self.init_error = None
        self.spec_device = str(spec.options.get("device", "auto"))
        try:
            self.runner = spec.runner()
        except Exception as exc:  # noqa: BLE001 - returned by ready(); the driver stops the batch
            self.init_error = one_line(exc)

    def ready(self) -> str | None:
        return self.init_error

    def device_info(self) -> dict:
        """What this actor runs on: Ray's GPU ids, CUDA_VISIBLE_DEVICES, the provider note."""
        import ray

        device = self.spec_device
        try:
            note = provider_note(device)
        except ProcMLError as exc:
            note = str(exc)
        return {"gpu_ids": [str(i) for i in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "device": device, "note": note}

    def run(self, item: WorkItem) -> ItemResult:
        return self.runner.run(item)


def gpus_per_actor(device: str, cluster_gpus: float, workers: int, local: bool,
                   gpus_per_worker: float | None = None) -> float:
    """The ``num_gpus`` each actor asks for (0 = none); see the module docstring."""
    gpus = int(math.floor(cluster_gpus + 1e-9))
    if device in NVIDIA_DEVICES:
        if gpus < 1:
            raise ProcMLError(f"device '{device}' needs a GPU but the Ray cluster has none "
                              f"(ray.cluster_resources() lists no 'GPU'); use --device auto or cpu")
        if local:
            resolve_device(device)         # a clear reason when onnxruntime here cannot use it
    elif device != "auto" or gpus < 1 or (local and resolve_device("auto") not in NVIDIA_DEVICES):
        return 0.0
    if gpus_per_worker is not None:
        share = float(gpus_per_worker)
        if not 0 < share <= 1:
            raise ProcMLError(f"GPUs per Ray worker must be in (0, 1], got {gpus_per_worker}")
        if math.floor(1 / share + 1e-9) * gpus < workers:
            raise ProcMLError(f"{workers} Ray workers with {share:g} GPU each do not fit on the "
                              f"cluster's {gpus} GPU(s): lower the share or the workers")
        return _four_places(share)
    return 1.0 if gpus >= workers else _four_places(1.0 / math.ceil(workers / gpus))


def _four_places(share: float) -> float:
    """Rounded down to Ray's resource precision (0.0001), so k shares still fit on one GPU."""
    return math.floor(share * 10_000 + 1e-6) / 10_000


def import_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no network calls home
    try:
        import ray
    except ImportError:
        raise ProcMLError("--executor ray needs Ray: pip install 'proc-ml[ray]'") from None
    return ray


class RayExecutor:
    name = "ray"

    def __init__(self, spec: WorkerSpec, workers: int = 1, timeout: float | None = None,
                 address: str | None = None, gpus_per_worker: float | None = None):
        self.spec, self.workers, self.timeout, self.address = spec, max(1, int(workers)), timeout, address
        self.device = str(spec.options.get("device", "auto"))
        self.gpus_per_worker = gpus_per_worker
        self.actor_options: dict = {}          # what the actors were created with (after run)
        self.devices: list[dict] = []          # each actor's device_info() (after run)

    def describe(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "a local Ray"
        text = f"{self.workers} Ray actor{'s' if self.workers > 1 else ''} on {where}"
        gpus = self.actor_options.get("num_gpus")
        if gpus:
            text += f", {gpus:g} GPU each"
        if self.devices:
            notes = sorted({info["note"] for info in self.devices})
            text += f" ({'; '.join(notes)})"
        return text

    def run(self, items: Iterable[WorkItem]) -> Iterator[ItemResult]:
        pending = list(items)
        if not pending:
            return
        ray = import_ray()
        started_here = self._connect(ray)
        pool = []
        try:
            self.actor_options = self._actor_options(ray, started_here)
            actor_class = ray.remote(**self.actor_options)(BatchActorImpl)
            pool = [self._new_actor(ray, actor_class) for _ in range(min(self.workers, len(pending)))]
            self.devices = ray.get([actor.device_info.remote() for actor in pool])
            self._check_gpus_visible()
            yield from self._dispatch(ray, actor_class, pool, pending)
        finally:
            for actor in pool:
                ray.kill(actor)
            if started_here:
                ray.shutdown()

    def _actor_options(self, ray, started_here: bool) -> dict:
        """``ray.remote`` options: ``num_cpus=1``, plus ``num_gpus`` on a GPU device."""
        options = {"num_cpus": 1, "max_restarts": 0}
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        # A Ray this command started, or one already running in this process on one node:
        # this machine's onnxruntime decides for ``auto``; on a cluster the workers decide.
        local = started_here or (not self.address and len(ray.nodes()) <= 1)
        gpus = gpus_per_actor(self.device, cluster_gpus, self.workers, local, self.gpus_per_worker)
        if gpus > 0:
            options["num_gpus"] = gpus
        return options

    def _check_gpus_visible(self) -> None:
        if not self.actor_options.get("num_gpus"):
            return
        blind = [info for info in self.devices if not info["gpu_ids"]]
        if blind:
            raise ProcMLError("Ray created GPU actors that see no GPU (ray.get_gpu_ids() is "
                              "empty); check the cluster's GPU resources")

    def _connect(self, ray) -> bool:
        """Start or join Ray; True when this call started it (and so shuts it down)."""
        if ray.is_initialized():
            return False
        quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
        try:
            if self.address:
                ray.init(address=self.address, **quiet)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False,
                         _node_ip_address="127.0.0.1", **quiet)
        except Exception as exc:  # noqa: BLE001 - connection problems are one line for the CLI
            raise ProcMLError(f"cannot start or reach Ray ({one_line(exc)})") from None
        return True

    def _new_actor(self, ray, actor_class):
        actor = actor_class.remote(self.spec)
        error = ray.get(actor.ready.remote())
        if error:
            ray.kill(actor)
            raise ProcMLError(error)
        return actor

    def _dispatch(self, ray, actor_class, pool, pending) -> Iterator[ItemResult]:
        from ray.exceptions import RayActorError, RayTaskError

        pending = list(reversed(pending))
        running = {}                                   # ref -> (pool index, item, start)
        while pending or running:
            busy = {index for index, _, _ in running.values()}
            for index in range(len(pool)):
                if index not in busy and pending:
                    item = pending.pop()
                    running[pool[index].run.remote(item)] = (index, item, time.monotonic())
            done, _ = ray.wait(list(running), num_returns=1, timeout=self._wait_seconds(running))
            for ref in done:
                index, item, start = running.pop(ref)
                try:
                    yield ray.get(ref)
                except RayActorError as exc:
                    pool[index] = self._new_actor(ray, actor_class)
                    yield failed_result(item, f"the Ray actor died while processing this asset "
                                              f"({type(exc).__name__})", time.monotonic() - start)
                except RayTaskError as exc:
                    yield failed_result(item, one_line(exc.cause or exc), time.monotonic() - start)
            yield from self._stop_overrunning(ray, actor_class, pool, running)

    def _wait_seconds(self, running) -> float | None:
        if not self.timeout or not running:
            return None
        first = min(start for _, _, start in running.values())
        return max(0.0, first + self.timeout - time.monotonic()) + 0.01

    def _stop_overrunning(self, ray, actor_class, pool, running) -> Iterator[ItemResult]:
        if not self.timeout:
            return
        now = time.monotonic()
        for ref, (index, item, start) in list(running.items()):
            if now - start > self.timeout:
                del running[ref]
                ray.kill(pool[index])
                pool[index] = self._new_actor(ray, actor_class)
                yield failed_result(item, f"timed out after {self.timeout:g}s (--timeout); "
                                          f"its Ray actor was stopped", self.timeout)
