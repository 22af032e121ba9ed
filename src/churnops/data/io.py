"""Readers for customer tables: CSV or Parquet, from a path, file://, http(s):// or s3://.

Readers yield raw chunks; ``churnops.data.validate`` turns them into typed frames.
CSV is read with every column as text so that the validator, not the parser, decides
what a value means (blank ``TotalCharges``, numbers as strings, CRLF line ends).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def open_input(uri: str, *, seekable: bool = False) -> Any:
    """``uri`` as a binary stream read in pieces (bounded memory): a local file, an HTTP
    response, or a pyarrow filesystem stream (``s3://``). ``seekable`` (Parquet's footer):
    an HTTP body is first spooled to a temporary file.

    Raises:
        DataSourceError: The data cannot be opened.
    """
    scheme = urllib.parse.urlparse(uri).scheme if "://" in uri else ""
    try:
        if scheme in ("", "file"):
            path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
            return open(Path(path), "rb")
        if scheme in ("http", "https"):
            response = urllib.request.urlopen(uri, timeout=60)
            if not seekable:
                return response
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller
            with response:
                shutil.copyfileobj(response, spool, 1 << 20)
            spool.seek(0)
            return spool
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        return fs.open_input_file(path) if seekable else fs.open_input_stream(path)
    except FileNotFoundError as err:
        raise DataSourceError(f"data not found: {uri}") from err
    except Exception as err:  # network, permissions, unknown scheme
        raise DataSourceError(f"cannot read {uri}: {err}") from err


def open_output(uri: str) -> Any:
    """A binary output stream for ``uri``: a local path or ``file://`` (parent folders
    created), or any pyarrow filesystem URI (``s3://``).

    Raises:
        DataSourceError: It cannot be written.
    """
    scheme = urllib.parse.urlparse(uri).scheme if "://" in uri else ""
    try:
        if scheme in ("", "file"):
            path = Path(urllib.parse.urlparse(uri).path if scheme == "file" else uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            return open(path, "wb")
        if scheme in ("http", "https"):
            raise DataSourceError(f"cannot write to {uri}: HTTP is a read-only source here")
        import pyarrow.fs

        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        return fs.open_output_stream(path)
    except DataSourceError:
        raise
    except Exception as err:
        raise DataSourceError(f"cannot write {uri}: {err}") from err
