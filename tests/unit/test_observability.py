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


# -- log lines: a message that is a JSON text is logged as JSON, as Powertools does -------------

LOGGED_AS_JSON = ["{}", '{"a": 1}', "[1, 2]", '"quoted"', "-1", "0", "12.5", " 7", "\n[]"]
LOGGED_AS_JSON += ["true", "false", "null", " null ", "null\n", "true ", "NaN", "Infinity"]
LOGGED_AS_JSON += ["-Infinity"]
LOGGED_AS_TEXT = ["notification sent", "", "n", "nul", "true story", "{not json", "- dash", "Inf"]


def logged(capsys, message):
    from notifications.observability import logger

    capsys.readouterr()
    logger.info(message)
    (line,) = capsys.readouterr().out.splitlines()
    return json.loads(line)["message"]


def test_a_json_text_message_is_logged_as_its_value(capsys):
    assert logged(capsys, '{"a": 1}') == {"a": 1}
    assert logged(capsys, "[1, 2]") == [1, 2]
    assert logged(capsys, "-1") == -1
    assert logged(capsys, " 0 ") == 0
    assert logged(capsys, "notification sent") == "notification sent"
    assert logged(capsys, "{not json") == "{not json"


def test_log_message_decoding_matches_json_loads_on_every_string():
    """``log_message_json`` skips the parse only where ``json.loads`` would fail; as
    Powertools' deserializer it may raise where ``json.loads`` does (Powertools catches it)."""
    from hypothesis import given
    from hypothesis import strategies as st

    from notifications.observability import log_message_json

    def powertools(deserializer, message):  # formatter._extract_log_message's use of it
        try:
            return deserializer(message)
        except ValueError:
            return message

    def same(message):
        ours, theirs = powertools(log_message_json, message), powertools(json.loads, message)
        assert repr(ours) == repr(theirs), message

    for message in LOGGED_AS_JSON + LOGGED_AS_TEXT:
        same(message)
    json_texts = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=5,
    ).map(json.dumps)
    given(st.text(max_size=12) | json_texts)(same)()


def test_the_logger_decodes_messages_with_the_cheap_check():
    """The CPU choice itself (docs/performance.md section 2): a plain message is not parsed."""
    from notifications.observability import log_message_json, logger

    assert logger.registered_formatter.json_deserializer is log_message_json
