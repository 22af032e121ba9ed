"""``churnops score --engine spark``: batch scoring on a Spark session, the registered model
as MLflow consumers use it (``mlflow.pyfunc.spark_udf``, ``env_manager="local"``).

Two jobs over the same read of the input, both narrow (no shuffle):

1. **rejects**: ``mapInArrow`` runs ``churnops.data.coerce.coerce_arrow`` (the local
   engine's routine) on each partition's raw Arrow batches and returns one record per failed
   check (partition, position in it, field, problem, raw value) plus each partition's row
   count. The driver streams them in partition order (``toLocalIterator``), turns positions
   into the file's row numbers and writes the rejects CSV exactly as the local engine does.
2. **scores**: the same ``mapInArrow`` keeps the valid rows, typed as the model's
   signature declares (integers as long, numbers as double, categories as text), and the
   model's pyfunc (loaded by MLflow on each executor through churnops' own skops loader;
   never a pickle) scores them through ``spark_udf`` with a struct result
   (``churn_probability``, ``churn``, ``model_version``; the version label is the one
   resolved on the driver, as the local engine's). Spark's writers write the output
   (a Parquet or CSV dataset directory at ``--out``) from the executors.

The master comes from ``--spark-master``, else ``SPARK_MASTER``, else ``spark.master`` in
the Spark configuration (``spark-defaults.conf``), else ``local[*]``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from churnops.data import contract
from churnops.errors import ChurnopsError, ContractViolation, DataSourceError
from churnops.progress import log

# Settings for a small, quiet session; --spark-conf overrides any of them.
DEFAULT_CONF: dict[str, str] = {
    "spark.app.name": "churnops-score",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MILLIS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
INSTALL_PYSPARK = (
    "the spark engine needs pyspark: pip install 'churnops[spark]' (or pip install pyspark)"
)
INSTALL_JAVA = (
    "the spark engine needs Java 17 or newer (pyspark 4): install a JDK, e.g. "
    "apt-get install openjdk-17-jre-headless, or set JAVA_HOME"
)
_REJECT_DDL = "pid int, pos long, customerID string, field string, problem string, value string"
_RESULT_DDL = "churn_probability double, churn boolean, model_version string"


class SparkUnavailable(ChurnopsError):
    """pyspark or Java is missing, or the Spark session cannot start. CLI: exit 1, one line
    naming what to install."""


def _check_java() -> None:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise SparkUnavailable(INSTALL_JAVA)
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except OSError as err:
        raise SparkUnavailable(f"{INSTALL_JAVA} ({java}: {err})") from err
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if found:
        major = int(found.group(1))
        major = int(found.group(2) or 0) if major == 1 else major
        if major < 17:
            raise SparkUnavailable(f"{INSTALL_JAVA} (found Java {major} at {java})")


def session(master: str | None = None, conf: dict[str, str] | None = None) -> Any:
    """A Spark session for scoring (getOrCreate: an existing one is reused).

    Raises:
        SparkUnavailable: pyspark or Java is missing, or the session cannot start.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise SparkUnavailable(INSTALL_PYSPARK) from err
    master = master or os.environ.get("SPARK_MASTER")
    if not master or master.startswith("local"):
        _check_java()  # on a cluster the driver still runs a JVM, but say it plainly here
    # Executors run this interpreter (it has churnops) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SparkUnavailable(f"cannot start a Spark session: {first}; {INSTALL_JAVA}") from err
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_path(uri: str, *, what: str) -> str:
    """``uri`` as a path Spark's filesystems read: a local path, ``file://``, ``s3://``
    (as ``s3a://``, which needs hadoop-aws on the cluster), ``s3a://``, ``hdfs://``,
    ``gs://``, ``abfss://``.

    Raises:
        DataSourceError: http(s):// or dvc:// (read by the local engine only).
    """
    if uri.startswith(("http://", "https://", "dvc://")):
        raise DataSourceError(
            f"{what} {uri}: the spark engine reads paths Spark's filesystems read (a path, "
            "file://, s3://, hdfs://, gs://); use --engine local for http(s):// and dvc://"
        )
    if uri.startswith("s3://"):
        return "s3a://" + uri[len("s3://") :]
    if "://" not in uri:
        return os.path.abspath(uri)
    return uri


def _pid() -> int:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return ctx.partitionId() if ctx is not None else 0


def reject_records(batches: Iterator[Any]) -> Iterator[Any]:
    """mapInArrow: one record per failed check of a partition's rows (``coerce_arrow``, as
    the local engine), then one with ``field`` null and ``pos`` the partition's row count."""
    import pyarrow as pa

    from churnops.data.coerce import coerce_arrow

    schema = pa.schema(
        [
            ("pid", pa.int32()),
            ("pos", pa.int64()),
            ("customerID", pa.string()),
            ("field", pa.string()),
            ("problem", pa.string()),
            ("value", pa.string()),
        ]
    )
    pid, seen = _pid(), 0
    for batch in batches:
        coerced = coerce_arrow(batch)
        if coerced.invalid.any():
            found = list(coerced.rejects())
            ids = batch.column("customerID") if "customerID" in batch.schema.names else None
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([pid] * len(found), pa.int32()),
                    pa.array([seen + r for r, *_ in found], pa.int64()),
                    pa.array(
                        [str(ids[r].as_py()) if ids is not None else None for r, *_ in found],
                        pa.string(),
                    ),
                    pa.array([f for _, f, _, _ in found], pa.string()),
                    pa.array([p for _, _, p, _ in found], pa.string()),
                    pa.array([v for *_, v in found], pa.string()),
                ],
                schema=schema,
            )
        seen += batch.num_rows
    yield pa.RecordBatch.from_arrays(
        [pa.array([pid], pa.int32()), pa.array([seen], pa.int64())]
        + [pa.nulls(1, pa.string())] * 4,
        schema=schema,
    )


def valid_schema(has_id: bool) -> Any:
    """The valid rows' Spark schema: the model signature's input types."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    fields = [StructField("customerID", StringType())] if has_id else []
    for f in contract.FEATURES:
        kind = LongType() if f.kind == "integer" else DoubleType() if f.is_numeric else StringType()
        fields.append(StructField(f.name, kind, nullable=f.nullable))
    return StructType(fields)


def valid_rows(has_id: bool) -> Any:
    """mapInArrow: a partition's valid rows (``coerce_arrow``, as the local engine), typed
    as the model signature declares."""

    def keep(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from churnops.data.coerce import coerce_arrow

        for batch in batches:
            coerced = coerce_arrow(batch)
            rows = np.flatnonzero(~coerced.invalid)
            frame = coerced.take(rows).model_frame()
            arrays, names = [], []
            if has_id:
                arrays.append(batch.column("customerID").take(pa.array(rows)).cast(pa.string()))
                names.append("customerID")
            for f in contract.FEATURES:
                values = frame[f.name].to_numpy()
                if f.kind == "integer":
                    arrays.append(pa.array(values.astype(np.int64), pa.int64()))
                elif f.is_numeric:
                    arrays.append(pa.array(values, pa.float64(), from_pandas=True))
                else:
                    arrays.append(pa.array(values, pa.string()))
                names.append(f.name)
            yield pa.RecordBatch.from_arrays(arrays, names=names)

    return keep


def _read(spark: Any, path: str, parquet: bool) -> Any:
    try:
        if parquet:
            return spark.read.parquet(path)
        # every column as text, as the local engine's reader: the contract coerces
        return spark.read.option("header", True).option("inferSchema", False).csv(path)
    except Exception as err:
        first = str(err).strip().splitlines()[0]
        raise DataSourceError(f"cannot read {path}: {first}") from err


def _job_error(err: Exception) -> ChurnopsError:
    text = str(err).strip()
    for line in text.splitlines():
        if "ChurnopsError" in line or "ContractViolation" in line or "Error:" in line:
            return ChurnopsError(f"spark job failed: {line.strip()[:300]}")
    return ChurnopsError(f"spark job failed: {(text.splitlines() or [type(err).__name__])[0]}")


def score_spark(
    model_uri: str,
    data_uri: str,
    out_uri: str,
    *,
    rejects_uri: str,
    max_reject_rate: float,
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Spark engine of ``churnops.scoring.batch.score`` (same summary, same errors)."""
    from churnops.model.uri import resolve
    from churnops.scoring.batch import _is_parquet, _reject_schema, _Writer

    started = time.perf_counter()
    in_path = spark_path(data_uri, what="--data")
    out_path = spark_path(out_uri, what="--out")
    source = resolve(model_uri)
    spark = session(master, conf)
    log(f"score: spark {spark.sparkContext.master} (Spark {spark.version}), model {source.uri}")
    try:
        import mlflow.pyfunc
        import pyarrow as pa
        from pyspark.sql import functions as F

        raw = _read(spark, in_path, _is_parquet(data_uri))
        absent = [name for name in contract.FEATURE_NAMES if name not in raw.columns]
        if absent:
            raise ContractViolation(
                f"required column {absent[0]!r} missing"
                + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
            )
        has_id = contract.ID.name in raw.columns
        scored_at = dt.datetime.now(dt.UTC).replace(microsecond=0)

        # 1. rejects, streamed to the driver in partition order
        rej_schema = _reject_schema()
        rejects = _Writer(rejects_uri, rej_schema)
        total = n_rejected = 0
        problems: dict[str, int] = {}
        try:
            rows_in: list[tuple] = []
            for rec in raw.mapInArrow(reject_records, _REJECT_DDL).toLocalIterator():
                if rec.field is None:  # a partition's end: its rows count
                    if rows_in:
                        rejects.write(
                            pa.table(list(map(list, zip(*rows_in, strict=True))), rej_schema)
                        )
                        n_rejected += len({r[0] for r in rows_in})
                        rows_in = []
                    total += rec.pos
                    continue
                rows_in.append((total + rec.pos, rec.customerID, rec.field, rec.problem, rec.value))
                key = f"{rec.field}: {rec.problem}"
                problems[key] = problems.get(key, 0) + 1
        finally:
            rejects.close()
        log(f"score: {total:,} rows read, {n_rejected:,} rejected")

        # 2. scores: the valid rows through the registered model's spark_udf
        udf = mlflow.pyfunc.spark_udf(
            spark,
            source.uri,
            result_type=_RESULT_DDL,
            env_manager="local",
        )
        valid = raw.mapInArrow(valid_rows(has_id), valid_schema(has_id))
        result_col = udf(F.struct(*[F.col(n) for n in contract.FEATURE_NAMES]))
        scores = valid.withColumn("_s", result_col).select(
            F.col("customerID") if has_id else F.lit(None).cast("string").alias("customerID"),
            F.col("_s.churn_probability").alias("churn_probability"),
            F.col("_s.churn").alias("churn"),
            # the version resolved above (as the local engine labels it): a directory
            # loaded by an executor cannot know its registry version
            F.lit(source.version).alias("model_version"),
            F.lit(scored_at).cast("timestamp").alias("scored_at"),
        )
        writer = scores.write.mode("overwrite")
        if _is_parquet(out_uri):
            writer.parquet(out_path)
        else:
            writer.option("header", True).option(
                "timestampFormat", "yyyy-MM-dd HH:mm:ss.SSSXXX"
            ).csv(out_path)
    except ChurnopsError:
        raise
    except Exception as err:
        raise _job_error(err) from err
    seconds = time.perf_counter() - started
    rate = n_rejected / total if total else 0.0
    result = {
        "model_uri": model_uri,
        "model_version": source.version,
        "scorer": "mlflow.pyfunc.spark_udf",
        "engine": "spark",
        "spark_master": spark.sparkContext.master,
        "spark_version": spark.version,
        "data": data_uri,
        "out": out_uri,
        "rejects": rejects_uri,
        "rows": total,
        "scored": total - n_rejected,
        "rejected": n_rejected,
        "reject_rate": rate,
        "max_reject_rate": max_reject_rate,
        "problems": dict(sorted(problems.items(), key=lambda kv: -kv[1])[:10]),
        "scored_at": scored_at.isoformat(),
        "seconds": round(seconds, 3),
        "rows_per_second": round(total / seconds) if seconds else None,
    }
    if rate > max_reject_rate:
        error = ContractViolation(
            f"{n_rejected:,} of {total:,} rows rejected ({rate:.2%}, above the allowed "
            f"{max_reject_rate:.2%}); see {rejects_uri}"
        )
        error.result = result
        raise error
    return result
