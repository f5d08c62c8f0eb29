"""The configuration error type shared by profiles, environments, credentials and the simulator config."""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value. The message names the source (file, variable) and the key path."""


#: Profiles raise :class:`ConfigError`; the alias reads better at some call sites.
ProfileError = ConfigError


class FieldError(ValueError):
    """Raised by a config dataclass's ``__post_init__`` for one field (``field`` may be a sub-path).

    The strict loader turns it into a :class:`ConfigError` whose key path ends in ``field``.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
