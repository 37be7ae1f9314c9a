"""Signed preference-link tokens: what verifies, what is refused and why."""

import base64

import pytest

from notifications.preference_links import (
    LinkClaims,
    PreferenceLinks,
    Purpose,
    TokenError,
    sign_token,
    verify_token,
)

KEY = b"k" * 64
OLD_KEY = b"o" * 64
NOW = 1_800_000_000


class StaticKeys:
    def __init__(self, *keys: bytes) -> None:
        self._keys = list(keys)

    def keys(self) -> list[bytes]:
        return self._keys


def claims(**overrides):
    values = {
        "user_id": "user-123",
        "category": "order",
        "expires_at": NOW + 60,
        "purpose": Purpose.UNSUBSCRIBE,
    }
    return LinkClaims(**{**values, **overrides})


def test_a_signed_token_verifies_and_names_its_user_category_and_purpose():
    token = sign_token(claims(), KEY)
    assert verify_token(token, [KEY], NOW) == claims()
    # base64url, no padding: safe in a URL query and an email header as it is
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def reason(token, keys=(KEY,), now=NOW):
    with pytest.raises(TokenError) as caught:
        verify_token(token, list(keys), now)
    return caught.value.reason


def test_missing_malformed_forged_and_expired_tokens_are_refused_with_their_reason():
    token = sign_token(claims(), KEY)
    payload, tag = token.split(".")
    assert reason(None) == "missing"
    assert reason("") == "missing"
    assert reason("no-dot-here") == "malformed"
    assert reason("a.b.c") == "malformed"
    assert reason(payload + ".!!!") == "malformed"
    # Signed with another key
    assert reason(sign_token(claims(), b"x" * 64)) == "bad_signature"
    # The payload changed to another user, the tag kept
    other = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b"user-123", b"user-999")
    )
    assert reason(other.decode().rstrip("=") + "." + tag) == "bad_signature"
    # One character of the tag flipped
    flipped = ("A" if tag[0] != "A" else "B") + tag[1:]
    assert reason(payload + "." + flipped) == "bad_signature"
    # The same tag spelled with other trailing bits (base64 lets 4 of them vary)
    respelled = tag[:-1] + ("B" if tag[-1] == "A" else "A")
    assert reason(payload + "." + respelled) in {"malformed", "bad_signature"}
    assert reason(payload + "." + tag[:-1] + chr(ord(tag[-1]) ^ 1)) in {
        "malformed",
        "bad_signature",
    }
    # Expired: valid up to, not at, its expiry second
    assert verify_token(token, [KEY], NOW + 59).user_id == "user-123"
    assert reason(token, now=NOW + 60) == "expired"


def test_during_a_rotation_both_keys_verify_and_after_it_only_the_new_one():
    old_token = sign_token(claims(), OLD_KEY)
    # Grace period: current + previous
    assert verify_token(old_token, [KEY, OLD_KEY], NOW).user_id == "user-123"
    # Previous key retired
    assert reason(old_token, keys=[KEY]) == "bad_signature"


def test_links_carry_a_token_for_their_path_and_expire_after_the_ttl():
    links = PreferenceLinks(
        "https://abc.lambda-url.us-east-1.on.aws/", StaticKeys(KEY), 3600, lambda: NOW
    )
    manage = links.manage_url("user-123", "order")
    unsubscribe = links.unsubscribe_url("user-123", "order")
    assert manage.startswith("https://abc.lambda-url.us-east-1.on.aws/preferences?t=")
    assert unsubscribe.startswith("https://abc.lambda-url.us-east-1.on.aws/unsubscribe?t=")
    manage_claims = verify_token(manage.split("t=", 1)[1], [KEY], NOW)
    assert manage_claims == LinkClaims("user-123", "order", NOW + 3600, Purpose.MANAGE)
    assert verify_token(unsubscribe.split("t=", 1)[1], [KEY], NOW).purpose is Purpose.UNSUBSCRIBE
    # Short enough for an SMS: the token of a typical user id stays under 80 characters
    assert len(manage.split("t=", 1)[1]) < 80
