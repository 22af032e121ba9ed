"""Transition shim for helpers merging main: moved to ``churnops.processes``. Removed at
the end of this session."""

from churnops.processes import Process, free_port, start, start_mlflow, start_prometheus

__all__ = ["Process", "free_port", "start", "start_mlflow", "start_prometheus"]
