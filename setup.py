"""Only what pyproject.toml cannot say: ``migrations/`` and ``vendor_roots/`` stay at the top of the repository and
ship inside the wheel as ``verifier/migrations`` and ``verifier/vendor_roots``, so an installed Keyward can upgrade
its database and load its pinned roots with no source checkout (``verifier.shipped`` finds either place)."""

from setuptools import find_namespace_packages, find_packages, setup

SHIPPED = {"verifier.migrations": "migrations", "verifier.vendor_roots": "vendor_roots"}
DATA = ["*.mako", "*.toml", "*.md", "*.pem"]  # next to the .py files setuptools takes anyway


def folders(package: str, path: str) -> list[str]:
    return [package, *(f"{package}.{sub}" for sub in find_namespace_packages(path))]


shipped = [name for package, path in SHIPPED.items() for name in folders(package, path)]
setup(
    packages=[*find_packages(include=["verifier", "verifier.*"]), *shipped],
    package_dir=SHIPPED,
    package_data={"verifier": ["py.typed"], **dict.fromkeys(shipped, DATA)},
)
