"""`notifyctl preferences link` and `rotate-link-key`: signed preference-center links and
their keys, for the stack the CLI targets."""

from __future__ import annotations

from notifications.preference_center import categories
from notifications.preference_links import PreferenceLinks, SecretsManagerLinkKeys
from notifyctl.local.function_urls import LOCAL_URL_TAG
from notifyctl.target import StackTarget


class LinkError(ValueError):
    """A user error: one line naming the bad value."""


def link_keys(target: StackTarget) -> SecretsManagerLinkKeys:
    return SecretsManagerLinkKeys(target.output("PreferenceLinkSecretArn"))


def base_url(target: StackTarget) -> str:
    """The function URL; for the local stack, where `notifyctl local serve` serves it."""
    if target.endpoint_url:
        function = target.output("PreferenceCenterFunctionName")
        tags = target.client("lambda").get_function(FunctionName=function).get("Tags") or {}
        if LOCAL_URL_TAG in tags:
            return str(tags[LOCAL_URL_TAG])
    return target.output("PreferenceCenterUrl")


def links_for(target: StackTarget) -> PreferenceLinks:
    return PreferenceLinks(base_url(target), link_keys(target))


def link(links: PreferenceLinks, user_id: str, category: str | None, unsubscribe: bool) -> str:
    known = categories()
    names = [c.name for c in known]
    chosen = category or names[0]
    if chosen not in names:
        raise LinkError(f"unknown category {chosen!r}; use {', '.join(names)}")
    if not user_id.strip() or len(user_id) > 128:
        raise LinkError(f"not a user id: {user_id!r}")
    if unsubscribe:
        if next(c for c in known if c.name == chosen).critical:
            raise LinkError(f"category {chosen!r} is critical: it has no unsubscribe link")
        return links.unsubscribe_url(user_id, chosen)
    return links.manage_url(user_id, chosen)
