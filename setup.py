"""Build of the one compiled module; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "churnops.serving._jsoncols",
            ["src/churnops/serving/_jsoncols.c"],
            # Exact IEEE arithmetic is what makes the number parsing exact: no -ffast-math.
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
        )
    ]
)
