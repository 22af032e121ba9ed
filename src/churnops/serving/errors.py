"""HTTP mapping of every error the model server can meet, in one place.

The inference routes catch everything and call ``to_response``: a client error becomes a
4xx JSON body ``{"error": message, "field": name, "row": index}`` (``field`` is a
record-contract field or ``_request``), an unavailable model a 503, and anything else a
500, which is a defect and logged with its traceback. The process never dies on input.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from churnops.errors import ChurnopsError, InvalidRecord, ModelLoadError

logger = logging.getLogger("churnops.serving")

REQUEST_FIELD = "_request"


class MalformedRequest(InvalidRecord):
    """The body is not the protocol's JSON shape (not JSON, no ``instances`` list, empty
    batch, V2 tensor shape mismatch). HTTP 400."""


class UnsupportedMediaType(InvalidRecord):
    """The Content-Type is not JSON. HTTP 415."""


class BatchTooLarge(InvalidRecord):
    """More records than ``--max-batch-rows``. HTTP 413."""


class BodyTooLarge(BatchTooLarge):
    """The body is longer than ``--max-body-bytes`` (by Content-Length, or counted while a
    chunked body streams in, before it is buffered). HTTP 413."""


class BodyTimeout(ChurnopsError):
    """The body did not arrive within ``--body-timeout`` (a slow or stalled client).
    HTTP 408; not a validation error."""


class ClientDisconnected(ChurnopsError):
    """The client went away before its body arrived. Counted as code 499 (nginx's
    convention) so it never reads as a server error; nothing is sent, nothing logged
    beyond debug."""


CLIENT_CLOSED_REQUEST = 499


# KServe's own errors are imported where they are mapped, not above: the request classes
# here are also batch scoring's (through validation.py), which runs without KServe.


def status_of(err: BaseException) -> int:
    """The HTTP status for ``err`` (500 for anything not known to be the client's fault)."""
    from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotReady

    if isinstance(err, ClientDisconnected):
        return CLIENT_CLOSED_REQUEST
    if isinstance(err, BodyTimeout):
        return HTTPStatus.REQUEST_TIMEOUT
    if isinstance(err, UnsupportedMediaType):
        return HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    if isinstance(err, BatchTooLarge):
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    if isinstance(err, MalformedRequest | InvalidInput):
        return HTTPStatus.BAD_REQUEST
    if isinstance(err, InvalidRecord):
        return HTTPStatus.UNPROCESSABLE_ENTITY
    if isinstance(err, ModelNotFound):
        return HTTPStatus.NOT_FOUND
    if isinstance(err, ModelNotReady | ModelLoadError | ServerNotReady):
        return HTTPStatus.SERVICE_UNAVAILABLE
    return HTTPStatus.INTERNAL_SERVER_ERROR


def is_validation_error(err: BaseException) -> bool:
    """Errors counted in ``churnops_validation_errors_total`` (the request was rejected)."""
    from kserve.errors import InvalidInput

    return isinstance(err, InvalidRecord | InvalidInput)


def field_of(err: BaseException) -> str:
    return getattr(err, "field", None) or REQUEST_FIELD


def to_response(err: BaseException) -> tuple[int, dict]:
    """(status, JSON body) for ``err``; logs 5xx with the traceback (a defect)."""
    status = int(status_of(err))
    if status == CLIENT_CLOSED_REQUEST:
        logger.debug("client disconnected before its request body arrived")
    if status >= 500 and status != HTTPStatus.SERVICE_UNAVAILABLE:
        logger.error("internal error while serving a request", exc_info=err)
        return status, {
            "error": f"internal error: {type(err).__name__}",
            "field": REQUEST_FIELD,
            "row": None,
        }
    body: dict = {
        "error": _printable(str(err)),
        "field": _printable(field_of(err)),
        "row": getattr(err, "row", None),
    }
    return status, body


def _printable(text: str) -> str:
    # A client's lone surrogate (JSON "\ud800") quoted in a message cannot be encoded as
    # UTF-8: escape it rather than fail while answering.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
