"""The KServe model ``churn``: loads an MLflow churn model, scores it through the compiled
path, and swaps in new versions of an alias without dropping requests.

Everything a request needs from a model version (scorer, threshold, drift window, metric
children) sits in one immutable ``LoadedModel``. A request takes the current one once,
in ``preprocess``, and uses it to the end; a reload builds and self-checks the next one
on a background thread and replaces the reference in one assignment. A version that
fails to load or to pass its self-check never serves: at start the server exits with
code 5 (or, with ``--wait-for-model``, stays unready and retries); on reload it keeps the
previous version.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from churnops.data import contract
from churnops.errors import ModelLoadError
from churnops.model.pyfunc import threshold_of
from churnops.model.uri import Source, resolve
from churnops.serving import encode, metrics
from churnops.serving.errors import MalformedRequest
from churnops.serving.scoring import Scorer, checked_scorer, saved_scorer, self_check_columns
from churnops.serving.validation import (
    Columns,
    Tensor,
    UnknownPolicy,
    json_type,
    parse_instances,
    parse_tensors,
)
from churnops.tracking import PROFILE_FILE

logger = logging.getLogger("churnops.serving")

RETRY_FAILED_SECONDS = 300.0
"""A version that failed to load is tried again only after this long (or a new version)."""


@dataclass(frozen=True)
class ServeConfig:
    """Model server settings (``churnops serve`` flags and environment).

    Attributes:
        model_uri: ``models:/name@alias``, ``models:/name/version``, ``runs:/…``, or a
            local MLflow model directory (what KServe's storage initializer leaves).
        tracking_uri: MLflow tracking/registry URI (not needed for a local directory).
        model_name: Name on the endpoints (``/v1/models/<name>:predict``).
        max_batch_rows: Largest batch accepted (413 beyond).
        reload_interval: Seconds between alias polls; 0 turns polling off (a failed first
            load is still retried at this interval, or every 30 s when polling is off).
        unknown_categories: ``reject`` (422) or ``score`` category values outside the
            contract as unknown (counted in ``churnops_unknown_categories_total``).
        download_dir: Where model artifacts are downloaded (removed after loading);
            under the temp directory so a read-only root filesystem works.
        max_body_bytes: Largest request body accepted (413 beyond, refused before it is
            buffered); the default holds ``max_batch_rows`` records with room to spare.
        body_timeout: Seconds a request body may take to arrive (408 beyond).
    """

    model_uri: str = "models:/churn@champion"
    tracking_uri: str | None = None
    model_name: str = "churn"
    max_batch_rows: int = 5000
    reload_interval: float = 0.0
    unknown_categories: UnknownPolicy = "reject"
    download_dir: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    body_timeout: float = 30.0


@dataclass(frozen=True)
class LoadedModel:
    """One model version ready to serve."""

    source: Source
    run_id: str
    scorer: Scorer
    threshold: float
    window: metrics.DriftWindow
    metrics: metrics.RequestMetrics
    check_diff: float

    @property
    def version(self) -> str:
        return self.source.version


def load_version(
    source: Source, *, model_name: str, download_dir: str | None = None
) -> LoadedModel:
    """Download, load (``churnops.model.serialize.load_model_uri``: skops with churnops'
    own trusted types, never pickle), compile and self-check one model version.

    Raises:
        ModelLoadError: Anything on the way fails (the message says what);
            ``serialize.UnsafeModel`` when the artifact asks for pickle or untrusted types.
    """
    from churnops.model.serialize import load_model_dir, local_model_dir

    started = time.perf_counter()
    try:
        with local_model_dir(source.uri, download_dir=download_dir) as root:
            # A linear model's compiled scorer saved beside it (checked when it was logged):
            # no scikit-learn import, about a second off every start.
            saved = saved_scorer(root)
            artifact = load_model_dir(root, estimator=saved is None)
        if artifact.profile is None:
            logger.warning(
                "model %s: no %s; feature drift is not reported", source.version, PROFILE_FILE
            )
        if saved is not None:
            scorer, threshold, diff = saved
        else:
            if artifact.input_example is None:
                logger.info("model %s: no input example for the self-check", source.version)
            scorer, diff = checked_scorer(
                artifact.model, self_check_columns(artifact.input_example), source.version
            )
            threshold = threshold_of(artifact.model, artifact.metadata)
        loaded = LoadedModel(
            source=source,
            run_id=artifact.run_id,
            scorer=scorer,
            threshold=threshold,
            window=metrics.DriftWindow(artifact.profile),
            metrics=metrics.RequestMetrics(model_name, source.version),
            check_diff=diff,
        )
    except ModelLoadError as err:
        raise type(err)(f"cannot load {source.uri}: {err}") from err
    except Exception as err:
        raise ModelLoadError(f"cannot load {source.uri}: {type(err).__name__}: {err}") from err
    logger.info(
        "model %s (%s) loaded in %.1fs: scorer %s%s, threshold %.4f, self-check max |diff| %.2g",
        source.version,
        source.uri,
        time.perf_counter() - started,
        loaded.scorer.kind,
        " (saved beside the model)" if saved is not None else "",
        loaded.threshold,
        diff,
    )
    return loaded


@dataclass(frozen=True)
class DecodedRecords:
    """A V1 body the fast path (``churnops.serving.decode``) decoded and validated."""

    columns: Columns


class DecodedInferRequest(InferRequest):
    """A V2 JSON body the fast path decoded and validated: no input tensors (the batch is
    ``columns``), and the id, parameters and requested outputs the response depends on."""

    def __init__(self, columns: Columns, model_name: str, **kwargs: Any):
        super().__init__(model_name, [], **kwargs)
        self.columns = columns


@dataclass(frozen=True)
class EncodedResponse:
    """A response body already encoded as JSON, and the version that produced it."""

    body: bytes
    model_version: str


@dataclass
class Batch:
    """A validated request on its way through preprocess → predict → postprocess."""

    model: LoadedModel
    columns: Columns
    protocol: str
    request: InferRequest | None = None
    proba: np.ndarray | None = None
    churn: np.ndarray | None = None


class ChurnModel(Model):
    """KServe model serving one churn model version at a time (see module docstring)."""

    def __init__(self, config: ServeConfig):
        super().__init__(config.model_name)
        self.config = config
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._load_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: tuple[str, float] | None = None
        metrics.MODEL_READY.labels(self.name).set(0)

    # --- lifecycle -------------------------------------------------------------------

    def load(self) -> bool:
        """Load the configured URI (KServe's hook; also the first load). Never raises."""
        self.refresh(initial=True)
        return self.ready

    def refresh(self, *, initial: bool = False, log: bool = True) -> bool:
        """Resolve the URI; load and swap in a version that is not the one serving.

        Args:
            log: Log a failure (off where the caller reports it itself, e.g. ``serve``
                exiting on a first load that failed).

        Returns:
            True if a new version now serves.
        """
        with self._load_lock:
            try:
                source = resolve(self.config.model_uri)
            except ModelLoadError as err:
                self._note_failure(
                    str(err), counted=not initial and self.current is not None, log=log
                )
                return False
            if self.current is not None and self.current.source == source:
                return False
            if (
                self._failed
                and self._failed[0] == source.uri
                and time.monotonic() - self._failed[1] < RETRY_FAILED_SECONDS
            ):
                return False
            try:
                loaded = load_version(
                    source, model_name=self.name, download_dir=self.config.download_dir
                )
            except ModelLoadError as err:
                self._failed = (source.uri, time.monotonic())
                self._note_failure(str(err), counted=not initial, log=log)
                return False
            self._swap(loaded, counted=not initial)
            return True

    def _swap(self, loaded: LoadedModel, *, counted: bool) -> None:
        previous = self.current
        self.current = loaded  # the swap: one reference assignment
        self._failed = None
        self.last_error = None
        metrics.COLLECTOR.set_window(self.name, loaded.version, loaded.window)
        if previous is not None:
            with contextlib.suppress(KeyError):
                metrics.MODEL_INFO.remove(self.name, previous.version, previous.run_id)
            logger.info(
                "model %s: now serving version %s (was %s)",
                self.name,
                loaded.version,
                previous.version,
            )
        metrics.MODEL_INFO.labels(self.name, loaded.version, loaded.run_id).set(1)
        if counted:
            metrics.MODEL_RELOADS.labels(self.name, "success").inc()
        if not self._stopping.is_set():
            self.ready = True
            metrics.MODEL_READY.labels(self.name).set(1)

    def _note_failure(self, message: str, *, counted: bool, log: bool = True) -> None:
        self.last_error = message
        if counted:
            metrics.MODEL_RELOADS.labels(self.name, "failure").inc()
        if not log:
            return
        if self.current is None:
            logger.error("model %s: not ready: %s", self.name, message)
        else:
            logger.error(
                "model %s: keeping version %s: %s", self.name, self.current.version, message
            )

    def start_polling(self) -> None:
        """Poll the model URI on a daemon thread (alias moves; retries of a failed first load)."""
        interval = self.config.reload_interval
        if interval <= 0 and self.current is not None:
            return

        def loop() -> None:
            while not self._stopping.wait(interval if interval > 0 else 30.0):
                if interval <= 0 and self.current is not None:
                    return
                try:
                    self.refresh(initial=self.current is None)
                except Exception:  # the poller must survive anything
                    logger.exception("model %s: reload poll failed", self.name)

        self._thread = threading.Thread(target=loop, name="churnops-reload", daemon=True)
        self._thread.start()

    def can_come_back(self) -> bool:
        """Whether this model serves now or may still (liveness): ready, or not stopped and
        with a poller that keeps retrying the load."""
        if self.ready:
            return True
        if self._stopping.is_set():
            return False
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        self.ready = False
        metrics.MODEL_READY.labels(self.name).set(0)

    # --- metadata (V2 /v2/models/<name>) ---------------------------------------------

    def get_input_types(self) -> list[dict]:
        return [
            {"name": f.name, "datatype": "FP64" if f.is_numeric else "BYTES", "shape": [-1]}
            for f in contract.FEATURES
        ]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
            {"name": "churn", "datatype": "BOOL", "shape": [-1]},
        ]

    # --- inference ---------------------------------------------------------------------

    def validate(self, payload: Any) -> Any:
        return payload  # preprocess validates against the record contract

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Batch:  # type: ignore[override]
        loaded = self.current
        if loaded is None or not self.ready:
            raise ModelNotReady(self.name, self.last_error or "")
        config = self.config
        # The fast path (churnops.serving.decode) validated these while decoding.
        if isinstance(payload, DecodedRecords):
            batch = Batch(loaded, payload.columns, "v1")
        elif isinstance(payload, DecodedInferRequest):
            batch = Batch(loaded, payload.columns, "v2", request=payload)
        elif isinstance(payload, InferRequest):
            tensors = [Tensor(i.name, i.datatype, i.shape, i.data) for i in payload.inputs]
            columns = parse_tensors(
                tensors, max_rows=config.max_batch_rows, unknown=config.unknown_categories
            )
            batch = Batch(loaded, columns, "v2", request=payload)
        elif isinstance(payload, dict):
            if "instances" not in payload:
                hint = ' (V2 "inputs" go to /v2/models/<name>/infer)' if "inputs" in payload else ""
                raise MalformedRequest(f'the body must be {{"instances": [record, ...]}}{hint}')
            columns = parse_instances(
                payload["instances"],
                max_rows=config.max_batch_rows,
                unknown=config.unknown_categories,
            )
            batch = Batch(loaded, columns, "v1")
        else:
            raise MalformedRequest(f"the body must be a JSON object, got {json_type(payload)}")
        if batch.columns.unknown:
            metrics.unknown_categories(self.name, batch.columns.unknown)
        return batch

    def predict(self, batch: Batch, headers: dict[str, str] | None = None) -> Batch:  # type: ignore[override]
        loaded = batch.model
        proba = loaded.scorer.predict(batch.columns)
        churn = proba >= loaded.threshold
        loaded.metrics.scored(proba, churn)
        loaded.window.add(batch.columns.numeric, batch.columns.codes, proba)
        batch.proba, batch.churn = proba, churn
        return batch

    def postprocess(
        self, batch: Batch, headers: dict[str, str] | None = None, response_headers=None
    ):  # type: ignore[override]
        version = batch.model.version
        assert batch.proba is not None and batch.churn is not None
        if batch.protocol == "v1":
            return EncodedResponse(
                encode.v1_predictions(batch.proba, batch.churn, version), version
            )
        request = batch.request
        assert request is not None
        n = len(batch.proba)
        outputs = {
            "churn_probability": ("FP64", batch.proba),
            "churn": ("BOOL", batch.churn),
        }
        requested = request.request_outputs
        if not request.use_binary_outputs and not any(o.binary_data for o in requested or ()):
            # JSON outputs straight from the arrays (the server encodes numpy natively);
            # KServe's InferResponse converts them element by element in Python.
            return {
                "id": request.id or str(uuid.uuid4()),
                "model_name": self.name,
                "model_version": version,
                "outputs": [
                    {
                        "name": name,
                        "shape": [n],
                        "datatype": outputs[name][0],
                        "data": outputs[name][1],
                    }
                    for name in ([o.name for o in requested] if requested else outputs)
                ],
            }
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=version,
            infer_outputs=[
                InferOutput(name, [n], datatype, data=data)
                for name, (datatype, data) in outputs.items()
            ],
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=requested,
        )


def temp_home() -> None:
    """Point caches that default to $HOME at the temp dir when $HOME is not writable
    (read-only root filesystem in the serving image)."""
    home = os.environ.get("HOME", "")
    if not home or not os.access(home, os.W_OK):
        os.environ["HOME"] = tempfile.gettempdir()
