"""An account's webhook: which URLs it may be, and its signing secret (pure).

The URL and the secret live in the account's profile hash (``webhook_url``,
``webhook_secret``). The rule for the URL:

* ``https://`` to any host;
* ``http://`` only to ``localhost`` or to an IP address that is loopback or private (RFC 1918,
  RFC 4193, ...): a receiver on the same host or network, where there is nothing to encrypt
  against (and what the tests use);
* no user or password in it (it is shown by the admin API and may be logged), no fragment,
  at most 2048 characters.

The secret is made when a URL is first set and kept when the URL changes or is cleared, so a
receiver's check keeps working across a move.
"""

from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

from gateway import errors

URL_FIELD = "webhook_url"  # in the profile hash, and in the admin API
SECRET_FIELD = "webhook_secret"
SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2048


def new_webhook_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook URL (a phrase), or None when it can."""
    if len(url) > MAX_URL_LENGTH or not url.isascii() or not url.isprintable() or " " in url:
        return f"must be a URL of at most {MAX_URL_LENGTH} printable ASCII characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return "must be a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password"
    if parts.fragment:
        return "must not have a fragment (#...)"
    if parts.scheme == "http" and not is_local_host(parts.hostname):
        return "must be https:// (http:// only to localhost or a private IP address)"
    return None


def is_local_host(host: str) -> bool:
    """``localhost``, or an IP address that is loopback or private."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def webhook_url_field(value: object) -> str | None:
    """``webhook_url`` of an account body: a URL that passes the rule, or null to clear."""
    if value is None:
        return None
    problem = url_problem(value) if isinstance(value, str) else "must be a URL or null"
    if problem:
        raise errors.InvalidRequest(f"'webhook_url' {problem}.", param=URL_FIELD)
    return str(value)
