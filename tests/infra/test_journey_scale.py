"""A hundred journeys synthesize into one deployable stack.

The catalogue lives in a file in the shared layer, not in a Lambda environment (4 KB for all of a
function's variables), each journey adds a state machine, a version and an alias and nothing per
journey anywhere else that grows without bound (grants are one statement on the stack's name prefix,
alarms are grouped). One synth for the module: it is the slow part.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app import STACK_NAME, build_app
from infra.constructs.journeys import CATALOGUE_IN_LAYER, state_machine_name
from infra.topology import (
    JOURNEY_RUNS,
    JOURNEY_STATS,
    JOURNEY_WAITS,
    MESSAGES,
    PROFILES,
    TOPOLOGY,
    Function,
    HttpRoute,
    TableAccess,
    Topology,
)
from shared.journeys.catalogue import load_catalogue
from shared.journeys.loader import load_journeys
from tests.infra.test_continuum_stack import DEPLOY_CONTEXT

JOURNEY_COUNT = 100
# Lambda: at most 4 KB for all of a function's environment variables (keys and values).
LAMBDA_ENVIRONMENT_LIMIT = 4096
# CloudFormation: at most 500 resources in a stack, and a template (read from S3) of at most 1 MB.
STACK_RESOURCE_LIMIT = 500
TEMPLATE_SIZE_LIMIT = 1_000_000
# The longest a value resolved at deploy can be, to measure an environment before it exists: a name
# or ARN CloudFormation makes (tables, queues, the bus, secrets: at most 256 in practice), and the
# pseudo parameters.
LONGEST_DEPLOY_VALUE = 256
PSEUDO_PARAMETERS = {
    "AWS::Partition": len("aws-iso-b"),
    "AWS::Region": len("ap-southeast-5"),
    "AWS::AccountId": 12,
}


@dataclasses.dataclass(frozen=True)
class _OnAnotherBranch(Function):
    """A DESIGN8 function whose code is another engineer's (functions/journey_steps, functions/journeys):
    its wiring is what is under test here, so its asset is a stand-in folder until the code lands."""

    stand_in: Path = Path()

    @property
    def folder(self) -> Path:
        return self.stand_in


def _journey_yaml(n: int) -> str:
    # The longest id a journey may have (63 characters), so names and the catalogue are at their largest.
    journey_id = f"journey_{n:03d}_" + "x" * (63 - len(f"journey_{n:03d}_"))
    return f"""\
id: {journey_id}
name: Generated journey {n} of {JOURNEY_COUNT}, to show the catalogue is not an environment variable
trigger: {{event: Generated Event {n}, where: {{plan: {{one_of: [pro, team]}}}}}}
exit_on:
  - {{event: Order Completed, where: {{cart_id: {{same_as_trigger: true}}}}}}
goal: {{event: Order Completed, within: 7d}}
holdout: 10
steps:
  - wait: 1h
  - send: {{channel: email, template: reminder}}
  - id: checkout
    wait_for:
      event: Checkout Started
      where: {{cart_id: {{same_as_trigger: true}}}}
      timeout: 23h
      on_event: [exit]
      on_timeout:
        - branch:
            cases:
              - when: {{traits: {{plan: pro}}}}
                steps: [{{send: {{channel: push, template: reminder}}}}]
            else:
              - wait_until: {{time: "10:00", days_after_entry: 1}}
              - send: {{channel: email, template: reminder}}
"""


_TEMPLATE = """\
email:
  subject: 'A reminder for {{ profile.traits.firstName | default: "you" }}'
  text: 'You left {{ trigger.properties.name | default: "something" }} behind.'
push:
  title: "Still thinking it over?"
  body: '{{ trigger.properties.name | default: "Your cart" }} is waiting.'
"""


def generated_journeys(root: Path) -> Path:
    for n in range(JOURNEY_COUNT):
        text = _journey_yaml(n)
        folder = root / text.split("\n", 1)[0].removeprefix("id: ")
        (folder / "templates").mkdir(parents=True)
        (folder / "journey.yaml").write_text(text)
        (folder / "templates" / "reminder.yaml").write_text(_TEMPLATE)
    return root


def scale_topology(journeys_dir: Path, stand_in: Path) -> Topology:
    """The topology on the generated journeys, with DESIGN8's journey-steps and journeys functions."""
    (stand_in / "handler.py").write_text("def handler(event, context):\n    raise NotImplementedError\n")
    names = {f.name for f in TOPOLOGY.functions}
    pending = [
        _OnAnotherBranch(
            "journey-steps",
            "functions.journey_steps.handler",
            "Journey steps: wait until, wait for an event, branch, split, update a profile",
            tables=(
                TableAccess(PROFILES),
                TableAccess(MESSAGES),
                TableAccess(JOURNEY_WAITS, write=True),
            ),
            publishes=True,
            resumes_journeys=True,
            stand_in=stand_in,
        ),
        _OnAnotherBranch(
            "journeys",
            "functions.journeys.handler",
            "Journeys API: every journey with its counters; admin credential only",
            tables=(TableAccess(JOURNEY_STATS), TableAccess(JOURNEY_RUNS)),
            reads_journeys=True,
            admin_credential=True,
            stand_in=stand_in,
        ),
    ]
    return dataclasses.replace(
        TOPOLOGY,
        journeys_dir=journeys_dir,
        functions=TOPOLOGY.functions + tuple(f for f in pending if f.name not in names),
        http_routes=TOPOLOGY.http_routes
        + tuple(
            route
            for route in (
                HttpRoute("GET", "/v1/journeys", "journeys"),
                HttpRoute("GET", "/v1/journeys/{journeyId}", "journeys"),
            )
            if route not in TOPOLOGY.http_routes
        ),
    )


@dataclasses.dataclass(frozen=True)
class Scale:
    topology: Topology
    template: Template
    outdir: Path
    template_file: Path

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template.to_json()["Resources"]
        return resources


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Scale:
    journeys_dir = generated_journeys(tmp_path_factory.mktemp("journeys"))
    topology = scale_topology(journeys_dir, tmp_path_factory.mktemp("stand-in"))
    outdir = tmp_path_factory.mktemp("cdk.out")
    _, stack = build_app(outdir=outdir, context=DEPLOY_CONTEXT, topology=topology)
    template = Template.from_stack(stack)  # a full synth, cdk-nag included
    return Scale(topology, template, outdir, outdir / stack.template_file)


def resolved_length(value: Any) -> int:
    """The longest `value` can be once CloudFormation resolves it."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return sum(resolved_length(p) for p in parts) + len(separator) * max(len(parts) - 1, 0)
    if isinstance(value, dict) and "Ref" in value:
        return PSEUDO_PARAMETERS.get(value["Ref"], LONGEST_DEPLOY_VALUE)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return LONGEST_DEPLOY_VALUE
    raise AssertionError(f"cannot measure {value!r}")


def environment_size(scale: Scale, function: str) -> int:
    description = scale.topology.function(function).description
    [resource] = [
        r
        for r in scale.template.find_resources("AWS::Lambda::Function").values()
        if r["Properties"]["Description"] == description
    ]
    variables = resource["Properties"]["Environment"]["Variables"]
    return sum(len(key) + resolved_length(value) for key, value in variables.items())


def test_a_hundred_journeys_are_a_hundred_state_machines_each_with_a_version_and_its_alias(
    scale: Scale,
) -> None:
    for resource_type in (
        "AWS::StepFunctions::StateMachine",
        "AWS::StepFunctions::StateMachineVersion",
        "AWS::StepFunctions::StateMachineAlias",
    ):
        scale.template.resource_count_is(resource_type, JOURNEY_COUNT)
    # Each deployed from its definition file in S3 (see test_a_hundred_journeys_fit_in_one_stack).
    for machine in scale.template.find_resources("AWS::StepFunctions::StateMachine").values():
        key = machine["Properties"]["DefinitionS3Location"]["Key"]
        assert json.loads((scale.outdir / f"asset.{key}").read_text())["States"]


@pytest.mark.parametrize("function", ["journey-router", "journeys"])
def test_the_environment_of_a_catalogue_reader_stays_small_with_a_hundred_journeys(
    scale: Scale, function: str
) -> None:
    size = environment_size(scale, function)
    # Measured at its longest (every deploy-time name at 256 characters): about 1 KB, whatever the
    # number of journeys, since the catalogue is a file.
    assert size < LAMBDA_ENVIRONMENT_LIMIT // 2, size


def test_no_function_environment_names_a_journey(scale: Scale) -> None:
    rendered = json.dumps(
        [
            f["Properties"]["Environment"]
            for f in scale.template.find_resources("AWS::Lambda::Function").values()
        ]
    )
    assert "journey_000_" not in rendered
    assert '"JOURNEYS"' not in rendered


def test_the_catalogue_in_the_layer_holds_every_journey(scale: Scale) -> None:
    [layer] = [d for d in scale.outdir.glob("asset.*") if (d / "python" / "shared").is_dir()]
    catalogue = load_catalogue(layer / CATALOGUE_IN_LAYER)
    journeys = load_journeys(scale.topology.journeys_dir)
    assert len(journeys) == len(catalogue.journeys) == JOURNEY_COUNT
    assert [(e.state_machine, e.definition) for e in catalogue.journeys] == [
        (state_machine_name(STACK_NAME, j.definition.id), j.definition) for j in journeys
    ]


def test_a_hundred_journeys_fit_in_one_stack(scale: Scale) -> None:
    assert len(scale.resources) <= STACK_RESOURCE_LIMIT, len(scale.resources)
    assert scale.template_file.stat().st_size <= TEMPLATE_SIZE_LIMIT


def test_every_role_policy_stays_one_document_however_many_journeys(scale: Scale) -> None:
    # Grants on the journeys are on the stack's name prefix: none grows with their number, so no role
    # overflows into extra managed policies (CDK splits a policy past IAM's size limit).
    scale.template.resource_count_is("AWS::IAM::ManagedPolicy", 0)
    for policy in scale.template.find_resources("AWS::IAM::Policy").values():
        assert len(json.dumps(policy["Properties"]["PolicyDocument"])) < 10_240 // 2


def test_cdk_nag_reports_no_finding_with_a_hundred_journeys(scale: Scale) -> None:
    report = json.loads((scale.outdir / "validation-report.json").read_text())
    nag = next(r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions")
    assert nag["conclusion"] == "success"
    assert [v["ruleName"] for v in nag.get("violations", [])] == []
