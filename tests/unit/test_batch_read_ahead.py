"""The batch scorer's read-ahead thread: same batches in order, the reader's error raised
where the scorer reads, and a scorer that stops early stops the reader."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from churnops.errors import DataSourceError
from churnops.scoring.batch import ScoreConfig, _read_ahead, read_batches


def test_batches_come_in_order_and_all_of_them():
    assert list(_read_ahead(iter(range(50)), depth=2)) == list(range(50))


def test_the_readers_error_is_raised_in_the_consumer():
    def broken():
        yield 1
        yield 2
        raise pa.ArrowInvalid("CSV parse error: Expected 21 columns, got 3")

    got = []
    with pytest.raises(pa.ArrowInvalid, match="Expected 21 columns"):
        for item in _read_ahead(broken()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_reader():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    stream = _read_ahead(endless(), depth=2)
    assert next(stream) == 0
    stream.close()  # the scorer failed: the generator is closed
    time.sleep(0.3)
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count <= 4  # bounded read-ahead, and nothing after the stop
    assert not [t for t in threading.enumerate() if t.name == "churnops-read-ahead"]


def test_a_csv_broken_mid_file_is_a_data_source_error(tmp_path):
    from churnops.data import contract

    good = ",".join(contract.COLUMNS)
    row = ",".join(["x"] * len(contract.COLUMNS))
    path = tmp_path / "broken.csv"
    path.write_text("\n".join([good, *[row] * 20_000, "only,three,fields", row]) + "\n")
    batches = []
    with pytest.raises(DataSourceError, match="not a readable CSV file"):
        # 64 KiB blocks: the broken line is met by the read-ahead thread, batches later
        for batch in read_batches(str(path), config=ScoreConfig(block_bytes=64 << 10)):
            batches.append(batch.num_rows)
    assert batches and sum(batches) < 20_000
