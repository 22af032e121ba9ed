"""Fuzz the compiled request decoder (churnops.serving._jsoncols) under AddressSanitizer
and UndefinedBehaviorSanitizer.

Builds the module with both sanitizers into .tools/asan/, then runs the decoder tests of
tests/unit/test_serving_decode.py (every JSON number form, odd strings, truncations, and
the mutation test with ``--iterations`` random edits per seed, each checked against the
reference path) with that build in place of the installed one. A memory error or
undefined behaviour aborts the run with the sanitizer's report.

    make fuzz-decoder [FUZZ_ITERATIONS=200000]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "churnops" / "serving" / "_jsoncols.c"
MODULE = "churnops.serving._jsoncols"


def build(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    target = out / ("_jsoncols" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{sysconfig.get_paths()['include']}",
            str(SOURCE),
            "-o",
            str(target),
        ],
        check=True,
    )
    return target


def runtime(name: str) -> str:
    return subprocess.run(
        ["gcc", f"-print-file-name={name}"], check=True, capture_output=True, text=True
    ).stdout.strip()


def run_tests(library: Path, iterations: int) -> int:
    """In the sanitized process: the sanitized module stands in for the installed one."""
    import pytest

    spec = importlib.util.spec_from_file_location(MODULE, library)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE] = module
    os.environ["CHURNOPS_FUZZ_ITERATIONS"] = str(iterations)
    print(f"fuzz-decoder: {library} ({iterations} mutations per seed)", file=sys.stderr)
    return pytest.main(
        ["-q", "-p", "no:cacheprovider", str(ROOT / "tests/unit/test_serving_decode.py")]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=50_000)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # the sanitized child
    args = parser.parse_args()
    if args.run:
        return run_tests(args.run, args.iterations)
    library = build(ROOT / ".tools" / "asan")
    env = dict(
        os.environ,
        LD_PRELOAD=f"{runtime('libasan.so')} {runtime('libubsan.so')}",
        PYTHONMALLOC="malloc",  # every allocation visible to ASan
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",  # CPython keeps objects to exit
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
    )
    argv = [sys.executable, __file__, "--run", str(library), "--iterations", str(args.iterations)]
    return subprocess.run(argv, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
