"""The registry under concurrency and faults, against real ``mlflow server`` processes:
racing promotions never lose an update, a crash leaves nothing half-registered, and an
MLflow restart in the middle of publishing is outlived."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from churnops import processes
from churnops.data.generate import GeneratorConfig, write

# Minutes of real training in separate processes; a loaded machine needs the headroom.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]


def _train_argv(data: object, url: str, model: str) -> list[str]:
    """``churnops train`` of one cheap candidate, as a subprocess's argv."""
    options = ["--data", str(data), "--tracking-uri", url, "--model-name", model]
    return [sys.executable, "-m", "churnops.cli", "train", *options, "--candidates", "logreg"]


def _versions(client: MlflowClient, name: str, count: int) -> list[str]:
    """``count`` READY versions of ``name``, each from its own run (cheap: a text file)."""
    client.create_registered_model(name)
    experiment = client.create_experiment(f"{name}-runs")
    out = []
    for i in range(count):
        run = client.create_run(experiment)
        client.log_text(run.info.run_id, f"model {i}", "model/MLmodel")
        mv = client.create_model_version(
            name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        client.set_terminated(run.info.run_id)
        out.append(str(mv.version))
    return out


RACER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from churnops import registry, tracking
    tracking_uri, name, barrier, versions = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
    tracking.connect(tracking_uri)
    for round_, version in enumerate(versions):
        (barrier / f"ready-{round_}-{version}").touch()
        while not (barrier / f"go-{round_}").exists():
            time.sleep(0.01)
        print(json.dumps({"version": version, "aliases": registry.promote(name, version)}), flush=True)
    """
)


def test_racing_promotions_keep_a_consistent_alias_history(mlflow_server, tmp_path):
    client = MlflowClient(mlflow_server, mlflow_server)
    racers, rounds = 4, 3
    versions = _versions(client, "race", 1 + racers * rounds)
    client.set_registered_model_alias("race", "champion", versions[0])
    mine = [versions[1 + i * rounds : 1 + (i + 1) * rounds] for i in range(racers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, mlflow_server, "race", str(tmp_path), *vs],
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"racer-{i}.log").open("w"),
            text=True,
        )
        for i, vs in enumerate(mine)
    ]

    def line(i: int, p: subprocess.Popen) -> dict:
        text = p.stdout.readline()  # type: ignore[union-attr]
        assert text, f"racer {i} exited {p.wait(60)}: {(tmp_path / f'racer-{i}.log').read_text()}"
        return json.loads(text)

    champion = versions[0]
    for round_ in range(rounds):
        expected = {f"ready-{round_}-{vs[round_]}" for vs in mine}
        deadline = time.monotonic() + 600
        while not expected <= {p.name for p in tmp_path.glob("ready-*")}:
            assert time.monotonic() < deadline, "racers did not get ready"
            assert all(p.poll() is None for p in procs), "a racer died"
            time.sleep(0.05)
        (tmp_path / f"go-{round_}").touch()
        # Every racer's line of this round: its version became champion replacing another.
        results = [line(i, p) for i, p in enumerate(procs)]
        promoted = {r["version"] for r in results}
        replaced = [r["aliases"]["previous-champion"] for r in results]
        assert all(r["aliases"]["champion"] == r["version"] for r in results)
        # Serialized: the replaced champions are the round's start plus all but the last
        # promoted version, each exactly once; a lost update repeats one of them.
        assert len(set(replaced)) == racers, replaced
        assert set(replaced) | promoted == promoted | {champion}
        final = client.get_registered_model("race").aliases
        [last] = promoted - set(replaced)
        assert final["champion"] == last
        assert final["previous-champion"] == next(
            r["aliases"]["previous-champion"] for r in results if r["version"] == last
        )
        champion = last
    for p in procs:
        assert p.wait(60) == 0
    names = [m.name for m in client.search_registered_models()]
    assert "race.alias-lock" not in names, "the lock outlived the changes"


def test_repair_removes_what_a_crashed_run_left(mlflow_server, tmp_path):
    client = MlflowClient(mlflow_server, mlflow_server)
    [version] = _versions(client, "crashed", 1)
    mv = client.get_model_version("crashed", version)
    client.set_model_version_tag("crashed", version, "candidate", "logreg")
    run = client.create_run(client.get_run(mv.run_id).info.experiment_id)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client.set_tag(run.info.run_id, "churnops.host", os.uname().nodename)
    client.set_tag(run.info.run_id, "churnops.pid", str(dead.pid))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "churnops.cli",
            "registry",
            "repair",
            "--model-name",
            "crashed",
            "--tracking-uri",
            mlflow_server,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["removed_versions"] == [version]
    assert run.info.run_id in result["failed_runs"]
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    assert client.search_model_versions("name='crashed'") == []


def test_an_mlflow_restart_mid_publish_leaves_nothing_half_registered(tmp_path):
    port = processes.free_port()
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def start() -> processes.Process:
        return processes.start_mlflow(
            backend_uri=backend,
            artifacts_dir=tmp_path / "artifacts",
            log_path=tmp_path / "mlflow.log",
            port=port,
        )

    server = start()
    url = server.url
    data = write(GeneratorConfig(rows=1500, seed=4), tmp_path / "c.csv", show_progress=False)
    train = subprocess.Popen(
        _train_argv(data, url, "restart"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # An MLflow start takes minutes on a loaded machine: the budget must outlive it.
        env={**os.environ, "CHURNOPS_REGISTRY_RETRY_SECONDS": "900"},
    )
    client = MlflowClient(url, url)
    deadline = time.monotonic() + 900
    while not client.search_model_versions("name='restart'"):
        assert train.poll() is None, train.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(server.popen.pid, signal.SIGKILL)  # right after the version was created
    server.popen.wait(10)
    time.sleep(20)
    server = start()
    try:
        out, err = train.communicate(timeout=1800)
        assert "Traceback" not in err
        if train.returncode == 0:
            result = json.loads(out.splitlines()[-1])
            assert result["promoted"] is True
        else:
            assert train.returncode == 4, err
            assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
        for mv in client.search_model_versions("name='restart'"):
            assert "gate" in mv.tags, f"v{mv.version} half-registered: {sorted(mv.tags)}\n{err}"
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert runs and all(r.info.status != "RUNNING" for r in runs)
    finally:
        server.stop()


class AnswerLost(ThreadingHTTPServer):
    """A proxy in front of MLflow that delivers the first request ``lose(path, body)``
    picks but drops the connection instead of its answer, as a network cut or a server
    killed between commit and reply does. With ``outage`` seconds, that answer is sent and
    MLflow is then down for that long instead: every request is dropped unanswered. With
    ``refuse``, that request never reaches MLflow and is answered 400."""

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        lose: Callable[[str, bytes], bool],
        outage: float = 0.0,
        refuse: bool = False,
    ) -> None:
        self.upstream, self.lose, self.lost = upstream, lose, 0
        self.outage, self.down_until, self.refuse = outage, 0.0, refuse
        super().__init__(("127.0.0.1", 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def train(self, data: object, model: str) -> subprocess.CompletedProcess:
        """``churnops train`` of ``model`` on ``data``, through this proxy (served meanwhile)."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        try:
            return subprocess.run(
                _train_argv(data, self.url, model), capture_output=True, text=True, timeout=1800
            )
        finally:
            self.shutdown()


class _Forward(BaseHTTPRequestHandler):
    server: AnswerLost

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if time.monotonic() < self.server.down_until:
            self.close_connection = True
            return  # MLflow is down: nothing reaches it, nothing comes back
        if self.server.refuse and not self.server.lost and self.server.lose(self.path, body):
            self.server.lost += 1
            refusal = b'{"error_code": "INVALID_PARAMETER_VALUE", "message": "refused by the test"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(refusal)))
            self.end_headers()
            self.wfile.write(refusal)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        request = urllib.request.Request(
            self.server.upstream + self.path,
            data=body or None,
            headers=headers,
            method=self.command,
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                status, reply, content = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as err:
            status, reply, content = err.code, err.headers, err.read()
        if not self.server.lost and self.server.lose(self.path.split("?")[0], body):
            self.server.lost += 1
            if self.server.outage:
                self.server.down_until = time.monotonic() + self.server.outage
            else:
                self.close_connection = True
                return  # delivered upstream, answer never sent
        self.send_response(status)
        for key, value in reply.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, *args: object) -> None:
        pass


def _after_version_created(picks: Callable[[str], bool]) -> Callable[[str, bytes], bool]:
    """Picks the first request ``picks`` matches once a model version create went by."""
    created: list[str] = []

    def pick(path: str, body: bytes) -> bool:
        if path.endswith("/model-versions/create"):
            created.append(path)
            return False
        return bool(created) and picks(path)

    return pick


LOST_ANSWERS = {
    # MLflow's HTTP client resends a request whose answer was lost (POST included):
    # the version is created twice unless churnops notices,
    "create version": lambda path, body: path.endswith("/model-versions/create"),
    # and the run twice, the first copy left RUNNING,
    "start run": lambda path, body: path.endswith("/runs/create"),
    # and the alias lock it took must not look held by someone else,
    "take the alias lock": lambda path, body: (
        path.endswith("/registered-models/create") and b"alias-lock" in body
    ),
    # nor its resent release fail the promotion that already happened.
    "release the alias lock": lambda path, body: (
        path.endswith("/registered-models/delete") and b"alias-lock" in body
    ),
}


@pytest.mark.parametrize("lost", LOST_ANSWERS)
def test_a_lost_answer_registers_one_version_and_promotes_it(mlflow_server, tmp_path, lost):
    model = "lost-" + lost.replace(" ", "-")
    proxy = AnswerLost(mlflow_server, LOST_ANSWERS[lost])
    data = write(GeneratorConfig(rows=1500, seed=5), tmp_path / "c.csv", show_progress=False)
    done = proxy.train(data, model)
    assert proxy.lost == 1, f"the proxy never saw a request to {lost}"
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    client = MlflowClient(mlflow_server, mlflow_server)
    versions = client.search_model_versions(f"name='{model}'")
    assert [mv.version for mv in versions] == [result["version"]]
    assert versions[0].tags["gate"] == "passed"
    assert client.get_registered_model(model).aliases["champion"] == result["version"]
    assert "breaking the expired alias lock" not in done.stderr, "waited for its own lock"
    run = client.get_run(result["run_id"])
    token = run.data.tags["churnops.start_token"]
    copies = client.search_runs(
        [run.info.experiment_id],
        f"tags.`churnops.start_token` = '{token}'",
        run_view_type=ViewType.ALL,
    )
    assert len(copies) == (2 if lost == "start run" else 1)
    assert [c.info.run_id for c in copies if c.info.lifecycle_stage == "active"] == [
        run.info.run_id
    ]
    assert all(c.info.status != "RUNNING" for c in copies), "a copy of the run stays RUNNING"


def test_mlflow_down_right_after_the_version_is_created_is_outlived(mlflow_server, tmp_path):
    # MLflow links a new version to its logged model in two more calls; when MLflow goes
    # down between them, it reports the link's failure as a bad parameter, not an outage.
    model = "down-after-create"
    proxy = AnswerLost(
        mlflow_server,
        _after_version_created(lambda path: re.search(r"/logged-models/m-\w+$", path) is not None),
        outage=20.0,
    )
    data = write(GeneratorConfig(rows=1500, seed=6), tmp_path / "c.csv", show_progress=False)
    done = proxy.train(data, model)
    assert proxy.lost == 1, "the proxy never saw MLflow read the logged model back"
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["promoted"] is True
    client = MlflowClient(mlflow_server, mlflow_server)
    versions = client.search_model_versions(f"name='{model}'")
    assert [mv.version for mv in versions] == [result["version"]]
    assert versions[0].tags["gate"] == "passed"


def test_mlflow_down_while_the_gate_reads_the_champion_is_not_a_broken_champion(
    mlflow_server, tmp_path
):
    # A champion that cannot be loaded is gated against the floors alone; MLflow being down
    # while its artifacts download must not count as that, or a worse model could win.
    model = "down-at-gate"
    data = write(GeneratorConfig(rows=1500, seed=7), tmp_path / "c.csv", show_progress=False)
    first = subprocess.run(
        _train_argv(data, mlflow_server, model), capture_output=True, text=True, timeout=1800
    )
    assert first.returncode == 0, first.stderr
    proxy = AnswerLost(
        mlflow_server,
        _after_version_created(lambda path: path.endswith("/model-versions/get-download-uri")),
        outage=20.0,
    )
    done = proxy.train(data, model)
    assert proxy.lost == 1, "the proxy never saw the champion's download"
    assert done.returncode == 0, done.stderr
    assert "gating on absolute minimums only" not in done.stderr
    gate = json.loads(done.stdout.splitlines()[-1])["gate"]
    assert gate["champion_version"] == "1"
    assert gate["champion"] is not None, "the champion was never compared"


def test_a_run_that_fails_after_registering_leaves_no_version(mlflow_server, tmp_path):
    # Registered, then the next registry write is refused: the run fails, and the version it
    # created (never gated) is removed again; a failed run registers nothing.
    model = "fails-after-register"
    proxy = AnswerLost(
        mlflow_server, lambda path, body: path.endswith("/model-versions/update"), refuse=True
    )
    data = write(GeneratorConfig(rows=1500, seed=8), tmp_path / "c.csv", show_progress=False)
    done = proxy.train(data, model)
    assert proxy.lost == 1, "the proxy never saw the version described"
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr
    assert "refused by the test" in done.stderr.splitlines()[-1]
    client = MlflowClient(mlflow_server, mlflow_server)
    assert client.search_model_versions(f"name='{model}'") == []
    runs = client.search_runs(
        [client.get_experiment_by_name(model).experiment_id],
        f"tags.`mlflow.runName` = 'train-{model}'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]
