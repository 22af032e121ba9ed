"""Transition shim for helpers merging main: moved to ``churnops.training.runner``.
Removed at the end of this session."""

from churnops.training.runner import compile_spec, run_local, submit

__all__ = ["compile_spec", "run_local", "submit"]
