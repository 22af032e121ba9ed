"""Validation of customer tables against the record contract.

``validate`` streams a table chunk by chunk and returns a report; ``load`` does the same
and also returns the typed frame the model trains on. Contract violations (a missing
column, text in a numeric column, a value outside the allowed set or range, too many
missing values) make the report fail and name the column and an example row; soft
issues (a few missing values, duplicate ids, an unusual label balance, extra columns)
are warnings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnops.data import coerce, contract
from churnops.data.contract import Field
from churnops.data.io import DEFAULT_CHUNK_ROWS, iter_raw
from churnops.errors import ContractViolation
from churnops.progress import Progress


@dataclass(frozen=True)
class ValidationConfig:
    """Thresholds of the validator.

    Attributes:
        require_label: The ``Churn`` label must be present (training data).
        max_missing_rate: Above this share of missing values a non-nullable column is a
            violation; at or below it, a warning (the model imputes).
        min_label_rate: A positive (or negative) label share below this is a violation:
            there is nothing to learn. Below ``warn_label_rate`` it is a warning.
        warn_label_rate: See ``min_label_rate``.
    """

    require_label: bool = True
    max_missing_rate: float = 0.05
    min_label_rate: float = 0.01
    warn_label_rate: float = 0.05


@dataclass
class Issue:
    """One finding: ``column``, what is wrong, how many rows, and the first such row."""

    column: str
    problem: str
    count: int = 0
    example_row: int | None = None
    example_value: str | None = None

    def message(self) -> str:
        where = f" (e.g. row {self.example_row}" if self.example_row is not None else ""
        if where and self.example_value is not None:
            where += f", value {self.example_value!r}"
        where += ")" if where else ""
        count = f" in {self.count:,} rows" if self.count else ""
        return f"column {self.column!r}: {self.problem}{count}{where}"


@dataclass
class ColumnStats:
    missing: int = 0
    invalid: int = 0
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class ValidationReport:
    """What the validator found. ``ok`` is false when there is any violation.

    Rows are numbered from 0 over the data rows (the CSV header is not a row).
    """

    source: str
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    stats: dict[str, ColumnStats] = field(default_factory=dict)
    violations: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    duplicate_ids: int = 0
    label_rate: float | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    def missing_rates(self) -> dict[str, float]:
        return {
            name: (s.missing / self.rows if self.rows else 0.0) for name, s in self.stats.items()
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["missing_rates"] = self.missing_rates()
        data["violations"] = [dict(asdict(i), message=i.message()) for i in self.violations]
        data["warnings"] = [dict(asdict(i), message=i.message()) for i in self.warnings]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_markdown(self) -> str:
        """The report as Markdown, for the KFP UI and the MLflow run."""
        status = "PASSED" if self.ok else "FAILED"
        lines = [
            f"# Data validation: {status}",
            "",
            f"Source: `{self.source}`  ",
            f"Rows: {self.rows:,}  ",
        ]
        if self.label_rate is not None:
            lines.append(f"Churn rate: {self.label_rate:.1%}  ")
        lines.append(f"Duplicate customer ids: {self.duplicate_ids:,}")
        for title, issues in (("Violations", self.violations), ("Warnings", self.warnings)):
            lines += ["", f"## {title} ({len(issues)})", ""]
            lines += [f"- {i.message()}" for i in issues] or ["none"]
        lines += [
            "",
            "## Columns",
            "",
            "| column | missing | invalid | min | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, s in self.stats.items():
            rate = s.missing / self.rows if self.rows else 0.0
            lo = "" if s.minimum is None else f"{s.minimum:g}"
            hi = "" if s.maximum is None else f"{s.maximum:g}"
            lines.append(f"| {name} | {rate:.2%} | {s.invalid:,} | {lo} | {hi} |")
        return "\n".join(lines) + "\n"

    def raise_for_violations(self) -> None:
        """Raises:
        ContractViolation: naming the first violations' columns and example rows."""
        if self.violations:
            shown = "; ".join(i.message() for i in self.violations[:5])
            more = f" (+{len(self.violations) - 5} more)" if len(self.violations) > 5 else ""
            raise ContractViolation(
                f"{self.source}: {len(self.violations)} contract violation(s): {shown}{more}"
            )


class _Collector:
    """Accumulates findings over chunks; issues are merged per (column, problem)."""

    def __init__(self, report: ValidationReport):
        self.report = report
        self._issues: dict[tuple[str, str], Issue] = {}
        self._id_hashes: list[np.ndarray] = []
        self._label_pos = 0
        self._label_n = 0

    def add(
        self, column: str, problem: str, mask: np.ndarray, values: pd.Series, offset: int
    ) -> None:
        count = int(mask.sum())
        if not count:
            return
        key = (column, problem)
        first = int(np.argmax(mask))
        if key not in self._issues:
            self._issues[key] = Issue(column, problem, 0, offset + first, str(values.iloc[first]))
        self._issues[key].count += count


def _coerce_column(f: Field, raw: pd.Series, collector: _Collector, offset: int) -> pd.Series:
    """One column through ``churnops.data.coerce`` (the routine the server and the pyfunc
    use), keeping statistics and findings for the report."""
    stats = collector.report.stats.setdefault(f.name, ColumnStats())
    if f.is_numeric:
        arr, missing, bad = coerce.parse_numbers(raw)
        stats.missing += int(missing.sum())
        invalid = np.zeros(len(arr), dtype=bool)
        for problem, mask in coerce.numeric_problems(f, arr, bad):
            collector.add(f.name, problem, mask, raw, offset)
            invalid |= mask
        stats.invalid += int(invalid.sum())
        finite = arr[np.isfinite(arr)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            stats.minimum = lo if stats.minimum is None else min(stats.minimum, lo)
            stats.maximum = hi if stats.maximum is None else max(stats.maximum, hi)
        return pd.Series(np.where(invalid, np.nan, arr), index=raw.index, dtype="float64")
    if f.kind in ("category", "label"):
        codes, missing, unknown = coerce.parse_categories(f, raw)
        stats.missing += int(missing.sum())
        allowed = ", ".join(f.allowed)
        collector.add(f.name, coerce.NOT_ALLOWED.format(allowed=allowed), unknown, raw, offset)
        stats.invalid += int(unknown.sum())
        if f.kind == "label":
            valid = codes >= 0
            positive = codes == f.allowed.index("Yes")
            collector._label_pos += int(positive.sum())
            collector._label_n += int(valid.sum())
            return pd.Series(positive.astype("int8"), index=raw.index).where(valid)
        return pd.Series(
            pd.Categorical.from_codes(codes, categories=list(f.allowed)), index=raw.index
        )
    # id: free text; duplicates are tracked by hash so 10M ids cost 80 MB, not gigabytes.
    values, missing = coerce.strip_blank(raw)
    stats.missing += int(missing.sum())
    collector._id_hashes.append(pd.util.hash_array(values.fillna("").to_numpy(dtype=object)))
    return values.astype(object)


def _check_columns(chunk: pd.DataFrame, report: ValidationReport, config: ValidationConfig) -> None:
    report.columns = [str(c) for c in chunk.columns]
    present = set(report.columns)
    for f in contract.FIELDS:
        if f.name in present:
            continue
        if f is contract.ID:
            report.warnings.append(
                Issue(f.name, "column absent: duplicate customers cannot be detected")
            )
        elif f is contract.LABEL and not config.require_label:
            continue
        else:
            near = [c for c in present if c.lower().replace("_", "") == f.name.lower()]
            hint = f" (found {near[0]!r}; names are case-sensitive)" if near else ""
            report.violations.append(Issue(f.name, f"required column missing{hint}"))
    for extra in sorted(present - set(contract.COLUMNS)):
        report.warnings.append(Issue(extra, "column not in the contract; ignored"))


def _finish(collector: _Collector, config: ValidationConfig) -> None:
    report = collector.report
    issues = list(collector._issues.values())
    report.violations.extend(issues)
    if report.rows == 0:
        report.violations.append(Issue("*", "the table has no data rows"))
        return
    for f in contract.FIELDS:
        stats = report.stats.get(f.name)
        if not stats or not stats.missing or f is contract.ID:
            continue
        rate = stats.missing / report.rows
        problem = f"{rate:.2%} missing values"
        if f is contract.LABEL and config.require_label:
            report.violations.append(
                Issue(f.name, problem + ": rows without a label cannot train", stats.missing)
            )
        elif f.nullable or rate <= config.max_missing_rate:
            report.warnings.append(
                Issue(f.name, problem + " (imputed by the model)", stats.missing)
            )
        else:
            report.violations.append(
                Issue(
                    f.name,
                    problem + f", above the allowed {config.max_missing_rate:.0%}",
                    stats.missing,
                )
            )
    if collector._id_hashes:
        hashes = np.concatenate(collector._id_hashes)
        _, counts = np.unique(hashes, return_counts=True)
        report.duplicate_ids = int((counts - 1).sum())
        if report.duplicate_ids:
            report.warnings.append(
                Issue(contract.ID.name, "duplicate customer ids", report.duplicate_ids)
            )
    if collector._label_n:
        rate = collector._label_pos / collector._label_n
        report.label_rate = rate
        minority = min(rate, 1 - rate)
        if minority < config.min_label_rate:
            report.violations.append(
                Issue(contract.LABEL.name, f"churn rate {rate:.2%}: one class is (almost) absent")
            )
        elif minority < config.warn_label_rate:
            report.warnings.append(
                Issue(contract.LABEL.name, f"churn rate {rate:.2%} is unusually unbalanced")
            )


def _run(
    chunks: Iterable[pd.DataFrame],
    source: str,
    config: ValidationConfig,
    keep: bool,
    progress: Progress | None,
) -> tuple[ValidationReport, pd.DataFrame | None]:
    report = ValidationReport(source=source)
    collector = _Collector(report)
    typed: list[pd.DataFrame] = []
    for i, chunk in enumerate(chunks):
        if i == 0:
            _check_columns(chunk, report, config)
        columns = {}
        for f in contract.FIELDS:
            if f.name in chunk.columns:
                columns[f.name] = _coerce_column(f, chunk[f.name], collector, report.rows)
        if keep:
            typed.append(pd.DataFrame(columns))
        report.rows += len(chunk)
        if progress:
            progress.update(len(chunk))
    if progress:
        progress.finish()
    _finish(collector, config)
    frame = pd.concat(typed, ignore_index=True) if keep and typed else None
    return report, frame


def validate(
    uri: str | Path,
    *,
    config: ValidationConfig = ValidationConfig(),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    show_progress: bool = False,
) -> ValidationReport:
    """Validate the table at ``uri`` without keeping it in memory.

    Raises:
        DataSourceError: The table cannot be read.
    """
    progress = Progress("validate") if show_progress else None
    report, _ = _run(
        iter_raw(uri, chunk_rows=chunk_rows), str(uri), config, keep=False, progress=progress
    )
    return report


def load(
    uri: str | Path,
    *,
    config: ValidationConfig = ValidationConfig(),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    show_progress: bool = False,
    check: bool = True,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Read, validate and type the table at ``uri``.

    Args:
        check: Raise on contract violations. With False the (partly typed) frame and the
            failing report come back, for callers that log the report before stopping.

    Returns:
        The typed frame (categories as pandas categoricals over the contract's values,
        numbers as float64 with NaN for missing, ``Churn`` as 0/1) and the report.

    Raises:
        ContractViolation: The table breaks the contract; nothing downstream should run.
        DataSourceError: The table cannot be read.
    """
    progress = Progress("ingest") if show_progress else None
    report, frame = _run(
        iter_raw(uri, chunk_rows=chunk_rows), str(uri), config, keep=True, progress=progress
    )
    if check:
        report.raise_for_violations()
    return (frame if frame is not None else pd.DataFrame()), report


def validate_frame(
    frame: pd.DataFrame, *, source: str = "<frame>", config: ValidationConfig = ValidationConfig()
) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate and type an in-memory frame (raw text or already typed values)."""
    report, typed = _run([frame], source, config, keep=True, progress=None)
    return (typed if typed is not None else pd.DataFrame()), report
