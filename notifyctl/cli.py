"""notifyctl: the operator CLI, for a deployed stack (--stack-name) and the local one alike."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from notifyctl.target import LOCAL_STACK_NAME, StackTarget, TargetError, samconfig_stack_name

T = TypeVar("T")

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
local_app = typer.Typer(
    help="The whole application on an embedded AWS (moto).", no_args_is_help=True
)
app.add_typer(local_app, name="local")

console = Console()
err_console = Console(stderr=True)

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class State:
    stack_name: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    config_env: str = "default"

    def target(self) -> StackTarget:
        name = self.stack_name
        if name is None:
            name = (
                LOCAL_STACK_NAME if self.endpoint_url else samconfig_stack_name(env=self.config_env)
            )
        if name is None:
            raise typer.BadParameter("give --stack-name, or --endpoint-url for the local stack")
        return StackTarget(name, endpoint_url=self.endpoint_url, region=self.region)


state = State()


def on_target(build: Callable[[StackTarget], T]) -> T:
    """``build`` applied to the chosen stack; a missing stack or output is a clear error."""
    try:
        return build(state.target())
    except TargetError as exc:
        raise fail(str(exc)) from exc


@app.callback()
def main(
    stack_name: Annotated[
        str | None,
        typer.Option(help="Deployed stack (default: samconfig.toml's, or the local one)."),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS endpoint, e.g. http://127.0.0.1:5000 for `local serve`.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    config_env: Annotated[str, typer.Option(help="samconfig.toml environment.")] = "default",
) -> None:
    state.stack_name, state.endpoint_url, state.region = stack_name, endpoint_url, region
    state.config_env = config_env


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code=2)


def parse_since(value: str | None) -> datetime | None:
    """``30m``, ``2h``, ``7d`` or an ISO 8601 time."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"--since takes 30m, 2h, 7d or an ISO time, not {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def publish(
    event_type: Annotated[
        str, typer.Argument(help="A type of the event catalog (`notifyctl events list`).")
    ],
    detail: Annotated[str | None, typer.Option(help="The event's detail as JSON.")] = None,
    file: Annotated[Path | None, typer.Option(help="A file holding the detail JSON.")] = None,
    source: Annotated[
        str | None,
        typer.Option(help="The event source (default: the stack's first accepted source)."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="1-255 characters; republishing with the same key notifies once."),
    ] = None,
) -> None:
    """Check one domain event against the event catalog, then put it on the stack's bus."""
    from notifyctl.producer import PublishError, accepted_sources, checked_event, publish_event

    if (detail is None) == (file is None):
        raise fail("give exactly one of --detail and --file")
    try:
        text = detail if detail is not None else file.read_text()  # type: ignore[union-attr]
    except OSError as exc:
        raise fail(f"cannot read --file {file}: {exc.strerror}") from exc
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"the detail is not JSON: {exc}") from exc
    try:
        target = state.target()
        sources = accepted_sources(target)
        event = checked_event(event_type, body, source or sources[0], sources, idempotency_key)
        result = publish_event(target, source or sources[0], event)
    except (PublishError, TargetError) as exc:
        raise fail(str(exc)) from exc
    if not result.ok:
        err_console.print(
            f"[red]error:[/red] EventBridge refused the event after {result.tries} tries: "
            f"{result.error_code} {result.error_message}"
        )
        raise typer.Exit(code=1)
    bus = target.output("EventBusName")
    console.print(f"published {result.event_type} {result.event_id} to {bus}")


@app.command()
def dashboard(
    since: Annotated[
        str | None, typer.Option(help="Only records changed since: 30m, 2h, 7d or ISO time.")
    ] = None,
    watch: Annotated[
        float | None, typer.Option(help="Refresh every N seconds until Ctrl-C.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """The notification dashboard: totals, by channel, dead letters, recent failures."""
    from notifyctl.dashboard import collect, render

    try:
        target = state.target()
        while True:
            figures = collect(target, since=parse_since(since))
            if as_json:
                print(figures.to_json())
            else:
                if watch:
                    console.clear()
                render(figures, console)
            if not watch:
                return
            time.sleep(watch)
    except TargetError as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        return


@local_app.command("demo")
def local_demo(
    events: Annotated[int, typer.Option(help="Synthetic domain events after Alice's three.")] = 200,
    failure_rate: Annotated[
        float, typer.Option(help="Fraction of provider calls that fail.")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Random seed for the synthetic events.")] = 7,
    users: Annotated[int, typer.Option(help="Synthetic users with stored preferences.")] = 40,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    server: Annotated[
        bool, typer.Option("--server", help="Run moto as a server on 127.0.0.1, over HTTP.")
    ] = False,
    template: Annotated[Path, typer.Option(help="The SAM template.")] = DEFAULT_TEMPLATE,
) -> None:
    """Deploy locally, publish events with a failing provider, drain, print the dashboard."""
    from notifyctl.dashboard import render
    from notifyctl.demo import run_demo
    from notifyctl.local.application import embedded_aws, use_local_environment
    from notifyctl.local.clock import RealClock

    if not 0 <= failure_rate <= 1:
        raise fail("--failure-rate must be between 0 and 1")
    use_local_environment()
    progress_console = err_console if as_json else console
    with (
        embedded_aws(server=server) as endpoint,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} {task.fields[unit]}"),
            TimeElapsedColumn(),
            console=progress_console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("deploying template.yaml into moto", total=None, unit="")

        def on_progress(phase: str, done: int, total: int | None) -> None:
            unit = "events" if phase == "publishing" else "messages handled"
            progress.update(task, description=phase, completed=done, total=total, unit=unit)

        result = run_demo(
            template, events, failure_rate, seed, RealClock(), users=users, on_progress=on_progress
        )
    if as_json:
        print(
            json.dumps(
                {
                    "published_events": result.published,
                    "provider_deliveries": result.provider_deliveries,
                    "seconds": round(result.seconds, 2),
                    "dashboard": json.loads(result.dashboard.to_json()),
                },
                indent=2,
            )
        )
        return
    where = f"moto server at {endpoint}" if endpoint else "embedded moto"
    console.print(
        f"Published {result.published} domain events (1 malformed) to {where}, drained in "
        f"{result.seconds:.1f}s with the provider failing {failure_rate:.0%} of calls."
    )
    render(result.dashboard, console)
    deliveries = ", ".join(f"{k} {v}" for k, v in result.provider_deliveries.items())
    console.print(f"Accepted by the providers in moto: {deliveries}.")


@local_app.command("serve")
def local_serve(
    port: Annotated[int, typer.Option(help="Port for moto server on 127.0.0.1.")] = 5000,
    failure_rate: Annotated[
        float, typer.Option(help="Fraction of provider calls that fail.")
    ] = 0.0,
    template: Annotated[Path, typer.Option(help="The SAM template.")] = DEFAULT_TEMPLATE,
) -> None:
    """moto server on 127.0.0.1 with the application deployed and running, until Ctrl-C."""
    from notifyctl.serve import serve

    serve(template, port, failure_rate, console)


def run() -> None:  # pragma: no cover - console script entry for `python -m notifyctl`
    sys.exit(app())


# -- dead letters -----------------------------------------------------------------------------

dlq_app = typer.Typer(help="The notification dead-letter store.", no_args_is_help=True)
events_dlq_app = typer.Typer(help="EventsDLQ: domain events not fanned out.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(events_dlq_app, name="events-dlq")


def _dead_letters() -> Any:
    from notifyctl.operations import DeadLetters

    return on_target(DeadLetters)


@dlq_app.command("list")
def dlq_list(
    channel: Annotated[str | None, typer.Option(help="email, sms, push or webhook.")] = None,
    reason: Annotated[
        str | None, typer.Option(help="A reason code, e.g. provider_timeout.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="30m, 2h, 7d or an ISO time.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead letters, newest first."""
    from rich.table import Table

    records = list(_dead_letters().list(channel, reason, parse_since(since)))
    if as_json:
        print(json.dumps(records, indent=2, default=str))
        return
    table = Table(title=f"{len(records)} dead letter(s)", title_justify="left")
    for column in ("Id", "Channel", "Recipient", "Reason", "Attempts", "Dead-lettered at"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r["notification_id"]),
            str(r.get("channel", "-")),
            str(r.get("recipient_masked", "-")),
            str(r.get("dead_letter_reason", "-")),
            str(r.get("attempts", "-")),
            str(r.get("dead_lettered_at", "-")),
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(notification_id: str) -> None:
    """The full record: payload, attempts, every error, timestamps, audit trail."""
    record = _dead_letters().show(notification_id)
    if record is None:
        raise fail(f"no notification {notification_id}")
    print(json.dumps(record, indent=2, default=str))


def _select(ids: list[str], all_: bool, channel: str | None, reason: str | None) -> list[str]:
    if ids and (all_ or channel or reason):
        raise fail("give ids, or a filter (--all, --channel, --reason), not both")
    if ids:
        return ids
    if not (all_ or channel or reason):
        raise fail("give ids, --all, or a filter (--channel, --reason)")
    return [str(r["notification_id"]) for r in _dead_letters().list(channel, reason)]


@dlq_app.command("redrive")
def dlq_redrive(
    ids: Annotated[list[str] | None, typer.Argument(help="Notification ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    channel: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Re-enqueue dead letters with the same id and a fresh attempt budget."""
    store = _dead_letters()
    results = [store.redrive(i) for i in _select(ids or [], all_, channel, reason)]
    for result in results:
        mark = "[green]redriven[/green]" if result.ok else "[red]not redriven[/red]"
        console.print(f"{result.notification_id}: {mark} ({result.detail})")
    ok = sum(r.ok for r in results)
    console.print(f"{ok} of {len(results)} redriven")
    if ok < len(results):
        raise typer.Exit(code=1)


@dlq_app.command("purge")
def dlq_purge(
    ids: Annotated[list[str] | None, typer.Argument(help="Notification ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    channel: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really purge.")] = False,
) -> None:
    """Drop dead letters' payloads; each record stays, marked PURGED, as the audit entry."""
    chosen = _select(ids or [], all_, channel, reason)
    if not yes:
        raise fail(f"purging {len(chosen)} dead letter(s) needs --yes")
    store = _dead_letters()
    purged = sum(store.purge(i) for i in chosen)
    console.print(f"{purged} of {len(chosen)} purged")


def _events_dead_letters() -> Any:
    from notifyctl.operations import EventsDeadLetters

    return on_target(EventsDeadLetters)


@events_dlq_app.command("list")
def events_dlq_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Events in EventsDLQ with why they are there."""
    from rich.table import Table

    entries = _events_dead_letters().list()
    if as_json:
        print(json.dumps(entries, indent=2, default=str))
        return
    table = Table(title=f"{len(entries)} event(s) in EventsDLQ", title_justify="left")
    for column in ("Message id", "Event", "Event id", "Origin", "Reason", "Error"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            str(e["message_id"]),
            str(e["event_type"] or "-"),
            str(e["event_id"] or "-"),
            e["origin"],
            e["reason"],
            e["error"][:80],
        )
    console.print(table)


@events_dlq_app.command("replay")
def events_dlq_replay(
    message_ids: Annotated[list[str] | None, typer.Argument(help="EventsDLQ message ids.")] = None,
    all_: Annotated[bool, typer.Option("--all")] = False,
) -> None:
    """Put events back on the bus (fix the cause first: a rejected event is rejected again)."""
    if not message_ids and not all_:
        raise fail("give message ids or --all")
    results = _events_dead_letters().replay(None if all_ else set(message_ids or []))
    for r in results:
        state_text = "replayed" if r["replayed"] else f"kept ({r.get('why')})"
        console.print(f"{r['message_id']} {r['event_type']}: {state_text}")
    console.print(f"{sum(r['replayed'] for r in results)} of {len(results)} replayed")


@events_dlq_app.command("purge")
def events_dlq_purge(
    message_ids: Annotated[list[str] | None, typer.Argument(help="EventsDLQ message ids.")] = None,
    all_: Annotated[bool, typer.Option("--all")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really purge.")] = False,
) -> None:
    """Delete events from EventsDLQ, each leaving an audit record in the ledger."""
    if not message_ids and not all_:
        raise fail("give message ids or --all")
    if not yes:
        raise fail("purging needs --yes")
    purged = _events_dead_letters().purge(None if all_ else set(message_ids or []))
    console.print(f"{purged} event(s) purged")


# -- the event catalog ------------------------------------------------------------------------

catalog_app = typer.Typer(
    help="The event catalog: the domain event types producers may publish.", no_args_is_help=True
)
app.add_typer(catalog_app, name="events")


@catalog_app.command("list")
def events_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every event type with its version and what it sends."""
    from rich.table import Table

    from notifyctl.producer import catalog_rows

    rows = catalog_rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} event type(s)", title_justify="left")
    for column in ("Type", "Version", "Description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], str(row["version"]), row["description"])
    console.print(table)


@catalog_app.command("show")
def events_show(event_type: str) -> None:
    """One type as JSON: version, description, an example detail and its JSON Schema."""
    from notifyctl.producer import PublishError, describe_type, dumps

    try:
        print(dumps(describe_type(event_type)))
    except PublishError as exc:
        raise fail(str(exc)) from exc


# -- webhooks ---------------------------------------------------------------------------------

webhooks_app = typer.Typer(
    help="Webhook subscriptions and their signing secrets.", no_args_is_help=True
)
app.add_typer(webhooks_app, name="webhooks")


def _webhooks() -> Any:
    from notifyctl.subscriptions import Webhooks

    return on_target(Webhooks)


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https:// endpoint that receives the POSTs.")],
    event_type: Annotated[
        list[str], typer.Option("--event-type", help="Repeat per type; '*' for all.")
    ],
    subscription_id: Annotated[str | None, typer.Option("--id", help="Default: generated.")] = None,
) -> None:
    """Subscribe a URL; prints the signing secret once (store it with the receiver)."""
    try:
        subscription, secret = _webhooks().add(url, event_type, subscription_id)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    console.print(f"subscription {subscription.subscription_id} -> {subscription.url}")
    console.print(f"signing secret (shown once): {secret}", highlight=False, soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every subscription."""
    from dataclasses import asdict

    from rich.table import Table

    subscriptions = _webhooks().list()
    if as_json:
        print(json.dumps([asdict(s) for s in subscriptions], indent=2))
        return
    table = Table(title=f"{len(subscriptions)} subscription(s)", title_justify="left")
    for column in ("Id", "URL", "Event types", "Enabled"):
        table.add_column(column)
    for s in subscriptions:
        enabled = "yes" if s.enabled else f"no ({s.disabled_reason})"
        table.add_row(s.subscription_id, s.url, ", ".join(s.event_types), enabled)
    console.print(table)


@webhooks_app.command("remove")
def webhooks_remove(subscription_id: str) -> None:
    """Delete a subscription and its signing secret."""
    if not _webhooks().remove(subscription_id):
        raise fail(f"no subscription {subscription_id}")
    console.print(f"removed {subscription_id}")


@webhooks_app.command("rotate-secret")
def webhooks_rotate(
    subscription_id: str,
    finish: Annotated[
        bool, typer.Option("--finish", help="End the rotation: drop the old secret.")
    ] = False,
) -> None:
    """Start a rotation (deliveries carry old and new signatures), or --finish it."""
    webhooks = _webhooks()
    if finish:
        webhooks.finish_rotation(subscription_id)
        console.print(f"{subscription_id}: old secret retired; only the new one signs now")
        return
    secret = webhooks.rotate(subscription_id)
    console.print(f"new signing secret (shown once): {secret}", highlight=False, soft_wrap=True)
    console.print("Deliveries carry both signatures until `rotate-secret --finish`.")


# -- preferences ------------------------------------------------------------------------------

preferences_app = typer.Typer(
    help="Users' contact points, opt-outs and quiet hours.", no_args_is_help=True
)
app.add_typer(preferences_app, name="preferences")


def _preferences() -> Any:
    from notifications.preferences import DynamoPreferencesStore

    return on_target(lambda t: DynamoPreferencesStore(t.output("PreferencesTableName")))


@preferences_app.command("get")
def preferences_get(user_id: str) -> None:
    """A user's preferences as JSON."""
    current = _preferences().get(user_id)
    if current is None:
        raise fail(f"no preferences for {user_id}")
    print(current.model_dump_json(indent=2))


@preferences_app.command("set")
def preferences_set(
    user_id: str,
    email: Annotated[str | None, typer.Option(help="Email address ('' removes it).")] = None,
    phone: Annotated[str | None, typer.Option(help="E.164 phone number ('' removes it).")] = None,
    push_endpoint: Annotated[
        list[str] | None, typer.Option(help="SNS platform endpoint ARN; repeat; replaces all.")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="e.g. en, de, de-CH.")] = None,
    opt_out_channel: Annotated[list[str] | None, typer.Option(help="email, sms, push.")] = None,
    opt_in_channel: Annotated[list[str] | None, typer.Option()] = None,
    opt_out_category: Annotated[
        list[str] | None, typer.Option(help="account, order, payment.")
    ] = None,
    opt_in_category: Annotated[list[str] | None, typer.Option()] = None,
    quiet_hours: Annotated[
        str | None, typer.Option(help="HH:MM-HH:MM in --timezone; 'off' removes them.")
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone of the quiet hours.")] = "UTC",
    unsuppress_email: Annotated[
        str | None, typer.Option(help="Mail an address again after a bounce or complaint.")
    ] = None,
    channel_chain: Annotated[
        list[str] | None,
        typer.Option(help="CATEGORY=push,sms,email: the user's own fallback chain; repeat."),
    ] = None,
) -> None:
    """Change a user's preferences (creating them if needed); prints the result."""
    from pydantic import ValidationError

    from notifyctl.preference_changes import (
        PreferenceChangeError,
        changes_for,
        channel_chain_changes,
    )

    store = _preferences()
    current = store.get(user_id)
    try:
        changes = changes_for(
            current,
            email=email,
            phone=phone,
            push_endpoints=push_endpoint,
            locale=locale,
            opt_out_channels=opt_out_channel or [],
            opt_in_channels=opt_in_channel or [],
            opt_out_categories=opt_out_category or [],
            opt_in_categories=opt_in_category or [],
            quiet_hours=quiet_hours,
            timezone=timezone,
            unsuppress_email=unsuppress_email,
        )
        changes.update(channel_chain_changes(current, channel_chain or []))
        updated = store.update(user_id, changes)
    except (PreferenceChangeError, ValidationError) as exc:
        raise fail(str(exc)) from exc
    print(updated.model_dump_json(indent=2))
