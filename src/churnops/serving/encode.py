"""Response bodies encoded straight from the score arrays.

A V1 response repeats one small object per record; building 1000 dicts and serializing
them costs more than scoring the batch. Here ``orjson`` formats the probabilities in one
call on the array (the shortest round-trip form it gives any Python float) and the
compiled module lays the fixed parts of each object around them: byte for byte the JSON
``orjson.dumps`` makes of the equivalent dicts (tests hold it to that).
"""

from __future__ import annotations

import numpy as np
import orjson

from churnops.serving import _jsoncols


def v1_predictions(proba: np.ndarray, churn: np.ndarray, version: str) -> bytes:
    """``{"predictions": [{"churn_probability": p, "churn": c, "model_version": v}, ...]}``.

    Args:
        proba: float64 churn probabilities, one per record (finite).
        churn: The decisions (bool), same length.
        version: The model version that scored them.
    """
    numbers = orjson.dumps(np.ascontiguousarray(proba), option=orjson.OPT_SERIALIZE_NUMPY)
    return _jsoncols.v1_predictions(
        numbers, np.ascontiguousarray(churn, dtype=np.bool_).view(np.uint8), orjson.dumps(version)
    )
