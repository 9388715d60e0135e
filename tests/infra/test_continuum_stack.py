"""The CDK app, checked against the topology it is built from.

One synth for the whole module (it is the slow part, cdk-nag included). Resources are found by what
they are (a function by its description, a table by its key schema), never by a generated logical ID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import ManualArgs, lint

from infra.app import MissingSettingError, build_app, cdk_json_context
from infra.constructs.event_bus import ARCHIVE_RETENTION
from infra.constructs.function_factory import OBSERVABILITY_ENV
from infra.constructs.http_api import THROTTLE
from infra.stacks.continuum_stack import TAGS
from infra.topology import EVENT_BUS_ENV, JOURNEYS_ENV, TOPOLOGY, Function, Table, queue_env, table_env
from shared.journeys.compiler import compile_journey
from shared.journeys.loader import load_journeys

JOURNEYS = load_journeys(TOPOLOGY.journeys_dir)

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
    _, stack = build_app(outdir=outdir)
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


def bus_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::Events::EventBus")))


def state_machine_ids(synth: Synth) -> dict[str, str]:
    """Journey id → state machine logical id, recognised by the compiled definition's comment."""
    by_comment = {
        json.loads(resource["Properties"]["DefinitionString"])["Comment"]: logical_id
        for logical_id, resource in synth.template.find_resources("AWS::StepFunctions::StateMachine").items()
    }
    return {j.definition.id: by_comment[compile_journey(j)["Comment"]] for j in JOURNEYS}


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
        synth.template.has_resource_properties(
            "AWS::Events::Rule",
            {
                "EventBusName": {"Ref": bus_id(synth.template)},
                "EventPattern": Match.exact(route.pattern),
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
        assert properties["VisibilityTimeout"] == spec.visibility_timeout_seconds
        assert properties["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count


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
    ids = state_machine_ids(synth)
    for journey in JOURNEYS:
        properties = synth.resources[ids[journey.definition.id]]["Properties"]
        # The very artifact the local runtime runs, placeholder included; CloudFormation substitutes it.
        assert json.loads(properties["DefinitionString"]) == compile_journey(journey)
        assert properties["DefinitionSubstitutions"] == {"DeliverFunctionArn": arn(deliver)}
        assert properties["StateMachineType"] == "STANDARD"
        assert properties["LoggingConfiguration"]["Level"] == "ALL"
        assert properties["TracingConfiguration"] == {"Enabled": True}


def test_state_machines_may_invoke_the_send_gate_and_nothing_else(synth: Synth) -> None:
    deliver = function_id(synth.template, TOPOLOGY.function(TOPOLOGY.journey_task_function))
    synth.template.resource_properties_count_is(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": arn(deliver)}]
                )
            }
        },
        len(JOURNEYS),
    )


def test_journey_controllers_get_every_journey_with_its_state_machine(synth: Synth) -> None:
    machines = state_machine_ids(synth)
    for spec in (f for f in TOPOLOGY.functions if f.controls_journeys):
        value = synth.resources[function_id(synth.template, spec)]["Properties"]["Environment"]["Variables"][
            JOURNEYS_ENV
        ]
        # Fn::Join of literal JSON and state machine Refs: render each Ref as <logical id> and parse.
        rendered = "".join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in value["Fn::Join"][1])
        assert json.loads(rendered) == [
            {
                "id": j.definition.id,
                "trigger": j.definition.trigger,
                "goal": j.definition.goal,
                "stateMachineArn": f"<{machines[j.definition.id]}>",
            }
            for j in JOURNEYS
        ]
        allowed = granted(synth, spec)
        for machine in machines.values():
            assert ("states:StartExecution", json.dumps({"Ref": machine})) in allowed


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
    context = cdk_json_context()
    expected: dict[str, Any] = dict(OBSERVABILITY_ENV)
    expected |= {
        table_env(t.table): {"Ref": table_id(synth.template, TOPOLOGY.table(t.table))} for t in spec.tables
    }
    expected |= {queue_env(q.queue): {"Ref": queue_id(synth.template, q.queue)} for q in spec.queues}
    if spec.publishes:
        expected[EVENT_BUS_ENV] = {"Ref": bus_id(synth.template)}
    expected |= {name: context[f"continuum:{name}"] for name in spec.settings}

    variables = synth.resources[function_id(synth.template, spec)]["Properties"]["Environment"]["Variables"]
    journeys = {JOURNEYS_ENV} if spec.controls_journeys else set()
    assert set(variables) == set(expected) | journeys
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
    context = cdk_json_context()
    del context["continuum:EMAIL_SENDER"]
    with pytest.raises(MissingSettingError, match="continuum:EMAIL_SENDER"):
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
