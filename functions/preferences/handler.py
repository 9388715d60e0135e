"""The unsubscribe and preference pages (public: the signed token in the path is the credential).

POST /unsubscribe/{token} is RFC 8058's one-click unsubscribe; GET /unsubscribe/{token} a page with
the button; GET / POST /preferences/{token} the preference form (shared/delivery/preferences.py)."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from shared import config
from shared.delivery.links import Purpose
from shared.delivery.policy import load_policy
from shared.delivery.preferences import Pages, render
from shared.store.consent import ConsentStore
from shared.store.link_key import link_signer
from shared.store.profiles import DynamoProfileStore

logger = Logger()
metrics = Metrics()

# The token is a credential: the page must not leak it (Referer), be framed, cached or sniffed.
HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}
MAX_FORM_BYTES = 16 * 1024  # a preference form is a few hundred bytes


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = config.load(config.PreferencesSettings)
    pages = Pages(
        signer=link_signer(settings),
        policy=load_policy(settings.policy_file),
        profiles=DynamoProfileStore(settings.profiles_table),
        consents=ConsentStore(settings.profiles_table),
    )
    method = event.get("requestContext", {}).get("http", {}).get("method", "")
    # The route API Gateway matched (`POST /unsubscribe/{token}`), not the raw path: a custom domain's
    # base path would prefix that.
    route = str(event.get("routeKey", "")).partition(" ")[2]
    kind: Purpose = "unsubscribe" if route.startswith("/unsubscribe/") else "preferences"
    token = unquote((event.get("pathParameters") or {}).get("token", ""))
    page = pages.answer(method, kind, token, _form(event))
    metrics.add_metric(name=f"Links_{page.outcome}", unit=MetricUnit.Count, value=1)
    return {"statusCode": page.status, "headers": HEADERS, "body": render(page)}


def _form(event: dict[str, Any]) -> dict[str, list[str]]:
    """A form-urlencoded body (API Gateway may hand it base64-encoded); anything else reads as empty."""
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError):
        return {}
    if len(raw) > MAX_FORM_BYTES:
        return {}
    try:
        return parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=100)
    except ValueError:  # more fields than any form of ours has
        return {}
