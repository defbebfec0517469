"""The one exception hierarchy of reconciler, and source locations for diagnostics.

::

    ReconcilerError
    ├── UsageError                    bad flag or argument combination
    ├── ManifestError                 has a ``location``
    │   ├── ManifestParseError        YAML that cannot be read
    │   └── ManifestValidationError   carries every ``Diagnostic`` found in one pass
    ├── ProviderError                 reading or writing live state
    │   ├── ProviderConnectionError   the store or server cannot be reached
    │   ├── ProviderAuthError         credentials missing, unreadable or refused
    │   ├── ProviderConflictError     live state is not what the operation expected
    │   └── ProviderResponseError     the server answered something we cannot use
    ├── PlanError                     the plan cannot be made or used
    │   ├── StalePlanError            live state changed since the plan
    │   ├── PlanFormatError           a plan file that is unreadable, altered or foreign
    │   └── LimitExceededError        a plan beyond the Workspace's blast-radius limits
    ├── SnapshotError                 a snapshot file (seed or ``snapshot --out``) that cannot be read
    ├── OutputError                   a file or stream reconciler must write cannot be written
    ├── JournalError                  an apply journal that is corrupt or for another provider
    └── LockError                     the store is locked by another apply or rollback
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Diagnostic",
    "JournalError",
    "LimitExceededError",
    "LockError",
    "ManifestError",
    "ManifestParseError",
    "ManifestValidationError",
    "OutputError",
    "PlanError",
    "PlanFormatError",
    "ProviderAuthError",
    "ProviderConflictError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderResponseError",
    "ReconcilerError",
    "SnapshotError",
    "SourceLocation",
    "StalePlanError",
    "UsageError",
]


@dataclass(frozen=True, order=True)
class SourceLocation:
    """A place in a file: ``path:line:col`` (1-based; line and column optional)."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        out = self.path
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem (or warning) found in the input, with where it is."""

    location: SourceLocation
    message: str
    severity: Literal["error", "warning"] = field(default="error", compare=False)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ReconcilerError(Exception):
    """Root of every error reconciler raises on purpose."""


class UsageError(ReconcilerError):
    """A flag, argument or combination of them that cannot be used."""


class ManifestError(ReconcilerError):
    """A problem in the manifests."""

    def __init__(self, message: str, location: SourceLocation | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ManifestParseError(ManifestError):
    """A manifest file that is not valid YAML."""


class ManifestValidationError(ManifestError):
    """One or more problems in the manifests, all reported at once."""

    def __init__(self, issues: Sequence[Diagnostic]) -> None:
        self.issues = sorted(issues)
        first = self.issues[0] if self.issues else None
        message = "\n".join(str(i) for i in self.issues) or "invalid manifests"
        Exception.__init__(self, message)
        self.location = first.location if first else None


class ProviderError(ReconcilerError):
    """Reading or writing live state failed."""


class ProviderConnectionError(ProviderError):
    """The store or server could not be reached (after retries)."""


class ProviderAuthError(ProviderError):
    """Credentials are missing, unreadable, of the wrong kind, or refused."""


class ProviderConflictError(ProviderError):
    """Live state is not what the operation expected (missing folder, file, locked store)."""


class ProviderResponseError(ProviderError):
    """The server answered with something that cannot be used."""


class PlanError(ReconcilerError):
    """A plan that cannot be made (e.g. a schema change Encord cannot do) or used."""


class StalePlanError(PlanError):
    """Live state changed since the plan was made; nothing was written."""

    def __init__(self, message: str, stale: Sequence[str] = ()) -> None:
        self.stale = list(stale)
        super().__init__(message)


class PlanFormatError(PlanError):
    """A saved plan file that is unreadable, altered, of an unknown version, or for another provider."""


class LimitExceededError(PlanError):
    """The plan exceeds a blast-radius limit (``settings.limits``) and ``--override-limits`` was not given."""


class SnapshotError(ReconcilerError):
    """A snapshot file that cannot be read; the message starts with ``path:line``."""

    def __init__(self, message: str, location: SourceLocation) -> None:
        self.location = location
        super().__init__(f"{location}: {message}")


class OutputError(ReconcilerError):
    """A file (``--out``, a manifest ``fmt`` rewrites) or the standard output cannot be written."""


class JournalError(ReconcilerError):
    """An apply journal that cannot be read (corrupt, not a journal) or used (another provider)."""


class LockError(ReconcilerError):
    """Another apply or rollback holds the store's lock (or the lock file cannot be used)."""
