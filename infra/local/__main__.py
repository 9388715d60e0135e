"""`python -m infra.local` (what `make local` runs): the whole engine on 127.0.0.1, on moto."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from infra.local.engine import CONCURRENCY, DEDUPE_WINDOW_SECONDS, LocalEngine
from infra.local.http import local_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--policy",
        type=Path,
        default=os.environ.get("CONTINUUM_POLICY_FILE"),
        help="the send policy (YAML; default: the repository's policy.yaml, or $CONTINUUM_POLICY_FILE)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("CONTINUUM_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    write_key = os.environ.get("CONTINUUM_WRITE_KEY", "dev-write-key")

    started = time.monotonic()
    print("Starting the Continuum local runtime (all AWS services on moto, state in memory)…", flush=True)
    window = int(os.environ.get("CONTINUUM_DEDUPE_WINDOW_SECONDS", DEDUPE_WINDOW_SECONDS))
    admin_token = os.environ.get("CONTINUUM_ADMIN_TOKEN", "dev-admin-token")
    journeys = os.environ.get("CONTINUUM_JOURNEYS_DIR")  # another folder than the repo's journeys/
    engine = LocalEngine(
        write_key=write_key,
        dedupe_window_seconds=window,
        admin_token=admin_token,
        identity_rules=os.environ.get("CONTINUUM_IDENTITY_RULES", "{}"),
        concurrency=int(os.environ.get("CONTINUUM_LOCAL_CONCURRENCY", CONCURRENCY)),
        journeys_dir=Path(journeys) if journeys else None,
        policy_file=args.policy,
        # Hex; set it to keep the unsubscribe / preference links of earlier runs valid (default: random).
        link_signing_key=os.environ.get("CONTINUUM_LINK_SIGNING_KEY") or None,
    ).start()
    try:
        server = local_server((args.host, args.port), engine)
    except OSError as error:
        print(
            f"cannot listen on {args.host}:{args.port}: {error.strerror}; choose another with PORT=…",
            file=sys.stderr,
        )
        engine.stop()
        return 2
    # SIGTERM stops it as Ctrl-C does: KeyboardInterrupt in this (the serving) thread ends
    # serve_forever. (server.shutdown() here would wait for serve_forever on its own thread: deadlock.)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    engine.serve_at(f"http://{host}:{port}")  # the unsubscribe and preference links point here
    print(f"Continuum local runtime ready in {time.monotonic() - started:.1f}s", flush=True)
    print(
        f"  endpoint   http://{host}:{port}   (Segment HTTP API; docs at /docs)",
        flush=True,
    )
    print(f"  write key  {write_key}   (source 'default'; HTTP Basic username)", flush=True)
    print(
        f"  messages   http://{host}:{port}/_local/messages   clock: POST /_local/clock/advance", flush=True
    )
    try:
        server.serve_forever()  # returns on KeyboardInterrupt (werkzeug catches it) and closes the socket
    except KeyboardInterrupt:  # one arriving before serve_forever starts, or during its cleanup
        pass
    finally:
        server.server_close()
        engine.stop()
    print("Continuum local runtime stopped", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is stopped and nothing is left to save (local state lives in memory), but the
    # interpreter's own teardown of moto's object graph takes seconds: leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
