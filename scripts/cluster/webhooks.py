"""KServe's webhook configurations (config/webhook/manifests.yaml), pointed at a host process.

In a cluster the webhooks call the kserve-webhook-server Service; on the local control plane
the KServe controller runs on the host, so each clientConfig becomes a URL on 127.0.0.1 with
the local CA as caBundle. Everything else (rules, selectors, failurePolicy) stays KServe's.

    python webhooks.py MANIFESTS BASE_URL CA_FILE > webhooks.yaml
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import yaml


def main(manifests: str, base_url: str, ca_file: str) -> None:
    ca = base64.b64encode(Path(ca_file).read_bytes()).decode()
    docs = [d for d in yaml.safe_load_all(Path(manifests).read_text()) if d]
    for doc in docs:
        doc["metadata"].pop("creationTimestamp", None)
        for hook in doc.get("webhooks") or []:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": base_url.rstrip("/") + path, "caBundle": ca}
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))


if __name__ == "__main__":
    main(*sys.argv[1:4])
