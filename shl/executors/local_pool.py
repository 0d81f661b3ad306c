"""Run tasks in a pool of local worker processes (``make_executor("local", workers=N)``).

Small models on a CPU use cores poorly within one run (much of a step is Python and small kernels), so N runs
side by side with ``cores // N`` threads each finish sooner than the same runs one after another with all cores.

- Workers are started with the ``spawn`` method; each gets ``OMP_NUM_THREADS`` (and MKL/OpenBLAS) = cores // N in
  its environment before its interpreter starts, and sets ``torch.set_num_threads`` to the same.
- Results reach ``on_result`` in completion order; progress messages are forwarded to ``progress(label, stage)``.
  Each worker sends them over its OWN pipe: a queue shared by the workers has one write lock, and a worker
  killed while holding it would block every other worker's messages forever.
- A worker that dies (killed, out of memory) fails the task it held, naming the exit code and the last stage it
  reported (there is no traceback to give); a replacement worker is started for the remaining tasks. Ctrl-C, an
  exception in a callback, or ``close()`` terminates the workers.
- Workers never outlive the process that started them: on Linux the kernel kills a worker the moment its parent
  dies (``PR_SET_PDEATHSIG``); elsewhere a watchdog thread ends it within half a second. Each worker also
  holds a duplicate of the ablation's output lock (``lock_fd``), so the lock stays held while any worker
  lives, and a resumed ablation never starts a run a worker of a killed one is still writing.
- Tasks and results travel over pipes only (no queues, hence no semaphores for Python's resource tracker to
  watch).
- Shared stages: runs whose configs agree on everything but ``heal``/``loop``/``name`` (the arms of one seed)
  share a stage cache entry (see ``Run``). So that two arms never compute the same entry at once, the first
  task of such a group (its leader) runs before the others (followers) start; followers wait only for their
  leader, and any other ready task is dispatched meanwhile, so no worker idles while work is available.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .base import Executor, RunResult, RunTask

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def share_group(task: RunTask) -> str | None:
    """Tasks with the same group may share a stage-cache entry: same cache directory and the same config up to
    ``heal``, ``loop`` and ``name`` (what the shared stages do not read). None: the task shares nothing."""
    if not task.shared_dir:
        return None
    cfg = {k: v for k, v in task.config.items() if k not in ("heal", "loop", "name")}
    return json.dumps([task.shared_dir, task.data_root, cfg], sort_keys=True, default=str)


class SharedFd:
    """A file descriptor handed to a worker at its start: the worker receives its own duplicate (as an int)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        from multiprocessing.reduction import DupFd

        return (_detach, (DupFd(self.fd),))


def _detach(dup: Any) -> int:
    return dup.detach()


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent) dies: ``PR_SET_PDEATHSIG`` = SIGKILL on Linux (then a
    check that the parent did not die before that took effect); a watchdog thread elsewhere."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                if os.getppid() != parent_pid:
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="shl-parent-watch", daemon=True).start()


def _worker(wid: int, threads: int, inbox: Any, outbox: Any, parent_pid: int, lock: Any = None) -> None:
    """Worker process: run tasks from ``inbox`` (the receiving end of a pipe) until None; report progress and
    results on ``outbox``, the sending end of a pipe only this worker writes to. ``lock`` (a ``DupFd`` of the
    ablation's output lock, received as a descriptor) stays open for the worker's life."""
    import signal

    die_with_parent(parent_pid)
    del lock  # an int: our duplicate of the output lock's descriptor, open (and the lock held) until we exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it terminates the workers
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except Exception:
        pass
    from .task import execute_task

    while True:
        try:
            item = inbox.recv()
        except EOFError:  # the parent closed our inbox: stop
            return
        if item is None:
            return
        index, task = item
        try:
            def progress(stage: str, _i: int = index) -> None:
                outbox.send(("progress", wid, _i, stage))

            result = execute_task(task, progress)
        except BaseException as exc:  # execute_task never raises; anything here is a worker-level failure
            result = RunResult("failed", " ".join(f"worker error: {type(exc).__name__}: {exc}".split()),
                               traceback=traceback.format_exc())
        outbox.send(("result", wid, index, result))


@contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """The parent's environment during a spawn: the child interpreter starts with it (then it is restored)."""
    saved = {var: os.environ.get(var) for var in _THREAD_VARS}
    try:
        for var in _THREAD_VARS:
            os.environ[var] = str(threads)
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


class LocalPoolExecutor(Executor):
    name = "local"

    def __init__(self, workers: int = 2, threads: int | None = None, poll_s: float = 0.5, lock: Any = None):
        if workers < 1:
            from ..errors import ShlError

            raise ShlError(f"executor 'local': workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self.threads = int(threads) if threads else max(1, available_cores() // self.workers)
        self.poll_s = poll_s
        self.lock = lock  # the ablation's OutputLock: workers share it and are named in it
        self._procs: dict[int, Any] = {}
        self._inboxes: dict[int, Any] = {}
        self._outboxes: dict[int, Any] = {}  # worker id -> the receiving end of its pipe
        self._next_wid = 0
        self._running: dict[int, int] = {}
        self._heard: set[int] = set()  # workers that sent anything (a worker that dies silently died at start)
        self._last_stage: dict[int, str] = {}  # task index -> the last stage its worker reported

    # ------------------------------------------------------------------ processes
    def _start(self, ctx: Any, wid: int) -> None:
        inbox_r, inbox_w = ctx.Pipe(duplex=False)
        receiver, sender = ctx.Pipe(duplex=False)
        lock = SharedFd(self.lock.fd) if self.lock is not None else None
        proc = ctx.Process(target=_worker, args=(wid, self.threads, inbox_r, sender, os.getpid(), lock),
                           name=f"shl-worker-{wid}", daemon=True)
        with _thread_env(self.threads):
            proc.start()
        sender.close()  # the worker holds the only sending end: its death reads as end of file here
        inbox_r.close()
        self._procs[wid] = proc
        self._inboxes[wid] = inbox_w
        self._outboxes[wid] = receiver
        if self.lock is not None:
            self.lock.note_workers([p.pid for p in self._procs.values() if p.pid])

    def _stop_all(self, graceful: bool) -> None:
        if graceful:
            for inbox in self._inboxes.values():
                try:
                    inbox.send(None)
                except Exception:
                    pass
            deadline = time.time() + 5.0
            for proc in self._procs.values():
                proc.join(max(0.0, deadline - time.time()))
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs.values():
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for inbox in self._inboxes.values():
            try:
                inbox.close()
            except Exception:
                pass
        for receiver in self._outboxes.values():
            receiver.close()
        self._procs.clear()
        self._inboxes.clear()
        self._outboxes.clear()

    # ------------------------------------------------------------------ scheduling
    def run(
        self,
        tasks: Sequence[RunTask],
        on_result: Callable[[RunTask, RunResult], None],
        progress: Callable[[str, str], None] | None = None,
    ) -> None:
        import multiprocessing as mp

        tasks = list(tasks)
        if not tasks:
            return
        ctx = mp.get_context("spawn")
        # leader/follower dependencies over shared-stage groups
        leader_of: dict[str, int] = {}
        waits_for: dict[int, int] = {}
        for i, t in enumerate(tasks):
            g = share_group(t)
            if g is None:
                continue
            if g in leader_of:
                waits_for[i] = leader_of[g]
            else:
                leader_of[g] = i
        leaders = set(leader_of.values())
        pending = list(range(len(tasks)))
        finished: set[int] = set()
        running: dict[int, int] = {}  # worker id -> task index
        self._running = running
        self._last_stage = {}

        def report(index: int, result: RunResult) -> None:
            finished.add(index)
            on_result(tasks[index], result)

        clean = False
        try:
            while pending or running:
                # as many workers as there is work for (replacing any that died)
                while len(self._procs) < min(self.workers, len(pending) + len(running)):
                    self._start(ctx, self._next_wid)
                    self._next_wid += 1
                # dispatch: ready leaders first (they unblock followers), then other ready tasks, in task order
                for wid in [w for w in self._procs if w not in running]:
                    ready = [i for i in pending if waits_for.get(i) is None or waits_for[i] in finished]
                    if not ready:
                        break
                    pick = next((i for i in ready if i in leaders), ready[0])
                    pending.remove(pick)
                    running[wid] = pick
                    self._inboxes[wid].send((pick, tasks[pick]))
                if not running:  # cannot happen: a follower's leader is pending, running or finished
                    raise RuntimeError("local executor: tasks wait for leaders that never run")
                messages = self._receive(self.poll_s)
                if not messages:
                    self._reap(running, report)
                    continue
                for kind, wid, index, payload in messages:
                    self._heard.add(wid)
                    if kind == "progress":
                        self._last_stage[index] = payload
                        if progress is not None:
                            progress(tasks[index].label, payload)
                    elif running.get(wid) == index:
                        del running[wid]
                        report(index, payload)
            clean = True
        finally:
            self._stop_all(graceful=clean)

    def _receive(self, timeout: float, wids: Sequence[int] | None = None) -> list[tuple[Any, ...]]:
        """The messages waiting on the workers' pipes (all workers, or ``wids``), after waiting up to ``timeout``
        for one. A pipe at end of file (its worker died) is dropped; ``_reap`` then fails the worker's task."""
        from multiprocessing.connection import wait

        pipes = {self._outboxes[w]: w for w in (self._outboxes if wids is None else wids) if w in self._outboxes}
        messages = []
        for receiver in wait(list(pipes), timeout=timeout) if pipes else []:
            while True:
                try:
                    if not receiver.poll():
                        break
                    messages.append(receiver.recv())
                except (EOFError, OSError):
                    self._outboxes.pop(pipes[receiver], None)
                    receiver.close()
                    break
        return messages

    def _reap(self, running: dict[int, int], report: Callable[[int, RunResult], None]) -> None:
        """Fail the task of every worker that died (after taking any result it sent just before dying)."""
        dead = [wid for wid, proc in self._procs.items() if not proc.is_alive()]
        if not dead:
            return
        for kind, wid, index, payload in self._receive(0.0, dead):  # a result sent before dying wins
            if kind == "result" and running.get(wid) == index:
                del running[wid]
                report(index, payload)
        for wid in dead:
            code = self._procs.pop(wid).exitcode
            inbox = self._inboxes.pop(wid, None)
            if inbox is not None:
                inbox.close()
            receiver = self._outboxes.pop(wid, None)
            if receiver is not None:
                receiver.close()
            index = running.pop(wid, None)
            if index is not None:
                hint = "" if wid in self._heard else (
                    " before reporting anything (a script that starts the executor must guard its entry point "
                    "with `if __name__ == '__main__':`, as multiprocessing's spawn method requires)")
                stage = self._last_stage.get(index)
                where = f" during '{stage}'" if stage else ""
                message = f"worker process died (exit code {code}){where}{hint}"
                report(index, RunResult("failed", message, traceback=(
                    f"no Python traceback: the worker process running this task died (exit code {code}){where}, "
                    "so nothing in it could record one (a negative exit code is the signal that killed it, e.g. -9: "
                    "SIGKILL, as the out-of-memory killer sends)\n")))

    def close(self) -> None:
        self._stop_all(graceful=False)
