"""Only what pyproject.toml cannot say: ``migrations/``, ``vendor_roots/`` and ``web/`` stay at the top of the
repository and ship inside the wheel as ``verifier/migrations``, ``verifier/vendor_roots`` and ``verifier/web``, so an
installed Keyward can upgrade its database, load its pinned roots and serve the dashboard with no source checkout
(``verifier.shipped`` finds either place)."""

from setuptools import find_namespace_packages, find_packages, setup

SHIPPED = {"verifier.migrations": "migrations", "verifier.vendor_roots": "vendor_roots", "verifier.web": "web"}
# next to the .py files setuptools takes anyway; the dashboard's templates, styles, scripts, images and licences
DATA = ["*.mako", "*.toml", "*.md", "*.pem", "*.html", "*.css", "*.js", "*.svg", "*.png", "*.ico", "*.txt", "LICENSE*"]


def folders(package: str, path: str) -> list[str]:
    return [package, *(f"{package}.{sub}" for sub in find_namespace_packages(path))]


shipped = [name for package, path in SHIPPED.items() for name in folders(package, path)]
setup(
    packages=[*find_packages(include=["verifier", "verifier.*"]), *shipped],
    package_dir=SHIPPED,
    package_data={"verifier": ["py.typed"], **dict.fromkeys(shipped, DATA)},
)
