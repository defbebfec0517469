"""The one exception hierarchy of reconciler, and source locations for diagnostics.

::

    ReconcilerError
    ├── UsageError                    bad flag or argument combination
    ├── ManifestError                 has a ``location``
    │   ├── ManifestParseError        YAML that cannot be read
    │   └── ManifestValidationError   carries every ``Diagnostic`` found in one pass
    ├── SourceError                   a bulk ``source:`` file (JSONL/CSV); carries diagnostics
    ├── ProviderError                 reading or writing live state
    │   ├── ProviderConnectionError   the store or server cannot be reached
    │   ├── ProviderAuthError         credentials missing, unreadable or refused
    │   ├── ProviderConflictError     live state is not what the operation expected
    │   └── ProviderResponseError     the server answered something we cannot use
    ├── PlanError                     the plan cannot be made or used
    │   ├── StalePlanError            live state changed since the plan
    │   ├── PlanFormatError           a plan file that is unreadable, altered or foreign
    │   └── LimitExceededError        a plan beyond the Workspace's blast-radius limits
    ├── JournalError                  an apply journal that is corrupt or for another provider
    ├── LockError                     the store is locked by another apply or rollback
    └── ApplyError                    an apply that did not fully succeed (carries the result)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ApplyError",
    "Diagnostic",
    "JournalError",
    "LimitExceededError",
    "LockError",
    "ManifestError",
    "ManifestParseError",
    "ManifestValidationError",
    "PlanError",
    "PlanFormatError",
    "ProviderAuthError",
    "ProviderConflictError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderResponseError",
    "ReconcilerError",
    "SourceError",
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


class SourceError(ReconcilerError):
    """Bad rows in a bulk ``source:`` file, all reported at once (up to a cap)."""

    def __init__(self, issues: Sequence[Diagnostic], *, truncated: int = 0) -> None:
        self.issues = list(issues)
        self.truncated = truncated
        lines = [str(i) for i in self.issues]
        if truncated:
            lines.append(f"... and {truncated} more problem(s) in sources")
        super().__init__("\n".join(lines))


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


class JournalError(ReconcilerError):
    """An apply journal that cannot be read (corrupt, not a journal) or used (another provider)."""


class LockError(ReconcilerError):
    """Another apply or rollback holds the store's lock (or the lock file cannot be used)."""


class ApplyError(ReconcilerError):
    """An apply in which some writes failed; ``result`` says what was written and what was not."""

    def __init__(self, message: str, result: object) -> None:
        self.result = result
        super().__init__(message)
