"""Ray executor: the same work items on a pool of Ray actors, each holding one model session.

Without ``address`` the command starts a private local Ray (``num_cpus=workers``, no
dashboard, no usage stats, bound to 127.0.0.1) and shuts it down at the end; with
``address`` it joins an existing cluster. Actors read each asset (and the model) by path,
so on a cluster those paths must be on storage every node mounts at the same place; the
results (output bytes) come back to the driver, which writes OUT and the manifest exactly
as the local executor does. Time limits are enforced by killing and replacing the actor.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterable, Iterator

from ..errors import ProcMLError
from .assets import one_line
from .items import ItemResult, WorkItem
from .worker import WorkerSpec, failed_result


class BatchActorImpl:
    """The actor body (wrapped with ``ray.remote`` at run time, so importing is Ray-free)."""

    def __init__(self, spec: WorkerSpec):
        self.init_error = None
        try:
            self.runner = spec.runner()
        except Exception as exc:  # noqa: BLE001 - returned by ready(); the driver stops the batch
            self.init_error = one_line(exc)

    def ready(self) -> str | None:
        return self.init_error

    def run(self, item: WorkItem) -> ItemResult:
        return self.runner.run(item)


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
                 address: str | None = None):
        self.spec, self.workers, self.timeout, self.address = spec, max(1, int(workers)), timeout, address

    def describe(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "a local Ray"
        return f"{self.workers} Ray actor{'s' if self.workers > 1 else ''} on {where}"

    def run(self, items: Iterable[WorkItem]) -> Iterator[ItemResult]:
        pending = list(items)
        if not pending:
            return
        ray = import_ray()
        started_here = self._connect(ray)
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(BatchActorImpl)
        pool = []
        try:
            pool = [self._new_actor(ray, actor_class) for _ in range(min(self.workers, len(pending)))]
            yield from self._dispatch(ray, actor_class, pool, pending)
        finally:
            for actor in pool:
                ray.kill(actor)
            if started_here:
                ray.shutdown()

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
