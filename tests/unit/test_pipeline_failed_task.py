"""The failed task a pipeline result names, whichever way kfp.local reported it."""

from pathlib import Path

import pytest

from churnops.training.runner import _failed_task

CYAN, RED, RESET = "\033[96m", "\033[91m", "\033[0m"


@pytest.mark.parametrize(
    ("error", "log_text", "task"),
    [
        # The pipeline's own error, innermost task first.
        (
            f"Pipeline 'churn' finished with status {RED}FAILURE{RESET}. Inner task failed: "
            f"{CYAN}'train-candidate'{RESET} inside {CYAN}'for-loop-2'{RESET}.",
            "",
            "train-candidate",
        ),
        # A task's error that propagated unwrapped: nothing in the log names it.
        (
            f"Task {CYAN}'ingest-validate'{RESET} finished with status {RED}FAILURE{RESET}",
            "Task 'ingest-validate' started\n",
            "ingest-validate",
        ),
        # An empty task chain: the orchestrator's log line names it.
        (
            "Pipeline 'churn' finished with status FAILURE. Inner task failed: .",
            "Task register-gate failed with exception: boom\n",
            "register-gate",
        ),
    ],
)
def test_the_failed_task_is_named(tmp_path: Path, error: str, log_text: str, task: str) -> None:
    log = tmp_path / "run.log"
    log.write_text(log_text)
    assert _failed_task(RuntimeError(error), log) == task


def test_nothing_names_a_task(tmp_path: Path) -> None:
    assert _failed_task(RuntimeError("docker: engine gone"), tmp_path / "missing.log") is None
