"""Transition shim for helpers merging main: moved to ``churnops.training.flow``. Removed
at the end of this session."""

from churnops.training.flow import run_training

__all__ = ["run_training"]
