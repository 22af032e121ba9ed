"""The model server process: ``kserve.ModelServer`` with the ``churn`` model.

KServe serves health, metadata, model readiness and ``/metrics``. The two inference
routes (``/v1/models/<name>:predict`` and ``/v2/models/<name>/infer``) are registered
ahead of KServe's own, because KServe's versions answer a non-JSON Content-Type or a
malformed body in ways that do not name the problem (V1 passes non-JSON bodies through
as bytes; V2 turns them into pydantic 422s or a binary-extension error) and do not see
the final status for request metrics. Ours check the media type and decode: a valid
JSON batch in one typed pass (``churnops.serving.decode``), anything else through the
reference path that names the offending field and row. Then they hand the request to
KServe's ``DataPlane.infer`` so the model's preprocess → predict → postprocess chain and
KServe's latency histograms run as usual; every error goes through
``churnops.serving.errors``.

Server readiness (``/v2/health/ready``) is the model's readiness: a server whose model
has not loaded and passed its self-check answers 503 there and on inference routes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson

from churnops.errors import ModelLoadError
from churnops.serving import decode, errors, metrics
from churnops.serving.errors import MalformedRequest, UnsupportedMediaType
from churnops.serving.model import (
    ChurnModel,
    DecodedInferRequest,
    DecodedRecords,
    ServeConfig,
    temp_home,
)
from churnops.serving.validation import _KEYS_WITH_ID, json_type, preview

logger = logging.getLogger("churnops.serving")

_BINARY_HEADER = "inference-header-content-length"


class InjectedFault(RuntimeError):
    """A failure injected by the chaos settings (answers 500, like a real defect)."""


@dataclass(frozen=True)
class Chaos:
    """Fault injection for rehearsing canary rollbacks (off unless set).

    ``CHURNOPS_CHAOS_ERROR_RATIO`` (0..1) answers that share of inference requests with a
    500; ``CHURNOPS_CHAOS_LATENCY_SECONDS`` adds that delay to every inference request.
    The rollout tests and ``make bench-rollout`` use them to play an erroring or a slow
    canary; never set them in production.
    """

    error_ratio: float = 0.0
    latency_seconds: float = 0.0

    @classmethod
    def from_env(cls) -> Chaos:
        chaos = cls(
            float(os.environ.get("CHURNOPS_CHAOS_ERROR_RATIO", "0") or 0),
            float(os.environ.get("CHURNOPS_CHAOS_LATENCY_SECONDS", "0") or 0),
        )
        if chaos.error_ratio or chaos.latency_seconds:
            logger.warning("chaos enabled: %s", chaos)
        return chaos

    async def apply(self) -> None:
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if self.error_ratio and random.random() < self.error_ratio:
            raise InjectedFault("injected fault (CHURNOPS_CHAOS_ERROR_RATIO)")


def _import_kserve() -> Any:
    # kserve.model_server parses sys.argv at import time; our flags are not its flags.
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        from kserve import model_server
    finally:
        sys.argv = argv
    return model_server


def check_content_type(value: str | None) -> None:
    """JSON bodies only (a missing Content-Type is read as JSON).

    Raises:
        UnsupportedMediaType: Anything else.
    """
    if not value:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return
    raise UnsupportedMediaType(f"Content-Type must be application/json, got {value[:80]!r}")


def loads(body: bytes) -> Any:
    """Decode a JSON body. NaN/Infinity (not JSON, but what many encoders emit) decode to
    floats so validation can name the field and row that holds them.

    Raises:
        MalformedRequest: Not JSON.
    """
    if not body:
        raise MalformedRequest("empty request body: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise MalformedRequest(f"malformed JSON: {err}") from None


async def read_body(request: Any, *, max_bytes: int, timeout: float) -> bytes:
    """The request body, refused before it is buffered when it is too large, and bounded
    in time.

    A ``Content-Length`` above ``max_bytes`` is refused without reading; a chunked body
    is counted as it streams in and refused as soon as it passes ``max_bytes``.

    Raises:
        BodyTooLarge: More than ``max_bytes`` (HTTP 413).
        MalformedRequest: A Content-Length that is not a non-negative integer.
        BodyTimeout: The whole body did not arrive within ``timeout`` seconds (408).
        ClientDisconnected: The client went away mid-body (counted as 499).
    """
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise MalformedRequest(f"Content-Length must be a byte count, got {declared[:40]!r}")
        if int(declared) > max_bytes:
            raise errors.BodyTooLarge(
                f"request body of {int(declared)} bytes exceeds the maximum of {max_bytes} "
                "(--max-body-bytes)"
            )
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise errors.BodyTooLarge(
                    f"request body exceeds the maximum of {max_bytes} bytes (--max-body-bytes)"
                )
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise errors.BodyTimeout(
            f"the request body did not arrive within {timeout:g} s (--body-timeout)"
        ) from None
    except ClientDisconnect:
        raise errors.ClientDisconnected("client disconnected mid-body") from None
    return b"".join(chunks)


def _optional_object(value: Any, where: str, field: str = errors.REQUEST_FIELD) -> dict | None:
    if value is not None and not isinstance(value, dict):
        raise MalformedRequest(
            f"{where} must be an object, got {json_type(value)} {preview(value)}", field=field
        )
    return value


def check_v2_header(payload: Any, *, binary: bool = False) -> None:
    """The V2 request's own fields, checked before anything reads them: ``inputs`` a
    non-empty list of tensor objects with a string ``name`` and ``datatype``, a ``shape``
    list (and a ``data`` list unless the tensor travels in the binary extension);
    ``parameters`` objects; ``id`` a string or number; ``outputs`` objects with a known
    ``name``.

    Raises:
        MalformedRequest: Naming the offending field.
    """
    if not isinstance(payload, dict):
        raise MalformedRequest(f"the body must be a JSON object, got {json_type(payload)}")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        hint = ' (V1 "instances" go to /v1/models/<name>:predict)' if "instances" in payload else ""
        raise MalformedRequest(f'the body must have a non-empty "inputs" list of tensors{hint}')
    for i, t in enumerate(inputs):
        if not isinstance(t, dict):
            raise MalformedRequest(f"inputs[{i}] must be a tensor object, got {json_type(t)}")
        name = t.get("name")
        if not isinstance(name, str):
            raise MalformedRequest(
                f"inputs[{i}]: 'name' must be a string, got {json_type(name)} {preview(name)}"
            )
        field = name if name in _KEYS_WITH_ID else errors.REQUEST_FIELD
        params = _optional_object(
            t.get("parameters"), f"inputs[{i}] ({name!r}): 'parameters'", field
        )
        in_binary = binary and params is not None and "binary_data_size" in params
        for key, kind in (("datatype", str), ("shape", list), ("data", list)):
            if key == "data" and in_binary:
                continue
            if not isinstance(t.get(key), kind):
                raise MalformedRequest(
                    f"inputs[{i}] ({name!r}): {key!r} must be a "
                    f"{'string' if kind is str else 'list'}",
                    field=field,
                )
        if not all(type(d) is int for d in t["shape"]):
            raise MalformedRequest(
                f"inputs[{i}] ({name!r}): 'shape' must be a list of integers, got "
                f"{preview(t['shape'])}",
                field=field,
            )
        if (
            in_binary
            and params is not None
            and (type(params["binary_data_size"]) is not int or params["binary_data_size"] < 0)
        ):
            raise MalformedRequest(
                f"inputs[{i}] ({name!r}): 'binary_data_size' must be a non-negative integer",
                field=field,
            )
    outputs = payload.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise MalformedRequest('"outputs" must be a list of {"name": ...} objects')
        for i, o in enumerate(outputs):
            if o["name"] not in ("churn_probability", "churn"):
                raise MalformedRequest(
                    f"unknown output {preview(o['name'])}; outputs: churn_probability, churn"
                )
            _optional_object(o.get("parameters"), f"outputs[{i}]: 'parameters'")
    _optional_object(payload.get("parameters"), '"parameters"')
    request_id = payload.get("id")
    if request_id is not None and type(request_id) not in (str, int, float):
        raise MalformedRequest(
            f'"id" must be a string, got {json_type(request_id)} {preview(request_id)}'
        )


def _v2_request(payload: Any, model_name: str) -> Any:
    from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

    check_v2_header(payload)
    tensors = [
        InferInput(
            t["name"], t["shape"], t["datatype"], data=t["data"], parameters=t.get("parameters")
        )
        for t in payload["inputs"]
    ]
    outputs = payload.get("outputs")
    requested = (
        None
        if outputs is None
        else [RequestedOutput(o["name"], o.get("parameters") or {}) for o in outputs]
    )
    request_id = payload.get("id")
    return InferRequest(
        model_name,
        tensors,
        request_id=str(request_id) if request_id is not None else None,
        parameters=payload.get("parameters"),
        request_outputs=requested,
    )


def _decoded_v2_request(fast: decode.V2Request, model_name: str) -> DecodedInferRequest:
    from kserve.protocol.infer_type import RequestedOutput

    return DecodedInferRequest(
        fast.columns,
        model_name,
        request_id=fast.id,
        parameters=fast.parameters,
        request_outputs=None
        if fast.outputs is None
        else [RequestedOutput(name, parameters) for name, parameters in fast.outputs],
    )


def _binary_v2_request(body: bytes, json_length: str, model_name: str) -> Any:
    """A body in KServe's binary tensor extension: the JSON header is checked like a JSON
    request (``check_v2_header``) before KServe's decoder reads the buffers, and anything
    that decoder then meets (length prefixes short or too long, sizes that disagree with
    the body, invalid UTF-8) is the client's malformed request.

    Raises:
        MalformedRequest: Naming what is wrong.
    """
    from kserve.protocol.infer_type import InferRequest

    if not json_length.strip().isdigit() or not 0 < int(json_length) <= len(body):
        raise MalformedRequest(
            f"{_BINARY_HEADER} must be the JSON header's byte length (1..{len(body)}), "
            f"got {json_length[:40]!r}"
        )
    header = loads(body[: int(json_length)])
    check_v2_header(header, binary=True)
    try:
        request = InferRequest.from_bytes(body, int(json_length), model_name)
    except RecursionError:
        raise
    except Exception as err:  # KServe's decoder: struct.error, ValueError, IndexError, ...
        raise MalformedRequest(
            f"malformed binary inference request: {type(err).__name__}: {preview(str(err))}"
        ) from None
    for i in request.inputs:
        if i.data is None:
            raise MalformedRequest(f"input {i.name!r} has neither data nor binary_data_size")
    return request


class InferenceRoutes:
    """The V1 and V2 inference endpoints (see module docstring)."""

    def __init__(self, dataplane: Any, model: ChurnModel, chaos: Chaos | None = None):
        self.dataplane = dataplane
        self.model = model
        self.name = model.name
        self.chaos = chaos or Chaos()

    async def _ready(self, model_name: str) -> None:
        from kserve.errors import ModelNotReady

        if not await self.dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name, self.model.last_error or "")

    async def _body(self, request: Any) -> bytes:
        config = self.model.config
        return await read_body(
            request, max_bytes=config.max_body_bytes, timeout=config.body_timeout
        )

    def _finish(self, protocol: str, started: float, version: str | None, response: Any) -> Any:
        current = self.model.current
        label = version or (current.version if current else "none")
        child = (
            current.metrics
            if current and current.version == label
            else metrics.RequestMetrics(self.name, label)
        )
        child.request(protocol, response.status_code, time.perf_counter() - started)
        return response

    def _error(self, err: BaseException) -> Any:
        from starlette.responses import Response

        if isinstance(err, RecursionError):  # only a client's nesting goes this deep here
            err = MalformedRequest("the body is nested too deeply")
        status, body = errors.to_response(err)
        if errors.is_validation_error(err):
            metrics.validation_error(self.name, errors.field_of(err))
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def v1_predict(self, request: Any) -> Any:
        from starlette.responses import Response

        started = time.perf_counter()
        version = None
        try:
            model_name = request.path_params["model_name"]
            await self._ready(model_name)
            await self.chaos.apply()
            headers = dict(request.headers)
            check_content_type(headers.get("content-type"))
            body = await self._body(request)
            columns = decode.v1(body, max_rows=self.model.config.max_batch_rows)
            payload = loads(body) if columns is None else DecodedRecords(columns)
            result, _ = await self.dataplane.infer(
                model_name=model_name, request=payload, headers=headers
            )
            version = result.model_version
            response = Response(result.body, media_type="application/json")
        except Exception as err:
            response = self._error(err)
        return self._finish("v1", started, version, response)

    async def v2_infer(self, request: Any) -> Any:
        from starlette.responses import Response

        started = time.perf_counter()
        version = None
        try:
            model_name = request.path_params["model_name"]
            await self._ready(model_name)
            await self.chaos.apply()
            headers = dict(request.headers)
            body = await self._body(request)
            if _BINARY_HEADER in headers:  # the binary tensor extension (tritonclient)
                infer_request = _binary_v2_request(body, headers[_BINARY_HEADER], model_name)
            else:
                check_content_type(headers.get("content-type"))
                fast = decode.v2(body, max_rows=self.model.config.max_batch_rows)
                infer_request = (
                    _v2_request(loads(body), model_name)
                    if fast is None
                    else _decoded_v2_request(fast, model_name)
                )
            result, _ = await self.dataplane.infer(
                model_name=model_name, request=infer_request, headers=headers
            )
            if isinstance(result, dict):  # JSON outputs (numpy arrays inside)
                version = result["model_version"]
                rest, json_length = result, None
            else:  # binary outputs: KServe's encoder
                version = result.model_version
                try:
                    rest, json_length = result.to_rest()
                except Exception as err:
                    raise MalformedRequest(f"cannot encode the requested outputs: {err}") from err
            if json_length is not None:
                response = Response(
                    rest,
                    media_type="application/octet-stream",
                    headers={_BINARY_HEADER: str(json_length)},
                )
            else:
                response = Response(
                    orjson.dumps(rest, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json",
                )
        except Exception as err:
            response = self._error(err)
        return self._finish("v2", started, version, response)

    async def repository_closed(self, request: Any) -> Any:
        """KServe's model repository endpoints (load/unload), closed: whoever could reach
        the port could unload the model. The model comes from ``--model-uri`` (and its
        alias polling) only."""
        from starlette.responses import Response

        body = {
            "error": "the model repository endpoints are disabled: the served model comes "
            "from --model-uri (CHURNOPS_MODEL_URI) and its alias only",
            "field": errors.REQUEST_FIELD,
            "row": None,
        }
        return Response(orjson.dumps(body), status_code=403, media_type="application/json")

    def install(self, app: Any) -> None:
        """Register the routes on KServe's app before KServe adds its own (first match wins)."""
        for path in ("/v2/repository/{rest:path}", "/v1/repository/{rest:path}"):
            app.add_route(path, self.repository_closed, methods=["GET", "POST", "PUT", "DELETE"])
        app.add_route("/v1/models/{model_name}:predict", self.v1_predict, methods=["POST"])
        app.add_route("/v2/models/{model_name}/infer", self.v2_infer, methods=["POST"])
        app.add_route(
            "/v2/models/{model_name}/versions/{model_version}/infer",
            self.v2_infer,
            methods=["POST"],
        )


def _dataplane_class() -> type:
    from kserve.protocol.dataplane import DataPlane

    class ChurnDataPlane(DataPlane):
        """Server readiness = every registered model is ready (KServe answers True).
        Liveness = the churn model is registered and serves or can still come back (its
        poller is retrying); otherwise 503, so Kubernetes restarts the pod."""

        churn_model: ChurnModel | None = None

        async def ready(self) -> bool:
            models = self.model_registry.get_models()
            return bool(models) and all([await m.healthy() for m in models.values()])

        async def live(self) -> dict[str, str]:
            from kserve.errors import ServerNotLive

            model = self.churn_model
            if model is not None and (
                model.name not in self.model_registry.get_models() or not model.can_come_back()
            ):
                raise ServerNotLive(
                    f"model {model.name} is not loaded and cannot come back: "
                    f"{model.last_error or 'stopped'}"
                )
            return {"status": "alive"}

    return ChurnDataPlane


def _configure_logging(*, access_log: bool) -> None:
    # One line per request from KServe's timing middleware and uvicorn's access log costs
    # more than scoring a record; both stay available.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if not access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("churnops.serving").setLevel(logging.INFO)


def _bind_host(model_server: Any, host: str) -> None:
    """Make KServe's REST server bind ``host``: KServe hard-codes 0.0.0.0 in the uvicorn
    config its ``RESTServer`` builds, and reads nothing else before it binds."""
    base = model_server.RESTServer

    class HostRESTServer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host

    model_server.RESTServer = HostRESTServer


def serve(
    config: ServeConfig,
    *,
    host: str = "0.0.0.0",
    http_port: int = 8080,
    access_log: bool = False,
    grace_period: int = 20,
    wait_for_model: bool = False,
) -> None:
    """Run the model server on ``host:http_port`` until SIGTERM/SIGINT (in-flight requests
    finish first).

    Raises:
        RegistryUnavailable: The model comes from MLflow and MLflow does not answer.
        ModelLoadError: The model cannot be loaded at start (its URI does not resolve, it
            cannot be read or refused, or it fails its self-check).
        Neither with ``wait_for_model``: the server then starts unready and retries.
    """
    temp_home()
    model_server = _import_kserve()
    _bind_host(model_server, host)
    if config.tracking_uri:
        if config.model_uri.startswith(("models:/", "runs:/")) and not wait_for_model:
            from churnops import tracking

            # an unreachable registry ends the start within seconds (RegistryUnavailable,
            # exit 4), with a progress line per retry, instead of MLflow's minutes of retries
            tracking.connect(config.tracking_uri)
        else:
            import mlflow

            mlflow.set_tracking_uri(config.tracking_uri)
            mlflow.set_registry_uri(config.tracking_uri)
    server = model_server.ModelServer(
        http_port=http_port,
        workers=1,
        enable_grpc=False,
        enable_latency_logging=False,
        grace_period=grace_period,
    )
    _configure_logging(access_log=access_log)
    if not logging.getLogger("churnops").handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger("churnops").addHandler(handler)
    model = ChurnModel(config)
    if wait_for_model:
        model.load()  # KServe's hook: unready until a version passes its self-check
    elif not model.refresh(initial=True, log=False):  # the CLI prints the one error line
        model.stop()
        raise ModelLoadError(model.last_error or f"cannot load {config.model_uri}")
    # Everything loaded so far (libraries, the model) lives as long as the process: keep it
    # out of the collector's full passes, which otherwise stall a request now and then
    # for as long as it takes to walk the whole heap.
    gc.collect()
    gc.freeze()
    server.dataplane = _dataplane_class()(model_registry=server.registered_models)
    server.dataplane.churn_model = model
    server.register_model(model)
    InferenceRoutes(server.dataplane, model, Chaos.from_env()).install(model_server.app)
    model.start_polling()
    try:
        server.start([])  # the model is registered already; KServe would refuse an unready one
    finally:
        model.stop()
        logger.info("model server stopped")
