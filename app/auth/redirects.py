"""``next=`` targets are followed only when they stay on this site."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a local path ("/bank/..."), else ``None``.

    Refuses absolute URLs, scheme-relative ``//host`` and ``/\\host`` forms that browsers
    treat as another host, and control characters.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 for c in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
