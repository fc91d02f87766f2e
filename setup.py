"""Extension list and the man page; metadata lives in pyproject.toml."""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

EXTENSIONS = [
    Extension(f"hivrrp.{name}", [f"ext/hivrrp/{name}.pyx"], extra_compile_args=["-O2"])
    for name in ("_wire", "_wheel", "_engine", "_simnet", "_io", "_snapshot", "_announce")
]

# hivrrp(8), written from the click tree of the sources being built; a wheel
# carries it as data (prefix/share/man/man8), so every install has it and
# man(1) finds it next to the bin/ in PATH (man-db's manpath does that).
MAN_PAGE = "build/man/hivrrp.8"


class BuildWithManPage(build_py):
    def run(self):
        super().run()
        if self.dry_run:
            return
        # The sources, not an installed hivrrp: the page is of this build.
        sys.path.insert(0, os.path.abspath("src"))
        try:
            from hivrrp.cli import main as cli
            from hivrrp.tools.manpage import render
        finally:
            sys.path.pop(0)
        os.makedirs(os.path.dirname(MAN_PAGE), exist_ok=True)
        with open(MAN_PAGE, "w", encoding="utf-8") as page:
            page.write(render(cli, version=self.distribution.get_version()))


setup(
    cmdclass={"build_py": BuildWithManPage},
    data_files=[("share/man/man8", [MAN_PAGE])],
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
