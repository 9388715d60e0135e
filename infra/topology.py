"""The wiring of Continuum, declared once as data.

Both backends read this module: the CDK app (`infra/app.py`) turns it into CloudFormation, and
the local runtime (`infra/local`) turns it into the same resources inside moto. A route, table,
queue or function added here is live in both. Nothing in this module talks to AWS.

Environment variable names a function receives are derived here too (`env_var_name`), so the
handlers' settings models, the CDK stacks and the local runtime agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.delivery.feedback import DETAIL_BOUNCED, DETAIL_COMPLAINT, SOURCE_SES
from shared.models.events import (
    DETAIL_EXECUTION_STATUS_CHANGE,
    DETAIL_IDENTIFIER_REMOVED,
    DETAIL_MERGED,
    DETAIL_RESOLVED,
    DETAIL_SEGMENT_ENTERED,
    DETAIL_SEGMENT_EXITED,
    DETAIL_UNMERGED,
    SOURCE_IDENTITY,
    SOURCE_INGEST,
    SOURCE_SEGMENTS,
    SOURCE_STATES,
)

ROOT = Path(__file__).resolve().parent.parent
JOURNEYS_DIR = ROOT / "journeys"
SEGMENTS_DIR = ROOT / "segments"  # segments/<id>.yaml and segments/computed_traits.yaml
POLICY_FILE = ROOT / "policy.yaml"  # the send policy (topics, caps, quiet hours)


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None


# AWS recommends a queue's visibility timeout be at least six times its consumer function's timeout, so
# that a message is not handed out again while Lambda is still retrying a throttled batch of it.
VISIBILITY_TIMEOUT_FACTOR = 6


@dataclass(frozen=True)
class Queue:
    """An SQS queue with its own dead-letter queue. Its visibility timeout follows from its consumer's
    timeout (`Topology.visibility_timeout_seconds`), so the two cannot drift apart."""

    name: str
    max_receive_count: int = 3
    # FIFO (name ending `.fifo`, a FIFO dead-letter queue, explicit deduplication ids): messages of one
    # group (a profile) are handed out in order, one batch of the group at a time.
    fifo: bool = False


@dataclass(frozen=True)
class TableAccess:
    table: str
    write: bool = False


@dataclass(frozen=True)
class QueueAccess:
    """The function sends to this queue."""

    queue: str


@dataclass(frozen=True)
class Function:
    name: str
    module: str  # importable handler module, e.g. "functions.ingest.handler"; attribute `handler`
    description: str
    tables: tuple[TableAccess, ...] = ()
    queues: tuple[QueueAccess, ...] = ()
    publishes: bool = False  # PutEvents on the bus
    controls_journeys: bool = False  # StartExecution / StopExecution / DescribeExecution
    # Reads the journey catalogue: gets JOURNEY_CATALOGUE_ENV, JOURNEY_ARN_PREFIX_ENV and JOURNEY_ALIAS_ENV.
    reads_journeys: bool = False
    # Resumes executions parked on a task token (states:SendTaskSuccess): the wait_for steps, and the
    # send steps (their send gate answers its own token).
    resumes_journeys: bool = False
    # Fails a task token with an error its state machine catches (states:SendTaskFailure): the send
    # gate's deferral (Continuum.Deferred), which the send step turns into a Wait.
    fails_journey_tasks: bool = False
    settings: tuple[str, ...] = ()  # deployment settings it reads (see SETTINGS)
    # Checks the admin credential: the cloud hands it the Secrets Manager secret holding the admin
    # token (ADMIN_TOKEN_SECRET_ENV), the local runtime the token's SHA-256 (ADMIN_TOKEN_SHA256_ENV).
    admin_credential: bool = False
    # Reads the segment catalogue (shared/segments/catalogue.py): gets SEGMENT_CATALOGUE_ENV.
    reads_segments: bool = False
    # Reads the send policy (shared/delivery/policy.py): gets POLICY_FILE_ENV.
    reads_policy: bool = False
    # Creates one-time EventBridge Scheduler schedules that invoke the function itself (segment
    # re-checks): gets RECHECK_SCHEDULE_GROUP_ENV and RECHECK_ROLE_ARN_ENV.
    schedules_rechecks: bool = False
    # Calls the ad platforms: gets AD_PLATFORMS_ENV and each platform's credentials secret ARN
    # (AD_PLATFORM_SECRET_ENVS).
    calls_ad_platforms: bool = False
    # Signs or verifies the links in emails (shared/delivery/links.py): gets the signing key (cloud:
    # LINK_SIGNING_SECRET_ENV and a grant to read it; local: LINK_SIGNING_KEY_ENV) and PUBLIC_BASE_URL_ENV.
    signs_links: bool = False
    timeout_seconds: int = 10
    memory_mb: int = 512

    @property
    def folder(self) -> Path:
        return ROOT / Path(*self.module.split(".")[:-1])


# The buses a route can listen on: Continuum's own, or the account's default bus, where AWS services
# put their events (Step Functions' execution status changes).
CONTINUUM_BUS = "continuum"
DEFAULT_BUS = "default"


@dataclass(frozen=True)
class Route:
    """An EventBridge rule on a bus delivering matching events to a function."""

    name: str
    pattern: dict[str, Any]
    function: str
    bus: str = CONTINUUM_BUS  # or DEFAULT_BUS


@dataclass(frozen=True)
class QueueConsumer:
    queue: str
    function: str
    batch_size: int = 10


@dataclass(frozen=True)
class HttpRoute:
    """A route of the public HTTP API. `{name}` is a path parameter, `{proxy+}` the rest of the path."""

    method: str
    path: str
    function: str
    public: bool = False  # true: no credentials (the API's own description); else the function checks them

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        wanted, given = self.path.strip("/").split("/"), path.strip("/").split("/")
        params: dict[str, str] = {}
        for i, part in enumerate(wanted):
            if part == "{proxy+}":
                rest = given[i:]
                return {**params, "proxy": "/".join(rest)} if rest and rest != [""] else None
            if i >= len(given):
                return None
            if part.startswith("{") and part.endswith("}"):
                params[part[1:-1]] = given[i]
            elif part != given[i]:
                return None
        return params if len(given) == len(wanted) else None

    @property
    def specificity(self) -> tuple[int, int]:
        parts = self.path.strip("/").split("/")
        return ("{proxy+}" not in parts, sum(not p.startswith("{") for p in parts))


@dataclass(frozen=True)
class Topology:
    tables: tuple[Table, ...]
    queues: tuple[Queue, ...]
    functions: tuple[Function, ...]
    routes: tuple[Route, ...]
    consumers: tuple[QueueConsumer, ...]
    http_routes: tuple[HttpRoute, ...]
    api_function: str  # the function behind the Segment API
    journey_task_function: str  # the function journeys' send steps invoke
    journey_steps_function: str  # the function every other journey Task invokes (wait_until, branch, ...)
    journeys_dir: Path = field(default=JOURNEYS_DIR)
    segments_dir: Path = field(default=SEGMENTS_DIR)
    policy_file: Path = field(default=POLICY_FILE)

    def route_for(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        """The route API Gateway would pick (the most specific match), with its path parameters."""
        matches = [
            (route, params) for route in self.http_routes if (params := route.match(method, path)) is not None
        ]
        if not matches:
            return None
        return max(matches, key=lambda m: m[0].specificity)

    def function(self, name: str) -> Function:
        return next(f for f in self.functions if f.name == name)

    def visibility_timeout_seconds(self, queue: str) -> int:
        """VISIBILITY_TIMEOUT_FACTOR times the longest timeout among the queue's consumers."""
        timeouts = [self.function(c.function).timeout_seconds for c in self.consumers if c.queue == queue]
        if not timeouts:
            raise ValueError(f"queue {queue} has no consumer")
        return VISIBILITY_TIMEOUT_FACTOR * max(timeouts)

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


# Deployment settings: values that differ per deployment, not per resource. The CDK app reads them
# from context (cdk.json or `-c key=value`), the local runtime from its own configuration.
SETTINGS = {
    "IDENTITY_RULES": "identity resolution rules as JSON; {} keeps the documented defaults",
    "DEDUPE_WINDOW_SECONDS": "seconds a messageId is remembered per source to drop repeats (Segment: 7 days)",
    "EMAIL_SENDER": "verified SES sender address for the email channel",
    "PUSH_PLATFORM_APPLICATION_ARN": "SNS platform application (FCM / APNs) for the push channel",
    "DEFAULT_TIMEZONE": "IANA time zone of journeys' local-time waits for a recipient with no known zone",
}

# Names of the environment variables carrying resource names.
EVENT_BUS_ENV = "EVENT_BUS_NAME"
# The SES configuration set the email channel sends with (its event destination reports bounces and
# complaints to the default bus; infra/constructs/email_feedback.py).
EMAIL_CONFIGURATION_SET_ENV = "EMAIL_CONFIGURATION_SET"
# The journey catalogue (shared/journeys/catalogue.py): a file, not an environment variable (4 KB limit).
JOURNEY_CATALOGUE_ENV = "JOURNEY_CATALOGUE"  # its path (cloud: in the shared layer)
# arn:<partition>:states:<region>:<account>:stateMachine: (a name from the catalogue completes the ARN)
JOURNEY_ARN_PREFIX_ENV = "JOURNEY_STATE_MACHINE_ARN_PREFIX"
JOURNEY_ALIAS_ENV = "JOURNEY_ALIAS"  # the alias executions start on (cloud: live)
# The admin credential (see Function.admin_credential): exactly one of these is set.
ADMIN_TOKEN_SECRET_ENV = "ADMIN_TOKEN_SECRET_ARN"
ADMIN_TOKEN_SHA256_ENV = "ADMIN_TOKEN_SHA256"
# The segment catalogue (shared/segments/catalogue.py), a file like the journey catalogue: its path
# (cloud: /opt/continuum/segments.json in the shared layer; local: written by the engine).
SEGMENT_CATALOGUE_ENV = "SEGMENT_CATALOGUE"
# The send policy (shared/delivery/policy.py), a JSON file like the catalogues: its path (cloud:
# /opt/continuum/policy.json in the shared layer; local: written by the engine from its policy file).
POLICY_FILE_ENV = "POLICY_FILE"
# Segment re-checks (shared/store/schedules.py): the EventBridge Scheduler group the one-time schedules
# go in, and the role Scheduler assumes to invoke the segments function.
RECHECK_SCHEDULE_GROUP_ENV = "RECHECK_SCHEDULE_GROUP"
RECHECK_ROLE_ARN_ENV = "RECHECK_ROLE_ARN"
# The ad platforms: `live` (cloud: their HTTPS APIs) or `local` (the local runtime's recorder).
AD_PLATFORMS_ENV = "AD_PLATFORMS"
# Platform → the environment variable holding its credentials secret's ARN (Secrets Manager, JSON).
AD_PLATFORM_SECRET_ENVS = {
    "meta": "META_CREDENTIALS_SECRET_ARN",
    "google": "GOOGLE_CREDENTIALS_SECRET_ARN",
}


# The key signing unsubscribe / preference links (see Function.signs_links): exactly one is set.
LINK_SIGNING_SECRET_ENV = "LINK_SIGNING_SECRET_ARN"
LINK_SIGNING_KEY_ENV = "LINK_SIGNING_KEY"
# Where those links point: the public API's base URL (cloud: the HTTP API's; local: the server's).
PUBLIC_BASE_URL_ENV = "PUBLIC_BASE_URL"


def table_env(table: str) -> str:
    return f"{table.upper().replace('-', '_')}_TABLE"


def queue_env(queue: str) -> str:
    return f"{queue.upper().replace('-', '_')}_QUEUE_URL"


PROFILES = "profiles"
JOURNEY_RUNS = "journey-runs"
JOURNEY_WAITS = "journey-waits"
JOURNEY_STATS = "journey-stats"
MESSAGES = "messages"
SOURCES = "sources"
SEEN_MESSAGES = "seen-messages"
SEGMENT_MEMBERS = "segment-members"
AUDIENCES = "audiences"

TOPOLOGY = Topology(
    tables=(
        # Profiles, the identifier index, timelines, merge log and suppressions share one table, so
        # that a claim, a merge and a profile change commit in one transaction (shared/store/profiles.py).
        Table(PROFILES, partition_key="pk", sort_key="sk"),
        # One item per journey execution, under the profile it runs for; found by its execution too
        # (Step Functions' status-change events name the execution, not the profile).
        Table(
            JOURNEY_RUNS,
            partition_key="profileId",
            sort_key="runKey",
            indexes=(Index("byExecution", partition_key="executionArn"),),
        ),
        # One item per execution parked in a wait_for step: its task token and what it waits for. The
        # router reads those of the profile's active runs by key (strongly consistent: no index).
        Table(JOURNEY_WAITS, partition_key="executionArn"),
        # One item per journey: its counters (entered, exited by reason, conversions, per-step outcomes).
        Table(JOURNEY_STATS, partition_key="journeyId"),
        # Sources by the SHA-256 of their write key (the key itself is never stored).
        Table(SOURCES, partition_key="keyHash"),
        # `<sourceId>#<messageId>` of every published call, until `expiresAt` (the dedupe window).
        Table(SEEN_MESSAGES, partition_key="dedupeKey", ttl_attribute="expiresAt"),
        # The message log: every send and every drop, keyed by its idempotency key.
        Table(
            MESSAGES,
            partition_key="messageKey",
            indexes=(Index("byProfile", partition_key="profileId", sort_key="createdAt"),),
        ),
        # One item per (segment, member profile), kept by the audiences function: a segment's size is
        # a Query COUNT of its partition. (Membership itself is decided on each profile's state item.)
        Table(SEGMENT_MEMBERS, partition_key="segment", sort_key="profileId"),
    ),
    # Audience messages are per profile and in order (a removal must never overtake the add before it).
    queues=(Queue("email"), Queue("push"), Queue(AUDIENCES, fifo=True)),
    functions=(
        Function(
            "ingest",
            "functions.ingest.handler",
            "Segment HTTP Tracking API: authenticate, validate, dedupe, publish to the bus",
            tables=(TableAccess(SOURCES), TableAccess(SEEN_MESSAGES, write=True)),
            publishes=True,
            settings=("DEDUPE_WINDOW_SECONDS",),
        ),
        Function(
            "profiles",
            "functions.profiles.handler",
            "Profile API: look up, erase (GDPR), unmerge; admin credential only",
            tables=(
                TableAccess(PROFILES, write=True),
                TableAccess(MESSAGES, write=True),
                TableAccess(JOURNEY_RUNS, write=True),
                TableAccess(JOURNEY_STATS, write=True),  # erasure counts the runs it ends
            ),
            queues=(QueueAccess(AUDIENCES),),  # erasure removes the person from every ad audience
            publishes=True,
            controls_journeys=True,  # erasure stops the person's running executions
            settings=("IDENTITY_RULES",),
            admin_credential=True,
            reads_policy=True,  # PUT /v1/profiles/{id}/consent and the effective consent it shows
        ),
        Function(
            "identity",
            "functions.identity.handler",
            "Resolve an event's identifiers to one profile and publish the resolved event",
            tables=(TableAccess(PROFILES, write=True),),
            publishes=True,
            settings=("IDENTITY_RULES",),
            reads_policy=True,  # the topics an event's context.consent may name
        ),
        Function(
            "journey-router",
            "functions.journey_router.handler",
            "Journeys react: resume waits, record goals, exit, start; close runs whose execution ended",
            tables=(
                TableAccess(JOURNEY_RUNS, write=True),
                TableAccess(JOURNEY_WAITS, write=True),  # reads waits by execution, deletes a wait it resumed
                TableAccess(JOURNEY_STATS, write=True),
                TableAccess(
                    MESSAGES, write=True
                ),  # credits the last step that sent; drops sends deferred past their run
            ),
            controls_journeys=True,
            resumes_journeys=True,
            reads_journeys=True,
        ),
        Function(
            "journeys",
            "functions.journeys.handler",
            "Journeys admin API: the catalogue with each journey's counters; admin credential only",
            tables=(TableAccess(JOURNEY_STATS),),
            reads_journeys=True,
            admin_credential=True,
        ),
        Function(
            "deliver",
            "functions.deliver.handler",
            "The send gate: drop or render and enqueue a journey's send step",
            tables=(
                TableAccess(PROFILES, write=True),  # the frequency-cap items (cap#<rule>) of the profile
                TableAccess(MESSAGES, write=True),
                TableAccess(JOURNEY_STATS, write=True),  # counts each step's sent / dropped
            ),
            queues=(QueueAccess("email"), QueueAccess("push")),
            signs_links=True,  # every email's List-Unsubscribe and preference links
            reads_policy=True,
            # It answers its send step's task token: the outcome resumes the run, a deferral fails it.
            resumes_journeys=True,
            fails_journey_tasks=True,
        ),
        Function(
            "journey-steps",
            "functions.journey_steps.handler",
            "Journey steps: wait until a local time, wait for an event, branch, split, update traits",
            tables=(
                TableAccess(PROFILES, write=True),  # update: applies its identify as identity does
                TableAccess(MESSAGES),  # branch on what this run sent or dropped
                TableAccess(JOURNEY_WAITS, write=True),
            ),
            publishes=True,  # update: the event.resolved identity publishes for an identify
            resumes_journeys=True,  # wait_for: the awaited event may be there already
            settings=("DEFAULT_TIMEZONE", "IDENTITY_RULES"),
            reads_policy=True,  # update: its identify is applied as identity applies one
        ),
        Function(
            "channel-email",
            "functions.channel_email.handler",
            "Send queued email through SES v2",
            tables=(TableAccess(MESSAGES, write=True),),
            settings=("EMAIL_SENDER",),
            timeout_seconds=30,
        ),
        Function(
            "channel-push",
            "functions.channel_push.handler",
            "Send queued push notifications through SNS platform endpoints",
            # A token SNS reports disabled is removed from its profile (and identifier.removed published).
            tables=(TableAccess(MESSAGES, write=True), TableAccess(PROFILES, write=True)),
            publishes=True,
            settings=("PUSH_PLATFORM_APPLICATION_ARN",),
            timeout_seconds=30,
        ),
        Function(
            "feedback",
            "functions.feedback.handler",
            "SES bounces and complaints: suppress hard-bounced addresses, unsubscribe complainers",
            # Suppressions, the identifier index (who owns a complaining address) and consent items.
            tables=(TableAccess(PROFILES, write=True),),
        ),
        Function(
            "segments",
            "functions.segments.handler",
            "Segments: update a profile's aggregates per event, publish segment changes, sync audiences",
            # The state item lives beside the profile (one BatchGet reads both); unmerge reads timelines.
            tables=(TableAccess(PROFILES, write=True),),
            queues=(QueueAccess(AUDIENCES),),
            publishes=True,
            reads_segments=True,
            schedules_rechecks=True,
        ),
        Function(
            "audiences",
            "functions.audiences.handler",
            "Ad audiences: keep segment members and Meta / Google audiences in step with membership",
            # Reads the profiles' segment states: a queued message is reconciled against the latest decision.
            tables=(TableAccess(SEGMENT_MEMBERS, write=True), TableAccess(PROFILES)),
            calls_ad_platforms=True,
            # A few attempts with backoff per platform call inside one invocation.
            timeout_seconds=60,
        ),
        Function(
            "preferences",
            "functions.preferences.handler",
            "One-click unsubscribe and the preference page behind the signed links in every email",
            tables=(TableAccess(PROFILES, write=True),),  # the profile, and its consent beside it
            signs_links=True,
            reads_policy=True,
        ),
        Function(
            "segments-api",
            "functions.segments_api.handler",
            "Segments admin API: definitions, computed traits and sizes; admin credential only",
            tables=(TableAccess(SEGMENT_MEMBERS),),
            reads_segments=True,
            admin_credential=True,
        ),
    ),
    routes=(
        Route("customer-events", {"source": [SOURCE_INGEST]}, "identity"),
        Route(
            "resolved-events",
            {"source": [SOURCE_IDENTITY], "detail-type": [DETAIL_RESOLVED, DETAIL_MERGED]},
            "journey-router",
        ),
        # A profile entering or leaving a segment: journeys triggered, exited or converted by it.
        Route(
            "segment-changes",
            {"source": [SOURCE_SEGMENTS], "detail-type": [DETAIL_SEGMENT_ENTERED, DETAIL_SEGMENT_EXITED]},
            "journey-router",
        ),
        # Step Functions reports every execution's end on the account's default bus; the stack narrows
        # the rule to this stack's journeys (infra/stacks/continuum_stack.py).
        Route(
            "journey-executions",
            {
                "source": [SOURCE_STATES],
                "detail-type": [DETAIL_EXECUTION_STATUS_CHANGE],
                # A stopped (ABORTED) execution's run was closed by whoever stopped it; the router
                # only forgets its parked wait_for, if any.
                "detail": {"status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]},
            },
            "journey-router",
            bus=DEFAULT_BUS,
        ),
        # What can change a profile's segments: its events and trait changes, and merges, unmerges and
        # a removed identifier (whose hashes leave the audiences). Time alone: the re-check schedules.
        Route(
            "segment-events",
            {
                "source": [SOURCE_IDENTITY],
                "detail-type": [
                    DETAIL_RESOLVED,
                    DETAIL_MERGED,
                    DETAIL_UNMERGED,
                    DETAIL_IDENTIFIER_REMOVED,
                ],
            },
            "segments",
        ),
        # SES reports bounces and complaints of every email (sent with the stack's configuration set,
        # whose event destination is the account's default bus).
        Route(
            "email-feedback",
            {"source": [SOURCE_SES], "detail-type": [DETAIL_BOUNCED, DETAIL_COMPLAINT]},
            "feedback",
            bus=DEFAULT_BUS,
        ),
    ),
    consumers=(
        QueueConsumer("email", "channel-email"),
        QueueConsumer("push", "channel-push"),
        QueueConsumer(AUDIENCES, "audiences"),
    ),
    http_routes=(
        HttpRoute("POST", "/v1/{proxy+}", "ingest"),
        HttpRoute("GET", "/openapi.json", "ingest", public=True),
        HttpRoute("GET", "/docs", "ingest", public=True),
        HttpRoute("GET", "/docs/{asset}", "ingest", public=True),  # Swagger UI's script and style
        HttpRoute("GET", "/v1/profiles", "profiles"),
        HttpRoute("GET", "/v1/profiles/{profileId}", "profiles"),
        HttpRoute("DELETE", "/v1/profiles/{profileId}", "profiles"),
        HttpRoute("POST", "/v1/profiles/{profileId}/unmerge", "profiles"),
        HttpRoute("PUT", "/v1/profiles/{profileId}/consent", "profiles"),
        HttpRoute("DELETE", "/v1/profiles/{profileId}/identifiers/{type}/{value}", "profiles"),
        HttpRoute("GET", "/v1/journeys", "journeys"),
        HttpRoute("GET", "/v1/journeys/{journeyId}", "journeys"),
        HttpRoute("GET", "/v1/segments", "segments-api"),
        HttpRoute("GET", "/v1/segments/{segmentId}", "segments-api"),
        # Public: the signed, expiring token in the path is the credential (shared/delivery/links.py).
        HttpRoute("POST", "/unsubscribe/{token}", "preferences", public=True),
        HttpRoute("GET", "/unsubscribe/{token}", "preferences", public=True),
        HttpRoute("GET", "/preferences/{token}", "preferences", public=True),
        HttpRoute("POST", "/preferences/{token}", "preferences", public=True),
    ),
    api_function="ingest",
    journey_task_function="deliver",
    journey_steps_function="journey-steps",
)
