"""notifyctl as operators expect (issue 20): one-line errors with exit codes, the AWS CLI's
region and profile rules, validation against the product's own sources, id prefixes, ids
never cut, help text everywhere. Each test goes through the CLI and reads what a user sees."""

import json
import socket
from io import StringIO

import boto3
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from notifications.adapters.aws import reset_clients
from notifications.adapters.sqs import SqsQueues
from notifications.channels.email import SesEmailProvider
from notifications.errors import PermanentError
from notifyctl.cli import app
from notifyctl.dashboard import compute, render
from notifyctl.demo import run_demo
from notifyctl.errors import OperationError
from notifyctl.ids import resolve
from tests.conftest import TEMPLATE
from tests.samples import welcome

LOCAL = ["--stack-name", "notifications-local"]


@pytest.fixture(autouse=True)
def default_session_restored():
    """notifyctl makes its profile and region boto3's default session (the layer's adapters
    use it); give later tests in this process the session they had."""
    saved = boto3.DEFAULT_SESSION
    yield
    boto3.DEFAULT_SESSION = saved
    reset_clients()


def runner():
    """stdout and stderr apart (click 8.1 needs asking; 8.2 and typer's own always do)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def run(*args, env=None):
    """notifyctl with stdout and stderr apart, as a terminal 80 columns wide shows them."""
    result = runner().invoke(app, list(args), env={"COLUMNS": "80", **(env or {})})
    assert "Traceback" not in result.stdout + result.stderr
    return result


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- 2. errors, not tracebacks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "names"),
    [
        (["dashboard", "--since", "2030-01-01"], 2, "'2030-01-01' is in the future"),
        (["dashboard", "--since", "yesterday"], 2, "'yesterday'"),
        (["dashboard", "--watch", "-1"], 2, "--watch -1 is out of range"),
        (["publish", "OrderPlaced", "--file", "/nonexistent.json"], 2, "/nonexistent.json"),
        (["publish", "OrderPlaced", "--file", "/"], 2, "'/' is a directory"),
        (["local", "demo", "--events", "-5"], 2, "--events -5 is out of range"),
        (["local", "demo", "--failure-rate", "1.5"], 2, "--failure-rate 1.5 is out of range"),
        (
            ["local", "demo", "--provider-latency", "fax=fixed:10"],
            2,
            "--provider-latency: unknown channel 'fax'",
        ),
        (
            ["local", "serve", "--provider-latency", "email=lognormal:250:80"],
            2,
            "'email=lognormal:250:80'",
        ),
        (["--config-env", "nosuch", "dashboard"], 2, "has no environment 'nosuch'"),
        (["dlq", "list", "--channel", "pigeon"], 2, "--channel 'pigeon' is not one of"),
        (["dlq", "show"], 2, "Missing argument"),
    ],
)
def test_user_errors_are_one_line_naming_the_value(args, code, names):
    # No stack and no AWS are needed: each value is refused before anything is called
    result = run(*args)
    assert result.exit_code == code
    assert names in one_error_line(result)
    assert result.stdout == ""


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch):
    def broken(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("notifyctl.cli.State.target", broken)
    plain = runner().invoke(app, ["dashboard"])
    assert plain.exit_code == 1
    assert plain.stderr.strip().splitlines() == [
        "error: unexpected RuntimeError: disk on fire (rerun with --debug for the traceback)"
    ]
    debug = runner().invoke(app, ["--debug", "dashboard"])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr
    assert debug.stderr.strip().endswith("disk on fire (rerun with --debug for the traceback)")


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == "notifyctl 0.1.0"


# -- 3. region, profile, stack ---------------------------------------------------------------------


@pytest.fixture
def aws_config(tmp_path, monkeypatch):
    """An ~/.aws/config with one profile, and no region in the environment."""
    config = tmp_path / "config"
    config.write_text("[profile ops]\nregion = ap-southeast-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    credentials = tmp_path / "credentials"
    credentials.write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return config


def stack_region(result):
    """The region the command looked in, as its error names it (no stack exists there)."""
    assert result.exit_code == 1
    return one_error_line(result).split(" not found in ")[1].split(":")[0]


def test_region_resolves_as_the_aws_cli_does(moto_account, aws_config, monkeypatch):
    missing = ["--stack-name", "nosuch", "dashboard"]
    # The profile's region, when nothing else gives one
    assert stack_region(run("--profile", "ops", *missing)) == "ap-southeast-2"
    assert stack_region(run(*missing, env={"AWS_PROFILE": "ops"})) == "ap-southeast-2"
    # AWS_DEFAULT_REGION over the profile, AWS_REGION over both, --region over everything
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert stack_region(run("--profile", "ops", *missing)) == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert stack_region(run("--profile", "ops", *missing)) == "eu-west-1"
    assert stack_region(run("--profile", "ops", "--region", "eu-north-1", *missing)) == (
        "eu-north-1"
    )


def test_an_unknown_profile_is_one_line(aws_config):
    for result in (
        run("--stack-name", "s", "dashboard", env={"AWS_PROFILE": "nosuch"}),
        run("--profile", "nosuch", "--stack-name", "s", "dashboard"),
    ):
        assert result.exit_code == 2
        line = one_error_line(result)
        assert "profile 'nosuch' not found" in line
        assert "(profiles: ops)" in line


def test_no_region_anywhere_is_one_line(aws_config):
    result = run("--stack-name", "s", "dashboard")
    assert result.exit_code == 2
    assert "no AWS region: give --region" in one_error_line(result)


def test_samconfig_is_found_from_a_subdirectory(moto_account, tmp_path, monkeypatch):
    # Given a project whose samconfig.toml names the stack and its region per environment
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "shop-dev"\n'
        'region = "eu-west-3"\n'
        '[prod.deploy.parameters]\nstack_name = "shop-prod"\nregion = "eu-central-1"\n'
    )
    nested = tmp_path / "functions" / "sender"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    # When notifyctl runs two levels below it, Then it takes the stack (and region) from there
    dev = run("dashboard")
    assert "stack 'shop-dev' not found in eu-west-3" in one_error_line(dev)
    assert stack_region(run("--config-env", "prod", "dashboard")) == "eu-central-1"
    missing = run("--config-env", "nosuch", "dashboard")
    assert missing.exit_code == 2
    assert one_error_line(missing) == (
        f"error: --config-env 'nosuch': {tmp_path / 'samconfig.toml'} has no environment"
        " 'nosuch' (it has: default, prod)"
    )


# -- 4. no silent no-ops, 6. ids -------------------------------------------------------------------


def test_preference_values_are_checked_against_the_products_sources(stack):
    for args, message in (
        (["--opt-out-channel", "webhook"], "--opt-out-channel 'webhook' is not one of: email, sms"),
        (["--opt-out-category", "spam"], "--opt-out-category 'spam' is not one of: account, order"),
        (["--locale", "klingon"], "--locale 'klingon' has no templates; use one of de, en"),
        (["--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus' is not an IANA time zone"),
        (["--timezone", "Asia/Tokyo"], "this user has none: give --quiet-hours"),
        ([], "nothing to change"),
    ):
        result = run(*LOCAL, "preferences", "set", "user-7", *args)
        assert result.exit_code == 2, (args, result.stderr)
        line = one_error_line(result)
        assert message in line, line
        assert "pydantic" not in line
    assert run(*LOCAL, "preferences", "get", "user-7").exit_code == 1  # nothing was written

    # A regional form of a template locale is fine; --timezone alone moves the quiet hours
    ok = run(
        *LOCAL, "preferences", "set", "user-7", "--locale", "de-CH", "--quiet-hours", "22:00-07:00"
    )
    assert ok.exit_code == 0, ok.stderr
    moved = run(*LOCAL, "preferences", "set", "user-7", "--timezone", "Asia/Tokyo")
    assert moved.exit_code == 0, moved.stderr
    shown = json.loads(run(*LOCAL, "preferences", "get", "user-7").stdout)
    assert shown["locale"] == "de-CH"
    assert shown["quiet_hours"] == {
        "start": "22:00:00",
        "end": "07:00:00",
        "timezone": "Asia/Tokyo",
    }


def test_webhook_event_types_and_subscription_ids(stack):
    refused = run(
        *LOCAL, "webhooks", "add", "https://erp.example.com/h", "--event-type", "NoSuchType"
    )
    assert refused.exit_code == 2
    assert one_error_line(refused) == (
        "error: --event-type 'NoSuchType' is not one of: OrderPlaced, PaymentReceived, *"
    )
    for subscription in ("subscription-alpha", "subscription-beta"):
        added = run(
            *LOCAL, "webhooks", "add", "https://erp.example.com/h",
            "--event-type", "OrderPlaced", "--id", subscription,
        )  # fmt: skip
        assert added.exit_code == 0, added.stderr

    unknown = run(*LOCAL, "webhooks", "rotate-secret", "nope")
    assert unknown.exit_code == 1
    assert one_error_line(unknown) == (
        "error: no subscription 'nope' (an id prefix needs at least 8 characters)"
    )
    ambiguous = run(*LOCAL, "webhooks", "remove", "subscrip")
    assert ambiguous.exit_code == 1
    assert "'subscrip' is ambiguous: it matches 2" in one_error_line(ambiguous)

    # A unique prefix names the subscription; finishing says how long senders keep the old one
    rotated = run(*LOCAL, "webhooks", "rotate-secret", "subscription-b")
    assert rotated.exit_code == 0, rotated.stderr
    finished = run(*LOCAL, "webhooks", "rotate-secret", "subscription-b", "--finish")
    assert finished.exit_code == 0
    assert "subscription-beta: old secret retired" in finished.stdout
    assert "for up to 60 s" in finished.stdout
    removed = run(*LOCAL, "webhooks", "remove", "subscription-a")
    assert removed.stdout.strip() == "removed subscription-alpha"


@pytest.fixture
def dead_letters(stack, monkeypatch):
    """Three welcome emails dead-lettered at once by a permanent SES refusal."""

    def refuse(self, request, message):
        raise PermanentError("invalid_recipient", "SES refused the address")

    with monkeypatch.context() as refusal:
        refusal.setattr(SesEmailProvider, "send", refuse)
        SqsQueues().enqueue(stack.queue_url("EmailQueue"), [welcome(n) for n in range(3)])
        stack.drain()
    return sorted(welcome(n).notification_id for n in range(3))


def test_dead_letter_ids_whole_in_tables_and_as_prefixes(dead_letters):
    # Then a table 80 columns wide shows every id whole
    listed = run(*LOCAL, "dlq", "list")
    assert listed.exit_code == 0
    for notification_id in dead_letters:
        assert notification_id in listed.stdout
    assert "…" not in listed.stdout

    # And a unique prefix of 8 characters is accepted by show, redrive and purge alike
    first = dead_letters[0]
    shown = run(*LOCAL, "dlq", "show", first[:8])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["notification_id"] == first
    purged = run(*LOCAL, "dlq", "purge", first[:10], "--yes")
    assert purged.stdout.strip() == "1 of 1 purged"

    # And unknown ids fail the same way everywhere, before anything is done
    for args in (
        ["dlq", "show", "nope"],
        ["dlq", "redrive", "nope"],
        ["dlq", "purge", "nope", "--yes"],
        ["dlq", "redrive", dead_letters[1], "deadbeef-0000"],
    ):
        result = run(*LOCAL, *args)
        assert result.exit_code == 1, args
        assert one_error_line(result).startswith("error: no "), args
    assert json.loads(run(*LOCAL, "dlq", "show", dead_letters[1]).stdout)["status"] == (
        "DEAD_LETTERED"
    )


def test_events_dlq_unknown_message_ids(stack):
    for args in (["events-dlq", "replay", "nope"], ["events-dlq", "purge", "nope", "--yes"]):
        result = run(*LOCAL, *args)
        assert result.exit_code == 1
        assert one_error_line(result) == (
            "error: no EventsDLQ message 'nope' (an id prefix needs at least 8 characters)"
        )
    assert run(*LOCAL, "events-dlq", "replay").exit_code == 2


def test_resolving_ids():
    known = ["2de5ba9d-4c1f-0001", "2de5ba9d-4c1f-0002", "7a"]
    assert resolve("2de5ba9d-4c1f-0002", known, "notification") == "2de5ba9d-4c1f-0002"
    assert resolve("2de5ba9d-4c1f-00", ["2de5ba9d-4c1f-0001", "7a"], "x") == "2de5ba9d-4c1f-0001"
    assert resolve("7a", known, "notification") == "7a"  # a short id given whole
    with pytest.raises(OperationError, match=r"'2de5ba9d' is ambiguous: it matches 2"):
        resolve("2de5ba9d", known, "notification")
    with pytest.raises(OperationError, match=r"^no notification '2de5ba9d-9'$"):
        resolve("2de5ba9d-9", known, "notification")
    with pytest.raises(OperationError, match="needs at least 8 characters"):
        resolve("2de5ba9", known, "notification")


# -- 5. local serve on a busy port -----------------------------------------------------------------


def test_serve_on_a_busy_port_says_so_and_exits():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("local", "serve", "--port", str(port))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"port {port} on 127.0.0.1 is in use" in line
    assert "--port" in line


# -- 1. the dashboard says what it counts ----------------------------------------------------------


def test_dashboard_labels_and_definitions():
    # Given two delivered, one dead-lettered before any provider call (no attempts), one
    # dead-lettered after three attempts, and two suppressed for different reasons
    records = [
        {"notification_id": "a", "status": "SENT", "channel": "email", "attempts": 1},
        {"notification_id": "b", "status": "SENT", "channel": "email", "attempts": 2},
        {"notification_id": "c", "status": "DEAD_LETTERED", "channel": "sms",
         "dead_letter_reason": "template_missing_variable"},
        {"notification_id": "d", "status": "DEAD_LETTERED", "channel": "sms", "attempts": 3,
         "dead_letter_reason": "provider_timeout"},
        {"notification_id": "e", "status": "SUPPRESSED",
         "suppressed_reason": "opted_out_channel:sms"},
        {"notification_id": "f", "status": "SUPPRESSED",
         "suppressed_reason": "no_contact_point"},
    ]  # fmt: skip
    figures = compute(records)
    as_json = json.loads(figures.to_json())
    assert (as_json["delivered"], as_json["dead_lettered"], as_json["settled"]) == (2, 2, 4)
    assert as_json["success_rate"] == 0.5
    assert as_json["avg_retries"] == 0.75  # (0 + 1 + 0 + 2) / 4: "c" counts, with no retry
    assert as_json["suppressed_by_reason"] == {"opted_out_channel:sms": 1, "no_contact_point": 1}

    out = StringIO()
    render(figures, Console(file=out, width=80))
    text = out.getvalue()
    for label, value in (
        ("Delivered:", "2"),
        ("Dead-lettered:", "2"),
        ("Settled:", "4"),
        ("Success rate:", "50.0%"),
        ("Avg retries:", "0.75"),
        ("Suppressed:", "2"),
    ):
        assert any(
            label in line and line.split(label)[1].split()[0] == value for line in text.splitlines()
        ), label
    assert "Suppressed by Reason" in text
    assert "opted_out_channel:sms" in text
    assert "CloudWatch" not in text  # no metrics: no empty table


def test_an_empty_dashboard_draws_no_empty_tables():
    out = StringIO()
    render(compute([]), Console(file=out, width=80))
    text = out.getvalue()
    assert "Delivered:" in text
    for title in ("By Channel", "by Reason", "Recent Failures", "CloudWatch"):
        assert title not in text


# -- 7. the demo's progress ------------------------------------------------------------------------


def test_the_demo_progress_fills_as_the_queues_empty(moto_account, clock):
    calls = []
    run_demo(
        TEMPLATE, events=5, failure_rate=0.5, seed=3, clock=clock, users=3,
        on_progress=lambda *call: calls.append(call),
    )  # fmt: skip
    delivering = [(done, total) for phase, done, total in calls if phase == "delivering"]
    # The bar is short of full while messages wait in the queues (failed sends wait there for
    # their retry), and full once they are empty
    assert delivering[0][0] < delivering[0][1]
    assert all(done <= total for done, total in delivering)
    done, total = delivering[-1]
    assert done == total
    assert done > 8  # the five events' fan-out and their notifications, handled one by one
    publishing = [(done, total) for phase, done, total in calls if phase == "publishing"]
    assert publishing[-1] == (8, 8)  # Alice's two after her registration, then the five


# -- 7. help ---------------------------------------------------------------------------------------


def commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))


def test_every_command_has_help_and_every_option_says_what_it_does():
    root = typer.main.get_command(app)
    undocumented = [
        (" ".join(path), param.name)
        for path, command in [((), root), *commands(root)]
        for param in command.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert undocumented == []
    for path, _ in commands(root):
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert "<bool>" not in result.stdout, path
