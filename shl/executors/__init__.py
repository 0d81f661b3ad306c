"""Executors: where runs execute. The runner owns the bookkeeping; an executor only runs tasks."""

from .base import Executor, RunResult, RunTask
from .inprocess import InProcessExecutor


def make_executor(name: str, host=None, **kwargs) -> Executor:
    if name == "inprocess":
        return InProcessExecutor(host)
    if name == "local":
        from .local_pool import LocalPoolExecutor

        return LocalPoolExecutor(**kwargs)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(**kwargs)
    from ..errors import ShlError

    raise ShlError(f"unknown executor '{name}' (available: inprocess, local, ray)")


__all__ = ["Executor", "InProcessExecutor", "RunResult", "RunTask", "make_executor"]
