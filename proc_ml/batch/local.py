"""Local executor: a pool of worker processes, each loading the model once.

The pool is hand-rolled rather than a ``ProcessPoolExecutor`` because the time limit must
be enforced for real: a worker that overruns ``timeout`` (or dies: segfault, OOM kill) is
killed and replaced, its item is recorded as failed, and the other workers carry on.
Workers are started with ``spawn`` so they never inherit the driver's threads or locks.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Iterable, Iterator

from ..errors import ProcMLError
from ..fileio import die_with_parent
from .assets import one_line
from .items import ItemResult, WorkItem
from .worker import WorkerSpec, failed_result


def _worker_main(conn, spec: WorkerSpec, parent_pid: int | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the driver handles Ctrl-C and stops us
    die_with_parent(parent_pid)                    # a killed driver leaves no worker behind
    try:
        runner = spec.runner()
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the batch
        conn.send(("init_error", one_line(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        try:
            conn.send(("result", runner.run(item)))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx, spec: WorkerSpec):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, spec, os.getpid()),
                                   daemon=True, name="proc-ml-batch-worker")
        self.process.start()
        child.close()
        self.ready = False
        self.item: WorkItem | None = None
        self.started = 0.0

    def send(self, item: WorkItem) -> None:
        self.item, self.started = item, time.monotonic()
        self.conn.send(item)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def stop(self, grace: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(grace)
        self.kill()

    def exit_text(self) -> str:
        self.process.join(1.0)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


class LocalExecutor:
    name = "local"

    def __init__(self, spec: WorkerSpec, workers: int = 1, timeout: float | None = None,
                 start_method: str = "spawn"):
        self.spec, self.workers, self.timeout = spec, max(1, int(workers)), timeout
        self.ctx = multiprocessing.get_context(start_method)

    def describe(self) -> str:
        return f"{self.workers} local worker process{'es' if self.workers > 1 else ''}"

    def run(self, items: Iterable[WorkItem]) -> Iterator[ItemResult]:
        pending = deque(items)
        pool = [_Worker(self.ctx, self.spec) for _ in range(min(self.workers, len(pending)))]
        try:
            while pending or any(w.item is not None for w in pool):
                for worker in pool:
                    if worker.ready and worker.item is None and pending:
                        worker.send(pending.popleft())
                ready = wait([w.conn for w in pool], self._wait_seconds(pool))
                for index, worker in enumerate(pool):
                    if worker.conn in ready:
                        result = self._receive(worker)
                        if result is not None:
                            yield result
                        if worker.conn.closed:
                            pool[index] = _Worker(self.ctx, self.spec)
                for index, worker in enumerate(pool):
                    if self._overran(worker):
                        item = worker.item
                        worker.kill()
                        pool[index] = _Worker(self.ctx, self.spec)
                        yield failed_result(item, f"timed out after {self.timeout:g}s (--timeout); "
                                                  f"its worker was stopped", self.timeout)
        finally:
            for worker in pool:
                if worker.item is None and worker.ready:
                    worker.stop()
                else:
                    worker.kill()

    def _wait_seconds(self, pool) -> float | None:
        if not self.timeout:
            return None
        busy = [w.started + self.timeout for w in pool if w.item is not None]
        return max(0.0, min(busy) - time.monotonic()) + 0.01 if busy else None

    def _overran(self, worker: _Worker) -> bool:
        return (bool(self.timeout) and worker.item is not None
                and time.monotonic() - worker.started > self.timeout)

    def _receive(self, worker: _Worker) -> ItemResult | None:
        """The worker's message: a result, a ready signal, or its death (closes the worker)."""
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            item, why = worker.item, worker.exit_text()
            worker.kill()
            if item is None:
                raise ProcMLError(f"a batch worker process died while loading the model ({why})") from None
            return failed_result(item, f"the worker process died while processing this asset ({why})",
                                 time.monotonic() - worker.started)
        if kind == "init_error":
            worker.kill()
            raise ProcMLError(payload)
        if kind == "ready":
            worker.ready = True
            return None
        worker.item = None
        return payload
