"""Manage sources and their write keys: `python -m infra.sources {create NAME | list | revoke SOURCE_ID}`.

Against the local runtime (default: --local http://127.0.0.1:8000) or a deployed stack
(--stack Continuum, with AWS credentials in the environment). A new write key is printed once, at
creation: only its SHA-256 is stored.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from shared.ingest.sources import new_source
from shared.store.sources import SourceNotFoundError, SourceStore


class _Local:
    def __init__(self, url: str):
        self._url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self._url}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise SystemExit(f"error: {json.loads(error.read()).get('error', error.reason)}") from error
        except urllib.error.URLError as error:
            raise SystemExit(
                f"error: no local runtime at {self._url} ({error.reason}); start it with `make local`"
            ) from error

    def create(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/_local/sources", {"name": name})
        return result

    def list(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_local/sources")
        return result

    def revoke(self, source_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/_local/sources/{source_id}")["source"]
        return result


class _Cloud:
    def __init__(self, stack: str):
        import boto3

        outputs = (
            boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        )
        table = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "SourcesTable"), None)
        if table is None:
            raise SystemExit(f"error: stack {stack} has no SourcesTable output; deploy the current version")
        self._store = SourceStore(table)

    def create(self, name: str) -> dict[str, Any]:
        source, key = new_source(name)
        self._store.add(source)
        return {"source": source.model_dump(exclude={"keyHash"}), "writeKey": key}

    def list(self) -> list[dict[str, Any]]:
        return [s.model_dump(exclude={"keyHash"}) for s in self._store.all()]

    def revoke(self, source_id: str) -> dict[str, Any]:
        try:
            return self._store.revoke(source_id).model_dump(exclude={"keyHash"})
        except SourceNotFoundError as error:
            raise SystemExit(f"error: no source {source_id}") from error


DEFAULT_LOCAL = "http://127.0.0.1:8000"


def _add_targets(parser: argparse.ArgumentParser) -> None:
    """--local / --stack, accepted before and after the subcommand alike. SUPPRESS as the default, so
    that a subcommand's parser does not overwrite with None what was given before the subcommand."""
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--local",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"the local runtime (default {DEFAULT_LOCAL})",
    )
    target.add_argument(
        "--stack",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="a deployed stack (AWS credentials and region from the environment)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.sources", description=__doc__.split("\n\n")[0])
    _add_targets(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, argument in (
        ("create", "create a source and print its new write key", "name"),
        ("list", "list sources (never their keys)", None),
        ("revoke", "revoke a source's write key", "source_id"),
    ):
        command = commands.add_parser(name, help=help_text)
        if argument:
            command.add_argument(argument)
        _add_targets(command)
    args = parser.parse_args(argv)
    local, stack = getattr(args, "local", None), getattr(args, "stack", None)
    if local is not None and stack is not None:
        # One on each side of the subcommand: the groups cannot see each other.
        parser.error("argument --stack: not allowed with argument --local")

    if stack is None:
        return _run(_Local(local or DEFAULT_LOCAL), args)
    # Imported here: the local path needs no AWS SDK.
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _run(_Cloud(stack), args)
    except (BotoCoreError, ClientError) as error:
        # A missing region or credentials is the usual cause: one line, not a traceback.
        print(
            f"error: cannot use stack {stack}: {error} "
            "(configure AWS: AWS_PROFILE or credentials, and AWS_REGION)",
            file=sys.stderr,
        )
        return 2


def _run(backend: _Local | _Cloud, args: argparse.Namespace) -> int:
    if args.command == "create":
        created = backend.create(args.name)
        print(f"created {created['source']['sourceId']} ({created['source']['name']})")
        print(f"write key: {created['writeKey']}   (shown once: store it now)")
    elif args.command == "list":
        for source in backend.list():
            state = f"revoked {source['revokedAt']}" if source.get("revokedAt") else "active"
            print(f"{source['sourceId']}  {source['name']:<24} created {source['createdAt']}  {state}")
    else:
        revoked = backend.revoke(args.source_id)
        print(f"revoked {revoked['sourceId']} ({revoked['name']}) at {revoked['revokedAt']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
