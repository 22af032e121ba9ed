"""Readers for customer tables: CSV or Parquet, from a path, file://, http(s):// or s3://.

Readers yield raw chunks; ``churnops.data.validate`` turns them into typed frames.
CSV is read with every column as text so that the validator, not the parser, decides
what a value means (blank ``TotalCharges``, numbers as strings, CRLF line ends).
"""

from __future__ import annotations

import io
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from churnops.errors import DataSourceError

DEFAULT_CHUNK_ROWS = 200_000


def _format(uri: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    path = urllib.parse.urlparse(uri).path if "://" in uri else uri
    return "parquet" if path.endswith((".parquet", ".pq")) else "csv"


def _open(uri: str) -> io.IOBase:
    """Open ``uri`` as a binary stream, with a clear error naming the URI."""
    scheme = urllib.parse.urlparse(uri).scheme if "://" in uri else ""
    try:
        if scheme in ("", "file"):
            path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
            return open(Path(path), "rb")
        if scheme in ("http", "https"):
            with urllib.request.urlopen(uri, timeout=60) as response:
                return io.BytesIO(response.read())
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        return fs.open_input_file(path)
    except FileNotFoundError as err:
        raise DataSourceError(f"data not found: {uri}") from err
    except Exception as err:  # network, permissions, unknown scheme
        raise DataSourceError(f"cannot read {uri}: {err}") from err


def iter_raw(
    uri: str | Path, *, fmt: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Yield raw chunks of the table at ``uri``.

    Args:
        uri: Local path, ``file://``, ``http(s)://`` or any URI pyarrow's filesystems
            know (``s3://``, ``gs://``) where credentials exist.
        fmt: ``csv`` or ``parquet``; by default from the extension.
        chunk_rows: Rows per chunk.

    Raises:
        DataSourceError: The data cannot be opened or parsed.
    """
    uri = str(uri)
    kind = _format(uri, fmt)
    stream = _open(uri)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                parquet = pq.ParquetFile(stream)
                for batch in parquet.iter_batches(batch_size=chunk_rows):
                    yield batch.to_pandas()
            except Exception as err:
                raise DataSourceError(f"{uri} is not a readable Parquet file: {err}") from err
            return
        try:
            reader = pd.read_csv(
                stream, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8-sig"
            )
            yield from reader
        except pd.errors.EmptyDataError:
            return
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataSourceError(f"{uri} is not a readable CSV file: {err}") from err
    finally:
        stream.close()
