"""Warm task processes for kfp.local's ``SubprocessRunner``: a fork server.

Every kfp.local task is ``sh -ec '... python3 -m kfp.dsl.executor_main ...'``. A fresh
interpreter spends 1-3 s importing pandas, scikit-learn, XGBoost and MLflow before the
step's first line of work, and the local pipeline runs four such steps one after the
other. The fork server imports them once, at the start of the run. The ``python3`` of
the task's command becomes a small launcher that hands its arguments, environment,
working directory and standard streams to the server, which forks a child that runs
the module as ``python3 -m`` would and answers with the child's exit status. PySpark
starts its Python workers the same way (``pyspark.daemon``).

What a task sees is what a fresh interpreter gives it: its own process, argv, cwd,
environment, stdin/stdout/stderr (kfp.local's pipe), exit code (128 + signal when
killed), atexit handlers and non-daemon threads run at its exit. The server is
single-threaded when it forks (checked: the preloaded modules start no thread), and
reseeds NumPy's global generator in each child. Anything but ``-m kfp.dsl.executor_main``,
or a server that does not answer, runs the real interpreter instead. The cluster and
``--runner docker`` never use it. ``CHURNOPS_FORKSERVER=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODULE = "kfp.dsl.executor_main"
ENV_SWITCH = "CHURNOPS_FORKSERVER"
# What the pipeline's steps import (churnops.training.components), heaviest first.
PRELOAD = (
    "kfp.dsl.executor",  # what the executor module imports; it runs as __main__ itself
    "kfp.dsl.kfp_config",
    "churnops.training.ingest",
    "churnops.training.fit",
    "churnops.training.selection",
    "churnops.training.publish",
    "churnops.training.runs",
    "churnops.rollout.deploy",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "xgboost",
    "skops.io",
    "mlflow.pyfunc",
    "mlflow.data.pandas_dataset",
)
_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")
_POLL_SECONDS = 0.02
_KILL_GRACE_SECONDS = 5.0

# The launcher runs as `python3` in each task's command: isolated and without site
# (it starts in ~10 ms), standard library only. A server that does not answer, or any
# other command line, gets the real interpreter.
_LAUNCHER = """#!{python} -IS
import json, os, socket, struct, sys
REAL, SOCKET, MODULE = {python!r}, {socket!r}, {module!r}
args = sys.argv[1:]
if args[:2] != ["-m", MODULE]:
    os.execv(REAL, [REAL, *args])
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    conn.connect(SOCKET)
    body = json.dumps({{"argv": args[2:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
    socket.send_fds(conn, [struct.pack("!I", len(body))], [0, 1, 2])
    conn.sendall(body)
    started = conn.recv(1)
except OSError:
    started = b""
if not started:  # the server never forked this task: run it here
    conn.close()
    os.execv(REAL, [REAL, *args])
status = b""
while len(status) < 4:
    chunk = conn.recv(4 - len(status))
    if not chunk:
        sys.stderr.write("churnops fork server: ended while running this task\\n")
        sys.exit(1)
    status += chunk
sys.exit(struct.unpack("!i", status)[0])
"""


@dataclass(frozen=True)
class Server:
    """A running fork server: ``launcher`` is what a task runs as ``python3``."""

    launcher: str
    pid: int


def enabled() -> bool:
    """Whether local subprocess runs fork their steps from a warm interpreter."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def serving(log_path: Path, *, preload: tuple[str, ...] = PRELOAD) -> Iterator[Server]:
    """Start a fork server for this run; yields it, with the launcher to use as ``python3``.

    The listening socket is bound here, before the server starts: a task that starts
    while the server is still importing waits in the backlog. The server ends when this
    context does (its stdin closes), or with this process.
    """
    workdir = Path(tempfile.mkdtemp(prefix="churnops-fork-"))  # short: AF_UNIX paths <108 B
    path = workdir / "server.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(64)
        launcher = workdir / "python3"
        launcher.write_text(
            _LAUNCHER.format(python=sys.executable, socket=str(path), module=MODULE)
        )
        launcher.chmod(0o700)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    __name__,
                    str(listener.fileno()),
                    ",".join(preload),
                ],
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(listener.fileno(),),
                env={**os.environ, "_KFP_RUNTIME": "true"},
            )
        listener.close()
        try:
            yield Server(launcher=str(launcher), pid=server.pid)
        finally:
            with contextlib.suppress(OSError):
                server.stdin.close()  # type: ignore[union-attr]
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            (workdir / "python3").unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()


@contextlib.contextmanager
def subprocess_runner_uses(launcher: str) -> Iterator[None]:
    """kfp.local's ``SubprocessRunner`` (``use_venv=False``) runs ``launcher`` as ``python3``.

    It puts ``sys.executable`` in place of ``python3`` in each task's command
    (``kfp.local.subprocess_task_handler.replace_python_executable``, kfp 2.16); for the
    length of this context it puts the launcher there instead.
    """
    from kfp.local import subprocess_task_handler as handler

    original: Callable[[list[str], str], list[str]] = handler.replace_python_executable

    def replace(full_command: list[str], new_executable: str) -> list[str]:
        if new_executable == sys.executable:
            new_executable = launcher
        return original(full_command, new_executable)

    handler.replace_python_executable = replace  # type: ignore[assignment]
    try:
        yield
    finally:
        handler.replace_python_executable = original  # type: ignore[assignment]


# ---- the server process -------------------------------------------------------------


def _preload(modules: list[str]) -> None:
    import threading

    start = time.perf_counter()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # the task imports it again and reports it itself
            print(f"forkserver: preloading {name} failed: {err}", file=sys.stderr)
    if threading.active_count() > 1:  # forking a threaded process could copy a held lock
        names = ", ".join(t.name for t in threading.enumerate())
        raise SystemExit(f"forkserver: preloading started threads ({names}); not forking")
    print(
        f"forkserver: {len(modules)} modules preloaded in {time.perf_counter() - start:.1f}s",
        file=sys.stderr,
        flush=True,
    )


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request: its JSON body and the task's three standard streams."""
    header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    try:
        while len(header) < _HEADER.size:
            header += _read(conn, _HEADER.size - len(header))
        if len(fds) != 3:
            raise ConnectionError(f"expected 3 file descriptors, got {len(fds)}")
        (size,) = _HEADER.unpack(header)
        body = bytearray()
        while len(body) < size:
            body += _read(conn, min(size - len(body), 1 << 20))
        return json.loads(bytes(body)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _read(conn: socket.socket, size: int) -> bytes:
    if not (data := conn.recv(size)):
        raise ConnectionError("request ended early")
    return data


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the task's interpreter, run the module, exit.

    It exits as ``multiprocessing`` ends a forked process (non-daemon threads joined,
    then ``os._exit``), after the task's atexit handlers, as a fresh interpreter runs
    them: tearing down the thousands of preloaded modules would cost about a second.
    """
    import atexit
    import runpy
    import threading
    import traceback

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # New objects over the task's streams; the server's own stay referenced, unflushed.
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the task's, for its lifetime
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    if "numpy" in sys.modules:  # the forked generator state would be every child's
        sys.modules["numpy"].random.seed()
    sys.argv = [MODULE, *request["argv"]]
    code = 0
    try:
        runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = _system_exit_code(stop)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # as multiprocessing does
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _system_exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    print(stop.code, file=sys.stderr)
    return 1


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def serve(listener: socket.socket, stdin_fd: int) -> None:
    """Accept tasks until stdin closes; fork one child per task; answer each with its
    exit status. A task whose launcher goes away is terminated."""
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(stdin_fd, selectors.EVENT_READ, "parent")
    tasks: dict[int, socket.socket] = {}
    killed: dict[int, float] = {}
    parent_alive = True
    while parent_alive or tasks:
        for key, _ in selector.select(_POLL_SECONDS):
            if key.data == "parent":
                if not os.read(stdin_fd, 4096):
                    parent_alive = False
                    selector.unregister(stdin_fd)
                    selector.unregister(listener)
            elif key.data == "accept":
                conn, _ = listener.accept()
                conn.setblocking(True)
                try:
                    request, fds = _receive(conn)
                except (OSError, ValueError) as err:
                    print(f"forkserver: bad request: {err}", file=sys.stderr, flush=True)
                    conn.close()
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    for other in (listener, conn, *tasks.values()):
                        other.close()
                    _child(request, fds)  # never returns
                for fd in fds:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    conn.sendall(b"S")  # started: from here a lost server fails the task
                tasks[pid] = conn
                selector.register(conn, selectors.EVENT_READ, pid)
            else:  # a launcher's connection is readable only when it went away
                pid = key.data
                selector.unregister(key.fileobj)
                if pid in tasks and pid not in killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                    killed[pid] = time.monotonic()
        for pid, since in list(killed.items()):
            if time.monotonic() - since > _KILL_GRACE_SECONDS:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while tasks:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            killed.pop(pid, None)
            if pid not in tasks:  # not a task's (none expected)
                continue
            conn = tasks.pop(pid)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(_STATUS.pack(_exit_code(status)))
            conn.close()


def main() -> None:
    listener = socket.socket(fileno=int(sys.argv[1]))
    _preload([m for m in sys.argv[2].split(",") if m])
    serve(listener, sys.stdin.fileno())


if __name__ == "__main__":
    main()
