"""notifyctl: the operator CLI, for a deployed stack (--stack-name) and the local one alike.

Rules every command follows (new commands too):

- A user error is one line on stderr, ``error: <message>``, naming the bad value and what is
  allowed. Exit code 2 for usage (a bad option or argument, a value outside its set, an
  unknown profile or config environment), 1 for a failed operation (no such stack, id or
  subscription; AWS refused). Never a traceback: ``--debug`` shows it. ``NotifyctlGroup``
  (notifyctl/errors.py) does this for every command: raise ``fail(...)``/``not_found(...)``,
  or let an AWS or domain error through.
- Every enumerated value is checked against the source the product uses (notifyctl/choices.py:
  channels, event types, categories, template locales, IANA time zones), never a copied list.
- Region and credentials resolve as the AWS CLI does: ``--profile``/``--region`` on the top
  command, then the environment, then the profile, then samconfig.toml (notifyctl/target.py).
- Ids are never cut: not in ``--json``, not in tables (id columns do not wrap or shrink). A
  unique prefix of 8+ characters is accepted wherever an id is (notifyctl/ids.py).
- No option is silently ignored: one that cannot take effect here is a usage error (e.g.
  ``--timezone`` for a user without quiet hours). Every option and argument has help text
  (tests/e2e/test_cli.py checks each command's).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperOption

from notifyctl import choices
from notifyctl.errors import NotifyctlGroup, OperationError, UsageError
from notifyctl.ids import resolve, resolve_all
from notifyctl.target import (
    LOCAL_REGION,
    LOCAL_STACK_NAME,
    StackTarget,
    aws_session,
    find_samconfig,
    samconfig_parameters,
)

T = TypeVar("T")


def _plain_type_label(display: Callable[[Any, Any], str | None]) -> Callable[[Any, Any], Any]:
    """typer labels a flag ``<bool>`` and a repeatable option ``<list[str]>`` in help; a flag
    takes no value, so it gets no label, and a repeatable one reads ``<str>...``."""

    def label(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False):
            return None
        text = display(self, ctx)
        match = re.fullmatch(r"<list\[(.+)\]>", text or "")
        return f"<{match.group(1)}>..." if match else text

    return label


if hasattr(TyperOption, "display_type_rich"):  # typer >= 0.20 shows type labels
    TyperOption.display_type_rich = _plain_type_label(TyperOption.display_type_rich)  # type: ignore[method-assign]

app = typer.Typer(
    cls=NotifyctlGroup, help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False
)
local_app = typer.Typer(
    help="The whole application on an embedded AWS (moto).", no_args_is_help=True
)
app.add_typer(local_app, name="local")

console = Console()
err_console = Console(stderr=True)

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
JSON_HELP = "Print JSON (ids and values uncut) instead of a table."


class State:
    stack_name: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    config_env: str = "default"

    def target(self) -> StackTarget:
        samconfig = samconfig_parameters(find_samconfig(), self.config_env)
        name = self.stack_name
        if name is None:
            name = LOCAL_STACK_NAME if self.endpoint_url else samconfig.get("stack_name")
        if name is None:
            raise fail(
                "no stack: give --stack-name, --endpoint-url for the local stack, or a"
                " stack_name in samconfig.toml"
            )
        fallback = LOCAL_REGION if self.endpoint_url else samconfig.get("region")
        profile = self.profile or os.environ.get("AWS_PROFILE") or samconfig.get("profile")
        session = aws_session(profile, self.region, fallback)
        return StackTarget(name, endpoint_url=self.endpoint_url, session=session)


state = State()


def on_target(build: Callable[[StackTarget], T]) -> T:
    """``build`` applied to the chosen stack; a missing stack or output is a clear error."""
    return build(state.target())


def package_version() -> str:
    try:
        return version("serverless-notifications")
    except PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def show_version(value: bool) -> None:
    if value:
        print(f"notifyctl {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    stack_name: Annotated[
        str | None,
        typer.Option(help="Deployed stack (default: samconfig.toml's, or the local one)."),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS endpoint, e.g. http://127.0.0.1:5000 for `local serve`.")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(help="AWS named profile (default: AWS_PROFILE, then samconfig.toml's)."),
    ] = None,
    config_env: Annotated[
        str,
        typer.Option(help="samconfig.toml environment (found in this directory or a parent)."),
    ] = "default",
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error, too.")
    ] = False,
    show: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    state.stack_name, state.endpoint_url, state.region = stack_name, endpoint_url, region
    state.profile, state.config_env = profile, config_env


def fail(message: str) -> UsageError:
    """A usage error (exit code 2): ``raise fail("--x 'y' is not ...")``."""
    return UsageError(message)


def not_found(message: str) -> OperationError:
    """A failed operation (exit code 1): ``raise not_found("no subscription 'x'")``."""
    return OperationError(message)


def checked(option: str, values: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """``values`` when each is one of ``allowed``; else a usage error naming the first bad one."""
    try:
        return [choices.check(option, v, allowed) for v in values]
    except choices.ChoiceError as exc:
        raise fail(str(exc)) from None


def in_range(
    option: str,
    value: float,
    minimum: float | None = None,
    maximum: float | None = None,
    open_minimum: bool = False,
) -> None:
    """A usage error naming ``value`` when it is outside ``minimum``..``maximum``."""
    low = minimum is not None and (value <= minimum if open_minimum else value < minimum)
    if low or (maximum is not None and value > maximum):
        bounds = [
            f"{'more than' if open_minimum else 'at least'} {minimum:g}"
            if minimum is not None
            else "",
            f"at most {maximum:g}" if maximum is not None else "",
        ]
        raise fail(
            f"{option} {value:g} is out of range: give {' and '.join(b for b in bounds if b)}"
        )


def latency_spec(option: str, value: str) -> None:
    """A usage error naming the bad part of a ``ProviderLatency`` value."""
    from notifications.channels.latency import LatencySpecError, parse_latency

    try:
        parse_latency(value)
    except LatencySpecError as exc:
        raise fail(f"{option}: {exc}") from None


def id_column(table: Table, title: str, ids: Iterable[str]) -> None:
    """An id column that never wraps or shrinks (other columns wrap instead)."""
    width = max((len(i) for i in ids), default=len(title))
    table.add_column(title, no_wrap=True, min_width=max(width, len(title)))


def parse_since(value: str | None, option: str = "--since") -> datetime | None:
    """``30m``, ``2h``, ``7d`` or an ISO 8601 time, not in the future."""
    if not value:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} takes 30m, 2h, 7d or an ISO time, not {value!r}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC):
        raise fail(f"{option} {value!r} is in the future; give a past time or 30m, 2h, 7d")
    return moment


@app.command()
def publish(
    event_type: Annotated[
        str, typer.Argument(help="A type of the event catalog (`notifyctl events list`).")
    ],
    detail: Annotated[str | None, typer.Option(help="The event's detail as JSON.")] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            help="A file holding the detail JSON.", exists=True, dir_okay=False, readable=True
        ),
    ] = None,
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
    except PublishError as exc:
        raise fail(str(exc)) from exc
    if not result.ok:
        raise not_found(
            f"EventBridge refused the event after {result.tries} tries: "
            f"{result.error_code} {result.error_message}"
        )
    bus = target.output("EventBusName")
    console.print(f"published {result.event_type} {result.event_id} to {bus}", soft_wrap=True)


@app.command()
def dashboard(
    since: Annotated[
        str | None, typer.Option(help="Only records changed since: 30m, 2h, 7d or ISO time.")
    ] = None,
    watch: Annotated[
        float | None,
        typer.Option(help="Refresh every N seconds (more than 0) until Ctrl-C."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """The notification dashboard: delivered, dead-lettered, by channel, recent failures."""
    from notifyctl.dashboard import collect, render

    if watch is not None:
        in_range("--watch", watch, minimum=0, open_minimum=True)
    cutoff = parse_since(since)
    target = state.target()
    try:
        while True:
            figures = collect(target, since=cutoff)
            if as_json:
                print(figures.to_json())
            else:
                if watch:
                    console.clear()
                render(figures, console)
            if not watch:
                return
            time.sleep(watch)
    except KeyboardInterrupt:
        return


# `--provider-latency` of `local demo` and `local serve` (the ProviderLatency parameter).
ProviderLatencyOption = Annotated[
    str,
    typer.Option(
        help="A modelled provider latency per channel, in ms, e.g. "
        "email=lognormal:80:250,webhook=fixed:300 (the ProviderLatency parameter; "
        "lognormal takes the median and the 99th percentile).",
    ),
]


@local_app.command("demo")
def local_demo(
    events: Annotated[
        int, typer.Option(help="Synthetic domain events after Alice's three (0 or more).")
    ] = 200,
    failure_rate: Annotated[
        float, typer.Option(help="Fraction of provider calls that fail (0 to 1).")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Random seed for the synthetic events.")] = 7,
    users: Annotated[
        int, typer.Option(help="Synthetic users with stored preferences (0 or more).")
    ] = 40,
    provider_latency: ProviderLatencyOption = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    server: Annotated[
        bool, typer.Option("--server", help="Run moto as a server on 127.0.0.1, over HTTP.")
    ] = False,
    template: Annotated[
        Path, typer.Option(help="The SAM template.", exists=True, dir_okay=False)
    ] = DEFAULT_TEMPLATE,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the functions in this process, one batch at a time (faster; "
            "no concurrency, isolation or timeouts: docs/local-runtime.md).",
        ),
    ] = False,
) -> None:
    """Deploy locally, publish events with a failing provider, drain, print the dashboard."""
    from notifyctl.dashboard import render
    from notifyctl.demo import ALICE, run_demo
    from notifyctl.local.application import embedded_aws, use_local_environment
    from notifyctl.local.clock import RealClock

    in_range("--events", events, minimum=0)
    in_range("--users", users, minimum=0)
    in_range("--failure-rate", failure_rate, minimum=0, maximum=1)
    latency_spec("--provider-latency", provider_latency)
    use_local_environment()
    progress_console = err_console if as_json else console
    with (
        # The concurrent, isolated runtime's workers reach moto over HTTP: it needs the server.
        embedded_aws(server=server or not in_process) as endpoint,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=progress_console,
            transient=True,
        ) as progress,
    ):
        tasks: dict[str, Any] = {}

        def on_progress(phase: str, done: int, total: int | None) -> None:
            # One task per phase: a finished phase keeps its time, the current one runs on.
            if phase not in tasks:
                for earlier in tasks.values():
                    progress.stop_task(earlier)
                tasks[phase] = progress.add_task(phase, total=total, count="")
            unit = "events" if phase == "publishing" else "messages"
            count = f"{done:,} of {total:,} {unit}" if total is not None else f"{done:,} {unit}"
            progress.update(tasks[phase], completed=done, total=total, count=count)

        on_progress("deploying template.yaml into moto", 0, None)
        result = run_demo(
            template,
            events,
            failure_rate,
            seed,
            RealClock(),
            users=users,
            on_progress=on_progress,
            isolation="in-process" if in_process else "process",
            provider_latency=provider_latency,
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
    if result.preference_link:
        console.print(
            "Alice's preference link (signed with this run's key; to open one, run "
            "`notifyctl local serve` and `notifyctl --endpoint-url URL preferences link "
            f"{ALICE}`):\n"
            f"{result.preference_link}",
            highlight=False,
            soft_wrap=True,
        )


@local_app.command("serve")
def local_serve(
    port: Annotated[
        int,
        typer.Option(help="Port for moto server on 127.0.0.1 (0: any free one)."),
    ] = 5000,
    failure_rate: Annotated[
        float, typer.Option(help="Fraction of provider calls that fail (0 to 1).")
    ] = 0.0,
    provider_latency: ProviderLatencyOption = "",
    template: Annotated[
        Path, typer.Option(help="The SAM template.", exists=True, dir_okay=False)
    ] = DEFAULT_TEMPLATE,
) -> None:
    """moto server on 127.0.0.1 with the application deployed and running, until Ctrl-C."""
    from notifyctl.serve import PortInUse, serve

    in_range("--port", port, minimum=0, maximum=65535)
    in_range("--failure-rate", failure_rate, minimum=0, maximum=1)
    latency_spec("--provider-latency", provider_latency)
    try:
        serve(template, port, failure_rate, console, provider_latency=provider_latency)
    except PortInUse as exc:
        raise not_found(str(exc)) from None


def run() -> None:  # pragma: no cover - console script entry for `python -m notifyctl`
    sys.exit(app())


# -- dead letters -----------------------------------------------------------------------------

dlq_app = typer.Typer(help="The notification dead-letter store.", no_args_is_help=True)
events_dlq_app = typer.Typer(help="EventsDLQ: domain events not fanned out.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(events_dlq_app, name="events-dlq")

NOTIFICATION_IDS_HELP = "Notification ids (or unique prefixes of 8+ characters)."
MESSAGE_IDS_HELP = "EventsDLQ message ids (or unique prefixes of 8+ characters)."
CHANNEL_HELP = "Only this channel: email, sms, push or webhook."
REASON_HELP = "Only this reason code, e.g. provider_timeout."


def _dead_letters() -> Any:
    from notifyctl.operations import DeadLetters

    return on_target(DeadLetters)


def _channel(channel: str | None) -> str | None:
    if channel is not None:
        checked("--channel", [channel], choices.channels())
    return channel


@dlq_app.command("list")
def dlq_list(
    channel: Annotated[str | None, typer.Option(help=CHANNEL_HELP)] = None,
    reason: Annotated[str | None, typer.Option(help=REASON_HELP)] = None,
    since: Annotated[str | None, typer.Option(help="30m, 2h, 7d or an ISO time.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Dead letters, newest first."""
    chosen, cutoff = _channel(channel), parse_since(since)
    records = list(_dead_letters().list(chosen, reason, cutoff))
    if as_json:
        print(json.dumps(records, indent=2, default=str))
        return
    table = Table(title=f"{len(records)} dead letter(s)", title_justify="left")
    id_column(table, "Id", (str(r["notification_id"]) for r in records))
    for column in ("Channel", "Recipient", "Reason", "Attempts", "Dead-lettered at"):
        table.add_column(column, overflow="fold")  # wraps; the id column stays whole
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
def dlq_show(
    notification_id: Annotated[
        str, typer.Argument(help="A notification id (or a unique prefix of 8+ characters).")
    ],
) -> None:
    """The full record: payload, attempts, every error, timestamps, audit trail."""
    store = _dead_letters()
    record = store.show(notification_id)
    if record is None:
        known = (str(r["notification_id"]) for r in store.ledger.scan())
        record = store.show(resolve(notification_id, known, "notification"))
    print(json.dumps(record, indent=2, default=str))


def _select(
    store: Any, ids: list[str], all_: bool, channel: str | None, reason: str | None
) -> list[str]:
    """The dead letters a redrive or purge acts on: ids (resolved), or a filter's matches."""
    if ids and (all_ or channel or reason):
        raise fail("give ids, or a filter (--all, --channel, --reason), not both")
    if not (ids or all_ or channel or reason):
        raise fail("give ids, --all, or a filter (--channel, --reason)")
    if ids:
        known = (str(r["notification_id"]) for r in store.list())
        return resolve_all(ids, known, "dead letter")
    return [str(r["notification_id"]) for r in store.list(_channel(channel), reason)]


@dlq_app.command("redrive")
def dlq_redrive(
    ids: Annotated[list[str] | None, typer.Argument(help=NOTIFICATION_IDS_HELP)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    channel: Annotated[str | None, typer.Option(help=CHANNEL_HELP)] = None,
    reason: Annotated[str | None, typer.Option(help=REASON_HELP)] = None,
) -> None:
    """Re-enqueue dead letters with the same id and a fresh attempt budget."""
    store = _dead_letters()
    results = [store.redrive(i) for i in _select(store, ids or [], all_, channel, reason)]
    for result in results:
        mark = "[green]redriven[/green]" if result.ok else "[red]not redriven[/red]"
        console.print(f"{result.notification_id}: {mark} ({result.detail})", soft_wrap=True)
    ok = sum(r.ok for r in results)
    console.print(f"{ok} of {len(results)} redriven")
    if ok < len(results):
        raise typer.Exit(code=1)


@dlq_app.command("purge")
def dlq_purge(
    ids: Annotated[list[str] | None, typer.Argument(help=NOTIFICATION_IDS_HELP)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    channel: Annotated[str | None, typer.Option(help=CHANNEL_HELP)] = None,
    reason: Annotated[str | None, typer.Option(help=REASON_HELP)] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really purge.")] = False,
) -> None:
    """Drop dead letters' payloads; each record stays, marked PURGED, as the audit entry."""
    store = _dead_letters()
    chosen = _select(store, ids or [], all_, channel, reason)
    if not yes:
        raise fail(f"purging {len(chosen)} dead letter(s) needs --yes")
    purged = sum(store.purge(i) for i in chosen)
    console.print(f"{purged} of {len(chosen)} purged")
    if purged < len(chosen):
        raise typer.Exit(code=1)


def _events_dead_letters() -> Any:
    from notifyctl.operations import EventsDeadLetters

    return on_target(EventsDeadLetters)


def _message_ids(given: list[str] | None, all_: bool) -> list[str] | None:
    """The EventsDLQ messages chosen: None for --all, else the ids given (the store resolves
    prefixes against the messages it receives, in the same pass that acts on them)."""
    if bool(given) == all_:
        raise fail("give message ids or --all (not both)")
    return None if all_ else list(given or [])


@events_dlq_app.command("list")
def events_dlq_list(
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Events in EventsDLQ with why they are there."""
    entries = _events_dead_letters().list()
    if as_json:
        print(json.dumps(entries, indent=2, default=str))
        return
    table = Table(title=f"{len(entries)} event(s) in EventsDLQ", title_justify="left")
    id_column(table, "Message id", (str(e["message_id"]) for e in entries))
    for column in ("Event", "Event id", "Origin", "Reason", "Error"):
        table.add_column(column, overflow="fold")  # wraps; the id column stays whole
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
    message_ids: Annotated[list[str] | None, typer.Argument(help=MESSAGE_IDS_HELP)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every event in EventsDLQ.")] = False,
) -> None:
    """Put events back on the bus (fix the cause first: a rejected event is rejected again)."""
    chosen = _message_ids(message_ids, all_)
    results = _events_dead_letters().replay(chosen)
    for r in results:
        state_text = "replayed" if r["replayed"] else f"kept ({r.get('why')})"
        console.print(f"{r['message_id']} {r['event_type']}: {state_text}", soft_wrap=True)
    replayed = sum(r["replayed"] for r in results)
    console.print(f"{replayed} of {len(results)} replayed")
    if replayed < len(results):
        raise typer.Exit(code=1)


@events_dlq_app.command("purge")
def events_dlq_purge(
    message_ids: Annotated[list[str] | None, typer.Argument(help=MESSAGE_IDS_HELP)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every event in EventsDLQ.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really purge.")] = False,
) -> None:
    """Delete events from EventsDLQ, each leaving an audit record in the ledger."""
    chosen = _message_ids(message_ids, all_)
    if not yes:
        raise fail("purging needs --yes")
    purged = _events_dead_letters().purge(chosen)
    console.print(f"{purged} event(s) purged")


# -- the event catalog ------------------------------------------------------------------------

catalog_app = typer.Typer(
    help="The event catalog: the domain event types producers may publish.", no_args_is_help=True
)
app.add_typer(catalog_app, name="events")


@catalog_app.command("list")
def events_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
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
def events_show(
    event_type: Annotated[str, typer.Argument(help="An event type (see `notifyctl events list`).")],
) -> None:
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

SUBSCRIPTION_ID_HELP = "A subscription id (or a unique prefix of 8+ characters)."


def _webhooks() -> Any:
    from notifyctl.subscriptions import Webhooks

    return on_target(Webhooks)


def _subscription(webhooks: Any, given: str) -> str:
    return resolve(given, (s.subscription_id for s in webhooks.list()), "subscription")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https:// endpoint that receives the POSTs.")],
    event_type: Annotated[
        list[str],
        typer.Option(
            "--event-type",
            help=f"Repeat per type: {', '.join(choices.webhook_event_types())} (all).",
        ),
    ],
    subscription_id: Annotated[str | None, typer.Option("--id", help="Default: generated.")] = None,
) -> None:
    """Subscribe a URL; prints the signing secret once (store it with the receiver)."""
    checked("--event-type", event_type, choices.webhook_event_types())
    try:
        subscription, secret = _webhooks().add(url, event_type, subscription_id)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    console.print(f"subscription {subscription.subscription_id} -> {subscription.url}")
    console.print(f"signing secret (shown once): {secret}", highlight=False, soft_wrap=True)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@webhooks_app.command("list")
def webhooks_list(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Every subscription with its endpoint's health: healthy, failing (since when, next
    attempt) or disabled; last success; notifications pending (retrying, waiting, kept)."""
    from dataclasses import asdict

    views = _webhooks().endpoints()
    if as_json:
        rows = []
        for view in views:
            health = view.health
            rows.append(
                asdict(view.subscription)
                | {
                    "health": health.state,
                    "last_success_at": _iso(health.last_success_at),
                    "failing_since": _iso(health.failing_since),
                    "next_attempt_at": _iso(health.next_attempt_at),
                    "disabled_at": _iso(health.disabled_at),
                    "consecutive_failures": health.consecutive_failures,
                    "last_reason": health.last_reason,
                    "pending": view.pending,
                }
            )
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(views)} subscription(s)", title_justify="left")
    id_column(table, "Id", (v.subscription.subscription_id for v in views))
    columns = ("URL", "Event types", "Enabled", "Health", "Last success", "Failing since")
    for column in (*columns, "Next attempt", "Pending"):
        table.add_column(column, overflow="fold")  # wraps; the id column stays whole
    for view in views:
        s, health = view.subscription, view.health
        enabled = "yes" if s.enabled else f"no ({s.disabled_reason})"
        state = health.state
        if health.failing:
            state += f" ({health.consecutive_failures}x {health.last_reason or '-'})"
        table.add_row(
            s.subscription_id,
            s.url,
            ", ".join(s.event_types),
            enabled,
            state,
            _when(health.last_success_at),
            _when(health.failing_since),
            _when(health.next_attempt_at) if health.failing and not health.disabled else "-",
            str(view.pending),
        )
    console.print(table)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


@webhooks_app.command("enable")
def webhooks_enable(
    subscription_id: Annotated[str, typer.Argument(help=SUBSCRIPTION_ID_HELP)],
) -> None:
    """Re-enable an endpoint that was disabled (after WebhookDisableAfterHours of failures, or
    a 410 Gone). Its kept notifications stay kept: `webhooks replay` sends them."""
    webhooks = _webhooks()
    chosen = _subscription(webhooks, subscription_id)
    if not webhooks.enable(chosen, datetime.now(UTC)):
        raise not_found(f"subscription {chosen!r} is not disabled")
    console.print(
        f"{chosen}: enabled. Send its kept notifications with"
        f" `notifyctl webhooks replay {chosen} --since ...`",
        soft_wrap=True,
    )


@webhooks_app.command("replay")
def webhooks_replay(
    subscription_id: Annotated[str, typer.Argument(help=SUBSCRIPTION_ID_HELP)],
    since: Annotated[
        str, typer.Option(help="Notifications created since: 30m, 2h, 7d or an ISO time.")
    ],
    until: Annotated[
        str | None, typer.Option(help="... and until (same forms; default: now).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be re-sent; send nothing.")
    ] = False,
) -> None:
    """Re-send the endpoint's dead-lettered and kept (ENDPOINT_DISABLED) notifications of a
    time window, with the same webhook-id (receivers deduplicate on it); one audit record per
    replay."""
    from notifyctl.operations import operator

    start = parse_since(since)
    end = parse_since(until, option="--until")
    assert start is not None  # a required option
    if end is not None and end < start:
        raise fail(f"--until {until!r} is before --since {since!r}")
    webhooks = _webhooks()
    chosen = _subscription(webhooks, subscription_id)
    items = webhooks.replayable(chosen, start, end)
    if dry_run:
        for item in items:
            console.print(f"{item.notification_id}  {item.status}  {item.created_at}")
        console.print(f"{len(items)} notification(s) would be replayed to {chosen}")
        return
    now, who = datetime.now(UTC), operator()
    outcomes = [webhooks.replay(item, now, who) for item in items]
    webhooks.record_replay(chosen, start, end, outcomes, now, who)
    for outcome in outcomes:
        mark = "[green]replayed[/green]" if outcome.ok else "[red]not replayed[/red]"
        console.print(f"{outcome.notification_id}: {mark} ({outcome.detail})", soft_wrap=True)
    ok = sum(o.ok for o in outcomes)
    console.print(f"{ok} of {len(outcomes)} replayed to {chosen}")
    if ok < len(outcomes):
        raise typer.Exit(code=1)


@webhooks_app.command("remove")
def webhooks_remove(
    subscription_id: Annotated[str, typer.Argument(help=SUBSCRIPTION_ID_HELP)],
) -> None:
    """Delete a subscription and its signing secret."""
    webhooks = _webhooks()
    chosen = _subscription(webhooks, subscription_id)
    if not webhooks.remove(chosen):
        raise not_found(f"no subscription {chosen!r}")
    console.print(f"removed {chosen}")


def sender_secret_cache_seconds() -> int:
    """How long a sender keeps a secret it read (the signing keys' default cache)."""
    import inspect

    from notifications.channels.webhook import SecretsManagerSigningKeys

    cache = inspect.signature(SecretsManagerSigningKeys).parameters["cache_seconds"].default
    return int(cache)


@webhooks_app.command("rotate-secret")
def webhooks_rotate(
    subscription_id: Annotated[str, typer.Argument(help=SUBSCRIPTION_ID_HELP)],
    finish: Annotated[
        bool, typer.Option("--finish", help="End the rotation: drop the old secret.")
    ] = False,
) -> None:
    """Start a rotation (deliveries carry old and new signatures), or --finish it."""
    webhooks = _webhooks()
    chosen = _subscription(webhooks, subscription_id)
    if finish:
        webhooks.finish_rotation(chosen)
        console.print(
            f"{chosen}: old secret retired. Senders that cached it keep adding the old"
            f" signature for up to {sender_secret_cache_seconds()} s; after that only the new"
            " one signs.",
            soft_wrap=True,
        )
        return
    secret = webhooks.rotate(chosen)
    console.print(f"new signing secret (shown once): {secret}", highlight=False, soft_wrap=True)
    console.print(
        "Deliveries carry both signatures until `rotate-secret --finish`"
        f" (senders pick up the new secret within {sender_secret_cache_seconds()} s).",
        soft_wrap=True,
    )


# -- preferences ------------------------------------------------------------------------------

preferences_app = typer.Typer(
    help="Users' contact points, opt-outs and quiet hours.", no_args_is_help=True
)
app.add_typer(preferences_app, name="preferences")

USER_ID_HELP = "The user's id, exactly as the events carry it."


def _preferences() -> Any:
    from notifications.adapters.preferences import DynamoPreferencesStore

    return on_target(lambda t: DynamoPreferencesStore(t.output("PreferencesTableName")))


@preferences_app.command("get")
def preferences_get(user_id: Annotated[str, typer.Argument(help=USER_ID_HELP)]) -> None:
    """A user's preferences as JSON."""
    current = _preferences().get(user_id)
    if current is None:
        raise not_found(f"no preferences for user {user_id!r}")
    print(current.model_dump_json(indent=2))


@preferences_app.command("set")
def preferences_set(
    user_id: Annotated[str, typer.Argument(help=USER_ID_HELP)],
    email: Annotated[str | None, typer.Option(help="Email address ('' removes it).")] = None,
    phone: Annotated[str | None, typer.Option(help="E.164 phone number ('' removes it).")] = None,
    push_endpoint: Annotated[
        list[str] | None, typer.Option(help="SNS platform endpoint ARN; repeat; replaces all.")
    ] = None,
    locale: Annotated[
        str | None,
        typer.Option(help=f"Template locale: {', '.join(choices.locales())}, or e.g. de-CH."),
    ] = None,
    opt_out_channel: Annotated[
        list[str] | None,
        typer.Option(help=f"Repeat: {', '.join(choices.preference_channels())}."),
    ] = None,
    opt_in_channel: Annotated[
        list[str] | None, typer.Option(help="Undo an opt-out of a channel; repeat.")
    ] = None,
    opt_out_category: Annotated[
        list[str] | None, typer.Option(help=f"Repeat: {', '.join(choices.categories())}.")
    ] = None,
    opt_in_category: Annotated[
        list[str] | None, typer.Option(help="Undo an opt-out of a category; repeat.")
    ] = None,
    quiet_hours: Annotated[
        str | None, typer.Option(help="HH:MM-HH:MM in --timezone; 'off' removes them.")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="IANA time zone of the quiet hours (default UTC; alone: moves them)."),
    ] = None,
    unsuppress_email: Annotated[
        str | None, typer.Option(help="Mail an address again after a bounce or complaint.")
    ] = None,
    channel_chain: Annotated[
        list[str] | None,
        typer.Option(help="CATEGORY=push,sms,email: the user's own fallback chain; repeat."),
    ] = None,
) -> None:
    """Change a user's preferences (creating them if needed); prints the result."""
    from notifications.preferences import PreferencesError
    from notifyctl.preference_changes import (
        PreferenceChangeError,
        changes_for,
        channel_chain_changes,
    )

    channels_allowed = choices.preference_channels()
    checked("--opt-out-channel", opt_out_channel or [], channels_allowed)
    checked("--opt-in-channel", opt_in_channel or [], channels_allowed)
    checked("--opt-out-category", opt_out_category or [], choices.categories())
    checked("--opt-in-category", opt_in_category or [], choices.categories())
    try:
        if locale is not None:
            choices.check_locale(locale)
        if timezone is not None:
            choices.check_timezone(timezone)
    except choices.ChoiceError as exc:
        raise fail(str(exc)) from None
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
    except PreferenceChangeError as exc:
        raise fail(str(exc)) from exc
    if not changes:
        raise fail("nothing to change: give at least one option (see --help)")
    try:
        updated = store.update(user_id, changes)
    except PreferencesError as exc:
        raise fail(str(exc)) from exc
    print(updated.model_dump_json(indent=2))


def _preference_links() -> Any:
    from notifyctl.preference_center_links import links_for

    return on_target(links_for)


@preferences_app.command("link")
def preferences_link(
    user_id: Annotated[str, typer.Argument(help=USER_ID_HELP)],
    category: Annotated[
        str | None, typer.Option(help="The category the page opens on (default: the first).")
    ] = None,
    unsubscribe: Annotated[
        bool, typer.Option("--unsubscribe", help="A one-click unsubscribe link instead.")
    ] = False,
) -> None:
    """Print a fresh signed preference-center link for USER (valid 60 days)."""
    from notifications.errors import NotificationError
    from notifyctl.preference_center_links import LinkError, link

    try:
        print(link(_preference_links(), user_id, category, unsubscribe))
    except LinkError as exc:
        raise fail(str(exc)) from exc
    except NotificationError as exc:  # the signing secret is missing or unreadable
        raise fail(f"cannot sign the link: {exc.message}") from exc


@preferences_app.command("rotate-link-key")
def preferences_rotate_link_key(
    finish: Annotated[
        bool, typer.Option("--finish", help="End the grace period: retire the previous key.")
    ] = False,
) -> None:
    """Start a key rotation (links signed with either key work), or --finish it."""
    from notifyctl.preference_center_links import link_keys

    keys = on_target(link_keys)
    if finish:
        retired = keys.retire_previous()
        console.print("previous key retired: its links stop working" if retired else "no rotation")
        return
    keys.rotate()
    console.print("new link key in use; links signed with the previous one work until --finish")
