"""Optional compiled fast paths for the capture analyzer (issue 21's speed goal).

Every ``mailstudy/**/*.pyx`` is compiled with Cython into an extension module beside it when Cython and a C
compiler are there (an editable install builds it in place). Without them, or when one module fails to compile,
the package still installs and runs as pure Python: the ``.py`` modules are the reference that the compiled ones
must equal exactly (tests compare both), and ``MAILSTUDY_PURE=1`` makes the package use the reference. All other
metadata lives in pyproject.toml; this file exists only because extension modules cannot be declared there.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build each extension if possible; a failure is reported and the pure-Python module is used instead."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler at all: install as pure Python
            print(f"mailstudy: compiled fast paths skipped ({exc}); the pure-Python modules are used")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - one module failed: its pure-Python twin is used
            print(f"mailstudy: {ext.name} not compiled ({exc}); its pure-Python module is used")


def _extensions() -> list:
    sources = sorted(str(p) for p in Path("mailstudy").rglob("*.pyx"))
    if not sources:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("mailstudy: Cython missing, compiled fast paths skipped; the pure-Python modules are used")
        return []
    return cythonize(sources, quiet=True, compiler_directives={"language_level": 3})


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
