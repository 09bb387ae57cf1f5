"""Platforms: what one platform's reviewers teach stays with that platform's texts.

A correction is true where it was made. 300 reviews of YouTube comments teach "a bare link under a music
video is spam"; the same link in a Gab post or an SMS is not, and a model fine-tuned on those reviews alone
flagged both (benchmarks/adaptation.py, docs/loop.md). So a model can be adapted *for a platform*: its
reviewed texts are read with that platform's token right after [CLS] (windows.encode_windows), every other
text without one, and the fine-tuning holds the untagged model where it was (improve.Replay's leash). At
inference the caller says which platform a text comes from (`Moderator.load(platform=...)`, `moderate scan
--platform`); without one, the model scores as the one the platform was adapted from.

The token ids are BERT's reserved `[unused0]`..`[unused98]` (ids 1..99 of the uncased vocabulary): no text
tokenizes to them, so a platform's token is seen only where the caller puts it. The package's manifest
(and the torch checkpoint's `policy_config.json`) map names to ids: {"platforms": {"youtube": 1}}.
Imports nothing beyond the standard library: the runtime uses it.
"""

from __future__ import annotations

import re

from moderation.errors import ConfigError

FIRST_TOKEN, LAST_TOKEN = 1, 99  # [unused0] .. [unused98] in bert-base-uncased's vocabulary
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"platform name {name!r} must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a "
                          "letter or digit (e.g. 'youtube', 'forum-eu')")
    return name


def check_platforms(platforms: object, where: str) -> dict[str, int]:
    """A manifest's or config's platform map, validated: names as `check_name`, distinct reserved token ids."""
    if not isinstance(platforms, dict):
        raise ConfigError(f"{where}: 'platforms' must map platform names to token ids, got {type(platforms).__name__}")
    seen: dict[int, str] = {}
    for name, token in platforms.items():
        check_name(name)
        if not isinstance(token, int) or isinstance(token, bool) or not FIRST_TOKEN <= token <= LAST_TOKEN:
            raise ConfigError(f"{where}: platform {name!r} has token {token!r}; it must be an integer in "
                              f"{FIRST_TOKEN}..{LAST_TOKEN} (a reserved [unusedN] token)")
        if token in seen:
            raise ConfigError(f"{where}: platforms {seen[token]!r} and {name!r} share token {token}")
        seen[token] = name
    return dict(platforms)


def platform_token(platforms: dict[str, int], name: str | None, where: str = "this model") -> int | None:
    """The token to tag `name`'s texts with; None for no platform. An unknown name is an error, never a
    silent untagged read: the caller asked for an adaptation the model does not have."""
    if name is None:
        return None
    check_name(name)
    if name not in platforms:
        known = ", ".join(sorted(platforms)) or "none"
        raise ConfigError(f"{where} was not adapted to platform {name!r} (its platforms: {known}); "
                          "score without a platform, or adapt it with `moderate loop --platform NAME`")
    return platforms[name]


def with_platform(platforms: dict[str, int], name: str) -> tuple[dict[str, int], int]:
    """`platforms` with `name` in it (its existing token, or the lowest free one) and that token."""
    check_name(name)
    if name in platforms:
        return dict(platforms), platforms[name]
    free = [t for t in range(FIRST_TOKEN, LAST_TOKEN + 1) if t not in platforms.values()]
    if not free:
        raise ConfigError(f"no free platform token: this model already has {len(platforms)} platforms")
    return {**platforms, name: free[0]}, free[0]
