"""One way to talk to Label Studio: connect, retry transient faults with backoff, and turn SDK errors
into `LabelStudioError`s a person can act on. The token never appears in any message."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from labeling.server import Credentials, LabelStudioError

T = TypeVar("T")


def connect(creds: Credentials, timeout: float = 30.0):
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=creds.url, api_key=creds.token, timeout=timeout)
    call(lambda: client.users.whoami(), creds.url, what="checking the token", retries=1)
    return client


def list_tasks(client, url: str, project_id: int) -> list:
    """Every task of a project with its full data (annotation counts included)."""
    return call(lambda: list(client.tasks.list(project=project_id, fields="all")), url, "listing tasks")


def call(fn: Callable[[], T], url: str, what: str, retries: int = 4, backoff: float = 0.5) -> T:
    """Run one SDK call; retry connection faults and 5xx with exponential backoff, then fail clearly."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    delay = backoff
    for attempt in range(retries + 1):
        try:
            return fn()
        except ApiError as e:
            status = getattr(e, "status_code", None)
            if status == 401:
                raise LabelStudioError(f"Label Studio at {url} rejected the API token while {what} (401); "
                                       "check LABEL_STUDIO_USER_TOKEN") from None
            if status is not None and status < 500:
                body = str(getattr(e, "body", ""))[:500]
                raise LabelStudioError(f"Label Studio at {url} refused {what} ({status}): {body}") from None
            last = f"server error {status}"
        except (httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectTimeout) as e:
            last = type(e).__name__
        if attempt < retries:
            time.sleep(delay)
            delay *= 2
    raise LabelStudioError(f"Label Studio at {url} is not reachable ({last}) while {what}, after {retries + 1} tries; "
                           "is it running? (`moderate review status`)")
