"""A push endpoint SNS reports disabled is dead-lettered once and dropped from preferences."""

from notifications.adapters.ledger import DynamoLedger
from notifications.adapters.preferences import DynamoPreferencesStore
from notifications.preferences import Preferences
from tests.samples import load_event


def test_a_disabled_endpoint_is_removed_from_the_users_preferences(stack):
    # Given Alice with two push endpoints, one of which the platform has disabled
    sns = stack.clients.sns
    app_arn = sns.create_platform_application(
        Name="shop", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    live, stale = (
        sns.create_platform_endpoint(PlatformApplicationArn=app_arn, Token=t)["EndpointArn"]
        for t in ("token-live", "token-stale")
    )
    sns.set_endpoint_attributes(EndpointArn=stale, Attributes={"Enabled": "false"})
    store = DynamoPreferencesStore(stack.physical_id("PreferencesTable"))
    store.put(Preferences(user_id="user-123", push_endpoints=(live, stale)))

    # When her order is fanned out and delivered
    stack.function("FanOutFunction").invoke(load_event("fan_out/order-placed.json"))
    stack.drain()

    # Then the live endpoint got the push, the stale one was dead-lettered after one attempt
    # and is gone from her preferences
    records = {
        r["recipient_masked"]: r
        for r in DynamoLedger(stack.physical_id("LedgerTable")).scan()
        if r["channel"] == "push"
    }
    statuses = sorted((r["status"], r.get("dead_letter_reason")) for r in records.values())
    assert statuses == [("DEAD_LETTERED", "endpoint_disabled"), ("SENT", None)]
    assert all(r["attempts"] == 1 for r in records.values())
    assert store.get("user-123").push_endpoints == (live,)
