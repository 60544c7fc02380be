"""Only what pyproject.toml cannot say: ``migrations/``, ``vendor_roots/`` and ``web/`` stay at the top of the
repository and ship inside the wheel as ``verifier/migrations``, ``verifier/vendor_roots`` and ``verifier/web``, so an
installed Keyward can upgrade its database, load its pinned roots and serve the dashboard with no source checkout
(``verifier.shipped`` finds either place)."""

import shutil
from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup
from setuptools.command.build_py import build_py

SHIPPED = {"verifier.migrations": "migrations", "verifier.vendor_roots": "vendor_roots", "verifier.web": "web"}
# next to the .py files setuptools takes anyway; the dashboard's templates, styles, scripts, images and licences
DATA = ["*.mako", "*.toml", "*.md", "*.pem", "*.html", "*.css", "*.js", "*.svg", "*.png", "*.ico", "*.txt", "LICENSE*"]


def folders(package: str, path: str) -> list[str]:
    return [package, *(f"{package}.{sub}" for sub in find_namespace_packages(path))]


class CleanBuildPy(build_py):
    """build_py that starts from an empty build folder: setuptools only adds to it, so a migration renamed or removed
    since the last build would otherwise ship too (two heads, or a revision present twice)."""

    def run(self) -> None:
        shutil.rmtree(Path(self.build_lib) / "verifier", ignore_errors=True)
        super().run()


shipped = [name for package, path in SHIPPED.items() for name in folders(package, path)]
setup(
    cmdclass={"build_py": CleanBuildPy},
    packages=[*find_packages(include=["verifier", "verifier.*"]), *shipped],
    package_dir=SHIPPED,
    package_data={"verifier": ["py.typed"], **dict.fromkeys(shipped, DATA)},
)
