"""The churnops exception family.

Every error a user can cause or meet is one of these. Each docstring says how it
surfaces: the CLI maps them to exit codes in one place (``churnops.cli``), the model
server maps them to HTTP statuses in one place (``churnops.serving.errors``).
"""

from __future__ import annotations


class ChurnopsError(Exception):
    """Base of all churnops errors. CLI: exit code 1.

    ``result``, when set, is still printed as the command's JSON line (a rolled-back
    canary is a result worth reading, and a non-zero exit).
    """

    exit_code = 1
    result: object = None


class ContractViolation(ChurnopsError, ValueError):
    """Input data breaks the record contract (missing column, bad type, value out of range).

    CLI: exit code 2, message names the column and an example row. Training stops before
    anything is trained or registered.
    """

    exit_code = 2


class InvalidRecord(ChurnopsError, ValueError):
    """One inference request is malformed or breaks the record contract.

    HTTP: 400 (422 for well-formed JSON with contract violations), JSON body names field
    and row. The server keeps serving.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str = "_request", row: int | None = None):
        super().__init__(message)
        self.field = field
        self.row = row


class DataSourceError(ChurnopsError, OSError):
    """The data URI cannot be read (missing file, HTTP error, unknown scheme). CLI: exit 3."""

    exit_code = 3


class RegistryUnavailable(ChurnopsError, ConnectionError):
    """MLflow could not be reached after retries with backoff. CLI: exit 4; the registry
    is left as it was."""

    exit_code = 4


class ModelLoadError(ChurnopsError, RuntimeError):
    """A model version cannot be loaded or fails its self-check. ``churnops serve`` exits
    with it at start (with ``--wait-for-model`` it stays unready and retries instead); on a
    reload it keeps serving the previous model. CLI: exit 5."""

    exit_code = 5


class PromotionRejected(ChurnopsError):
    """The promotion gate or a canary analysis rejected a model. Not a failure of the
    command: reported in its JSON (``promoted: false``). Raised only where a caller asks
    for promotion to be mandatory. CLI: exit 6."""

    exit_code = 6


class PipelineFailed(ChurnopsError):
    """A pipeline run failed; the JSON result (which task, the MLflow run, what was undone)
    is still printed. CLI: exit 7."""

    exit_code = 7


class UsageError(ChurnopsError, ValueError):
    """A command-line argument is invalid (bad JSON, unknown name, out of range).

    CLI: exit code 2 (argparse's own code for usage errors), message names the flag.
    """

    exit_code = 2


class KfpUnavailable(ChurnopsError, ConnectionError):
    """The KFP API server could not be reached or refused the request. CLI: exit 8; the
    alert receiver answers 502 so Alertmanager retries the notification."""

    exit_code = 8


class RegistryStateError(ChurnopsError, LookupError):
    """The registry is not in a state that allows the change: no such model or version, a
    version that is not READY, no previous champion to roll back to. CLI: exit 9; checked
    before the first write, so nothing changed."""

    exit_code = 9


class ChampionChanged(RegistryStateError):
    """The champion moved while a promotion was being decided (another promotion or
    rollback won the race). The caller re-gates against the new champion; the CLI never
    shows it unless re-gating gives up (exit 9)."""


class ClusterUnavailable(ChurnopsError, ConnectionError):
    """No Kubernetes configuration (kubeconfig or in-cluster service account), or the API
    server cannot be reached. CLI: exit 10; nothing was changed on the cluster."""

    exit_code = 10
