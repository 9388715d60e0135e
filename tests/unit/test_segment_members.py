"""A segment's size (shared/store/segment_members.py): a COUNT query summed over every page."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from shared.store.segment_members import SegmentMembers


def test_the_size_adds_up_the_counts_of_every_page() -> None:
    dynamodb = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    query = {
        "TableName": "members",
        "KeyConditionExpression": "#segment = :segment",
        "ExpressionAttributeNames": {"#segment": "segment"},
        "ExpressionAttributeValues": {":segment": {"S": "vip"}},
        "Select": "COUNT",
    }
    last = {"segment": {"S": "vip"}, "profileId": {"S": "p4000"}}
    with Stubber(dynamodb) as stub:
        stub.add_response("query", {"Count": 4000, "ScannedCount": 4000, "LastEvaluatedKey": last}, query)
        stub.add_response("query", {"Count": 17, "ScannedCount": 17}, {**query, "ExclusiveStartKey": last})

        assert SegmentMembers("members", dynamodb).size("vip") == 4017
        stub.assert_no_pending_responses()
