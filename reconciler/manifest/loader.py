"""Manifests on disk -> a validated, positioned :class:`~reconciler.model.DesiredState`.

:func:`load_manifests` is the entry point. It reads every manifest file (:mod:`~reconciler.manifest.discovery`),
validates each document against its pydantic model (:mod:`~reconciler.manifest.schema`, errors worded by
:mod:`~reconciler.manifest.diagnostics`), runs the located rules of each document
(:mod:`~reconciler.manifest.rules`) and the rules across documents (:mod:`~reconciler.manifest.crosschecks`),
and reports every problem of the whole directory at once as ``path:line:col: message``. Only when nothing at
all is wrong are the records built, from the validated models (:mod:`~reconciler.manifest.convert`).
Warnings travel in ``DesiredState.warnings``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from reconciler.errors import ManifestParseError, ManifestValidationError, SourceLocation
from reconciler.manifest import crosschecks, rules
from reconciler.manifest.convert import file_manifest_record, schema_record, workspace_record
from reconciler.manifest.diagnostics import Collected, Doc, bare_message, report_validation_error
from reconciler.manifest.discovery import MANIFEST_SUFFIXES, DigestBuilder, find_manifest_files
from reconciler.manifest.schema import (
    API_VERSION,
    KIND_MODELS,
    FileMetadataDoc,
    MetadataSchemaDoc,
    WorkspaceDoc,
)
from reconciler.manifest.yamlio import read_documents
from reconciler.model import DesiredState

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["MANIFEST_SUFFIXES", "load_manifests"]

logger = logging.getLogger(__name__)


def load_manifests(root: str | Path, *, check_sources: bool = False) -> DesiredState:
    """Load and validate every manifest under ``root``.

    ``check_sources=True`` also reads every ``source:`` file row by row and checks its values against the
    declared schema (what ``validate`` wants; ``plan`` reads the rows anyway and need not pay twice).

    Raises ManifestValidationError carrying every error found (sorted by location).
    """
    return _Loader(Path(root)).load(check_sources=check_sources)


@dataclass
class _Loaded:
    """One document of a kind, with its validated model (``None`` when pydantic refused it)."""

    doc: Doc
    model: BaseModel | None


@dataclass
class _FileDoc(_Loaded):
    facts: rules.FileFacts = field(default_factory=rules.FileFacts)


class _Loader:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.out = Collected()
        self.digest = DigestBuilder(ahead=True)  # (a large source is hashed meanwhile, by another process)
        self.workspaces: list[_Loaded] = []
        self.schemas: list[tuple[_Loaded, rules.SchemaFacts]] = []
        self.files: list[_FileDoc] = []

    def load(self, *, check_sources: bool) -> DesiredState:
        if not self.root.is_dir():
            self.out.error(SourceLocation(str(self.root)), "manifest directory does not exist")
            raise ManifestValidationError(self.out.errors)
        found = find_manifest_files(self.root)
        self.out.warnings.extend(found.warnings)
        for d in found.errors:
            self.out.error(d.location, d.message)
        for file in found.files:
            self._load_file(file, file.relative_to(self.root).as_posix())
        self._cross_checks(check_sources=check_sources)
        if self.out.errors:
            raise ManifestValidationError(self.out.errors)
        state = self._records()
        if logger.isEnabledFor(logging.DEBUG):  # (else the digest is made only when it is needed)
            logger.debug(
                "loaded %d manifest document(s) from %s (digest %s)",
                len(self.files) + len(self.schemas) + 1,
                self.root,
                state.digest,
            )
        return state

    # ----------------------------------------------------------------------------------------- documents

    def _load_file(self, file: Path, rel: str) -> None:
        if not file.is_file():  # a device, pipe or broken link named *.yaml would be read forever or fail
            self.out.error(
                SourceLocation(rel), "not a regular file (a link to a device, a pipe, or a broken link)"
            )
            return
        try:
            docs = read_documents(file, rel)
        except ManifestParseError as exc:
            self.out.error(exc.location or SourceLocation(rel), bare_message(exc))
            return
        except ManifestValidationError as exc:
            self.out.errors.extend(exc.issues)
            return
        finally:
            self.digest.add(rel, file)
        for yaml_doc in docs:
            self._load_document(Doc(rel, yaml_doc))

    def _load_document(self, doc: Doc) -> None:
        kind = rules.check_header(doc, self.out)
        if kind is None:
            return
        model_type = KIND_MODELS[kind]
        patched = dict(doc.data)
        patched["apiVersion"] = API_VERSION  # reported by the header check; not again by pydantic
        model: BaseModel | None
        try:
            model = model_type.model_validate(patched)
        except ValidationError as exc:
            report_validation_error(doc, model_type, exc, self.out)
            model = None
        if model_type is WorkspaceDoc:
            rules.check_workspace(doc, self.out)
            self.workspaces.append(_Loaded(doc, model))
        elif model_type is MetadataSchemaDoc:
            self.schemas.append((_Loaded(doc, model), rules.check_schema(doc, self.out)))
        else:
            facts = rules.check_file_manifest(doc, self.out, self.root)
            if facts.source is not None:
                self.digest.add(facts.source.path, (self.root / facts.source.path).resolve())
            self.files.append(_FileDoc(doc, model, facts))

    # ----------------------------------------------------------------------------------------- across documents

    def _cross_checks(self, *, check_sources: bool) -> None:
        crosschecks.check_singletons(
            self.root, [w.doc for w in self.workspaces], [s.doc for s, _ in self.schemas], self.out
        )
        schema = self.schemas[0][1] if self.schemas else None
        keys = schema.specs if schema is not None else None
        broken = schema.broken if schema is not None else set()
        undeclared = crosschecks.undeclared_policy(self.workspaces[0].doc if self.workspaces else None)
        assignments = [a for f in self.files for a in f.facts.assignments]
        crosschecks.check_values(assignments, keys, broken, undeclared, self.out)
        if check_sources:
            sources = [f.facts.source for f in self.files if f.facts.source is not None]
            crosschecks.check_sources(self.root, sources, keys, broken, undeclared, self.out)

    # ----------------------------------------------------------------------------------------- records

    def _records(self) -> DesiredState:
        """The records of a directory in which nothing is wrong (every model validated)."""
        ws = self.workspaces[0]
        assert isinstance(ws.model, WorkspaceDoc)
        schema = None
        if self.schemas:
            loaded = self.schemas[0][0]
            assert isinstance(loaded.model, MetadataSchemaDoc)
            schema = schema_record(loaded.model, loaded.doc)
        files = []
        for f in self.files:
            assert isinstance(f.model, FileMetadataDoc)
            files.append(file_manifest_record(f.model, f.doc, f.facts.source))
        return DesiredState(
            root=str(self.root),
            workspace=workspace_record(ws.model, ws.doc),
            schema=schema,
            files=tuple(files),
            warnings=tuple(sorted(set(self.out.warnings))),
            digest_of=self.digest.digest,
        )
