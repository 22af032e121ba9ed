"""The fork server behind `churnops pipeline run --local`: a step forked from the warm
interpreter behaves as one started fresh (its own environment, working directory, output
and exit status, a NumPy generator of its own), a step that fails or is killed fails
its task, and a server that is gone or a launcher that is killed loses no task and
leaves no process behind. Real kfp.local tasks and real processes throughout."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import dsl, local

from churnops.training import forkserver

# Small, so the server is ready in well under a second (the real run preloads PRELOAD).
PRELOAD = ("kfp.dsl.executor", "numpy")


@dsl.component(install_kfp_package=False)
def report() -> str:
    import json
    import os
    import sys

    import numpy

    print("step output line")
    return json.dumps(
        {
            "ppid": os.getppid(),
            "cwd": os.getcwd(),
            "token": os.environ.get("FORKSERVER_TEST_TOKEN"),
            "argv0": sys.argv[0],
            "random": float(numpy.random.rand()),
        }
    )


@dsl.component(install_kfp_package=False)
def fail(how: str) -> None:
    import os
    import signal

    if how == "raise":
        raise ValueError("field 'tenure', row 3: not a number")
    os.kill(os.getpid(), signal.SIGKILL)


@dsl.component(install_kfp_package=False)
def wait_forever(pid_file: str) -> None:
    import os
    import time

    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[forkserver.Server]:
    with (
        forkserver.serving(tmp_path / "forkserver.log", preload=PRELOAD) as running,
        forkserver.subprocess_runner_uses(running.launcher),
    ):
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(tmp_path / "root"),
            raise_on_error=True,
        )
        yield running


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_a_forked_step_sees_its_own_environment_cwd_and_generator(
    server: forkserver.Server, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("FORKSERVER_TEST_TOKEN", "set after the server started")
    first = json.loads(report().output)
    second = json.loads(report().output)
    assert first["ppid"] == server.pid, _cmdline(first["ppid"])  # forked, not started fresh
    assert first["token"] == "set after the server started"
    assert first["cwd"] == os.getcwd()
    assert first["argv0"].endswith("executor_main.py")
    assert first["random"] != second["random"]
    assert "step output line" in capfd.readouterr().out


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_step_that_fails_or_is_killed_fails_its_task(
    server: forkserver.Server, how: str, capfd: pytest.CaptureFixture
) -> None:
    with pytest.raises(RuntimeError, match="FAILURE"):
        fail(how=how)
    if how == "raise":
        assert "ValueError: field 'tenure', row 3: not a number" in capfd.readouterr().out
    assert os.waitpid(server.pid, os.WNOHANG) == (0, 0)  # the server carries on
    assert json.loads(report().output)["ppid"] == server.pid


def test_a_step_runs_fresh_when_the_server_is_gone(server: forkserver.Server) -> None:
    os.kill(server.pid, signal.SIGKILL)
    os.waitpid(server.pid, 0)
    result = json.loads(report().output)
    assert result["ppid"] != server.pid  # its own interpreter, under kfp.local's shell


def test_a_killed_launcher_takes_its_step_with_it(
    server: forkserver.Server, tmp_path: Path
) -> None:
    """The launcher as kfp.local runs it, then killed (as a cancelled run would kill it):
    the step it started is terminated too."""
    pid_file = tmp_path / "step.pid"
    module = tmp_path / "ephemeral_component.py"
    module.write_text(wait_forever.component_spec.implementation.container.command[-1])
    executor_input = {
        "inputs": {"parameterValues": {"pid_file": str(pid_file)}},
        "outputs": {"outputFile": str(tmp_path / "out.json")},
    }
    launcher = subprocess.Popen(
        [
            server.launcher,
            "-m",
            forkserver.MODULE,
            "--component_module_path",
            str(module),
            "--executor_input",
            json.dumps(executor_input),
            "--function_to_execute",
            "wait_forever",
        ],
        env={**os.environ, "_KFP_RUNTIME": "true"},
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    step = int(pid_file.read_text())
    assert _is_child_of(step, server.pid)
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 30
    while _is_child_of(step, server.pid):
        assert time.monotonic() < deadline, "the step outlived its launcher"
        time.sleep(0.05)


def test_other_commands_get_the_real_interpreter(server: forkserver.Server) -> None:
    out = subprocess.run(
        [server.launcher, "-c", "import sys; print(sys.executable, sys.flags.isolated)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [sys.executable, "0"]


def _is_child_of(pid: int, parent: int) -> bool:
    """``pid`` is alive (not a zombie) and ``parent``'s child."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] != "Z" and int(fields[1]) == parent
