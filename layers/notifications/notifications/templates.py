"""Message templates, stored with the code as ``message_templates/<id>/<locale>/<part>``.

Rendered with a sandboxed Jinja2 environment: HTML parts are autoescaped, an undefined
variable is an error (a ``PermanentError`` naming the variable and the template), and user
data is only ever a value, never template source, so ``{{ ... }}`` in a name stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from notifications.channels.base import RenderedMessage
from notifications.errors import PermanentError
from notifications.models import Channel, NotificationRequested

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_ROOT = Path(__file__).parent / "message_templates"
DEFAULT_LOCALE = "en"

# Which template files make up a message on each channel: (part, file, required).
CHANNEL_PARTS: dict[Channel, tuple[tuple[str, str, bool], ...]] = {
    Channel.EMAIL: (
        ("subject", "email_subject.txt", True),
        ("text", "email_text.txt", True),
        ("html", "email_html.html", False),
    ),
    Channel.SMS: (("text", "sms_text.txt", True),),
    Channel.PUSH: (("title", "push_title.txt", True), ("text", "push_body.txt", True)),
}

_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


def locale_chain(locale: str | None) -> Iterator[str]:
    """``de-CH`` -> ``de-CH``, ``de``, ``en``: the locale, its language, then the default."""
    seen: set[str] = set()
    parts = (locale or DEFAULT_LOCALE).replace("_", "-").split("-")
    for candidate in ("-".join(parts[:n]) for n in range(len(parts), 0, -1)):
        if candidate and candidate not in seen:
            seen.add(candidate)
            yield candidate
    if DEFAULT_LOCALE not in seen:
        yield DEFAULT_LOCALE


class TemplateRenderer(msgspec.Struct, dict=True):
    """Renders a notification request into the message its channel sends."""

    root: Path = TEMPLATE_ROOT
    platform: str = "MyApp"

    @cached_property
    def _env(self) -> ImmutableSandboxedEnvironment:
        # Jinja2 on first render: webhook batches (JSON payloads) never load it.
        from jinja2 import FileSystemLoader, StrictUndefined
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(self.root)),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            keep_trailing_newline=False,
            auto_reload=False,
        )
        env.globals["platform"] = self.platform
        return env

    def render(self, request: NotificationRequested) -> RenderedMessage:
        if request.channel is Channel.WEBHOOK:
            return RenderedMessage(payload=webhook_payload(request))
        locale = self._resolve_locale(request.template_id, request.channel, request.locale)
        parts = {
            part: self._render_part(request.template_id, locale, filename, request.data)
            for part, filename, required in CHANNEL_PARTS[request.channel]
            if required or self._exists(request.template_id, locale, filename)
        }
        return RenderedMessage(
            subject=parts.get("subject"),
            text=parts.get("text", ""),
            html=parts.get("html"),
            title=parts.get("title"),
            badge=_int_or_none(request.data.get("badge")),
            deep_link=_str_or_none(request.data.get("deep_link")),
        )

    @cached_property
    def _found(self) -> dict[tuple[str, str, str], bool]:
        return {}

    def _exists(self, template_id: str, locale: str, filename: str) -> bool:
        # Asked for every part of every message (the locale's fallbacks, the optional HTML
        # part); the answer is kept for the environment's life, as Jinja2 keeps the templates
        # (``auto_reload=False``): the templates ship with the code and never change under it.
        # A path join and a stat were about 40% of a render (docs/performance.md section 2).
        key = (template_id, locale, filename)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = (self.root / template_id / locale / filename).is_file()
        return found

    def _resolve_locale(self, template_id: str, channel: Channel, locale: str) -> str:
        first_file = CHANNEL_PARTS[channel][0][1]
        for candidate in locale_chain(locale):
            if self._exists(template_id, candidate, first_file):
                return candidate
        raise PermanentError(
            "template_missing",
            f"no template {template_id!r} for channel {channel.value} in locale {locale!r} "
            f"or its fallbacks",
        )

    def _render_part(
        self, template_id: str, locale: str, filename: str, data: Mapping[str, Any]
    ) -> str:
        name = f"{template_id}/{locale}/{filename}"
        env = self._env
        from jinja2 import TemplateNotFound, UndefinedError
        from jinja2.exceptions import SecurityError, TemplateSyntaxError

        try:
            return env.get_template(name).render(**data).strip()
        except UndefinedError as exc:
            match = _UNDEFINED_NAME.search(str(exc))
            variable = next((g for g in match.groups() if g), "?") if match else str(exc)
            raise PermanentError(
                "template_missing_variable",
                f"template {name!r} needs variable {variable!r}, which the notification lacks",
            ) from exc
        except TemplateNotFound as exc:
            raise PermanentError("template_missing", f"template {name!r} not found") from exc
        except (TemplateSyntaxError, SecurityError) as exc:
            raise PermanentError("template_error", f"template {name!r}: {exc}") from exc


def webhook_payload(request: NotificationRequested) -> dict[str, object]:
    """A webhook's body: the event type, when it happened, and the event's data."""
    return {
        "type": request.event_type,
        "timestamp": request.occurred_at.isoformat(),
        "notification_id": request.notification_id,
        "event_id": request.event_id,
        "data": dict(request.data),
    }


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
