"""The preference center: a user's own page of categories x channels, quiet hours and time
zone, reached through a signed link, and the RFC 8058 one-click unsubscribe.

Plain request -> response logic over small ports (the preferences, the audit log, the signing
keys, a clock); ``functions/preference_center/app.py`` turns a Lambda function URL event into
an ``HttpRequest`` and the ``HttpResponse`` back. The token is the only credential: every
read and write here is of the token's own user, and nothing else is looked up.

Routes (docs/channels.md, "Preference center"):

- ``GET /preferences?t=<manage token>``: the page.
- ``POST /preferences`` (form, token in a hidden field): save the grid and quiet hours, or
  ``action=unsubscribe_all`` (every non-critical category on every channel off).
- ``GET /unsubscribe?t=<unsubscribe token>``: a confirmation page with one button (a GET never
  changes anything: mail scanners follow links).
- ``POST /unsubscribe?t=<unsubscribe token>`` with ``List-Unsubscribe=One-Click``: the
  category's email off, 200, idempotent.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as clock_time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from notifications.models import Channel, QuietHours
from notifications.preference_links import (
    MANAGE_PATH,
    UNSUBSCRIBE_PATH,
    LinkClaims,
    Purpose,
    SigningKeyring,
    TokenError,
    token_digest,
    verify_token,
)
from notifications.preferences import ChangeStamp, Preferences, pair
from notifications.routing import ROUTING_TABLE
from notifications.templates import locale_chain

if TYPE_CHECKING:
    from jinja2 import Environment

PAGE_DIR = Path(__file__).parent / "preference_page"
MAX_BODY_BYTES = 16 * 1024
SAVE_TRIES = 3  # optimistic writes: re-read and re-apply when another writer came first
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
USER_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)

_TOKEN_STATUS = {"missing": 400, "malformed": 400, "bad_signature": 403, "expired": 410}


@dataclass(frozen=True)
class Category:
    name: str
    channels: tuple[Channel, ...]
    critical: bool


def categories() -> tuple[Category, ...]:
    """Every category the routing table sends, with the user-level channels it uses."""
    found: dict[str, Category] = {}
    for route in ROUTING_TABLE.values():
        channels = tuple(c for c in USER_CHANNELS if c in route.channels)
        known = found.get(route.category)
        if known is not None:
            channels = tuple(c for c in USER_CHANNELS if c in known.channels or c in channels)
        critical = route.critical or (known is not None and known.critical)
        found[route.category] = Category(route.category, channels, critical)
    return tuple(found.values())


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)
    body: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)


class PreferencesPort(Protocol):
    def get_versioned(self, user_id: str) -> tuple[Preferences | None, str | None]: ...
    def replace(self, preferences: Preferences, expected_document: str | None) -> bool: ...


class AuditLog(Protocol):
    def record(self, entry: AuditEntry) -> bool:
        """Write the entry; False when an entry with its ``key`` exists (a replay)."""
        ...


@dataclass(frozen=True)
class AuditEntry:
    key: str  # unique per change; one-click: derived from the token, so a replay adds nothing
    user_id: str
    action: str  # one_click_unsubscribe, page_save, page_unsubscribe_all
    via: str  # list_unsubscribe_post, unsubscribe_page, preference_page
    at: datetime
    category: str
    changes: Mapping[str, list[str]]
    user_agent: str


class SaveConflict(RuntimeError):
    """Other writers kept changing the preferences while this change was being applied."""


# ---------------------------------------------------------------------------- HTTP glue


def request_from_function_url(event: Mapping[str, Any]) -> HttpRequest:
    """A Lambda function URL event (payload format 2.0) as an ``HttpRequest``."""
    http = (event.get("requestContext") or {}).get("http") or {}
    body = event.get("body") or ""
    if event.get("isBase64Encoded") and body:
        body = base64.b64decode(body).decode("utf-8", "replace")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "")
    form: dict[str, list[str]] = {}
    if body and content_type.lower().startswith("multipart/form-data"):
        form = _multipart_form(content_type, body[:MAX_BODY_BYTES])
    elif body:  # urlencoded, or a bare "List-Unsubscribe=One-Click" with no content type
        try:
            form = parse_qs(body[:MAX_BODY_BYTES], keep_blank_values=True, max_num_fields=200)
        except ValueError:  # more fields than any form of ours has
            form = {}
    query = {k: v for k, v in (event.get("queryStringParameters") or {}).items() if v}
    return HttpRequest(
        method=str(http.get("method", "GET")).upper(),
        path=str(event.get("rawPath") or http.get("path") or "/"),
        query=query,
        form=form,
        body=body[:MAX_BODY_BYTES],
        user_agent=headers.get("user-agent", "")[:200],
    )


def _multipart_form(content_type: str, body: str) -> dict[str, list[str]]:
    """The text fields of a multipart/form-data body (RFC 8058's example sends one)."""
    from email.parser import Parser

    message = Parser().parsestr(f"Content-Type: {content_type}\r\n\r\n{body}")
    form: dict[str, list[str]] = {}
    if not message.is_multipart():
        return form
    for part in message.get_payload():
        if isinstance(part, str):
            continue
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload()
        if isinstance(name, str) and isinstance(payload, str):
            form.setdefault(name, []).append(payload.strip())
    return form


def function_url_response(response: HttpResponse) -> dict[str, Any]:
    return {
        "statusCode": response.status,
        "headers": {
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the token is in the URL
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            **response.headers,
        },
        "body": response.body,
    }


# ---------------------------------------------------------------------------- page strings

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Notification preferences",
        "intro": "Choose what you hear about, and where.",
        "category": "Category",
        "critical_note": "Always sent: this category cannot be turned off.",
        "channel.email": "Email",
        "channel.sms": "SMS",
        "channel.push": "Push",
        "category.account": "Account",
        "category.order": "Orders",
        "category.payment": "Payments and receipts",
        "quiet_hours": "Quiet hours",
        "quiet_hours_help": "Nothing but critical messages between these times. "
        "Leave both empty for none.",
        "quiet_start": "From",
        "quiet_end": "Until",
        "timezone": "Time zone",
        "save": "Save preferences",
        "unsubscribe_all": "Unsubscribe from all non-critical notifications",
        "saved": "Your preferences are saved.",
        "unsubscribed_all": "You are unsubscribed from all non-critical notifications.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_confirm": "Stop emails about “{category}”?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed": "You will no longer get emails about “{category}”.",
        "error_title": "This link does not work",
        "error.missing": "The link is incomplete. Open it again from the message you received.",
        "error.malformed": "The link is damaged. Open it again from the message you received.",
        "error.bad_signature": "The link is not valid.",
        "error.expired": "The link has expired. Use the link in a newer message.",
        "error.wrong_purpose": "This link cannot be used here.",
        "error.critical": "This category cannot be turned off.",
        "error.invalid": "Some values were not accepted: {detail}",
        "error.not_found": "There is no such page.",
        "error.method": "This page does not accept that request.",
        "error.conflict": "Your preferences changed at the same time. Please try again.",
    },
    "de": {
        "title": "Benachrichtigungseinstellungen",
        "intro": "Wählen Sie, worüber Sie benachrichtigt werden und wie.",
        "category": "Kategorie",
        "critical_note": "Wird immer gesendet: Diese Kategorie kann nicht abbestellt werden.",
        "channel.email": "E-Mail",
        "channel.sms": "SMS",
        "channel.push": "Push",
        "category.account": "Konto",
        "category.order": "Bestellungen",
        "category.payment": "Zahlungen und Belege",
        "quiet_hours": "Ruhezeiten",
        "quiet_hours_help": "In dieser Zeit nur wichtige Nachrichten. "
        "Beide Felder leer lassen für keine.",
        "quiet_start": "Von",
        "quiet_end": "Bis",
        "timezone": "Zeitzone",
        "save": "Einstellungen speichern",
        "unsubscribe_all": "Alle nicht wichtigen Benachrichtigungen abbestellen",
        "saved": "Ihre Einstellungen sind gespeichert.",
        "unsubscribed_all": "Sie haben alle nicht wichtigen Benachrichtigungen abbestellt.",
        "unsubscribe_title": "Abbestellen",
        "unsubscribe_confirm": "Keine E-Mails mehr zu „{category}“?",
        "unsubscribe_button": "Abbestellen",
        "unsubscribed": "Sie erhalten keine E-Mails mehr zu „{category}“.",
        "error_title": "Dieser Link funktioniert nicht",
        "error.missing": "Der Link ist unvollständig. Öffnen Sie ihn erneut aus der Nachricht.",
        "error.malformed": "Der Link ist beschädigt. Öffnen Sie ihn erneut aus der Nachricht.",
        "error.bad_signature": "Der Link ist ungültig.",
        "error.expired": "Der Link ist abgelaufen. Nutzen Sie den Link einer neueren Nachricht.",
        "error.wrong_purpose": "Dieser Link kann hier nicht verwendet werden.",
        "error.critical": "Diese Kategorie kann nicht abbestellt werden.",
        "error.invalid": "Einige Angaben wurden nicht akzeptiert: {detail}",
        "error.not_found": "Diese Seite gibt es nicht.",
        "error.method": "Diese Seite nimmt diese Anfrage nicht an.",
        "error.conflict": "Ihre Einstellungen wurden gleichzeitig geändert. "
        "Bitte erneut versuchen.",
    },
}


def page_locale(locale: str | None) -> str:
    """The first locale of the templates' fallback chain (``de-AT`` -> ``de`` -> ``en``) that
    the page is translated into."""
    return next(candidate for candidate in locale_chain(locale) if candidate in STRINGS)


@cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(PAGE_DIR),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(name: str, locale: str, **context: Any) -> str:
    return _environment().get_template(name).render(lang=locale, t=STRINGS[locale], **context)


def error_page(status: int, reason: str, locale: str = "en", detail: str = "") -> HttpResponse:
    strings = STRINGS[locale]
    message = strings.get(f"error.{reason}", strings["error.bad_signature"]).format(detail=detail)
    body = _render("error.html", locale, message=message, reason=reason)
    return HttpResponse(status, body)


# ---------------------------------------------------------------------------- the center


@dataclass(frozen=True)
class Outcome:
    """What a request did, for the handler's log line (never the token)."""

    route: str
    status: int
    reason: str = ""
    user_id: str = ""
    token_digest: str = ""


class PreferenceCenter:
    def __init__(
        self,
        preferences: PreferencesPort,
        audit: AuditLog,
        keys: SigningKeyring,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.preferences = preferences
        self.audit = audit
        self.keys = keys
        self.clock = clock
        self.categories = categories()

    # -- routing ----------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> tuple[HttpResponse, Outcome]:
        route = request.path.rstrip("/") or "/"
        if route not in (MANAGE_PATH, UNSUBSCRIBE_PATH):
            return error_page(404, "not_found"), Outcome(route, 404, "not_found")
        if request.method not in ("GET", "HEAD", "POST"):
            response = error_page(405, "method")
            return HttpResponse(405, response.body, {"Allow": "GET, POST"}), Outcome(
                route, 405, "method"
            )
        token = _first(request.form, "t") or request.query.get("t")
        purpose = Purpose.MANAGE if route == MANAGE_PATH else Purpose.UNSUBSCRIBE
        try:
            claims = verify_token(token, self.keys.keys(), self.clock())
        except TokenError as error:
            status = _TOKEN_STATUS[error.reason]
            return error_page(status, error.reason), Outcome(route, status, error.reason)
        digest = token_digest(token or "")
        if claims.purpose is not purpose:
            return error_page(403, "wrong_purpose"), Outcome(
                route, 403, "wrong_purpose", claims.user_id, digest
            )
        if route == UNSUBSCRIBE_PATH:
            response = self._unsubscribe(request, claims, digest)
        else:
            response = self._manage(request, claims, token or "")
        return response, Outcome(route, response.status, "", claims.user_id, digest)

    # -- one-click ----------------------------------------------------------------------------
    def _unsubscribe(self, request: HttpRequest, claims: LinkClaims, digest: str) -> HttpResponse:
        current, _ = self.preferences.get_versioned(claims.user_id)
        locale = page_locale(current.locale if current else None)
        category = self._category(claims.category)
        if category is not None and category.critical:
            return error_page(409, "critical", locale)
        label = self._label(locale, claims.category)
        if request.method != "POST":
            body = _render(
                "unsubscribe.html",
                locale,
                token=_token_of(request),
                category=label,
                done=False,
            )
            return HttpResponse(200, body)
        one_click = _first(request.form, "List-Unsubscribe") == "One-Click"
        via = (
            "list_unsubscribe_post"
            if _first(request.form, "source") != "page"
            else ("unsubscribe_page")
        )
        if not one_click:
            return error_page(400, "invalid", locale, detail="List-Unsubscribe=One-Click")
        opt_out = pair(claims.category, Channel.EMAIL)

        def change(prefs: Preferences) -> Preferences:
            return prefs.model_copy(update={"opted_out_pairs": prefs.opted_out_pairs | {opt_out}})

        try:
            _, changed = self._apply(
                claims.user_id, change, "one_click", skip_if=lambda p: opt_out in p.opted_out_pairs
            )
        except SaveConflict:
            return error_page(409, "conflict", locale)
        if not changed:  # already unsubscribed (a replayed POST): 200, nothing new recorded
            return HttpResponse(
                200, _render("unsubscribe.html", locale, token="", category=label, done=True)
            )
        self.audit.record(
            AuditEntry(
                key=f"preferences:{claims.user_id}:one-click:{digest}:{uuid.uuid4()}",
                user_id=claims.user_id,
                action="one_click_unsubscribe",
                via=via,
                at=self._now(),
                category=claims.category,
                changes={"opted_out": [opt_out]},
                user_agent=request.user_agent,
            )
        )
        return HttpResponse(
            200, _render("unsubscribe.html", locale, token="", category=label, done=True)
        )

    # -- the page -----------------------------------------------------------------------------
    def _manage(self, request: HttpRequest, claims: LinkClaims, token: str) -> HttpResponse:
        current, _ = self.preferences.get_versioned(claims.user_id)
        locale = page_locale(current.locale if current else None)
        notice = ""
        if request.method == "POST":
            action = _first(request.form, "action") or "save"
            try:
                change, changes = self._form_change(request.form, action)
            except ValueError as error:
                return error_page(400, "invalid", locale, detail=str(error))
            via = "page_unsubscribe_all" if action == "unsubscribe_all" else "page_save"
            try:
                current, _ = self._apply(claims.user_id, change, via)
            except SaveConflict:
                return error_page(409, "conflict", locale)
            self.audit.record(
                AuditEntry(
                    key=f"preferences:{claims.user_id}:page:{uuid.uuid4()}",
                    user_id=claims.user_id,
                    action=via,
                    via="preference_page",
                    at=self._now(),
                    category=claims.category,
                    changes=changes(current),
                    user_agent=request.user_agent,
                )
            )
            notice = "unsubscribed_all" if action == "unsubscribe_all" else "saved"
        return HttpResponse(200, self._page(current, claims, token, locale, notice))

    def _form_change(
        self, form: Mapping[str, list[str]], action: str
    ) -> tuple[Callable[[Preferences], Preferences], Callable[[Preferences], dict[str, list[str]]]]:
        """The change a form asks for, validated before anything is written."""
        editable = [c for c in self.categories if not c.critical]
        every_pair = {pair(c.name, ch) for c in editable for ch in c.channels}
        if action == "unsubscribe_all":
            wanted_off = every_pair
        elif action == "save":
            checked = set(form.get("on", []))
            unknown = (
                checked
                - every_pair
                - {pair(c.name, ch) for c in self.categories if c.critical for ch in c.channels}
            )
            if unknown:
                raise ValueError(f"unknown choice {sorted(unknown)[0]!r}")
            wanted_off = every_pair - checked
        else:
            raise ValueError(f"unknown action {action!r}")
        quiet: QuietHours | bool | None = False  # False: leave quiet hours as they are
        if action == "save":
            quiet = _quiet_hours(form)
        shown = {c.name for c in editable}
        enabled_channels = {Channel(p.split(":", 1)[1]) for p in every_pair - wanted_off}

        def change(prefs: Preferences) -> Preferences:
            update: dict[str, Any] = {
                # The grid now says everything about the shown categories: their pairs.
                "opted_out_pairs": (
                    {p for p in prefs.opted_out_pairs if p.split(":", 1)[0] not in shown}
                    | wanted_off
                ),
                "opted_out_categories": prefs.opted_out_categories - shown,
                # A channel switched off everywhere stays off until the user turns one of its
                # boxes on again.
                "opted_out_channels": prefs.opted_out_channels - enabled_channels,
            }
            if quiet is not False:
                update["quiet_hours"] = quiet
            return Preferences.model_validate({**prefs.model_dump(), **update})

        def changes(prefs: Preferences) -> dict[str, list[str]]:
            result = {"opted_out": sorted(wanted_off)}
            if prefs.quiet_hours is not None and quiet is not False:
                q = prefs.quiet_hours
                result["quiet_hours"] = [f"{q.start:%H:%M}-{q.end:%H:%M} {q.timezone}"]
            elif quiet is None:
                result["quiet_hours"] = ["off"]
            return result

        return change, changes

    def _apply(
        self,
        user_id: str,
        change: Callable[[Preferences], Preferences],
        via: str,
        skip_if: Callable[[Preferences], bool] | None = None,
    ) -> tuple[Preferences, bool]:
        """Apply ``change`` to the stored preferences with an optimistic write, re-reading
        when another writer came first; the result and whether anything was written."""
        for _ in range(SAVE_TRIES):
            current, document = self.preferences.get_versioned(user_id)
            base = current or Preferences(user_id=user_id)
            if skip_if is not None and skip_if(base):
                return base, False  # already as asked: a replayed one-click changes nothing
            stamp = ChangeStamp(at=self._now().isoformat(), by="user", via=via)
            new = change(base).model_copy(update={"last_change": stamp})
            if self.preferences.replace(new, document):
                return new, True
        raise SaveConflict(user_id)

    # -- rendering ----------------------------------------------------------------------------
    def _page(
        self, prefs: Preferences | None, claims: LinkClaims, token: str, locale: str, notice: str
    ) -> str:
        prefs = prefs or Preferences(user_id=claims.user_id)
        strings = STRINGS[locale]
        rows = []
        for category in self.categories:
            cells = []
            for channel in category.channels:
                enabled = category.critical or prefs.opt_out_reason(channel, category.name) is None
                cells.append(
                    {
                        "id": f"on-{category.name}-{channel.value}",
                        "value": pair(category.name, channel),
                        "label": strings[f"channel.{channel.value}"],
                        "checked": enabled,
                    }
                )
            rows.append(
                {
                    "name": category.name,
                    "label": self._label(locale, category.name),
                    "critical": category.critical,
                    "current": category.name == claims.category,
                    "cells": cells,
                }
            )
        quiet = prefs.quiet_hours
        return _render(
            "page.html",
            locale,
            token=token,
            rows=rows,
            notice=strings[notice] if notice else "",
            quiet_start=f"{quiet.start:%H:%M}" if quiet else "",
            quiet_end=f"{quiet.end:%H:%M}" if quiet else "",
            timezone=quiet.timezone if quiet else "UTC",
            timezones=_timezones(),
        )

    def _category(self, name: str) -> Category | None:
        return next((c for c in self.categories if c.name == name), None)

    @staticmethod
    def _label(locale: str, category: str) -> str:
        return STRINGS[locale].get(f"category.{category}", category)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)


def _first(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _token_of(request: HttpRequest) -> str:
    return _first(request.form, "t") or request.query.get("t", "")


def _parse_time(value: str, label: str) -> clock_time:
    try:
        hours, minutes = value.split(":")[:2]
        return clock_time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{label} {value!r} is not a time (HH:MM)") from None


def _quiet_hours(form: Mapping[str, list[str]]) -> QuietHours | None:
    start = (_first(form, "quiet_start") or "").strip()
    end = (_first(form, "quiet_end") or "").strip()
    zone = (_first(form, "timezone") or "UTC").strip() or "UTC"
    if not start and not end:
        return None
    if not start or not end:
        raise ValueError("quiet hours need both a start and an end time")
    # an unknown zone raises ValueError("unknown IANA time zone ...") itself
    return QuietHours(start=_parse_time(start, "start"), end=_parse_time(end, "end"), timezone=zone)


@cache
def _timezones() -> tuple[str, ...]:
    from zoneinfo import available_timezones

    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


# ---------------------------------------------------------------------------- wiring


def handle_function_url_event(center: PreferenceCenter, event: Mapping[str, Any]) -> dict[str, Any]:
    """One function URL invocation: the page or the one-click answer, and one log line that
    names the route, the status and the user, never the token (only a digest of it)."""
    from notifications.observability import logger

    request = request_from_function_url(event)
    response, outcome = center.handle(request)
    logger.info(
        "preference center request",
        extra={
            "route": outcome.route,
            "method": request.method,
            "status": outcome.status,
            "reason": outcome.reason or None,
            "user_id": outcome.user_id or None,
            "token_digest": outcome.token_digest[:12] or None,
        },
    )
    if request.method == "HEAD":
        response = HttpResponse(response.status, "", response.headers)
    return function_url_response(response)


def build_preference_center() -> PreferenceCenter:
    """The center with its DynamoDB and Secrets Manager adapters, from the environment."""
    from notifications.adapters.preferences import DynamoPreferencesStore
    from notifications.preference_audit import LedgerAuditLog
    from notifications.preference_links import SecretsManagerLinkKeys
    from notifications.settings import PreferenceCenterSettings

    settings = PreferenceCenterSettings.from_env()
    return PreferenceCenter(
        DynamoPreferencesStore(settings.preferences_table),
        LedgerAuditLog(settings.ledger_table),
        # Wall-clock expiry so a controlled clock in tests ages the cache too.
        SecretsManagerLinkKeys(settings.preference_link_secret_arn, monotonic=time.time),
    )
