"""The project's error types share one base, so the command line maps every one of them to its documented
exit code in one place (cli.py, `command`). Each keeps the builtin base it had, so `except ValueError`
and `except RuntimeError` in callers still work. Runtime path: no torch."""

from __future__ import annotations


class ModerationError(Exception):
    """An error a person can act on; the message names the file, line, field or item."""

    exit_code = 2  # bad input, option, taxonomy, model package or server (README: exit codes)


class GateRefused(ModerationError):
    """A gate (the export parity gate, the promotion gate) refused a model."""

    exit_code = 4


class ConfigError(ModerationError, ValueError):
    """A configuration object was built with a value it cannot work with (checked when it is built)."""


def check_config(cfg, positive: tuple[str, ...] = (), unit: tuple[str, ...] = (), choices: dict | None = None) -> None:
    """Validate a config dataclass when it is built (call from __post_init__): fields that must be > 0, fields
    in [0, 1], fields with a fixed set of values. The error names the config, the field and the value."""
    name = type(cfg).__name__
    for f in positive:
        v = getattr(cfg, f)
        if v is not None and not v > 0:
            raise ConfigError(f"{name}.{f} must be > 0, got {v!r}")
    for f in unit:
        v = getattr(cfg, f)
        if not 0 <= v <= 1:
            raise ConfigError(f"{name}.{f} must be in [0, 1], got {v!r}")
    for f, allowed in (choices or {}).items():
        if getattr(cfg, f) not in allowed:
            raise ConfigError(f"{name}.{f} must be one of {', '.join(map(str, allowed))}, got {getattr(cfg, f)!r}")
