"""Function settings as models over the environment, composed from small shared pieces.

Read when a handler first runs (`load`), never at import time, and never with an invented default
for a resource name: a missing variable fails loudly with its name. (pydantic-settings is not in the
Powertools layer, so these are plain pydantic models validated from `os.environ`.)
"""

from __future__ import annotations

import os
from functools import cache
from typing import Annotated, Literal, TypeVar

from pydantic import ConfigDict, Field, field_validator, model_validator

from shared.models.base import Model
from shared.models.types import iana_timezone


class _Env(Model):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# The shared pieces, as field types: each function's settings model is one class composed of
# these (a class per piece would cost every cold start ~1 ms per class to define).
EventBusName = Annotated[str, Field(alias="EVENT_BUS_NAME", min_length=1)]
ProfilesTable = Annotated[str, Field(alias="PROFILES_TABLE", min_length=1)]
JourneyRunsTable = Annotated[str, Field(alias="JOURNEY_RUNS_TABLE", min_length=1)]
MessagesTable = Annotated[str, Field(alias="MESSAGES_TABLE", min_length=1)]
JourneyWaitsTable = Annotated[str, Field(alias="JOURNEY_WAITS_TABLE", min_length=1)]
JourneyStatsTable = Annotated[str, Field(alias="JOURNEY_STATS_TABLE", min_length=1)]


class IngestSettings(_Env):
    event_bus_name: EventBusName
    sources_table: str = Field(alias="SOURCES_TABLE", min_length=1)
    seen_messages_table: str = Field(alias="SEEN_MESSAGES_TABLE", min_length=1)
    dedupe_window_seconds: int = Field(alias="DEDUPE_WINDOW_SECONDS", gt=0)
    # How long ingest trusts its cached answer for a write key: a revoked key stops within this time.
    write_key_cache_seconds: float = Field(alias="WRITE_KEY_CACHE_SECONDS", default=60, ge=0)


PolicyFile = Annotated[str, Field(alias="POLICY_FILE", min_length=1)]


class IdentitySettings(_Env):
    event_bus_name: EventBusName
    profiles_table: ProfilesTable
    policy_file: PolicyFile  # the topics an event's context.consent may name


class AdminCredential(_Env):
    """The admin credential of the admin APIs (profiles, journeys), exactly one of: in the cloud, the
    Secrets Manager secret holding the token (read at run time, so the token is in neither the
    template nor the environment); in the local runtime, the token's SHA-256."""

    admin_token_secret_arn: str | None = Field(alias="ADMIN_TOKEN_SECRET_ARN", default=None, min_length=1)
    admin_token_sha256: str | None = Field(
        alias="ADMIN_TOKEN_SHA256", default=None, pattern=r"^[0-9a-fA-F]{64}$"
    )

    @model_validator(mode="after")
    def _one_admin_credential(self) -> AdminCredential:
        if (self.admin_token_secret_arn is None) == (self.admin_token_sha256 is None):
            raise ValueError(
                "set exactly one of ADMIN_TOKEN_SECRET_ARN (cloud) and ADMIN_TOKEN_SHA256 (local)"
            )
        return self


class ProfilesApiSettings(AdminCredential):
    event_bus_name: EventBusName
    profiles_table: ProfilesTable
    messages_table: MessagesTable
    journey_runs_table: JourneyRunsTable
    journey_stats_table: JourneyStatsTable
    # Erasure removes the person from every ad audience first.
    audiences_queue_url: str = Field(alias="AUDIENCES_QUEUE_URL", min_length=1)
    policy_file: PolicyFile  # the topics and channels PUT /v1/profiles/{id}/consent accepts


# The journey catalogue file (shared/journeys/catalogue.py) replaces the JOURNEYS variable: a Lambda's
# environment holds 4 KB, not a hundred journeys.
JourneyCatalogue = Annotated[str, Field(alias="JOURNEY_CATALOGUE", min_length=1)]


class RouterSettings(_Env):
    journey_runs_table: JourneyRunsTable
    journey_waits_table: JourneyWaitsTable
    journey_stats_table: JourneyStatsTable
    messages_table: MessagesTable
    journey_catalogue: JourneyCatalogue
    # `arn:<partition>:states:<region>:<account>:stateMachine:`; + a catalogue entry's state machine name.
    state_machine_arn_prefix: str = Field(
        alias="JOURNEY_STATE_MACHINE_ARN_PREFIX", pattern=r"^arn:[^:]+:states:[^:]+:[^:]+:stateMachine:$"
    )
    # The alias every journey is started through (cloud: `live`); set, and empty, where there is none.
    journey_alias: str = Field(alias="JOURNEY_ALIAS", pattern=r"^[A-Za-z0-9_-]{0,80}$")


class JourneysApiSettings(AdminCredential):
    journey_stats_table: JourneyStatsTable
    journey_catalogue: JourneyCatalogue


# The segment-members table (one item per member of a segment) and the segment catalogue file
# (shared/segments/catalogue.py).
SegmentMembersTable = Annotated[str, Field(alias="SEGMENT_MEMBERS_TABLE", min_length=1)]
SegmentCatalogueFile = Annotated[str, Field(alias="SEGMENT_CATALOGUE", min_length=1)]


class AudiencesSettings(_Env):
    segment_members_table: SegmentMembersTable
    profiles_table: ProfilesTable  # the segment states the messages are reconciled against
    # One Secrets Manager secret per ad platform (shared/store/ad_platforms.py). A platform without
    # one is not configured: an intent for it fails (and is dead-lettered) rather than vanish.
    meta_credentials_secret_arn: str | None = Field(
        alias="META_CREDENTIALS_SECRET_ARN", default=None, min_length=1
    )
    google_credentials_secret_arn: str | None = Field(
        alias="GOOGLE_CREDENTIALS_SECRET_ARN", default=None, min_length=1
    )
    # `live`: the platforms' HTTPS APIs; `local`: the local runtime's recorder stands in for them.
    ad_platforms: Literal["live", "local"] = Field(alias="AD_PLATFORMS")


class SegmentsApiSettings(AdminCredential):
    segment_members_table: SegmentMembersTable
    segment_catalogue: SegmentCatalogueFile


class DeliverSettings(_Env):
    profiles_table: ProfilesTable
    messages_table: MessagesTable
    journey_stats_table: JourneyStatsTable
    email_queue_url: str = Field(alias="EMAIL_QUEUE_URL", min_length=1)
    push_queue_url: str = Field(alias="PUSH_QUEUE_URL", min_length=1)
    # The send policy's JSON file (shared/delivery/policy.py; cloud: in the shared layer).
    policy_file: str = Field(alias="POLICY_FILE", min_length=1)

    def queue_url(self, channel: str) -> str:
        url: str = getattr(self, f"{channel}_queue_url")
        return url


class JourneyStepsSettings(_Env):
    profiles_table: ProfilesTable
    messages_table: MessagesTable
    journey_waits_table: JourneyWaitsTable
    event_bus_name: EventBusName
    policy_file: PolicyFile  # update: its identify is applied as identity applies one (consent too)
    # The time zone of local-time waits for a recipient with no known zone (an IANA name).
    default_timezone: str = Field(alias="DEFAULT_TIMEZONE", min_length=1)

    @field_validator("default_timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        if iana_timezone(value) is None:
            raise ValueError(f"DEFAULT_TIMEZONE {value!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)")
        return value


AudiencesQueueUrl = Annotated[str, Field(alias="AUDIENCES_QUEUE_URL", min_length=1)]


class SegmentsSettings(_Env):
    profiles_table: ProfilesTable
    event_bus_name: EventBusName
    audiences_queue_url: AudiencesQueueUrl
    segment_catalogue: SegmentCatalogueFile
    recheck_schedule_group: str = Field(alias="RECHECK_SCHEDULE_GROUP", min_length=1)
    recheck_role_arn: str = Field(alias="RECHECK_ROLE_ARN", pattern=r"^arn:[^:]+:iam::[^:]*:role/.+$")


class LinkSigningKey(_Env):
    """The key signing the unsubscribe and preference links (shared/store/link_key.py), exactly one
    of: in the cloud, the Secrets Manager secret holding it; locally, the key itself as hex."""

    link_signing_secret_arn: str | None = Field(alias="LINK_SIGNING_SECRET_ARN", default=None, min_length=1)
    link_signing_key: str | None = Field(
        alias="LINK_SIGNING_KEY", default=None, pattern=r"^([0-9a-fA-F]{2}){32,}$"
    )

    @model_validator(mode="after")
    def _one_link_key(self) -> LinkSigningKey:
        if (self.link_signing_secret_arn is None) == (self.link_signing_key is None):
            raise ValueError(
                "set exactly one of LINK_SIGNING_SECRET_ARN (cloud) and LINK_SIGNING_KEY (local)"
            )
        return self


# Where the links in an email point: the public API's base URL (cloud: the HTTP API's URL; local: the
# running server's address, a placeholder when none runs).
PublicBaseUrl = Annotated[str, Field(alias="PUBLIC_BASE_URL", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]


class LinkSettings(LinkSigningKey):
    """What signs an email's links (the send gate composes it into its settings)."""

    public_base_url: PublicBaseUrl


class PreferencesSettings(LinkSigningKey):
    """The unsubscribe and preference pages: the token names the profile, the policy its topics."""

    profiles_table: ProfilesTable
    policy_file: str = Field(alias="POLICY_FILE", min_length=1)


class EmailSettings(_Env):
    messages_table: MessagesTable
    email_sender: str = Field(alias="EMAIL_SENDER", min_length=3)
    # The SES configuration set every email is sent with: its event destination reports bounces and
    # complaints to EventBridge (the feedback function).
    email_configuration_set: str = Field(alias="EMAIL_CONFIGURATION_SET", min_length=1)


class FeedbackSettings(_Env):
    profiles_table: ProfilesTable


class PushSettings(_Env):
    messages_table: MessagesTable
    # A disabled endpoint's token is removed from its profile, and the bus told (identifier.removed).
    profiles_table: ProfilesTable
    event_bus_name: EventBusName
    push_platform_application_arn: str = Field(alias="PUSH_PLATFORM_APPLICATION_ARN", min_length=1)


S = TypeVar("S", bound=_Env)


@cache
def load(model: type[S]) -> S:
    return model.model_validate(dict(os.environ))


def reset() -> None:
    """Forget loaded settings (the local runtime and tests change the environment)."""
    load.cache_clear()
