"""Signed preference links: the token in every message's "manage" and one-click unsubscribe
links, and the Secrets Manager keys that sign them.

A token is ``<payload>.<tag>``, both base64url without padding. The payload is
``v1|<purpose>|<expiry>|<category>|<user id>`` (UTF-8; purpose ``m`` manage, ``u``
unsubscribe; expiry in Unix seconds); the tag is HMAC-SHA256 over ``pc1|`` + payload with the
current key, cut to 16 bytes (128 bits, as RFC 2104 allows) so that an SMS link stays short.
Verification accepts the current and the previous key (the rotation's grace period), and a
token names its user itself: no user id travels beside it that could be swapped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from notifications.adapters.aws import LazyClient
from notifications.caching import TtlCache
from notifications.channels.aws_errors import classify_aws_error
from notifications.errors import PermanentError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# CAN-SPAM asks that an opt-out keep working 30 days after the message; twice that.
LINK_TTL_SECONDS = 60 * 24 * 3600
TAG_BYTES = 16
MAX_TOKEN_CHARS = 1024
_VERSION = "v1"
_DOMAIN = b"pc1|"
MANAGE_PATH = "/preferences"
UNSUBSCRIBE_PATH = "/unsubscribe"


class Purpose(StrEnum):
    MANAGE = "m"  # open and save the preference page
    UNSUBSCRIBE = "u"  # one-click unsubscribe from one category's email


class TokenError(ValueError):
    """A token that grants nothing; ``reason`` is a short machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class LinkClaims:
    user_id: str
    category: str
    expires_at: int
    purpose: Purpose


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    """Strict base64url: any character outside its alphabet is an error, not skipped."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:TAG_BYTES]


def sign_token(claims: LinkClaims, key: bytes) -> str:
    if "|" in claims.category or not claims.user_id or not claims.category:
        raise ValueError("a token needs a user id and a category without '|'")
    payload = "|".join(
        (_VERSION, claims.purpose.value, str(claims.expires_at), claims.category, claims.user_id)
    ).encode("utf-8")
    return f"{_b64(payload)}.{_b64(_tag(key, payload))}"


def verify_token(token: str | None, keys: Sequence[bytes], now: float) -> LinkClaims:
    """The claims of a token signed with one of ``keys`` and not expired at ``now``, or
    ``TokenError`` (missing, malformed, bad_signature, expired). Constant-time comparison."""
    if not token:
        raise TokenError("missing", "the link carries no token")
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("malformed", "the token is not a preference link token")
    encoded_payload, encoded_tag = token.split(".")
    try:
        payload, tag = _unb64(encoded_payload), _unb64(encoded_tag)
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "the token is not base64url") from None
    if _b64(payload) != encoded_payload or _b64(tag) != encoded_tag:
        # Non-canonical base64 (other trailing bits): one token, one spelling.
        raise TokenError("malformed", "the token is not canonical base64url")
    if not any(hmac.compare_digest(_tag(key, payload), tag) for key in keys):
        raise TokenError("bad_signature", "the token's signature does not verify")
    try:
        version, purpose, expiry, category, user_id = payload.decode("utf-8").split("|", 4)
        claims = LinkClaims(user_id, category, int(expiry), Purpose(purpose))
    except ValueError:
        raise TokenError("malformed", "the token's payload is not understood") from None
    if version != _VERSION:
        raise TokenError("malformed", f"unknown token version {version!r}")
    if claims.expires_at <= now:
        raise TokenError("expired", "the link has expired")
    return claims


def token_digest(token: str) -> str:
    """A stable, non-reversible name of a token (ledger keys, idempotency), never the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


class SigningKeyring(Protocol):
    def keys(self) -> list[bytes]:
        """Current key first, then the previous one during a rotation's grace period."""
        ...


def new_key() -> str:
    return secrets.token_urlsafe(48)


class SecretsManagerLinkKeys:
    """The link signing keys in one Secrets Manager secret: JSON ``{"current": ...,
    "previous": ...}`` (``previous`` only during a rotation). Read once per ``cache_seconds``.
    """

    def __init__(
        self,
        secret_id: str,
        *,
        cache_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        client_factory: Callable[[], SecretsManagerClient] | None = None,
    ) -> None:
        self.secret_id = secret_id
        self._secrets: LazyClient[SecretsManagerClient] = LazyClient(
            "secretsmanager", client_factory
        )
        self._cache: TtlCache[str, list[bytes]] = TtlCache(cache_seconds, monotonic)

    def keys(self) -> list[bytes]:
        return list(self._cache.get(self.secret_id, self._read_keys))

    def _read(self) -> dict[str, str]:
        try:
            response = self._secrets().get_secret_value(SecretId=self.secret_id)
        except Exception as error:
            raise classify_aws_error(
                error, {"ResourceNotFoundException": "signing_key_missing"}
            ) from error
        try:
            document = json.loads(response["SecretString"])
        except (KeyError, ValueError):
            document = None
        if not isinstance(document, dict) or not document.get("current"):
            raise PermanentError("signing_key_missing", "the link signing secret has no key")
        return {k: str(v) for k, v in document.items() if k in ("current", "previous") and v}

    def _read_keys(self) -> list[bytes]:
        document = self._read()
        return [document[k].encode("utf-8") for k in ("current", "previous") if k in document]

    def _write(self, document: dict[str, str]) -> None:
        try:
            self._secrets().put_secret_value(
                SecretId=self.secret_id, SecretString=json.dumps(document)
            )
        except Exception as error:
            raise classify_aws_error(error) from error
        self._cache.evict(self.secret_id)

    def rotate(self) -> None:
        """A new current key; the old current one stays as ``previous`` (grace period)."""
        self._write({"current": new_key(), "previous": self._read()["current"]})

    def retire_previous(self) -> bool:
        """End the grace period: links signed with the previous key stop working. False when
        there was no previous key."""
        document = self._read()
        if "previous" not in document:
            return False
        self._write({"current": document["current"]})
        return True


class PreferenceLinks:
    """Builds signed links to the preference center at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        keys: SigningKeyring,
        ttl_seconds: int = LINK_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def token(self, user_id: str, category: str, purpose: Purpose) -> str:
        expires_at = int(self.clock()) + self.ttl_seconds
        return sign_token(LinkClaims(user_id, category, expires_at, purpose), self.keys.keys()[0])

    def manage_url(self, user_id: str, category: str) -> str:
        token = self.token(user_id, category, Purpose.MANAGE)
        return f"{self.base_url}{MANAGE_PATH}?t={quote(token, safe='')}"

    def unsubscribe_url(self, user_id: str, category: str) -> str:
        token = self.token(user_id, category, Purpose.UNSUBSCRIBE)
        return f"{self.base_url}{UNSUBSCRIBE_PATH}?t={quote(token, safe='')}"


# Link texts a channel adds around the rendered message, per locale (the templates' fallback
# chain picks one: de-AT -> de -> en).
LINK_TEXTS: dict[str, dict[str, str]] = {
    "en": {"manage": "Manage your notification preferences", "sms": "Settings"},
    "de": {"manage": "Benachrichtigungseinstellungen verwalten", "sms": "Einstellungen"},
}


def link_text(locale: str | None, kind: str) -> str:
    from notifications.templates import locale_chain

    chosen = next(c for c in locale_chain(locale) if c in LINK_TEXTS or c == "en")
    return LINK_TEXTS.get(chosen, LINK_TEXTS["en"])[kind]
