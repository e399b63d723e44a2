"""Executors: run many :class:`~.plan.RunSpec` and yield results as they finish.

- :class:`LocalExecutor`: a process pool over this machine's cores.
- :class:`DaskExecutor`: a dask.distributed cluster, a fresh ``LocalCluster``
  by default or an existing scheduler by address.

Both call the same worker function on the same specs; a run's result depends
only on its spec, so the rows are the same whichever executor computes them
(except the columns measured with a clock, see :func:`.studies.is_measured`).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Iterator

from nhipl.errors import NhiplError

from .plan import RunSpec


class RunFailed(NhiplError):
    """A run raised: names the run, its parameters and seed, and the error."""

    def __init__(self, spec: RunSpec, error: BaseException):
        self.spec = spec
        self.error = error
        params = ", ".join(f"{k}={v}" for k, v in spec.params)
        super().__init__(
            f"run `{spec.run_id}` ({params}{', ' if params else ''}seed={spec.seed}) failed: "
            f"{type(error).__name__}: {error}"
        )


class ExecutorError(NhiplError):
    """The executor could not start (no dask, no scheduler at the address)."""


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LocalExecutor:
    """A pool of worker processes (forkserver: no threads are forked)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()

    def run(self, fn: Callable, specs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict]]:
        specs = list(specs)
        if not specs:
            return
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if context.get_start_method() == "forkserver":
            context.set_forkserver_preload(["nhipl.simulator.sweep.run"])
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(specs)), mp_context=context)
        # Keep a bounded number of runs in flight so that an interrupt loses little.
        pending = iter(specs)
        running = {}
        try:
            for spec in pending:
                running[pool.submit(fn, spec)] = spec
                if len(running) >= 2 * self.workers:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        raise RunFailed(spec, error) from error
                    yield spec, future.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        running[pool.submit(fn, nxt)] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """dask.distributed: a ``LocalCluster`` of ``workers`` processes, or the
    scheduler at ``scheduler`` (``tcp://host:8786``)."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 processes: bool = True, timeout: float = 60.0):
        self.scheduler = scheduler
        self.workers = workers or default_workers()
        self.processes = processes
        self.timeout = timeout

    def _connect(self):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ExecutorError("the dask executor needs dask.distributed; install it with `pip install 'nhipl[sweep]'`") from None
        if self.scheduler:
            try:
                return Client(self.scheduler, timeout=self.timeout), None
            except (OSError, TimeoutError) as err:
                raise ExecutorError(f"cannot reach the dask scheduler at `{self.scheduler}`: {err}") from None
        cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=self.processes,
            # The scheduler's HTTP server starts even without a dashboard, and with no
            # address it takes port 8787, warning when another cluster holds it: a free
            # loopback port instead.
            dashboard_address="127.0.0.1:0", silence_logs=40,  # logging.ERROR
        )
        return Client(cluster, timeout=self.timeout), cluster

    def run(self, fn: Callable, specs: Iterable[RunSpec]) -> Iterator[tuple[RunSpec, dict]]:
        specs = list(specs)
        if not specs:
            return
        from dask.distributed import as_completed

        client, cluster = self._connect()
        try:
            futures = {client.submit(fn, spec, key=f"nhipl-run-{spec.run_id}", pure=False): spec for spec in specs}
            for future in as_completed(futures):
                spec = futures[future]
                if future.status == "error":
                    error = future.exception()
                    raise RunFailed(spec, error) from error
                yield spec, future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
