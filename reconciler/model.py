"""Domain records both sides speak: the desired state (from manifests) and the live state (from a provider)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final, Literal, TypeAlias

from reconciler import jsoncodec
from reconciler.errors import Diagnostic, SourceLocation
from reconciler.schema import FieldSpec

if TYPE_CHECKING:
    from reconciler.types import JsonValue, MetadataView

__all__ = [
    "DEFAULT_JOURNAL_DIR",
    "DEFAULT_PARALLELISM",
    "MAX_PARALLELISM",
    "Assignment",
    "DesiredKey",
    "DesiredState",
    "FileManifest",
    "FileSelector",
    "KeyframeMode",
    "Limits",
    "LiveDataRow",
    "LiveDataset",
    "LiveFolder",
    "LiveItem",
    "Mode",
    "OnMissing",
    "ProviderConfig",
    "SchemaManifest",
    "SelectorKind",
    "SourceSpec",
    "UndeclaredKeys",
    "Workspace",
    "WorkspaceSettings",
    "canonical_json",
    "metadata_fingerprint",
]


# The defaults of the manifest format, declared once: the pydantic models of reconciler.manifest.schema (and so
# the JSON Schema) and the records below both use them. (A store's own defaults, e.g. the SQLite path, belong
# to its module in reconciler.providers.)
#: Where apply journals go without ``settings.journal_dir``, relative to the manifest directory.
DEFAULT_JOURNAL_DIR: Final = ".reconciler/journal"
#: Concurrent requests without ``settings.parallelism``, and the most allowed.
DEFAULT_PARALLELISM: Final = 4
MAX_PARALLELISM: Final = 64

#: How a video's ``keyframes`` are read (the ``keyframe_mode`` of its reserved ``config`` key; SPEC §7c).
KeyframeMode: TypeAlias = Literal["frame", "seconds"]


class Mode(str, enum.Enum):
    """How a FileMetadata manifest writes: ``merge`` (owned keys only) or ``overwrite`` (the whole dict)."""

    MERGE = "merge"
    OVERWRITE = "overwrite"


class OnMissing(str, enum.Enum):
    """What a name/uuid selector that matches no live file does."""

    ERROR = "error"
    WARN = "warn"
    IGNORE = "ignore"


class SelectorKind(str, enum.Enum):
    GLOB = "glob"
    NAME = "name"
    UUID = "uuid"


class UndeclaredKeys(str, enum.Enum):
    """Policy for metadata keys the schema does not declare."""

    ERROR = "error"
    WARN = "warn"
    ALLOW = "allow"


@dataclass(frozen=True, slots=True)  # slots: bulk sources make millions of these
class Assignment:
    """A value a manifest gives a key. ``value is None`` means an explicit ``null``: remove the key."""

    value: JsonValue
    location: SourceLocation


@dataclass(frozen=True)
class FileSelector:
    """One ``files:`` entry: a glob, name or uuid, and the metadata it sets."""

    kind: SelectorKind
    pattern: str
    metadata: Mapping[str, Assignment]
    location: SourceLocation


@dataclass(frozen=True)
class SourceSpec:
    """A bulk ``source:`` file (JSONL or CSV), path relative to the manifest directory."""

    path: str
    format: str  # "jsonl" | "csv" | "registration" (Encord's upload JSON)
    location: SourceLocation
    #: The keyframe mode of rows without a ``config`` of their own: the one the manifest's defaults give.
    keyframe_mode: KeyframeMode = "frame"


@dataclass(frozen=True)
class FileManifest:
    """One ``kind: FileMetadata`` document."""

    path: str  # manifest file, relative to the manifest directory (posix)
    folder: str  # folder path from the root, or a folder UUID ("" when ``dataset`` is set)
    mode: Mode
    files: tuple[FileSelector, ...]
    location: SourceLocation
    recursive: bool = False
    children: bool = False
    owns: tuple[str, ...] = ()
    on_missing: OnMissing = OnMissing.ERROR
    defaults: Mapping[str, Assignment] = field(default_factory=dict)
    source: SourceSpec | None = None
    #: A dataset hash instead of a folder (SPEC §7b): selectors match data unit titles and data hashes.
    dataset: str | None = None
    #: Where the ``folder:`` or ``dataset:`` value is written (messages about a folder or dataset point there).
    target_location: SourceLocation | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """How plans and messages name this manifest: its path, plus the document number if not the first."""
        return self.path if self.location.line in (None, 1) else f"{self.path}:{self.location.line}"


@dataclass(frozen=True)
class DesiredKey:
    """One key declared in the MetadataSchema manifest."""

    spec: FieldSpec
    location: SourceLocation
    renamed_from: str | None = None


@dataclass(frozen=True)
class SchemaManifest:
    """The ``kind: MetadataSchema`` document."""

    keys: Mapping[str, DesiredKey]
    location: SourceLocation
    prune: bool = False


@dataclass(frozen=True)
class ProviderConfig:
    """Where live state is. Each store of ``reconciler.providers`` declares its own frozen subclass with its
    own fields (``SqliteConfig``: path and seed; ``EncordConfig``: domain), and ``type``, its registry name."""

    type: ClassVar[str] = ""


@dataclass(frozen=True)
class Limits:
    """Blast-radius limits; ``None`` means no limit."""

    max_files: int | None = None
    max_removed_keys: int | None = None
    max_removed_share: float | None = None


@dataclass(frozen=True)
class WorkspaceSettings:
    parallelism: int = DEFAULT_PARALLELISM
    journal_dir: str = DEFAULT_JOURNAL_DIR
    undeclared_keys: UndeclaredKeys = UndeclaredKeys.WARN
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Workspace:
    provider: ProviderConfig
    settings: WorkspaceSettings
    location: SourceLocation


@dataclass(frozen=True)
class DesiredState:
    """Everything the manifests say, validated and positioned."""

    root: str  # the manifest directory (absolute)
    workspace: Workspace
    schema: SchemaManifest | None
    files: tuple[FileManifest, ...]
    warnings: tuple[Diagnostic, ...] = ()
    #: What :attr:`digest` is: its text, or what gives it when it is first asked for (a large source file is
    #: hashed meanwhile by another process: ``manifest.discovery.DigestBuilder``).
    digest_of: str | Callable[[], str] = ""

    @property
    def digest(self) -> str:
        """sha256 over every manifest and source file, for saved plans."""
        got = self.digest_of
        if not isinstance(got, str):
            got = got()
            object.__setattr__(self, "digest_of", got)
        return got


@dataclass(frozen=True)
class LiveFolder:
    """A storage folder. ``path`` is the names from the root joined by ``/``."""

    uuid: str
    parent: str | None
    name: str
    path: str


@dataclass
class LiveDataRow:
    """A data unit of a dataset (Encord's legacy v1 API). ``metadata`` is its custom metadata: the backing
    storage item's ``clientMetadata`` when ``backing_item`` is set (one value, two APIs), else its own."""

    data_hash: str
    title: str
    data_type: str  # upper case, as the v1 API answers (IMAGE, VIDEO, IMG_GROUP, DICOM, ...)
    backing_item: str | None
    metadata: dict[str, JsonValue]


@dataclass
class LiveDataset:
    """A dataset and its data units, in the server's order."""

    hash: str
    title: str
    rows: list[LiveDataRow]


@dataclass
class LiveItem:
    """A storage item (file) and its custom metadata.

    ``name`` is the item's own name; ``parent_item`` is the UUID of the image group, image sequence or DICOM
    series a child item belongs to (``None`` for top-level files).
    """

    uuid: str
    folder: str
    name: str
    item_type: str
    metadata: dict[str, JsonValue]
    parent_item: str | None = None
    #: The metadata as the server's JSON text, when it came as text (listings keep it instead of the dict).
    metadata_text: str | None = field(default=None, compare=False, repr=False)


def canonical_json(value: object) -> str:
    """The canonical text of a JSON value: sorted keys, no spaces, UTF-8 kept (:mod:`reconciler.jsoncodec`)."""
    return jsoncodec.canonical(value)


def metadata_fingerprint(metadata: MetadataView) -> str:
    """A digest of a whole metadata dict, used to detect changes between plan and apply. A live dict may hold
    NaN or an infinity (Python's ``json.dumps`` writes them, so an SDK script can store them): they are written
    ``NaN``/``Infinity`` here, and every other dict's digest is its canonical text's."""
    return "sha256:" + hashlib.sha256(jsoncodec.checksum_text(metadata)).hexdigest()
