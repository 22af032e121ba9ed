"""Record contract, synthetic generator, readers and validation."""

from churnops.data.contract import CATEGORICAL, COLUMNS, FEATURE_NAMES, FEATURES, FIELDS, NUMERIC
from churnops.data.generate import GeneratorConfig
from churnops.data.validate import (
    ValidationConfig,
    ValidationReport,
    load,
    validate,
    validate_frame,
)

__all__ = [
    "CATEGORICAL",
    "COLUMNS",
    "FEATURES",
    "FEATURE_NAMES",
    "FIELDS",
    "NUMERIC",
    "GeneratorConfig",
    "ValidationConfig",
    "ValidationReport",
    "load",
    "validate",
    "validate_frame",
]
