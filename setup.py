"""Extension list only; metadata lives in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension(f"hivrrp.{name}", [f"ext/hivrrp/{name}.pyx"], extra_compile_args=["-O2"])
    for name in ("_wire", "_wheel", "_engine", "_simnet", "_io", "_snapshot")
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        include_path=["ext"],
        # Generated C goes to build/, never next to the sources.
        build_dir="build/cython",
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
