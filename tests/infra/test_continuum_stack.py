"""The CDK app, checked against the topology it is built from.

One synth for the whole module (it is the slow part, cdk-nag included). Resources are found by what
they are (a function by its description, a table by its key schema), never by a generated logical ID.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint

from infra.app import (
    PLACEHOLDERS,
    STACK_NAME,
    DeploySettings,
    UnsafeSettingsError,
    build_app,
    cdk_json_context,
    read_settings,
)
from infra.constructs.event_bus import ARCHIVE_RETENTION
from infra.constructs.function_factory import OBSERVABILITY_ENV
from infra.constructs.http_api import THROTTLE
from infra.constructs.journeys import (
    ALIAS,
    CATALOGUE_IN_LAYER,
    catalogue_file,
    name_prefix,
    state_machine_name,
)
from infra.constructs.monitoring import METRICS_NAMESPACE, SERVICE
from infra.constructs.policy import POLICY_IN_LAYER, policy_file
from infra.constructs.segments import LIVE_AD_PLATFORMS, SEGMENTS_IN_LAYER
from infra.constructs.shared_layer import content_hash
from infra.stacks.continuum_stack import TAGS
from infra.topology import (
    AD_PLATFORM_SECRET_ENVS,
    AD_PLATFORMS_ENV,
    ADMIN_TOKEN_SECRET_ENV,
    DEFAULT_BUS,
    EMAIL_CONFIGURATION_SET_ENV,
    EVENT_BUS_ENV,
    JOURNEY_ALIAS_ENV,
    JOURNEY_ARN_PREFIX_ENV,
    JOURNEY_CATALOGUE_ENV,
    LINK_SIGNING_SECRET_ENV,
    POLICY_FILE,
    POLICY_FILE_ENV,
    PUBLIC_BASE_URL_ENV,
    RECHECK_ROLE_ARN_ENV,
    RECHECK_SCHEDULE_GROUP_ENV,
    ROOT,
    SEGMENT_CATALOGUE_ENV,
    TOPOLOGY,
    VISIBILITY_TIMEOUT_FACTOR,
    Function,
    Table,
    queue_env,
    table_env,
)
from shared.delivery.policy import PolicyLoadError, read_policy_yaml
from shared.ingest import docs
from shared.journeys.catalogue import load_catalogue
from shared.journeys.compiler import compile_journey
from shared.journeys.loader import load_journeys
from shared.models.events import EXECUTION_FAILED_STATUSES, EXECUTIONS_FAILED_METRIC
from shared.models.policy import Policy

JOURNEYS = load_journeys(TOPOLOGY.journeys_dir)

# A deployment's own settings, as an operator would set them: the synth below runs strict, as a deploy.
DEPLOY_SETTINGS = {
    "continuum:EMAIL_SENDER": "news@shop.acme.io",
    "continuum:PUSH_PLATFORM_APPLICATION_ARN": "arn:aws:sns:eu-west-1:111122223333:app/GCM/shop",
    "continuum:ALARM_EMAIL": "ops@shop.acme.io",
    "continuum:strict": "true",
}
DEPLOY_CONTEXT = {**cdk_json_context(), **DEPLOY_SETTINGS}

# The only actions AWS offers no resource-level permissions for, among those this stack needs.
UNSCOPABLE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # The task token names the one execution step it resumes (or fails: a send's deferral).
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
}


@dataclass(frozen=True)
class Synth:
    template: Template
    outdir: Path
    template_file: str

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template.to_json()["Resources"]
        return resources


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    _, stack = build_app(outdir=outdir, context=DEPLOY_CONTEXT)
    # A full synth, with cdk-nag: unacknowledged findings would already fail here.
    template = Template.from_stack(stack)
    return Synth(template=template, outdir=outdir, template_file=stack.template_file)


# --- finding resources by what they are --------------------------------------------------------------


def the_id(template: Template, resource_type: str, properties: dict[str, Any]) -> str:
    found = list(template.find_resources(resource_type, {"Properties": properties}))
    assert len(found) == 1, f"expected one {resource_type} like {properties}, found {found}"
    return found[0]


def arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def function_id(template: Template, spec: Function) -> str:
    return the_id(template, "AWS::Lambda::Function", {"Description": spec.description})


def key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    return keys + ([{"AttributeName": sort_key, "KeyType": "RANGE"}] if sort_key else [])


def table_id(template: Template, spec: Table) -> str:
    return the_id(
        template, "AWS::DynamoDB::Table", {"KeySchema": key_schema(spec.partition_key, spec.sort_key)}
    )


def queue_id(template: Template, queue: str) -> str:
    """A work queue, found as the event source of the function that consumes it."""
    consumer = next(c for c in TOPOLOGY.consumers if c.queue == queue)
    mapping_id = the_id(
        template,
        "AWS::Lambda::EventSourceMapping",
        {"FunctionName": {"Ref": function_id(template, TOPOLOGY.function(consumer.function))}},
    )
    source: str = template.to_json()["Resources"][mapping_id]["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
    return source


def admin_secret_id(template: Template) -> str:
    return the_id(
        template,
        "AWS::SecretsManager::Secret",
        {"Description": Match.string_like_regexp("admin token")},
    )


def link_secret_id(template: Template) -> str:
    return the_id(
        template,
        "AWS::SecretsManager::Secret",
        {"Description": Match.string_like_regexp("signing the unsubscribe and preference links")},
    )


def api_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::ApiGatewayV2::Api")))


def ad_secret_id(template: Template, platform: str) -> str:
    return the_id(
        template,
        "AWS::SecretsManager::Secret",
        {"Description": Match.string_like_regexp(f"ad audiences: {platform} credentials")},
    )


def schedule_group_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::Scheduler::ScheduleGroup")))


def recheck_role_id(template: Template) -> str:
    return the_id(
        template,
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {"Statement": [Match.object_like({"Principal": {"Service": "scheduler.amazonaws.com"}})]}
            )
        },
    )


def configuration_set_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::SES::ConfigurationSet")))


def bus_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::Events::EventBus")))


def state_machine_ids(synth: Synth) -> dict[str, str]:
    """Journey id → state machine logical id, recognised by its name."""
    by_name = {
        resource["Properties"]["StateMachineName"]: logical_id
        for logical_id, resource in synth.template.find_resources("AWS::StepFunctions::StateMachine").items()
    }
    return {j.definition.id: by_name[state_machine_name(STACK_NAME, j.definition.id)] for j in JOURNEYS}


def definition(synth: Synth, state_machine: dict[str, Any]) -> Any:
    """A state machine's definition, from the asset it is deployed from (in the cloud assembly)."""
    location = state_machine["Properties"]["DefinitionS3Location"]
    return json.loads((synth.outdir / f"asset.{location['Key']}").read_text())


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(synth: Synth, spec: Function) -> set[tuple[str, str]]:
    """(action, resource as JSON) pairs the function's role is allowed."""
    role_id = synth.resources[function_id(synth.template, spec)]["Properties"]["Role"]["Fn::GetAtt"][0]
    pairs = set()
    for policy in synth.template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                for action in as_list(statement["Action"]):
                    for resource in as_list(statement["Resource"]):
                        pairs.add((action, json.dumps(resource, sort_keys=True)))
    return pairs


# --- the HTTP API ------------------------------------------------------------------------------------


def test_http_api_proxies_segment_calls_to_the_api_function(synth: Synth) -> None:
    ingest = function_id(synth.template, TOPOLOGY.function(TOPOLOGY.api_function))
    synth.template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    synth.template.has_resource_properties("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})
    synth.template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": "POST /v1/{proxy+}"})
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Integration",
        {"IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0", "IntegrationUri": arn(ingest)},
    )


def test_every_topology_route_is_an_api_route_to_its_function(synth: Synth) -> None:
    routes = synth.template.find_resources("AWS::ApiGatewayV2::Route")
    keys = {r["Properties"]["RouteKey"] for r in routes.values()}
    assert keys == {f"{route.method} {route.path}" for route in TOPOLOGY.http_routes}
    profiles = function_id(synth.template, TOPOLOGY.function("profiles"))
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Integration", {"IntegrationType": "AWS_PROXY", "IntegrationUri": arn(profiles)}
    )


def test_http_api_stage_is_throttled_and_access_logged(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingBurstLimit": THROTTLE.burst_limit,
                "ThrottlingRateLimit": THROTTLE.rate_limit,
            },
            "AccessLogSettings": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp(r"\$context\.requestId"),
            },
        },
    )


def test_http_api_access_log_records_the_route_never_the_path_or_the_callers_address(synth: Synth) -> None:
    # A path can hold an identifier (/v1/profiles/{profileId}/identifiers/email/ada@example.com): the
    # route template says which route was called without it. A caller's IP address is personal data.
    stage = next(iter(synth.template.find_resources("AWS::ApiGatewayV2::Stage").values()))
    fields = json.loads(stage["Properties"]["AccessLogSettings"]["Format"])

    assert fields["routeKey"] == "$context.routeKey"
    recorded = set(fields.values())
    assert not recorded & {"$context.path", "$context.identity.sourceIp", "$context.domainName"}
    assert not any("querystring" in value.lower() for value in recorded)


# --- the bus and its routes --------------------------------------------------------------------------


def test_event_bus_archives_every_event(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::Events::EventBus", 1)
    synth.template.resource_count_is("AWS::Events::Archive", 1)
    synth.template.has_resource_properties(
        "AWS::Events::Archive",
        {
            "SourceArn": arn(bus_id(synth.template)),
            "EventPattern": {"account": [{"Ref": "AWS::AccountId"}]},
            "RetentionDays": ARCHIVE_RETENTION.to_days(),
        },
    )


def test_one_rule_per_route_with_its_pattern_targeting_its_function_with_retries_and_dead_letters(
    synth: Synth,
) -> None:
    synth.template.resource_count_is("AWS::Events::Rule", len(TOPOLOGY.routes))
    for route in TOPOLOGY.routes:
        on_default_bus = route.bus == DEFAULT_BUS
        synth.template.has_resource_properties(
            "AWS::Events::Rule",
            {
                # No bus named: the account's default bus.
                "EventBusName": Match.absent() if on_default_bus else {"Ref": bus_id(synth.template)},
                # On the default bus the stack adds its own state machines to the route's detail.
                "EventPattern": Match.object_like(
                    {**route.pattern, "detail": Match.object_like(route.pattern.get("detail", {}))}
                )
                if on_default_bus
                else Match.exact(route.pattern),
                "Targets": [
                    Match.object_like(
                        {
                            "Arn": arn(function_id(synth.template, TOPOLOGY.function(route.function))),
                            "DeadLetterConfig": {"Arn": Match.any_value()},
                            "RetryPolicy": {"MaximumRetryAttempts": Match.any_value()},
                        }
                    )
                ],
            },
        )


# --- tables and queues -------------------------------------------------------------------------------


def test_one_on_demand_recoverable_encrypted_table_per_topology_table(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::DynamoDB::Table", len(TOPOLOGY.tables))
    for spec in TOPOLOGY.tables:
        properties = synth.resources[table_id(synth.template, spec)]["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"] == {"SSEEnabled": True}
        assert {d["AttributeType"] for d in properties["AttributeDefinitions"]} == {"S"}
        indexes = {i["IndexName"]: i for i in properties.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {index.name for index in spec.indexes}
        for index in spec.indexes:
            assert indexes[index.name]["KeySchema"] == key_schema(index.partition_key, index.sort_key)
            assert indexes[index.name]["Projection"] == {"ProjectionType": "ALL"}
        if spec.ttl_attribute:
            assert properties["TimeToLiveSpecification"] == {
                "AttributeName": spec.ttl_attribute,
                "Enabled": True,
            }


def test_every_queue_is_redriven_to_a_dead_letter_queue_or_is_one(synth: Synth) -> None:
    queues = synth.template.find_resources("AWS::SQS::Queue")
    dead_letter_ids = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    } | {
        f["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        for f in synth.template.find_resources("AWS::Lambda::Function").values()
        if "DeadLetterConfig" in f["Properties"]
    }
    for logical_id, queue in queues.items():
        assert "RedrivePolicy" in queue["Properties"] or logical_id in dead_letter_ids, logical_id
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    for spec in TOPOLOGY.queues:
        properties = synth.resources[queue_id(synth.template, spec.name)]["Properties"]
        assert properties["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count


@pytest.mark.parametrize("consumer", TOPOLOGY.consumers, ids=lambda consumer: consumer.queue)
def test_each_queue_hides_a_received_message_six_times_its_consumers_timeout(
    synth: Synth, consumer: Any
) -> None:
    # AWS: at least six times the function's timeout, or a batch Lambda retries after a throttle is
    # handed out again while still being processed.
    function = TOPOLOGY.function(consumer.function)
    properties = synth.resources[queue_id(synth.template, consumer.queue)]["Properties"]
    assert VISIBILITY_TIMEOUT_FACTOR >= 6
    assert properties["VisibilityTimeout"] >= 6 * function.timeout_seconds
    assert properties["VisibilityTimeout"] == TOPOLOGY.visibility_timeout_seconds(consumer.queue)


def test_every_queue_refuses_requests_without_tls(synth: Synth) -> None:
    queue_ids = set(synth.template.find_resources("AWS::SQS::Queue"))
    protected = {
        policy["Properties"]["Queues"][0]["Ref"]
        for policy in synth.template.find_resources(
            "AWS::SQS::QueuePolicy",
            {
                "Properties": {
                    "PolicyDocument": {
                        "Statement": Match.array_with(
                            [
                                Match.object_like(
                                    {
                                        "Effect": "Deny",
                                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                    }
                                )
                            ]
                        )
                    }
                }
            },
        ).values()
    }
    assert protected == queue_ids


def test_each_queue_consumer_reads_its_queue_reporting_partial_batch_failures(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::Lambda::EventSourceMapping", len(TOPOLOGY.consumers))
    for consumer in TOPOLOGY.consumers:
        synth.template.has_resource_properties(
            "AWS::Lambda::EventSourceMapping",
            {
                "FunctionName": {"Ref": function_id(synth.template, TOPOLOGY.function(consumer.function))},
                "EventSourceArn": arn(queue_id(synth.template, consumer.queue)),
                "BatchSize": consumer.batch_size,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        )


# --- journeys ----------------------------------------------------------------------------------------


def test_one_standard_state_machine_per_journey_running_its_compiled_definition(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::StepFunctions::StateMachine", len(JOURNEYS))
    deliver = function_id(synth.template, TOPOLOGY.function(TOPOLOGY.journey_task_function))
    journey_steps = function_id(synth.template, TOPOLOGY.function(TOPOLOGY.journey_steps_function))
    ids = state_machine_ids(synth)
    for journey in JOURNEYS:
        properties = synth.resources[ids[journey.definition.id]]["Properties"]
        # The very artifact the local runtime runs, placeholder included; CloudFormation substitutes it.
        # From S3, not in the template: the template would outgrow CloudFormation's 1 MB.
        assert "DefinitionString" not in properties
        assert definition(synth, synth.resources[ids[journey.definition.id]]) == compile_journey(journey)
        # Only the placeholders the definition uses (password_reset is one send: no journey-steps task).
        compiled = json.dumps(compile_journey(journey))
        assert properties["DefinitionSubstitutions"] == {
            name: value
            for name, value in (
                ("DeliverFunctionArn", arn(deliver)),
                ("JourneyStepsFunctionArn", arn(journey_steps)),
            )
            if f"${{{name}}}" in compiled
        }
        assert "DeliverFunctionArn" in properties["DefinitionSubstitutions"]
        assert properties["StateMachineType"] == "STANDARD"
        assert properties["LoggingConfiguration"]["Level"] == "ALL"
        assert properties["TracingConfiguration"] == {"Enabled": True}


def test_each_state_machine_has_a_name_derived_from_the_stack_and_the_journey(synth: Synth) -> None:
    # Derivable names are what lets the catalogue (a file built at synth) carry the ARNs.
    ids = state_machine_ids(synth)
    for journey in JOURNEYS:
        name = synth.resources[ids[journey.definition.id]]["Properties"]["StateMachineName"]
        assert (
            name
            == f"{STACK_NAME}_{journey.definition.id}"
            == state_machine_name(STACK_NAME, journey.definition.id)
        )


def test_state_machine_names_fit_step_functions_and_name_this_stack_only() -> None:
    longest_id = "j" * 63
    for stack_name in ("Continuum", "C", "ContinuumProductionEuWest1-Blue"):
        name = state_machine_name(stack_name, longest_id)
        assert len(name) <= 80
        assert name.startswith(name_prefix(stack_name)) and name_prefix(stack_name).count("_") == 1
    # A stack whose name starts like ours cannot share our prefix: stack names have no '_'.
    assert not state_machine_name("Continuum-Staging", "win_back").startswith(name_prefix("Continuum"))
    # Cut names stay apart.
    assert name_prefix("ContinuumProductionA") != name_prefix("ContinuumProductionB")


def test_each_state_machine_publishes_a_version_per_definition_and_an_alias_on_it(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::StepFunctions::StateMachineVersion", len(JOURNEYS))
    synth.template.resource_count_is("AWS::StepFunctions::StateMachineAlias", len(JOURNEYS))
    versions = synth.template.find_resources("AWS::StepFunctions::StateMachineVersion")
    aliases = synth.template.find_resources("AWS::StepFunctions::StateMachineAlias")
    for machine in state_machine_ids(synth).values():
        # The revision id changes with the definition and is immutable on a version: a changed journey
        # replaces its version, i.e. publishes a new one.
        [version] = [
            logical_id
            for logical_id, v in versions.items()
            if v["Properties"]["StateMachineArn"] == {"Ref": machine}
            and v["Properties"]["StateMachineRevisionId"]
            == {"Fn::GetAtt": [machine, "StateMachineRevisionId"]}
        ]
        [alias] = [
            a["Properties"]
            for a in aliases.values()
            if a["Properties"]["RoutingConfiguration"][0]["StateMachineVersionArn"]
            == {"Fn::GetAtt": [version, "Arn"]}
        ]
        assert alias["Name"] == ALIAS == "live"
        assert alias["RoutingConfiguration"] == [
            {"StateMachineVersionArn": {"Fn::GetAtt": [version, "Arn"]}, "Weight": 100}
        ]


def journeys_role_statements(synth: Synth) -> list[dict[str, Any]]:
    roles = {
        m["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        for m in synth.template.find_resources("AWS::StepFunctions::StateMachine").values()
    }
    assert len(roles) == 1, "one role for every journey"
    return [
        statement
        for policy in synth.template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": next(iter(roles))} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_state_machines_may_invoke_the_send_gate_and_the_journey_steps_function_and_nothing_else(
    synth: Synth,
) -> None:
    deliver = function_id(synth.template, TOPOLOGY.function(TOPOLOGY.journey_task_function))
    journey_steps = function_id(synth.template, TOPOLOGY.function(TOPOLOGY.journey_steps_function))
    invokes = [s for s in journeys_role_statements(synth) if "lambda:InvokeFunction" in as_list(s["Action"])]
    # The unqualified ARNs only (what the definitions name), not CDK's grant_invoke's `<arn>:*` too.
    assert [sorted(json.dumps(r, sort_keys=True) for r in as_list(s["Resource"])) for s in invokes] == [
        sorted(json.dumps(arn(f), sort_keys=True) for f in (deliver, journey_steps))
    ]


def layer_dir(synth: Synth) -> Path:
    [layer] = [d for d in synth.outdir.glob("asset.*") if (d / "python" / "shared").is_dir()]
    return layer


def test_the_catalogue_ships_in_the_shared_layer_with_every_journey_and_its_state_machine(
    synth: Synth,
) -> None:
    # Read as the functions read it.
    catalogue = load_catalogue(layer_dir(synth) / CATALOGUE_IN_LAYER)
    assert [(e.state_machine, e.definition) for e in catalogue.journeys] == [
        (state_machine_name(STACK_NAME, j.definition.id), j.definition) for j in JOURNEYS
    ]


def test_a_changed_journey_changes_the_layers_hash_so_the_layer_is_bundled_and_deployed_again() -> None:
    # The layer's asset hash is custom (no Docker, local bundling): it must cover the catalogue too.
    catalogue = catalogue_file(JOURNEYS, {j.definition.id: f"m{i}" for i, j in enumerate(JOURNEYS)})
    changed = catalogue.replace(b'"m0"', b'"m9"')
    assert changed != catalogue
    assert content_hash({CATALOGUE_IN_LAYER: catalogue}) == content_hash({CATALOGUE_IN_LAYER: catalogue})
    assert content_hash({CATALOGUE_IN_LAYER: catalogue}) != content_hash({CATALOGUE_IN_LAYER: changed})


def test_the_send_gate_reads_the_policy_shipped_in_the_layer_as_validated_json() -> None:
    assert "deliver" in {f.name for f in TOPOLOGY.functions if f.reads_policy}
    shipped = Policy.model_validate_json(policy_file(POLICY_FILE))
    assert shipped == read_policy_yaml(POLICY_FILE)
    assert shipped.quiet_hours is not None and shipped.caps  # the shipped defaults, not a test's


def test_a_policy_naming_an_unknown_topic_fails_the_synth(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("topics: {marketing: {}}\n", encoding="utf-8")  # no transactional topic
    with pytest.raises(PolicyLoadError, match="transactional"):
        policy_file(bad)


def test_catalogue_readers_get_its_path_the_arn_prefix_and_the_alias_not_the_catalogue(synth: Synth) -> None:
    readers = [f for f in TOPOLOGY.functions if f.reads_journeys]
    assert "journey-router" in {f.name for f in readers}
    for spec in readers:
        variables = synth.resources[function_id(synth.template, spec)]["Properties"]["Environment"][
            "Variables"
        ]
        assert variables[JOURNEY_CATALOGUE_ENV] == f"/opt/{CATALOGUE_IN_LAYER}"
        assert variables[JOURNEY_ALIAS_ENV] == "live"
        assert variables[JOURNEY_ARN_PREFIX_ENV] == _states_arn(":stateMachine:")
        assert "JOURNEYS" not in variables


def _states_arn(tail: str) -> dict[str, Any]:
    """A Step Functions ARN in this stack's partition, region and account, ending with `tail`."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":states:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                tail,
            ],
        ]
    }


def _on_our_journeys(kind: str, suffix: str) -> str:
    return json.dumps(
        _states_arn(f":{kind}:{STACK_NAME}_{suffix}"),
        sort_keys=True,
    )


def test_journey_controllers_may_start_on_the_alias_and_stop_or_describe_executions_of_our_journeys(
    synth: Synth,
) -> None:
    for spec in TOPOLOGY.functions:
        allowed = granted(synth, spec)
        # Continuum_* covers each machine and its `:live` alias (Step Functions authorizes an alias's
        # start against the state machine ARN), and only this stack's machines.
        starts = ("states:StartExecution", _on_our_journeys("stateMachine", "*")) in allowed
        stops = ("states:StopExecution", _on_our_journeys("execution", "*")) in allowed
        describes = ("states:DescribeExecution", _on_our_journeys("execution", "*")) in allowed
        assert starts == stops == describes == spec.controls_journeys, spec.name
        # Nothing else on Step Functions.
        expected = {"states:StartExecution", "states:StopExecution", "states:DescribeExecution"}
        expected = (
            (expected if spec.controls_journeys else set())
            | ({"states:SendTaskSuccess"} if spec.resumes_journeys else set())
            | ({"states:SendTaskFailure"} if spec.fails_journey_tasks else set())
        )
        assert {a for a, _ in allowed if a.startswith("states:")} == expected, spec.name


def test_functions_that_resume_journeys_may_send_task_success_and_no_other(synth: Synth) -> None:
    assert any(f.resumes_journeys for f in TOPOLOGY.functions)
    for spec in TOPOLOGY.functions:
        allowed = granted(synth, spec)
        assert (("states:SendTaskSuccess", json.dumps("*")) in allowed) == spec.resumes_journeys, spec.name


def test_the_send_gate_answers_its_send_steps_token_and_only_it_may_fail_a_task(synth: Synth) -> None:
    # A send step parks on a task token that deliver answers: the outcome resumes the run
    # (SendTaskSuccess), a deferral fails it with the error the step catches (SendTaskFailure).
    deliver = TOPOLOGY.function(TOPOLOGY.journey_task_function)
    assert {("states:SendTaskSuccess", json.dumps("*")), ("states:SendTaskFailure", json.dumps("*"))} <= (
        granted(synth, deliver)
    )
    for spec in TOPOLOGY.functions:
        fails = ("states:SendTaskFailure", json.dumps("*")) in granted(synth, spec)
        assert fails == (spec.name == deliver.name) == spec.fails_journey_tasks, spec.name


def test_execution_status_changes_of_our_journeys_reach_the_router_from_the_default_bus(synth: Synth) -> None:
    [route] = [r for r in TOPOLOGY.routes if r.bus == DEFAULT_BUS and r.pattern["source"] == ["aws.states"]]
    [rule] = [
        r["Properties"]
        for r in synth.template.find_resources("AWS::Events::Rule").values()
        if "EventBusName" not in r["Properties"]
        and r["Properties"]["EventPattern"]["source"] == ["aws.states"]
    ]
    assert rule["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        # One rule for every journey, narrowed to this stack's state machines by their name prefix,
        # on every end (a run to close, or a parked wait to forget).
        "detail": {
            "status": ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"],
            "stateMachineArn": [{"prefix": json.loads(_on_our_journeys("stateMachine", ""))}],
        },
    }
    assert rule["Targets"][0]["Arn"] == arn(function_id(synth.template, TOPOLOGY.function(route.function)))
    assert route.function == "journey-router"


# --- functions -------------------------------------------------------------------------------------


def test_one_function_per_topology_function_on_the_shared_defaults(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::Lambda::Function", len(TOPOLOGY.functions))
    for spec in TOPOLOGY.functions:
        synth.template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Description": spec.description,
                "Runtime": "python3.12",
                "Architectures": ["arm64"],
                "Handler": "handler.handler",
                "TracingConfig": {"Mode": "Active"},
                "Timeout": spec.timeout_seconds,
                "MemorySize": spec.memory_mb,
                "Layers": [Match.any_value(), Match.any_value()],  # Powertools, shared
                "LoggingConfig": {"LogGroup": Match.any_value()},
            },
        )


@pytest.mark.parametrize("spec", TOPOLOGY.functions, ids=lambda spec: spec.name)
def test_each_function_gets_the_environment_its_topology_entry_declares(synth: Synth, spec: Function) -> None:
    expected: dict[str, Any] = dict(OBSERVABILITY_ENV)
    expected |= {
        table_env(t.table): {"Ref": table_id(synth.template, TOPOLOGY.table(t.table))} for t in spec.tables
    }
    expected |= {queue_env(q.queue): {"Ref": queue_id(synth.template, q.queue)} for q in spec.queues}
    if spec.publishes:
        expected[EVENT_BUS_ENV] = {"Ref": bus_id(synth.template)}
    expected |= {name: DEPLOY_CONTEXT[f"continuum:{name}"] for name in spec.settings}
    if spec.admin_credential:
        expected[ADMIN_TOKEN_SECRET_ENV] = {"Ref": admin_secret_id(synth.template)}
    if spec.signs_links:
        expected[LINK_SIGNING_SECRET_ENV] = {"Ref": link_secret_id(synth.template)}
    if spec.reads_policy:
        expected[POLICY_FILE_ENV] = f"/opt/{POLICY_IN_LAYER}"

    if spec.reads_segments:
        expected[SEGMENT_CATALOGUE_ENV] = f"/opt/{SEGMENTS_IN_LAYER}"
    if spec.reads_policy:
        expected[POLICY_FILE_ENV] = f"/opt/{POLICY_IN_LAYER}"
    if "EMAIL_SENDER" in spec.settings:
        expected[EMAIL_CONFIGURATION_SET_ENV] = {"Ref": configuration_set_id(synth.template)}
    if spec.schedules_rechecks:
        expected[RECHECK_SCHEDULE_GROUP_ENV] = {"Ref": schedule_group_id(synth.template)}
        expected[RECHECK_ROLE_ARN_ENV] = arn(recheck_role_id(synth.template))
    if spec.calls_ad_platforms:
        expected[AD_PLATFORMS_ENV] = LIVE_AD_PLATFORMS
        expected |= {
            variable: {"Ref": ad_secret_id(synth.template, platform)}
            for platform, variable in AD_PLATFORM_SECRET_ENVS.items()
        }

    variables = synth.resources[function_id(synth.template, spec)]["Properties"]["Environment"]["Variables"]
    journeys = (
        {JOURNEY_CATALOGUE_ENV, JOURNEY_ARN_PREFIX_ENV, JOURNEY_ALIAS_ENV} if spec.reads_journeys else set()
    )
    links = {PUBLIC_BASE_URL_ENV} if spec.signs_links else set()  # checked below
    assert set(variables) == set(expected) | journeys | links
    assert {k: variables[k] for k in expected} == expected


@pytest.mark.parametrize("spec", TOPOLOGY.functions, ids=lambda spec: spec.name)
def test_each_function_reads_the_tables_it_declares_and_writes_only_those_it_may(
    synth: Synth, spec: Function
) -> None:
    allowed = granted(synth, spec)
    for table in TOPOLOGY.tables:
        table_arn = json.dumps(arn(table_id(synth.template, table)))
        access = next((a for a in spec.tables if a.table == table.name), None)
        assert (("dynamodb:GetItem", table_arn) in allowed) == (access is not None), table.name
        assert (("dynamodb:PutItem", table_arn) in allowed) == (access is not None and access.write), (
            table.name
        )


def test_no_policy_allows_every_action_or_every_resource_except_where_aws_has_no_resource_scope(
    synth: Synth,
) -> None:
    synth.template.all_resources_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})
    for policy in synth.template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert not [a for a in actions if a == "*" or a.endswith(":*")], statement
            if statement["Resource"] == "*":
                assert set(actions) <= UNSCOPABLE_ACTIONS, statement


def test_resources_carry_the_project_tags(synth: Synth) -> None:
    tags = Match.array_with([{"Key": key, "Value": value} for key, value in TAGS.items()])
    for resource_type in (
        "AWS::Lambda::Function",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
    ):
        synth.template.all_resources_properties(resource_type, {"Tags": tags})


def test_synth_stops_when_a_function_setting_has_no_value(tmp_path: Path) -> None:
    context = dict(DEPLOY_CONTEXT)
    del context["continuum:EMAIL_SENDER"]
    with pytest.raises(UnsafeSettingsError, match="continuum:EMAIL_SENDER"):
        build_app(outdir=tmp_path, context=context)


# --- checks on the whole template --------------------------------------------------------------------


def test_cdk_nag_reports_no_unacknowledged_finding_and_every_acknowledgment_is_narrow_and_reasoned(
    synth: Synth,
) -> None:
    # cdk-nag 3 is a validation plugin: findings go to the validation report, not to annotations.
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    nag = next(r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions")
    assert nag["conclusion"] == "success"
    assert [v["ruleName"] for v in nag.get("violations", [])] == []
    acknowledged = nag["suppressedViolations"]
    assert acknowledged, "cdk-nag did not run"
    for finding in acknowledged:
        assert len(finding["reason"]) > 40, finding["ruleName"]
        # On a resource or its owner, never the whole stack.
        assert finding["acknowledgedAt"].count("/") >= 2, finding["acknowledgedAt"]


def test_cfn_lint_finds_no_errors(synth: Synth) -> None:
    template = (synth.outdir / synth.template_file).read_text()
    matches = lint(template, config=ManualArgs(regions=["us-east-1"]))
    errors = [str(m) for m in matches if m.rule.id.startswith("E")]
    assert errors == []


# --- deploy settings ---------------------------------------------------------------------------------


def _settings(context: dict[str, Any]) -> tuple[DeploySettings, list[str]]:
    warnings: list[str] = []
    app = cdk.App(context=context)
    return read_settings(app, TOPOLOGY, warn=warnings.append), warnings


def test_a_deploy_with_the_shipped_cdk_json_is_refused_naming_each_placeholder() -> None:
    with pytest.raises(UnsafeSettingsError) as refused:
        _settings({**cdk_json_context(), "continuum:strict": "true"})
    message = str(refused.value)
    for name in PLACEHOLDERS:
        assert f"continuum:{name} is the placeholder" in message
        assert f"-c continuum:{name}=" in message  # how to set it


def test_without_the_strict_flag_the_app_still_refuses_placeholders() -> None:
    # Fail safe: a bare `cdk deploy` (no flag) must not deploy placeholders either.
    context = {k: v for k, v in cdk_json_context().items() if k != "continuum:strict"}
    with pytest.raises(UnsafeSettingsError, match="continuum:EMAIL_SENDER"):
        _settings(context)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMAIL_SENDER", "me@example.org"),
        ("EMAIL_SENDER", "me@mail.example"),
        ("PUSH_PLATFORM_APPLICATION_ARN", "arn:aws:sns:eu-west-1:123456789012:app/APNS/mine"),
    ],
)
def test_a_deploy_refuses_documentation_values_as_placeholders(name: str, value: str) -> None:
    with pytest.raises(UnsafeSettingsError, match=f"continuum:{name}"):
        _settings({**DEPLOY_CONTEXT, f"continuum:{name}": value})


def test_a_deploy_refuses_a_missing_setting_even_one_with_a_placeholder() -> None:
    context = {k: v for k, v in DEPLOY_CONTEXT.items() if k != "continuum:PUSH_PLATFORM_APPLICATION_ARN"}
    with pytest.raises(UnsafeSettingsError, match="continuum:PUSH_PLATFORM_APPLICATION_ARN is missing"):
        _settings(context)


def test_a_deploy_refuses_a_setting_this_version_does_not_know() -> None:
    # e.g. the old ADMIN_TOKEN_SHA256: the admin token is now generated in Secrets Manager.
    with pytest.raises(UnsafeSettingsError, match="continuum:ADMIN_TOKEN_SHA256 is not a setting"):
        _settings({**DEPLOY_CONTEXT, "continuum:ADMIN_TOKEN_SHA256": "1734d503" * 8})


def test_inspection_only_warns_about_placeholders_and_fills_a_missing_one() -> None:
    context = {**cdk_json_context(), "continuum:strict": "false"}
    del context["continuum:EMAIL_SENDER"]
    settings, warnings = _settings(context)
    assert settings.functions["EMAIL_SENDER"] == PLACEHOLDERS["EMAIL_SENDER"]
    assert any("continuum:EMAIL_SENDER is missing" in w for w in warnings)
    assert any("continuum:PUSH_PLATFORM_APPLICATION_ARN is the placeholder" in w for w in warnings)


def test_the_deploy_settings_pass_and_carry_the_alarm_email() -> None:
    settings, warnings = _settings(DEPLOY_CONTEXT)
    assert settings.alarm_email == DEPLOY_SETTINGS["continuum:ALARM_EMAIL"]
    assert warnings == []


def test_make_deploy_runs_strict_and_make_synth_inspects() -> None:
    targets = _make_targets()
    assert "-c continuum:strict=true" in targets["deploy"]
    assert "--inspect" in targets["synth"]


def _make_targets() -> dict[str, str]:
    targets: dict[str, str] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line and not line.startswith(("\t", "#", " ")) and ":" in line and "=" not in line.split(":")[0]:
            current = line.split(":")[0]
            targets[current] = ""
        elif line.startswith("\t") and current:
            targets[current] += line + "\n"
    return targets


# --- the links in emails ----------------------------------------------------------------------------


def test_the_link_signing_key_is_generated_by_secrets_manager(synth: Synth) -> None:
    secret = synth.resources[link_secret_id(synth.template)]["Properties"]
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32
    assert "LINK_SIGNING_KEY" not in json.dumps(synth.template.to_json())  # only the secret's ARN


def test_only_the_functions_signing_links_may_read_their_key(synth: Synth) -> None:
    secret = json.dumps({"Ref": link_secret_id(synth.template)}, sort_keys=True)
    signing = {spec.name for spec in TOPOLOGY.functions if spec.signs_links}
    assert {"deliver", "preferences"} <= signing
    for spec in TOPOLOGY.functions:
        assert (("secretsmanager:GetSecretValue", secret) in granted(synth, spec)) == spec.signs_links


def test_the_links_point_at_the_http_api(synth: Synth) -> None:
    # The URL is built from the HttpApi's id: no dependency on the routes that depend on the functions.
    for spec in TOPOLOGY.functions:
        if spec.signs_links:
            variables = synth.resources[function_id(synth.template, spec)]["Properties"]["Environment"]
            url = json.dumps(variables["Variables"][PUBLIC_BASE_URL_ENV])
            assert json.dumps({"Ref": api_id(synth.template)}) in url and "https://" in url


@pytest.mark.parametrize(
    "route",
    [
        "POST /unsubscribe/{token}",
        "GET /unsubscribe/{token}",
        "GET /preferences/{token}",
        "POST /preferences/{token}",
    ],
)
def test_the_link_routes_are_public_and_reach_the_preferences_function(synth: Synth, route: str) -> None:
    found = synth.template.find_resources("AWS::ApiGatewayV2::Route", {"Properties": {"RouteKey": route}})
    assert len(found) == 1
    properties = next(iter(found.values()))["Properties"]
    assert properties.get("AuthorizationType", "NONE") == "NONE"
    preferences = function_id(synth.template, TOPOLOGY.function("preferences"))
    integration = properties["Target"]["Fn::Join"][1][1]["Ref"]
    assert synth.resources[integration]["Properties"]["IntegrationUri"] == arn(preferences)


# --- the admin credential ----------------------------------------------------------------------------


def test_the_admin_token_is_generated_by_secrets_manager_and_never_in_the_template(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"PasswordLength": Match.any_value()})},
    )
    rendered = json.dumps(synth.template.to_json())
    assert "ADMIN_TOKEN_SHA256" not in rendered
    assert "dev-admin-token" not in rendered
    assert "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd" not in rendered  # its digest


def test_only_the_admin_credential_functions_may_read_the_admin_token(synth: Synth) -> None:
    secret = json.dumps({"Ref": admin_secret_id(synth.template)}, sort_keys=True)
    for spec in TOPOLOGY.functions:
        assert (("secretsmanager:GetSecretValue", secret) in granted(synth, spec)) == spec.admin_credential


def test_the_stack_outputs_where_to_read_the_admin_token_and_the_alarm_topic(synth: Synth) -> None:
    outputs = synth.template.to_json()["Outputs"]
    assert outputs["AdminTokenSecretArn"]["Value"] == {"Ref": admin_secret_id(synth.template)}
    assert "get-secret-value" in outputs["AdminTokenSecretArn"]["Description"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": topic_id(synth.template)}
    assert "DashboardName" in outputs


def test_the_stack_outputs_the_ad_platform_secrets_the_operator_fills(synth: Synth) -> None:
    outputs = synth.template.to_json()["Outputs"]
    secrets = synth.template.find_resources("AWS::SecretsManager::Secret")
    for platform in ("Meta", "Google"):
        value = outputs[f"{platform}CredentialsSecretArn"]["Value"]
        [secret_id] = [
            key
            for key, resource in secrets.items()
            if f"{platform.lower()} credentials" in resource["Properties"].get("Description", "")
        ]
        assert value == {"Ref": secret_id}


# --- monitoring --------------------------------------------------------------------------------------


def topic_id(template: Template) -> str:
    return the_id(template, "AWS::SNS::Topic", {})


def alarms(synth: Synth, namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        a["Properties"]
        for a in synth.template.find_resources(
            "AWS::CloudWatch::Alarm", {"Properties": {"Namespace": namespace, "MetricName": metric}}
        ).values()
    ]


def alarmed(synth: Synth, namespace: str, metric: str, dimension: str) -> set[str]:
    """Logical ids of the resources alarmed on `metric`, each at least once as soon as it is 1."""
    found = set()
    for alarm in alarms(synth, namespace, metric):
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [{"Ref": topic_id(synth.template)}]
        [value] = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == dimension]
        found.add(value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0])
    return found


def test_every_dead_letter_queue_has_a_depth_alarm_to_the_topic(synth: Synth) -> None:
    queues = synth.template.find_resources("AWS::SQS::Queue")
    dead_letter_ids = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    } | {
        f["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
        for f in synth.template.find_resources("AWS::Lambda::Function").values()
        if "DeadLetterConfig" in f["Properties"]
    }
    assert dead_letter_ids
    watched = alarmed(synth, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    assert watched == dead_letter_ids


def test_every_function_has_an_error_alarm_to_the_topic(synth: Synth) -> None:
    functions = set(synth.template.find_resources("AWS::Lambda::Function"))
    assert alarmed(synth, "AWS/Lambda", "Errors", "FunctionName") == functions


def test_one_alarm_hears_of_every_failed_or_timed_out_journey_execution(synth: Synth) -> None:
    # The router counts the failures Step Functions reports for this stack's journeys: one alarm,
    # however many journeys (per-machine alarms would eat the stack's 500 resources).
    [alarm] = alarms(synth, METRICS_NAMESPACE, EXECUTIONS_FAILED_METRIC)
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [{"Ref": topic_id(synth.template)}]
    assert alarm["Statistic"] == "Sum"
    assert {"Name": "service", "Value": SERVICE} in alarm["Dimensions"]
    route = next(r for r in TOPOLOGY.routes if r.function == "journey-router" and r.bus == DEFAULT_BUS)
    assert set(EXECUTION_FAILED_STATUSES) <= set(route.pattern["detail"]["status"])
    assert not alarms(synth, "AWS/States", "ExecutionsFailed")


def test_alarms_reach_the_operators_email_when_one_is_set(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": DEPLOY_SETTINGS["continuum:ALARM_EMAIL"],
            "TopicArn": {"Ref": topic_id(synth.template)},
        },
    )


def test_a_dashboard_shows_the_flow_and_the_dead_letters(synth: Synth) -> None:
    [dashboard] = synth.template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert "DashboardName" not in dashboard["Properties"]  # CDK names it
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for shown in ("CallsPublished", "EventsResolved", "JourneysStarted", "JourneysExited", "MessagesSent"):
        assert shown in body
    assert "ApproximateNumberOfMessagesVisible" in body


def test_journey_log_groups_have_no_fixed_name_so_a_rolled_back_deploy_never_blocks_the_next(
    synth: Synth,
) -> None:
    for logical_id in state_machine_ids(synth).values():
        destination = synth.resources[logical_id]["Properties"]["LoggingConfiguration"]["Destinations"][0]
        log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        name = synth.resources[log_group]["Properties"].get("LogGroupName")
        # Absent (CloudFormation names it) or made unique per stack instance (its stack id's UUID).
        assert name is None or '{"Ref": "AWS::StackId"}' in json.dumps(name), name


# --- the docs page's assets in the cloud -------------------------------------------------------------


def test_the_shared_layer_ships_swagger_uis_assets_where_the_docs_page_finds_them(synth: Synth) -> None:
    layer = layer_dir(synth) / "python"
    # Only the files the page loads, not the package's code or its other bundles.
    assert sorted(p.name for p in (layer / "swagger_ui").rglob("*") if p.is_file()) == sorted(docs.ASSETS)
    # As the ingest function runs in Lambda: the layer's python/ on the path, no site-packages.
    probe = (
        "import sys; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if 'site-packages' not in p]; "
        "from shared.ingest import docs; "
        "print(*[docs.page('/docs/' + name)[1] for name in sorted(docs.ASSETS)], sep='|')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(layer)], capture_output=True, text=True, check=True, cwd=layer
    )
    assert result.stdout.strip().split("|") == [docs.ASSETS[name] for name in sorted(docs.ASSETS)]


# --- segments ----------------------------------------------------------------------------------------


def test_fifo_queues_are_fifo_with_a_fifo_dead_letter_queue_and_explicit_deduplication(synth: Synth) -> None:
    fifo = [spec for spec in TOPOLOGY.queues if spec.fifo]
    assert [spec.name for spec in fifo] == ["audiences"]
    for spec in TOPOLOGY.queues:
        properties = synth.resources[queue_id(synth.template, spec.name)]["Properties"]
        dead_letters = synth.resources[properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]]
        if spec.fifo:
            assert properties["FifoQueue"] is True
            assert properties["ContentBasedDeduplication"] is False
            assert dead_letters["Properties"]["FifoQueue"] is True
        else:
            assert "FifoQueue" not in properties
            assert "FifoQueue" not in dead_letters["Properties"]


def test_the_segment_catalogue_ships_in_the_shared_layer(synth: Synth) -> None:
    from shared.segments.catalogue import load_segment_catalogue, load_segments

    # Read as the functions read it; the shipped examples (cart_abandoners, vip) are in it.
    shipped = load_segment_catalogue(layer_dir(synth) / SEGMENTS_IN_LAYER)
    assert shipped == load_segments(TOPOLOGY.segments_dir)
    assert {"cart_abandoners", "vip"} <= {s.id for s in shipped.segments}


def test_the_segments_function_may_schedule_rechecks_in_its_group_and_pass_only_the_recheck_role(
    synth: Synth,
) -> None:
    segments = TOPOLOGY.function("segments")
    allowed = granted(synth, segments)
    role = json.dumps(arn(recheck_role_id(synth.template)), sort_keys=True)
    assert ("iam:PassRole", role) in allowed
    scheduling = {(a, r) for a, r in allowed if a.startswith("scheduler:")}
    assert {a for a, _ in scheduling} == {"scheduler:CreateSchedule", "scheduler:UpdateSchedule"}
    group = schedule_group_id(synth.template)
    for _, resource in scheduling:
        assert group in resource and "schedule/" in resource and resource.endswith('/*"]]}'), resource
    for spec in TOPOLOGY.functions:
        passes = {r for a, r in granted(synth, spec) if a == "iam:PassRole"}
        assert passes == ({role} if spec.schedules_rechecks else set()), spec.name


def test_scheduler_may_invoke_the_segments_function_and_nothing_else(synth: Synth) -> None:
    role_id = recheck_role_id(synth.template)
    trust = synth.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = [
        statement
        for policy in synth.template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    segments = function_id(synth.template, TOPOLOGY.function("segments"))
    assert statements == [{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": arn(segments)}]


def test_only_the_audiences_function_may_read_the_ad_platform_credentials(synth: Synth) -> None:
    for platform in AD_PLATFORM_SECRET_ENVS:
        secret = json.dumps({"Ref": ad_secret_id(synth.template, platform)}, sort_keys=True)
        for spec in TOPOLOGY.functions:
            may = ("secretsmanager:GetSecretValue", secret) in granted(synth, spec)
            assert may == spec.calls_ad_platforms, (platform, spec.name)


def test_segment_events_reach_the_segments_function(synth: Synth) -> None:
    route = next(r for r in TOPOLOGY.routes if r.function == "segments")
    assert set(route.pattern["detail-type"]) == {
        "event.resolved",
        "profile.merged",
        "profile.unmerged",
        "profile.identifier_removed",
    }
    synth.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": route.pattern,
            "Targets": Match.array_with(
                [Match.object_like({"Arn": arn(function_id(synth.template, TOPOLOGY.function("segments")))})]
            ),
        },
    )


# --- SES feedback: bounces and complaints ------------------------------------------------------------


def test_one_ses_configuration_set_puts_bounces_and_complaints_on_the_default_bus(synth: Synth) -> None:
    synth.template.resource_count_is("AWS::SES::ConfigurationSet", 1)
    synth.template.has_resource_properties(
        "AWS::SES::ConfigurationSetEventDestination",
        {
            "ConfigurationSetName": {"Ref": configuration_set_id(synth.template)},
            "EventDestination": Match.object_like(
                {
                    "Enabled": True,
                    "MatchingEventTypes": Match.array_equals(["bounce", "complaint"]),
                    "EventBridgeDestination": {
                        "EventBusArn": {
                            "Fn::Join": [
                                "",
                                Match.array_with([Match.string_like_regexp(":event-bus/default$")]),
                            ]
                        }
                    },
                }
            ),
        },
    )


def test_ses_feedback_of_this_stacks_emails_reaches_the_feedback_function_from_the_default_bus(
    synth: Synth,
) -> None:
    [rule] = [
        r["Properties"]
        for r in synth.template.find_resources("AWS::Events::Rule").values()
        if "EventBusName" not in r["Properties"] and r["Properties"]["EventPattern"]["source"] == ["aws.ses"]
    ]

    assert rule["EventPattern"] == {
        "source": ["aws.ses"],
        "detail-type": ["Email Bounced", "Email Complaint Received"],
        "detail": {
            "mail": {"tags": {"ses:configuration-set": [{"Ref": configuration_set_id(synth.template)}]}}
        },
    }
    assert rule["Targets"][0]["Arn"] == arn(function_id(synth.template, TOPOLOGY.function("feedback")))


def test_the_email_channel_may_send_with_the_configuration_set(synth: Synth) -> None:
    reference = json.dumps({"Ref": configuration_set_id(synth.template)})
    sends = [
        resource
        for action, resource in granted(synth, TOPOLOGY.function("channel-email"))
        if action == "ses:SendEmail"
    ]

    assert [r for r in sends if reference in r and ":configuration-set/" in r]
    for spec in TOPOLOGY.functions:  # and nothing else sends email
        if spec.name != "channel-email":
            assert not [a for a, _ in granted(synth, spec) if a.startswith("ses:")], spec.name
