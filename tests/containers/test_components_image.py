"""The components image: the MLflow tracking server on the host's PostgreSQL (migration
first) reachable from the host; and neither image carries this machine's CA bundle."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests
from _docker import DOCKER, docker

pytestmark = [pytest.mark.containers, pytest.mark.slow]


def test_migration_then_server_on_postgres_reachable_from_host(container_mlflow, mlflow_database):
    import psycopg
    from mlflow import MlflowClient

    url = container_mlflow["url"]
    assert requests.get(f"{url}/health", timeout=10).text.strip() == "OK"
    # The migration left the schema at a revision; the server runs on that database.
    with psycopg.connect(mlflow_database) as conn:
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert revision
    client = MlflowClient(url, url)
    experiment = client.create_experiment("from-the-host")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "roc_auc", 0.83)
    with psycopg.connect(mlflow_database) as conn:
        rows = conn.execute(
            "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'roc_auc'", (run.info.run_id,)
        ).fetchall()
    assert rows == [(0.83,)]
    # Proxied artifacts: the host uploads through the server, the file lands on its volume.
    source = container_mlflow["artifacts"].parent / "card.md"
    source.write_text("# Model card\n")
    client.log_artifact(run.info.run_id, str(source))
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["card.md"]
    assert list(container_mlflow["artifacts"].rglob("card.md"))
    assert container_mlflow["container"].inspect()["Config"]["User"] == "10001:10001"


def _pem_bodies(text: str) -> set[str]:
    return {
        re.sub(r"\s+", "", m)
        for m in re.findall(
            r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S
        )
    }


def _host_only_certificates() -> tuple[Path, set[bytes]]:
    """The host's CA bundle and the certificates in it that a stock bundle (certifi) lacks:
    this machine's own CAs, e.g. a TLS-intercepting egress proxy's (stock ones are in
    every image's ca-certificates, legitimately)."""
    import certifi

    bundle = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.fail(f"no host CA bundle at {bundle} to check for")
    stock = _pem_bodies(Path(certifi.where()).read_text())
    for path in Path("/usr/share/ca-certificates").rglob("*.crt"):  # Debian's own, if any
        stock |= _pem_bodies(path.read_text())
    extra = _pem_bodies(bundle.read_text()) - stock
    # A distinctive 60-character slice of each, as it appears in a PEM file's lines or as DER.
    needles = set()
    for body in extra:
        needles.add(body[64:124].encode())
        needles.add(base64.b64decode(body)[200:260])
    return bundle, needles


@pytest.mark.parametrize("role", ["serving", "components"])
def test_image_does_not_contain_the_host_ca_bundle(images, role: str) -> None:
    bundle, needles = _host_only_certificates()
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    cid = docker("create", images[role]).stdout.strip()
    found: list[str] = []
    try:
        export = subprocess.Popen([DOCKER, "export", cid], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            for member in tar:
                if not member.isfile() or member.size > 50_000_000:
                    continue
                data = tar.extractfile(member).read()
                if hashlib.sha256(data).hexdigest() == digest or any(n in data for n in needles):
                    found.append(member.name)
        export.wait(timeout=120)
    finally:
        docker("rm", "-f", cid, check=False)
    assert export.returncode == 0
    assert found == [], f"{images[role]} carries the build host's CA certificates in {found}"
