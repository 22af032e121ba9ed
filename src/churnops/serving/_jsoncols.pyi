"""Types of the compiled module ``_jsoncols.c`` (JSON request bodies ↔ feature columns)."""

import numpy as np
from typing_extensions import Buffer

CATEGORY: int
INTEGER: int
NUMBER: int

class Decoder:
    def __init__(
        self,
        fields: tuple[tuple[bytes, int, int, bool, float, float, tuple[bytes, ...]], ...],
        id_name: bytes,
    ) -> None: ...
    def records(self, body: Buffer, numeric: np.ndarray, codes: np.ndarray, /) -> int: ...
    def column(self, data: Buffer, field: int, array: np.ndarray, rows: int, /) -> bool: ...

def v1_predictions(numbers: Buffer, churn: np.ndarray, version: Buffer, /) -> bytes: ...
