"""A small in-process stand-in for the KFP API server (v2beta1 REST), for the one thing
that cannot run here: Kubeflow Pipelines itself. It answers the calls ``kfp.Client``
makes through churnops' adapter (``churnops.kfp_client``) and records what it was asked
to start, so a test can count runs. State lives in this object, i.e. it outlives any
process that talks to it, as KFP's database outlives the receiver's pod."""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

API = "/apis/v2beta1"


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _matches(obj: dict[str, Any], raw_filter: str | None) -> bool:
    if not raw_filter:
        return True
    for p in json.loads(raw_filter).get("predicates", []):
        # kfp.Client sends the enum's number, churnops its name; KFP accepts both.
        assert p["operation"] in ("EQUALS", 1), f"fake KFP supports EQUALS filters only: {p}"
        value = p.get("stringValue", p.get("string_value"))
        if obj.get(p["key"]) != value:
            return False
    return True


@dataclass
class FakeKfp:
    """``url`` once started; ``runs``, ``recurring_runs``, ``pipelines``, ``versions`` hold
    what clients created. ``down = True`` makes every call a 503."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    recurring_runs: list[dict[str, Any]] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    down: bool = False
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def age_runs(self, seconds: float) -> None:
        """Pretend every run was created ``seconds`` earlier."""
        for run in self.runs:
            created = datetime.fromisoformat(run["created_at"].replace("Z", "+00:00"))
            run["created_at"] = _ts(created - timedelta(seconds=seconds))

    # -- request handling ----------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        self.calls.append(f"{method} {path}")
        if path == f"{API}/healthz":
            return {"multi_user": False}
        if path == f"{API}/experiments":
            if method == "POST":
                exp = {
                    "experiment_id": self.new_id("exp"),
                    "display_name": body["display_name"],
                    "created_at": _ts(_now()),
                }
                self.experiments.append(exp)
                return exp
            found = [e for e in self.experiments if _matches(e, query.get("filter"))]
            return {"experiments": found, "total_size": len(found)} if found else {}
        if path == f"{API}/runs":
            if method == "POST":
                assert body.get("experiment_id") in {e["experiment_id"] for e in self.experiments}
                assert body.get("pipeline_spec") or body.get("pipeline_version_reference")
                run = {
                    **body,
                    "run_id": self.new_id("run"),
                    "state": "PENDING",
                    "created_at": _ts(_now()),
                }
                self.runs.append(run)
                return run
            found = [
                r
                for r in self.runs
                if _matches(r, query.get("filter"))
                and query.get("experiment_id") in (None, r["experiment_id"])
            ]
            order = query.get("sort_by", "")
            found.sort(key=lambda r: r["created_at"], reverse=order.endswith("desc"))
            found = found[: int(query.get("page_size", "10"))]
            return {"runs": found, "total_size": len(found)} if found else {}
        if path == f"{API}/pipelines":
            found = [p for p in self.pipelines if _matches(p, query.get("filter"))]
            return {"pipelines": found, "total_size": len(found)} if found else {}
        if path == f"{API}/pipelines/upload":
            spec, name = body
            pipeline = {
                "pipeline_id": self.new_id("pipeline"),
                "display_name": query.get("display_name") or query.get("name") or name,
                "created_at": _ts(_now()),
            }
            self.pipelines.append(pipeline)
            self.versions.append(
                {
                    "pipeline_id": pipeline["pipeline_id"],
                    "pipeline_version_id": self.new_id("version"),
                    "display_name": pipeline["display_name"],
                    "pipeline_spec": spec,
                    "created_at": _ts(_now()),
                }
            )
            return pipeline
        if path == f"{API}/pipelines/upload_version":
            spec, _ = body
            version = {
                "pipeline_id": query["pipelineid"],
                "pipeline_version_id": self.new_id("version"),
                "display_name": query.get("display_name") or query.get("name"),
                "pipeline_spec": spec,
                "created_at": _ts(_now()),
            }
            self.versions.append(version)
            return version
        if path == f"{API}/recurringruns":
            if method == "POST":
                job = {
                    **body,
                    "recurring_run_id": self.new_id("recurring"),
                    "status": "ENABLED",
                    "created_at": _ts(_now()),
                }
                self.recurring_runs.append(job)
                return job
            found = [
                r
                for r in self.recurring_runs
                if _matches(r, query.get("filter"))
                and query.get("experiment_id") in (None, r.get("experiment_id"))
            ]
            return {"recurringRuns": found, "total_size": len(found)} if found else {}
        if path.startswith(f"{API}/recurringruns/") and method == "DELETE":
            rid = path.rsplit("/", 1)[1]
            before = len(self.recurring_runs)
            self.recurring_runs[:] = [
                r for r in self.recurring_runs if r["recurring_run_id"] != rid
            ]
            if len(self.recurring_runs) == before:
                raise KeyError(rid)
            return {}
        raise KeyError(path)

    # -- server ---------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                body: Any = None
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                    )
                    part = next(
                        p
                        for p in message.iter_parts()
                        if p.get_param("name", header="content-disposition") == "uploadfile"
                    )
                    docs = list(yaml.safe_load_all(part.get_payload(decode=True)))
                    body = (docs[0], part.get_filename())
                elif raw:
                    body = json.loads(raw)
                status, reply = 200, {}
                if fake.down:
                    status, reply = 503, {"error": "KFP is down", "code": 14}
                else:
                    try:
                        with fake._lock:
                            reply = fake.handle(method, url.path, query, body)
                    except KeyError as err:
                        status, reply = 404, {"error": f"not found: {err}", "code": 5}
                    except AssertionError as err:
                        status, reply = 400, {"error": f"bad request: {err}", "code": 3}
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
