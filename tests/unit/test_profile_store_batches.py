"""Erasure's batch writes (shared/store/profiles.py) against botocore's Stubber: DynamoDB may leave
items of a BatchWriteItem unprocessed, and an erasure that ignored them would leave a person's
identifier unsuppressed (so they could be re-created) or their data undeleted."""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from shared.models.profile import Identifier, Profile
from shared.store.profiles import ProfileAdmin, identifier_key, profile_key, suppression_key

TABLE = "profiles"
ADA = Profile(
    profileId="p-ada",
    identifiers=[
        Identifier(type="user_id", value="u-ada"),
        Identifier(type="device_id", value="ipad-1"),
        Identifier(type="email", value="ada@example.com"),
    ],
    createdAt="2024-01-01T00:00:00.000Z",
    updatedAt="2024-01-01T00:00:00.000Z",
    version=3,
)


def _write(requests: list[dict[str, Any]], unprocessed: list[dict[str, Any]]) -> tuple[Any, ...]:
    response = {"UnprocessedItems": {TABLE: unprocessed} if unprocessed else {}}
    return ("batch_write_item", response, {"RequestItems": {TABLE: requests}})


def test_erasure_writes_again_what_dynamodb_left_unprocessed(
    dynamodb: tuple[Any, Stubber], sleeps: list[float]
) -> None:
    client, stubber = dynamodb
    puts = [{"PutRequest": {"Item": suppression_key(i)}} for i in ADA.identifiers]
    timeline = {"pk": {"S": "profile#p-ada"}, "sk": {"S": "event#2024-01-01T00:00:00.000Z#m-1"}}
    deletes = [
        {"DeleteRequest": {"Key": key}}
        for key in [profile_key("p-ada"), timeline, *(identifier_key(i) for i in ADA.identifiers)]
    ]
    # Given DynamoDB leaves the iPad's suppression unprocessed, twice, and one delete once
    stubber.add_response(*_write(puts, [puts[1]]))
    stubber.add_response(*_write([puts[1]], [puts[1]]))
    stubber.add_response(*_write([puts[1]], []))
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "profile#p-ada"}},
        "ProjectionExpression": "pk, sk",
        "ConsistentRead": True,
    }
    stubber.add_response("query", {"Items": [profile_key("p-ada"), timeline]}, query)
    stubber.add_response(*_write(deletes, [deletes[3]]))
    stubber.add_response(*_write([deletes[3]], []))
    # and, once the profile is gone, its consent item (a consent write may have slipped in meanwhile)
    consent = {"pk": {"S": "profile#p-ada"}, "sk": {"S": "consent"}}
    stubber.add_response(*_write([{"DeleteRequest": {"Key": consent}}], []))

    # When Ada is erased
    erased = ProfileAdmin(TABLE, client).erase(ADA)

    # Then every unprocessed item was written again (Stubber checks each request), after a pause
    assert erased == ["p-ada"]
    assert len(sleeps) == 3
