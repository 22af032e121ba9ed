"""Synthetic customers in the record contract's layout.

The joint structure follows the public Telco export: contract type drives tenure and
payment method, internet service drives the add-ons and the charges, total charges
accumulate monthly charges over tenure, and churn is driven by all of them (about a
quarter positive). Generation is chunked and seeded per chunk, so any size streams to
disk with one chunk in memory and the same seed always gives the same file.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churnops.data import contract
from churnops.progress import Progress

CHUNK_ROWS = 100_000
_LETTERS = np.array(list(string.ascii_uppercase))


@dataclass(frozen=True)
class GeneratorConfig:
    """How to generate.

    Attributes:
        rows: Number of customers.
        seed: Seed; the same seed and rows give identical output.
        drift: 0 for the training distribution; up to 1 shifts it the way a worsening
            market would (more month-to-month contracts, shorter tenure, more fiber,
            higher charges, more electronic checks) for drift-monitoring tests.
        chunk_rows: Rows held in memory at once.
    """

    rows: int
    seed: int = 0
    drift: float = 0.0
    chunk_rows: int = CHUNK_ROWS


def _choice(rng: np.random.Generator, values: tuple[str, ...], p, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    p = np.asarray(p, dtype=float)
    if p.ndim == 1:
        return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p / p.sum())]
    # One probability row per record: inverse-CDF sampling.
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    idx = (rng.random(n)[:, None] > cdf).sum(axis=1)
    return np.asarray(values, dtype=object)[np.minimum(idx, len(values) - 1)]


def _customer_ids(start: int, n: int) -> np.ndarray:
    """Unique ids like the export's ``7590-VHVEG``: digits scrambled, letters base-26."""
    idx = np.arange(start, start + n, dtype=np.int64)
    digits = (idx * 7919 + 1234) % 10_000
    letters = np.empty((n, 5), dtype="<U1")
    rest = idx.copy()
    for pos in range(4, -1, -1):
        letters[:, pos] = _LETTERS[rest % 26]
        rest //= 26
    return np.char.add(
        np.char.add(np.char.zfill(digits.astype(str), 4), "-"), letters.view("<U5")[:, 0]
    )


def generate_chunk(rng: np.random.Generator, n: int, *, start: int, drift: float) -> pd.DataFrame:
    """Generate ``n`` customers; ``start`` is the global index of the first (for ids)."""
    d = float(np.clip(drift, 0.0, 1.0))
    senior = (rng.random(n) < 0.16 + 0.1 * d).astype(np.int64)
    partner = rng.random(n) < 0.48
    dependents = rng.random(n) < np.where(partner, 0.5, 0.1)

    m2m = 0.55 + 0.25 * d
    contract_type = _choice(
        rng, contract.BY_NAME["Contract"].allowed, [m2m, (1 - m2m) * 0.47, (1 - m2m) * 0.53], n
    )
    is_m2m = contract_type == "Month-to-month"
    is_two = contract_type == "Two year"
    a = np.select([is_m2m, is_two], [0.7, 3.0], 1.8)
    b = np.select([is_m2m, is_two], [2.2, 1.0], 1.4)
    tenure = np.rint(rng.beta(a, b) * 72 * (1 - 0.3 * d)).astype(np.int64)

    phone = rng.random(n) < 0.9
    multi = np.where(phone, np.where(rng.random(n) < 0.47, "Yes", "No"), "No phone service")
    internet = _choice(
        rng, ("DSL", "Fiber optic", "No"), [0.34 - 0.1 * d, 0.44 + 0.15 * d, 0.22 - 0.05 * d], n
    )
    has_net = internet != "No"
    fiber = internet == "Fiber optic"
    longer = ~is_m2m

    def addon(base: float, dsl_bonus: float, contract_bonus: float) -> np.ndarray:
        p = (
            base
            + np.where(internet == "DSL", dsl_bonus, 0.0)
            + np.where(longer, contract_bonus, 0.0)
        )
        return np.where(has_net, np.where(rng.random(n) < p, "Yes", "No"), "No internet service")

    security = addon(0.25, 0.15, 0.2)
    backup = addon(0.35, 0.05, 0.15)
    device = addon(0.35, 0.0, 0.2)
    tech = addon(0.25, 0.15, 0.2)
    tv = addon(0.45, -0.1, 0.05)
    movies = addon(0.45, -0.1, 0.05)
    paperless = rng.random(n) < 0.5 + 0.2 * fiber
    pay_p = np.where(
        is_m2m[:, None],
        [0.47 + 0.15 * d, 0.2, 0.17, 0.16],
        [0.15, 0.2, 0.33, 0.32],
    )
    payment = _choice(rng, contract.BY_NAME["PaymentMethod"].allowed, pay_p, n)

    monthly = (
        np.where(phone, 20.0, 0.0)
        + np.where(multi == "Yes", 5.0, 0.0)
        + np.select([internet == "DSL", fiber], [25.0, 45.0], 0.0)
        + 5.0 * ((security == "Yes") + (backup == "Yes") + (device == "Yes") + (tech == "Yes"))
        + 10.0 * ((tv == "Yes") + (movies == "Yes"))
        + rng.normal(0.0, 1.5, n)
    ) * (1 + 0.15 * d)
    monthly = np.round(np.clip(monthly, 18.0, 130.0), 2)
    total = np.round(monthly * tenure * rng.uniform(0.92, 1.04, n), 2)
    total = np.where(tenure == 0, np.nan, np.maximum(total, monthly))

    logit = (
        -1.05
        + 1.0 * is_m2m
        - 0.9 * is_two
        - 0.035 * tenure
        + 0.75 * fiber
        - 0.6 * (internet == "No")
        + 0.45 * (payment == "Electronic check")
        + 0.3 * senior
        + 0.3 * paperless
        - 0.45 * (tech == "Yes")
        - 0.4 * (security == "Yes")
        + 0.15 * ((tv == "Yes") | (movies == "Yes"))
        - 0.2 * partner
        - 0.2 * dependents
        + 0.01 * (monthly - 65.0)
        + rng.normal(0.0, 0.6, n)
    )
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    yes_no = np.array(["No", "Yes"], dtype=object)
    return pd.DataFrame(
        {
            "customerID": _customer_ids(start, n),
            "gender": _choice(rng, ("Female", "Male"), [0.5, 0.5], n),
            "SeniorCitizen": senior,
            "Partner": yes_no[partner.astype(int)],
            "Dependents": yes_no[dependents.astype(int)],
            "tenure": tenure,
            "PhoneService": yes_no[phone.astype(int)],
            "MultipleLines": multi,
            "InternetService": internet,
            "OnlineSecurity": security,
            "OnlineBackup": backup,
            "DeviceProtection": device,
            "TechSupport": tech,
            "StreamingTV": tv,
            "StreamingMovies": movies,
            "Contract": contract_type,
            "PaperlessBilling": yes_no[paperless.astype(int)],
            "PaymentMethod": payment,
            "MonthlyCharges": monthly,
            "TotalCharges": total,
            "Churn": yes_no[churn.astype(int)],
        },
        columns=list(contract.COLUMNS),
    )


def iter_chunks(config: GeneratorConfig) -> Iterator[pd.DataFrame]:
    """Yield the customers chunk by chunk; chunk ``i`` is seeded by ``(seed, i)``."""
    for i, start in enumerate(range(0, config.rows, config.chunk_rows)):
        n = min(config.chunk_rows, config.rows - start)
        rng = np.random.default_rng([config.seed, i])
        yield generate_chunk(rng, n, start=start, drift=config.drift)


def generate(config: GeneratorConfig) -> pd.DataFrame:
    """All customers in one frame (for tests and small sizes)."""
    return pd.concat(list(iter_chunks(config)), ignore_index=True)


def write(config: GeneratorConfig, out: str | Path, *, show_progress: bool = True) -> Path:
    """Stream generated customers to ``out``: Parquet for ``.parquet``, otherwise CSV.

    CSV mirrors the public export: blank ``TotalCharges`` is written as a single space.

    Returns:
        The path written.
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress("generate", config.rows) if show_progress else None
    parquet = path.suffix == ".parquet"
    writer = None
    try:
        for i, chunk in enumerate(iter_chunks(config)):
            if parquet:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
            else:
                chunk = chunk.assign(TotalCharges=chunk["TotalCharges"].map(_money).fillna(" "))
                chunk.to_csv(path, mode="w" if i == 0 else "a", header=i == 0, index=False)
            if progress:
                progress.update(len(chunk))
    finally:
        if writer is not None:
            writer.close()
    if progress:
        progress.finish()
    return path


def _money(value: float) -> str | None:
    return None if np.isnan(value) else f"{value:.2f}"
