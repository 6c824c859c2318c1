"""A registry's own management API (GitHub REST, Docker Hub, …) over the HTTP core. Does I/O.

What a provider's API adds to :mod:`tagger.registry.http` (which does the retries, rate
limits, caps, paging rules and status → error mapping for every request imgtag sends):

- **Where**: the API base comes from a variable (``GITHUB_API_URL``,
  ``IMGTAG_DOCKERHUB_API_URL``); its path is kept (GitHub Enterprise's ``/api/v3``), and a
  plain ``http://`` base is accepted only on loopback (the test bed), since the token goes
  along with every request.
- **Pagination**: ``Link: <...>; rel="next"`` (GitHub,
  https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api) or a
  ``next`` URL in the body (Docker Hub), followed to the end, never to another host.
- **Its words**: the API's error text (``message``, ``detail``) and its name in messages.
- **Secrets**: the token is registered for redaction by the provider that reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from tagger.errors import RegistryError, UsageError
from tagger.registry.http import (
    MAX_PAGE_BYTES,
    MAX_PAGES,
    Answer,
    HttpCore,
    RetryBudget,
    RetryPolicy,
    Service,
    StatusRule,
    clean,
    next_link,
    same_host,
)
from tagger.registry.reference import is_loopback_host

__all__ = ["Answer", "Api", "answer_text", "api_error_text", "check_base_url"]


def check_base_url(value: str, variable: str) -> str:
    """An API base URL without its trailing ``/``: ``https://``, or ``http://`` on loopback.

    >>> check_base_url("https://ghe.example/api/v3/", "GITHUB_API_URL")
    'https://ghe.example/api/v3'
    >>> check_base_url("http://127.0.0.1:8080", "X")
    'http://127.0.0.1:8080'
    >>> check_base_url("http://api.example", "GITHUB_API_URL")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: GITHUB_API_URL must be an https:// URL ... not 'http://api.example'
    """
    parts = urlsplit(value.strip())
    ok = parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.netloc))
    if not ok or not parts.netloc or parts.username or parts.password or parts.query:
        raise UsageError(
            f"{variable} must be an https:// URL (plain http:// only to loopback), "
            f"not {clean(value, 80)!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def api_error_text(body: bytes) -> str:
    """A management API's own error text (GitHub and GitLab ``message``, Docker Hub
    ``detail``, Harbor ``errors[0].message``).

    >>> api_error_text(b'{"message": "Not Found"}'), api_error_text(b"[]")
    ('Not Found', '')
    >>> api_error_text(b'{"errors": [{"code": "PRECONDITION", "message": "immutable"}]}')
    'immutable'
    """
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    text = doc.get("message") or doc.get("detail") or ""
    errors = doc.get("errors")
    if not text and isinstance(errors, list) and errors and isinstance(errors[0], dict):
        text = errors[0].get("message") or errors[0].get("code") or ""
    return str(text) if text else ""


def answer_text(answer: Answer) -> str:
    """An answer's error text, cleaned for a message."""
    return clean(api_error_text(answer.body))


class Api:
    """Requests to one management API through the HTTP core.

    ``what`` names it in messages ("the GitHub API"); ``detail`` reads its error text out
    of a body; ``rules`` are its additions to the core's status table; ``bare_429`` the
    wait of a 429 that names none. ``budget`` is the retry budget it shares with its
    registry (one per command and registry).
    """

    def __init__(
        self,
        base_url: str,
        *,
        variable: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        rules: tuple[StatusRule, ...] = (),
        bare_429: float | None = None,
        budget: RetryBudget | None = None,
        core: HttpCore | None = None,
        detail: Callable[[bytes], str] = api_error_text,
    ) -> None:
        self.base = check_base_url(base_url, variable)
        self.host = urlsplit(self.base).netloc
        self.what = what
        self.service = Service(name=what, detail=detail, rules=rules, bare_429=bare_429)
        self.core = core or HttpCore(budget=budget or RetryBudget(RetryPolicy()))
        self._headers = dict(headers or {})

    @property
    def requests(self) -> int:
        return self.core.requests

    def set_header(self, name: str, value: str) -> None:
        self._headers[name] = value

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        doing: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (),
    ) -> Answer:
        """Send; return the answer when it is a success or in ``ok``, else raise the typed
        error for its status (rate limits waited out within the budget first)."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        if urlsplit(url).netloc != self.host:
            raise RegistryError(f"{self.what} sent a link to another host while {doing}")
        return self.core.request(
            method,
            url,
            doing=doing,
            service=self.service,
            ok=ok,
            max_bytes=MAX_PAGE_BYTES,
            what=f"an answer of {self.what}",
            headers=self._headers,
            params=params,
            json_body=json_body,
            allow_redirects=False,
        )

    def pages(
        self, path: str, *, doing: str, params: Mapping[str, str] | None = None, body_next: bool
    ) -> Iterator[Any]:
        """Each page's JSON, following ``Link`` ``rel="next"`` (or the body's ``next``
        when ``body_next``) to the end, on this host only."""
        url: str | None = self.url(path)
        first = True
        for _ in range(MAX_PAGES):
            if url is None:
                return
            resp = self.request("GET", url, doing=doing, params=params if first else None)
            first = False
            doc = resp.json(doing)
            yield doc
            if body_next:
                nxt = doc.get("next") if isinstance(doc, dict) else None
                url = urljoin(resp.url, nxt) if isinstance(nxt, str) and nxt else None
                if url is not None:
                    same_host(url, resp.url, "a page link")
            else:
                url = next_link(resp.headers.get("link"), resp.url)
        raise RegistryError(f"{self.what} sent more than {MAX_PAGES} pages while {doing}")
