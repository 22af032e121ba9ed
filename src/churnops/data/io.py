"""Readers for customer tables: CSV or Parquet, from a path, file://, http(s)://, s3:// or a
DVC-tracked file (``dvc://<repo>#<path>[@<rev>]``, read with ``dvc.api``).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from churnops.errors import DataSourceError

DEFAULT_CHUNK_ROWS = 200_000


DVC_SCHEME = "dvc://"


@dataclass(frozen=True)
class DvcSource:
    """A DVC-tracked file: ``dvc://<repo>#<path>[@<rev>]``.

    ``repo`` is a local Git repository path or a Git URL; ``rev`` a branch, tag or commit
    (default: the repository's HEAD). ``dvc:///srv/churn-data#data/customers.csv@v2``.
    """

    repo: str
    path: str
    rev: str | None = None

    @classmethod
    def parse(cls, uri: str) -> DvcSource:
        """Raises:
        DataSourceError: Not of the form ``dvc://<repo>#<path>[@<rev>]``."""
        body = uri[len(DVC_SCHEME) :]
        repo, sep, rest = body.partition("#")
        path, _, rev = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if not sep or not repo or not path:
            raise DataSourceError(
                f"{uri}: a DVC URI is dvc://<repo>#<path>[@<rev>] "
                "(e.g. dvc:///srv/churn-data#data/customers.csv@v2)"
            )
        return cls(repo, path, rev or None)

    def filesystem(self) -> Any:
        try:
            from dvc.api import DVCFileSystem
        except ImportError as err:
            raise DataSourceError("dvc:// data needs DVC: pip install 'churnops[dvc]'") from err
        try:
            return DVCFileSystem(self.repo, rev=self.rev)
        except Exception as err:
            raise DataSourceError(f"cannot open DVC repository {self.repo}: {err}") from err


def is_dvc(uri: str | Path) -> bool:
    return str(uri).startswith(DVC_SCHEME)


def dvc_lineage(uri: str) -> dict[str, str]:
    """Where a ``dvc://`` table comes from: repo, path, rev as given, the commit it
    resolves to and the file's DVC md5 (what ``dvc add`` recorded).

    Raises:
        DataSourceError: Not a DVC URI, or the repository or file cannot be read.
    """
    source = DvcSource.parse(uri)
    fs = source.filesystem()
    try:
        info = fs.info(source.path)
        commit = fs.repo.scm.resolve_rev(source.rev or "HEAD")
    except FileNotFoundError as err:
        raise DataSourceError(f"{uri}: {source.path} is not in {source.repo}") from err
    except Exception as err:
        raise DataSourceError(f"cannot read {uri}: {err}") from err
    md5 = info.get("md5") or (info.get("dvc_info") or {}).get("md5") or ""
    return {
        "repo": source.repo,
        "path": source.path,
        "rev": source.rev or "HEAD",
        "commit": str(commit),
        "md5": str(md5),
    }


def data_path(uri: str) -> str:
    """The path part of ``uri`` (for its extension): the file inside a DVC repository,
    the URL path, or the local path."""
    if is_dvc(uri):
        return DvcSource.parse(uri).path
    return urllib.parse.urlparse(uri).path if "://" in uri else uri


def _format(uri: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    return "parquet" if data_path(uri).endswith((".parquet", ".pq")) else "csv"


def _open_dvc(uri: str) -> Any:
    source = DvcSource.parse(uri)
    fs = source.filesystem()
    try:
        return fs.open(source.path, "rb")
    except FileNotFoundError as err:
        raise DataSourceError(f"data not found: {source.path} in {source.repo}") from err
    except Exception as err:
        raise DataSourceError(f"cannot read {uri}: {err}") from err


def _open(uri: str) -> io.IOBase:
    """Open ``uri`` as a binary stream, with a clear error naming the URI."""
    if is_dvc(uri):
        return _open_dvc(uri)
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


def _spool(stream: Any) -> Any:
    """Copy a stream into a temporary file (bounded memory) and return it, rewound."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller
    with stream:
        shutil.copyfileobj(stream, spool, 1 << 20)
    spool.seek(0)
    return spool


def open_input(uri: str, *, seekable: bool = False) -> Any:
    """``uri`` as a binary stream read in pieces (bounded memory): a local file, an HTTP
    response, or a pyarrow filesystem stream (``s3://``). ``seekable`` (Parquet's footer):
    an HTTP body is first spooled to a temporary file.

    Raises:
        DataSourceError: The data cannot be opened.
    """
    if is_dvc(uri):
        stream = _open_dvc(uri)
        if not seekable:
            return stream
        return _spool(stream)
    scheme = urllib.parse.urlparse(uri).scheme if "://" in uri else ""
    try:
        if scheme in ("", "file"):
            path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
            return open(Path(path), "rb")
        if scheme in ("http", "https"):
            response = urllib.request.urlopen(uri, timeout=60)
            return response if not seekable else _spool(response)
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


def describe_source(uri: str) -> str:
    """``uri`` for people (model card, run tags): a DVC source with the commit its rev
    resolved to and the file's DVC md5."""
    if not is_dvc(uri):
        return uri
    lineage = dvc_lineage(uri)
    return f"{uri} (DVC commit {lineage['commit'][:12]}, md5 {lineage['md5']})"
