"""The project's own `shared/` package as a Lambda layer, bundled locally (no Docker)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.topology import ROOT

SHARED_PACKAGE = ROOT / "shared"
_IGNORED = ("__pycache__", "*.pyc")


# Third-party packages the functions need beyond the Powertools layer (which carries pydantic): pure
# Python, so the copy installed here runs on Lambda's arm64 as it is.
VENDORED = (
    "phonenumbers",
    "cachetools",
    "tzdata",
    # python-liquid (message templates) and what it imports: markupsafe, babel, python-dateutil, pytz,
    # importlib_resources; six (dateutil's) is a single module, in VENDORED_MODULES.
    "liquid",
    "markupsafe",
    "babel",
    "dateutil",
    "pytz",
    "importlib_resources",
)
VENDORED_MODULES = ("six",)
# Parts of them that are never imported (phonenumbers' geocoding, carrier and time-zone data: 20 MB),
# and compiled extensions built for this machine, not Lambda's arm64 (markupsafe's optional speedups:
# it falls back to its pure-Python escape).
_UNUSED = ("geodata", "carrierdata", "tzdata", "*.so")
# Swagger UI's files for GET /docs (shared/ingest/docs.py): only the two the page loads, not the
# package's code or its other bundles (~9 MB), at the path docs.py looks them up.
DOCS_ASSETS_PACKAGE = "swagger-ui-py"


def _package_dir(name: str) -> Path:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    return Path(module.__file__).parent


def _module_file(name: str) -> Path:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    return Path(module.__file__)


def _distribution(name: str) -> str:
    """The installed distribution providing import package `name` (`liquid` → `python-liquid`)."""
    return importlib.metadata.packages_distributions().get(name, [name])[0]


# Where Lambda extracts a layer: a data file at `<path>` in the layer is `/opt/<path>` in the function.
LAYER_ROOT = "/opt"


def content_hash(data_files: Mapping[str, bytes] | None = None) -> str:
    """The layer's identity: shared/'s source, the vendored packages' versions and the data files."""
    digest = hashlib.sha256()
    for path in sorted(SHARED_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    for name in (*(_distribution(name) for name in (*VENDORED, *VENDORED_MODULES)), DOCS_ASSETS_PACKAGE):
        digest.update(f"{name}=={importlib.metadata.version(name)}".encode())
    for target, content in sorted((data_files or {}).items()):
        digest.update(target.encode() + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _docs_assets() -> dict[str, Path]:
    from shared.ingest import docs

    folder = docs.assets_dir()
    return {f"{docs.ASSETS_PACKAGE}/{docs.ASSETS_FOLDER}/{name}": folder / name for name in docs.ASSETS}


def layer_files() -> dict[str, Path]:
    """Single files under python/ in the layer: the vendored single-module packages and the Swagger
    UI assets."""
    return {**{f"{name}.py": _module_file(name) for name in VENDORED_MODULES}, **_docs_assets()}


def layer_packages() -> list[Path]:
    """The package folders copied to python/: shared/ and the vendored packages."""
    return [SHARED_PACKAGE, *(_package_dir(name) for name in VENDORED)]


@jsii.implements(ILocalBundling)
class CopyPackages:
    """Copies packages to `python/<name>` in the layer, where the Lambda runtime puts them on sys.path,
    and writes data files at their path in the layer (under /opt in the function)."""

    def __init__(
        self,
        packages: list[Path],
        files: dict[str, Path] | None = None,
        data_files: Mapping[str, bytes] | None = None,
    ) -> None:
        self._packages = packages
        self._files = files or {}  # path under python/ → file to copy there
        self._data_files = dict(data_files or {})  # path in the layer → content

    # jsii hands the BundlingOptions struct over as keyword arguments; only `image` is named here.
    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        for package in self._packages:
            shutil.copytree(
                package,
                Path(output_dir) / "python" / package.name,
                ignore=shutil.ignore_patterns(*_IGNORED, *_UNUSED),
                dirs_exist_ok=True,
            )
        for target, source in self._files.items():
            destination = Path(output_dir) / "python" / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        for target, content in self._data_files.items():
            destination = Path(output_dir) / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
        return True


class SharedLayer(Construct):
    """`data_files`: path in the layer → content, e.g. the journey catalogue built at synth
    (`continuum/journeys.json`, read by the functions at `/opt/continuum/journeys.json`)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, data_files: Mapping[str, bytes] | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        for target in data_files or {}:
            if Path(target).is_absolute() or ".." in Path(target).parts or Path(target).parts[0] == "python":
                raise ValueError(f"layer data file {target!r}: a relative path outside python/")
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="Continuum's shared package (models, domain logic, store), phonenumbers, "
            "python-liquid, the Swagger UI assets and the journey catalogue",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            # Hashed by content (shared/'s source, the vendored versions, the data files), so any edit
            # (a changed journey too) re-bundles and redeploys the layer and an unchanged one does not.
            code=lambda_.Code.from_asset(
                str(SHARED_PACKAGE),
                asset_hash_type=AssetHashType.CUSTOM,
                asset_hash=content_hash(data_files),
                exclude=list(_IGNORED),
                bundling=BundlingOptions(
                    # Never pulled: local bundling always succeeds, so Docker is not needed.
                    image=DockerImage.from_registry("unused"),
                    local=CopyPackages(layer_packages(), layer_files(), data_files),
                ),
            ),
        )
