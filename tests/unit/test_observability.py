"""Channel metrics carry exactly the dimensions the template's alarms and dashboard query."""

import json
from pathlib import Path

from notifications.observability import ChannelMetrics
from notifyctl.local.translate import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def emitted(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_channel_metrics_have_only_the_channel_dimension(capsys):
    metrics = ChannelMetrics()
    metrics.count("Sent", "email", 2)
    metrics.count("DeadLettered", "sms")
    metrics.latency("email", 120)
    metrics.flush()

    documents = {doc["Channel"]: doc for doc in emitted(capsys)}
    assert set(documents) == {"email", "sms"}
    for doc in documents.values():
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Notifications"
        assert directive["Dimensions"] == [["Channel"]]
    assert documents["email"]["Sent"] in (2.0, [2.0])  # EMF: one value or a list
    assert documents["email"]["DeliveryLatency"] in (120.0, [120.0])
    assert documents["sms"]["DeadLettered"] in (1.0, [1.0])


def test_the_alarms_query_metrics_the_functions_emit():
    resources = load_template(TEMPLATE)["Resources"]
    queried = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for query in resource["Properties"].get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "Notifications":
                queried.add((metric["MetricName"], tuple(d["Name"] for d in metric["Dimensions"])))
    assert queried == {("DeadLettered", ("Channel",)), ("CircuitOpened", ("Channel",))}
