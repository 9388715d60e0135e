"""DynamoDB tables from the topology's `Table` specs, and the grants functions get on them."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.topology import Table, TableAccess

# Explicit action lists rather than CDK's grant_read_data / grant_read_write_data: those add Scan and
# the stream actions, which no function needs (Scan is only for the local runtime's inspection
# routes). Transactions are authorised through these same item actions.
READ_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
)
WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)


def _string_key(name: str | None) -> dynamodb.Attribute | None:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING) if name else None


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, specs: Sequence[Table]) -> None:
        super().__init__(scope, construct_id)
        self._specs = {spec.name: spec for spec in specs}
        self._tables: dict[str, dynamodb.Table] = {}
        for spec in specs:
            table = dynamodb.Table(
                self,
                spec.name,
                partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=_string_key(spec.sort_key),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                time_to_live_attribute=spec.ttl_attribute,
            )
            for index in spec.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=dynamodb.Attribute(
                        name=index.partition_key, type=dynamodb.AttributeType.STRING
                    ),
                    sort_key=_string_key(index.sort_key),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            self._tables[spec.name] = table

    def __getitem__(self, name: str) -> dynamodb.Table:
        return self._tables[name]

    def grant(self, access: TableAccess, grantee: iam.IGrantable) -> None:
        """Reads on the table and on each of its indexes by name (no `index/*` wildcard); writes on
        the table only, since indexes are never written directly."""
        table = self._tables[access.table]
        indexes = [f"{table.table_arn}/index/{index.name}" for index in self._specs[access.table].indexes]
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(READ_ACTIONS), resource_arns=[table.table_arn, *indexes]
        )
        if access.write:
            iam.Grant.add_to_principal(
                grantee=grantee, actions=list(WRITE_ACTIONS), resource_arns=[table.table_arn]
            )
