"""The record contract: the Telco Customer Churn layout, defined once.

The generator, the validator, the model signature and the model server's request
validation all read these definitions; nothing else spells out column names or values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["id", "category", "integer", "number", "label"]

YES_NO = ("Yes", "No")
_INTERNET_ADDON = ("Yes", "No", "No internet service")


@dataclass(frozen=True)
class Field:
    """One column of the record contract.

    Attributes:
        name: Column name as it appears in exports and requests.
        kind: ``category`` (string from ``allowed``), ``integer``, ``number`` (float),
            ``id`` (free string) or ``label`` (the target, ``Yes``/``No``).
        allowed: Allowed values of a category or label.
        minimum: Inclusive lower bound of a numeric field.
        maximum: Inclusive upper bound of a numeric field.
        nullable: Missing values are expected (blank ``TotalCharges`` for new customers)
            and never a contract violation.
        required: The column must be present in training data (the id and label are
            optional at serving time either way).
    """

    name: str
    kind: Kind
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    required: bool = True

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("integer", "number")


ID = Field("customerID", "id", required=False)
LABEL = Field("Churn", "label", allowed=YES_NO)

FEATURES: tuple[Field, ...] = (
    Field("gender", "category", allowed=("Female", "Male")),
    Field("SeniorCitizen", "integer", minimum=0, maximum=1),
    Field("Partner", "category", allowed=YES_NO),
    Field("Dependents", "category", allowed=YES_NO),
    Field("tenure", "integer", minimum=0, maximum=120),
    Field("PhoneService", "category", allowed=YES_NO),
    Field("MultipleLines", "category", allowed=("Yes", "No", "No phone service")),
    Field("InternetService", "category", allowed=("DSL", "Fiber optic", "No")),
    Field("OnlineSecurity", "category", allowed=_INTERNET_ADDON),
    Field("OnlineBackup", "category", allowed=_INTERNET_ADDON),
    Field("DeviceProtection", "category", allowed=_INTERNET_ADDON),
    Field("TechSupport", "category", allowed=_INTERNET_ADDON),
    Field("StreamingTV", "category", allowed=_INTERNET_ADDON),
    Field("StreamingMovies", "category", allowed=_INTERNET_ADDON),
    Field("Contract", "category", allowed=("Month-to-month", "One year", "Two year")),
    Field("PaperlessBilling", "category", allowed=YES_NO),
    Field(
        "PaymentMethod",
        "category",
        allowed=(
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
        ),
    ),
    Field("MonthlyCharges", "number", minimum=0.0, maximum=1000.0),
    Field("TotalCharges", "number", minimum=0.0, maximum=200_000.0, nullable=True),
)

FIELDS: tuple[Field, ...] = (ID, *FEATURES, LABEL)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind == "category")
NUMERIC: tuple[str, ...] = tuple(f.name for f in FEATURES if f.is_numeric)
COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)


def label_to_int(values):  # type: ignore[no-untyped-def]
    """Map ``Yes``/``No`` label values (a pandas Series) to 1/0."""
    return (values == "Yes").astype("int8")
