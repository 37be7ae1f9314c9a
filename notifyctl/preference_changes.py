"""Turning `notifyctl preferences set` options into validated preference changes."""

from __future__ import annotations

import re
from datetime import time
from typing import Any

from notifications.channels.email import validate_recipient
from notifications.channels.sms import validate_phone
from notifications.errors import PermanentError
from notifications.models import Channel, QuietHours
from notifications.preferences import Preferences

QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class PreferenceChangeError(ValueError):
    """An option that names no valid value; nothing is written."""


def _channels(names: list[str]) -> set[Channel]:
    try:
        return {Channel(name) for name in names}
    except ValueError as exc:
        raise PreferenceChangeError(
            f"unknown channel: {exc}; use {', '.join(c.value for c in Channel)}"
        ) from None


def parse_quiet_hours(value: str, timezone: str) -> QuietHours | None:
    if value.lower() == "off":
        return None
    match = QUIET_HOURS.match(value)
    if not match:
        raise PreferenceChangeError(f"quiet hours take HH:MM-HH:MM or 'off', not {value!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        return QuietHours(start=time(h1, m1), end=time(h2, m2), timezone=timezone)
    except ValueError as exc:
        raise PreferenceChangeError(str(exc)) from None


def changes_for(
    current: Preferences | None,
    *,
    email: str | None,
    phone: str | None,
    push_endpoints: list[str] | None,
    locale: str | None,
    opt_out_channels: list[str],
    opt_in_channels: list[str],
    opt_out_categories: list[str],
    opt_in_categories: list[str],
    quiet_hours: str | None,
    timezone: str | None,
    unsuppress_email: str | None,
) -> dict[str, Any]:
    """Field -> new value; addresses and numbers are checked as the sender would check them.

    Quiet hours are in ``timezone``, else in the zone of the user's current quiet hours, else
    UTC. ``timezone`` alone moves the current quiet hours to that zone; with none to move it
    is an error, not a silent no-op. So is unsuppressing an address that is not suppressed."""
    changes: dict[str, Any] = {}
    try:
        if email is not None:
            changes["email"] = validate_recipient(email) if email else None
        if phone is not None:
            changes["phone"] = validate_phone(phone) if phone else None
    except PermanentError as exc:
        raise PreferenceChangeError(exc.message) from None
    if push_endpoints is not None:
        bad = [arn for arn in push_endpoints if ":endpoint/" not in arn]
        if bad:
            raise PreferenceChangeError(f"not SNS platform endpoint ARNs: {', '.join(bad)}")
        changes["push_endpoints"] = tuple(push_endpoints)
    if locale is not None:
        changes["locale"] = locale
    if opt_out_channels or opt_in_channels:
        existing = set(current.opted_out_channels) if current else set()
        changes["opted_out_channels"] = (existing | _channels(opt_out_channels)) - _channels(
            opt_in_channels
        )
    if opt_out_categories or opt_in_categories:
        existing_categories = set(current.opted_out_categories) if current else set()
        changes["opted_out_categories"] = (existing_categories | set(opt_out_categories)) - set(
            opt_in_categories
        )
    existing_hours = current.quiet_hours if current else None
    if quiet_hours is not None:
        zone = timezone or (existing_hours.timezone if existing_hours else "UTC")
        changes["quiet_hours"] = parse_quiet_hours(quiet_hours, zone)
    elif timezone is not None:
        if existing_hours is None:
            raise PreferenceChangeError(
                f"--timezone {timezone!r} sets the zone of quiet hours, and this user has none:"
                " give --quiet-hours HH:MM-HH:MM too"
            )
        try:
            changes["quiet_hours"] = QuietHours(
                start=existing_hours.start, end=existing_hours.end, timezone=timezone
            )
        except ValueError:
            raise PreferenceChangeError(
                f"--timezone {timezone!r} is not an IANA time zone"
            ) from None
    if unsuppress_email is not None:
        suppressed = set(current.suppressed_emails) if current else set()
        if unsuppress_email not in suppressed:
            raise PreferenceChangeError(
                f"--unsuppress-email {unsuppress_email!r} is not suppressed for this user"
            )
        changes["suppressed_emails"] = suppressed - {unsuppress_email}
    return changes


def channel_chain_changes(current: Preferences | None, specs: list[str]) -> dict[str, Any]:
    """``--channel-chain payment=push,sms,email`` (repeatable): the user's own fallback chain
    for a category (docs/producers.md#channel-fallback-chains); ``payment=`` removes it."""
    if not specs:
        return {}
    chains = dict(current.channel_chains) if current else {}
    for spec in specs:
        category, sep, names = spec.partition("=")
        if not sep or not category.strip():
            raise PreferenceChangeError(
                f"--channel-chain takes CATEGORY=CHANNEL,CHANNEL..., not {spec!r}"
            )
        listed = [n.strip() for n in names.split(",") if n.strip()]
        chain = tuple(_channels([n]).pop() for n in listed)
        if Channel.WEBHOOK in chain or len(set(chain)) != len(chain):
            raise PreferenceChangeError(
                f"--channel-chain {spec!r}: each of email, sms, push at most once, no webhook"
            )
        if chain:
            chains[category.strip()] = chain
        else:
            chains.pop(category.strip(), None)
    return {"channel_chains": chains}
