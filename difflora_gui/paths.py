"""Where the app's own folders are: ``plugins/`` and ``resources/``.

In a checkout (``pip install -e .``, the usual way to run the app) they sit beside the package.
A regular install ships them as the packages ``difflora_builtin_plugins`` and ``difflora_resources``
(see ``[tool.setuptools.package-dir]`` in pyproject.toml).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def _folder(checkout_name: str, installed_package: str) -> Path:
    beside = CHECKOUT_ROOT / checkout_name
    if beside.is_dir():
        return beside
    spec = importlib.util.find_spec(installed_package)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return beside


def builtin_plugins_dir() -> Path:
    return _folder("plugins", "difflora_builtin_plugins")


def resources_dir() -> Path:
    return _folder("resources", "difflora_resources")
