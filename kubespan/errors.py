"""The kubespan error tree.

Contract: every error kubespan raises on purpose for bad input or bad local
state is a ``KubespanError``.  Errors carry data (the YAML path, the file) so
callers can report them without parsing messages.  Messages never contain a
secret (cluster secret, private key): a secret value is reported as
``<redacted>``.  ``ValueError``/``TypeError`` stay reserved for a caller
handing in wrong arguments from code.
"""

from __future__ import annotations


class KubespanError(Exception):
    """Base class of every error kubespan raises on purpose."""


class ConfigError(KubespanError):
    """A configuration value is invalid.

    ``path`` is the YAML path (``machine.network.kubespan.mtu``,
    ``KubeSpanConfig.filters.endpoints[1]``) or ``""`` when the problem is not
    tied to one field.  ``str(err)`` is ``"<path>: <message>"``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class IdentityError(KubespanError):
    """A persisted identity file is unreadable, corrupt or cannot be written.

    ``path`` names the file; the message never includes key material.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
