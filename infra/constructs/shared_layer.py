"""The project's own `shared/` package as a Lambda layer, bundled locally (no Docker)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.topology import ROOT

SHARED_PACKAGE = ROOT / "shared"
_IGNORED = ("__pycache__", "*.pyc")


@jsii.implements(ILocalBundling)
class CopyPackage:
    """Copies a package to `python/<name>` in the layer, where the Lambda runtime puts it on sys.path.

    Nothing to install: its third-party imports (pydantic, Powertools) come from the Powertools layer.
    """

    def __init__(self, package: Path) -> None:
        self._package = package

    # jsii hands the BundlingOptions struct over as keyword arguments; only `image` is named here.
    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        shutil.copytree(
            self._package,
            Path(output_dir) / "python" / self._package.name,
            ignore=shutil.ignore_patterns(*_IGNORED),
            dirs_exist_ok=True,
        )
        return True


class SharedLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="Continuum's shared package (models, domain logic, store)",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            # The asset is the package folder itself and is hashed by its source (minus bytecode), so any
            # edit to shared/ re-bundles and redeploys the layer; an unchanged package does not.
            code=lambda_.Code.from_asset(
                str(SHARED_PACKAGE),
                asset_hash_type=AssetHashType.SOURCE,
                exclude=list(_IGNORED),
                bundling=BundlingOptions(
                    # Never pulled: local bundling always succeeds, so Docker is not needed.
                    image=DockerImage.from_registry("unused"),
                    local=CopyPackage(SHARED_PACKAGE),
                ),
            ),
        )
