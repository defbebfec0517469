"""The command line: a thin click layer. The only module that prints, prompts or sets exit codes.

Exit codes: 0 success (no changes with --detailed-exitcode), 1 error, 2 changes present (--detailed-exitcode
only), 3 internal error (please report), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import gc
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final, NoReturn, TextIO, TypeVar

import click

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from reconciler.apply import FileResult
    from reconciler.errors import Diagnostic
    from reconciler.journal import JournalFile
    from reconciler.lock import LockHolder, StoreLock
    from reconciler.model import DesiredState, Limits
    from reconciler.plan.model import Plan
    from reconciler.providers.base import StateProvider
    from reconciler.render.text import Styler
    from reconciler.rollback import RollbackWorkspace

from reconciler._version import __version__
from reconciler.config import Settings, provider_for
from reconciler.errors import (
    Diagnostic,
    ManifestError,
    ManifestValidationError,
    ReconcilerError,
    SourceLocation,
    UsageError,
)
from reconciler.progress import APPLYING

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

ISSUES_URL = "https://github.com/reconciler-dev/reconciler/issues"


class _Exit(Exception):
    """Carries an exit code from a command to ``main`` (commands never call sys.exit)."""

    def __init__(self, code: int) -> None:
        self.code = code


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside an apply's batches (or a second signal during them): stop at once, exit 143."""

    code = EXIT_TERMINATED


def _signal_exit_code(signum: int) -> int:
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def _err(text: str) -> None:
    click.echo(text, err=True)


@dataclass
class _Output:
    """How diagnostics are shown in this run (set by ``main`` and by the commands that load manifests)."""

    base: Path | None = None  # what loader and planner locations are relative to: the manifest directory
    annotate: bool = False  # GITHUB_ACTIONS=true: also emit workflow annotations


_OUT = _Output()


def _report(
    severity: str, message: str, location: SourceLocation | None = None, *, base: bool = True
) -> None:
    """The one place an error or a warning is printed: ``Error: path:line:col: message`` with the path made
    relative to the current directory, plus a GitHub annotation under GitHub Actions."""
    from reconciler.render.diagnostics import display_location, github_annotation

    shown = display_location(location, _OUT.base if base else None) if location is not None else None
    label = "Warning" if severity == "warning" else "Error"
    _err(f"{label}: {shown}: {message}" if shown is not None else f"{label}: {message}")
    if _OUT.annotate:
        _err(github_annotation(message, severity=severity, location=shown))


def _truthy_env(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "")
    return value != "" and value != "0"


def _color_wanted(stream: TextIO, env: Mapping[str, str] | None = None, no_color: bool = False) -> bool:
    """--no-color and NO_COLOR turn colour off; FORCE_COLOR or CLICOLOR_FORCE turn it on (CI logs render
    ANSI colour); otherwise colour only on a terminal."""
    env = os.environ if env is None else env
    if no_color or env.get("NO_COLOR"):
        return False
    if _truthy_env(env, "FORCE_COLOR") or _truthy_env(env, "CLICOLOR_FORCE"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def _styler(settings: Settings) -> Styler:
    from reconciler.render.text import AnsiStyler, PlainStyler

    return AnsiStyler() if settings.color else PlainStyler()


def _warn(diags: Sequence[Diagnostic]) -> None:
    for d in diags:
        if isinstance(d, Diagnostic):
            _report("warning", d.message, d.location)
        else:
            _report("warning", str(d))


_dir_option = click.option(
    "-C",
    "--dir",
    "manifest_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Manifest directory (default: ./manifests).",
)
_debug_option = click.option("--debug", is_flag=True, default=None, help="Log details and show tracebacks.")
_NO_COLOR_META = "reconciler.no_color"


def _no_color_callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_NO_COLOR_META] = True


_no_color_option = click.option(
    "--no-color",
    is_flag=True,
    expose_value=False,
    callback=_no_color_callback,
    help="No colour (also NO_COLOR=1; FORCE_COLOR=1 or CLICOLOR_FORCE=1 force it, e.g. in CI logs).",
)


_F = TypeVar("_F", bound=Callable[..., object])


def _common(f: _F) -> _F:
    """Every command takes -C/--dir, --debug and --no-color, before or after its name."""
    return _dir_option(_debug_option(_no_color_option(f)))


def _settings(ctx: click.Context, manifest_dir: Path | None, debug: bool | None) -> Settings:
    """The group's Settings, with this command's own -C/--dir and --debug applied."""
    base = ctx.find_object(Settings) or Settings(Path("manifests"), dict(os.environ))
    settings = Settings(
        manifest_dir=manifest_dir or base.manifest_dir,
        env=base.env,
        debug=bool(debug) or base.debug,
        color=base.color and not ctx.meta.get(_NO_COLOR_META, False),
    )
    ctx.color = settings.color
    # Manifest locations (from the loader, the planner, a saved plan's or a journal's Workspace) are relative
    # to the manifest directory; _report shows them relative to the current directory.
    _OUT.base = settings.manifest_dir
    if settings.debug and not base.debug:
        _show_engine_warnings(True)
        _enable_debug_logging()
    ctx.obj = settings
    return settings


class _WarningLines(logging.Handler):
    """The engine's warnings (``logging.WARNING`` and above, e.g. a request still waiting) as stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _report("warning", record.getMessage())
        except Exception:  # never let a warning line break the command
            self.handleError(record)


_warning_lines = _WarningLines(logging.WARNING)


def _show_engine_warnings(debug: bool) -> None:
    """Without --debug, the engine's warnings reach stderr as ``Warning: ...`` lines (with it, the log does)."""
    engine = logging.getLogger("reconciler")
    if debug:
        engine.removeHandler(_warning_lines)
    elif _warning_lines not in engine.handlers:
        engine.addHandler(_warning_lines)


def _enable_debug_logging() -> None:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.INFO)
    logging.getLogger("httpcore").setLevel(logging.INFO)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    invoke_without_command=True,
)
@click.version_option(__version__, prog_name="reconciler")
@_common
@click.pass_context
def cli(ctx: click.Context, manifest_dir: Path | None, debug: bool | None) -> None:
    """Metadata as code for Encord: plan and apply the metadata schema and files' custom metadata."""
    env = dict(os.environ)
    ctx.obj = Settings(
        manifest_dir=manifest_dir or Path("manifests"),
        env=env,
        debug=bool(debug),
        color=_color_wanted(sys.stdout, env, no_color=ctx.meta.get(_NO_COLOR_META, False)),
    )
    _show_engine_warnings(bool(debug))
    ctx.color = ctx.obj.color
    if debug:
        _enable_debug_logging()
    if ctx.invoked_subcommand is None:  # bare `reconciler`: the help, exit 0 (as on every click version)
        click.echo(ctx.get_help())
        raise _Exit(EXIT_OK)


def _load(settings: Settings, *, check_sources: bool = False) -> DesiredState:
    from reconciler.manifest.loader import load_manifests

    if not settings.manifest_dir.is_dir():
        raise UsageError(
            f"manifest directory {str(settings.manifest_dir)!r} does not exist (use -C/--dir to point at it)"
        )
    _OUT.base = settings.manifest_dir  # loader and planner locations are relative to it
    desired = load_manifests(settings.manifest_dir, check_sources=check_sources)
    _warn(desired.warnings)
    return desired


# --------------------------------------------------------------------------------------------- validate
@cli.command()
@_common
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one document with every diagnostic and the manifests' digest (for scripts).",
)
@click.pass_context
def validate(ctx: click.Context, manifest_dir: Path | None, debug: bool | None, fmt: str) -> None:
    """Check every manifest and source file offline and report all problems at once."""
    from reconciler.plan.checks import offline_conflicts

    settings = _settings(ctx, manifest_dir, debug)
    if fmt == "json":
        _validate_json(settings)
        return
    desired = _load(settings, check_sources=True)
    conflicts = offline_conflicts(desired.files, globs=True)
    if conflicts:
        raise ManifestValidationError(conflicts)
    n_schema = 1 if desired.schema is not None else 0
    click.echo(
        f"Success: the manifests are valid (1 Workspace, {n_schema} MetadataSchema, "
        f"{len(desired.files)} FileMetadata)."
    )


def _validate_json(settings: Settings) -> None:
    """``validate --format json``: stdout holds only the JSON document; exit 1 when it is not valid."""
    from reconciler.manifest.loader import load_manifests
    from reconciler.render.diagnostics import validate_document

    if not settings.manifest_dir.is_dir():
        raise UsageError(
            f"manifest directory {str(settings.manifest_dir)!r} does not exist (use -C/--dir to point at it)"
        )
    _OUT.base = settings.manifest_dir
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    digest: str | None = None
    counts: dict[str, int] | None = None
    try:
        desired = load_manifests(settings.manifest_dir, check_sources=True)
    except ManifestValidationError as exc:
        errors = list(exc.issues)
    except ManifestError as exc:
        loc = exc.location or SourceLocation(str(settings.manifest_dir))
        message = str(exc)
        if message.startswith(f"{loc}: "):
            message = message[len(f"{loc}: ") :]
        errors = [Diagnostic(loc, message)]
    else:
        warnings = [w for w in desired.warnings if isinstance(w, Diagnostic)]
        digest = desired.digest
        counts = {
            "Workspace": 1,
            "MetadataSchema": 1 if desired.schema is not None else 0,
            "FileMetadata": len(desired.files),
        }
    doc = validate_document(
        errors=errors, warnings=warnings, digest=digest, counts=counts, base=settings.manifest_dir
    )
    click.echo(json.dumps(doc, indent=2))
    if _OUT.annotate:
        for d in [*errors, *warnings]:
            from reconciler.render.diagnostics import display_location, github_annotation

            shown = display_location(d.location, settings.manifest_dir)
            _err(github_annotation(d.message, severity=d.severity, location=shown))
    if errors:
        raise _Exit(EXIT_ERROR)


# --------------------------------------------------------------------------------------------- plan
def _progress_hooks(settings: Settings) -> _ProgressHooks:
    """The progress line for this command: without colour when --no-color or NO_COLOR asks for none."""
    ctx = click.get_current_context(silent=True)
    flag = ctx is not None and bool(ctx.meta.get(_NO_COLOR_META, False))
    return _ProgressHooks(no_color=flag or bool(settings.env.get("NO_COLOR")))


class _ProgressHooks:
    """The long phases' progress (:mod:`reconciler.progress`) on stderr, only when stderr is a terminal.

    One line: the phase's label, a bar (moving back and forth while the total is unknown), done/total and
    the time spent in this phase. A new phase is drawn at once; rich's refresh thread redraws the line
    :data:`_REFRESH_PER_SECOND` times a second, so the elapsed column ticks while a slow request is
    awaited. Without a terminal nothing is drawn and no thread is started. With ``no_color`` (--no-color or
    NO_COLOR) the line is drawn without colour.
    """

    def __init__(self, *, no_color: bool = False) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._stage: str | None = None
        self._lock = threading.Lock()
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True, no_color=no_color),
                transient=True,
                refresh_per_second=_REFRESH_PER_SECOND,
                redirect_stdout=False,  # stdout carries the plan: never into the progress console
            )

    def __enter__(self) -> _ProgressHooks:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def on_progress(self, stage: str, done: int, total: int | None) -> None:
        if self._progress is None:
            return
        with self._lock:
            if stage == self._stage and self._task is not None:
                self._progress.update(self._task, completed=done, total=total)
                return
            # A new phase: a new task, so its elapsed time starts at 0 and an unknown total shows as one.
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._stage = stage
            self._task = self._progress.add_task(stage, total=total, completed=done)
            self._progress.refresh()

    def on_schema_written(self, changes: int) -> None:
        return None

    def on_batch_done(self, results: Sequence[FileResult], done: int, total: int) -> None:
        self.on_progress(APPLYING, done, total)


#: How often the progress line is redrawn on a terminal (its elapsed column counts seconds).
_REFRESH_PER_SECOND = 4


def _make_plan(
    settings: Settings,
    provider_url: str | None,
    targets: Sequence[str],
    override_limits: bool = False,
    before_plan: Callable[[DesiredState, StateProvider], None] | None = None,
    *,
    create: bool = False,
    parallelism: int | None = None,
    shard: str | None = None,
) -> tuple[DesiredState, StateProvider, Plan]:
    from reconciler.plan.planner import make_plan, parse_targets
    from reconciler.plan.shard import parse_shard

    the_shard = parse_shard(shard) if shard is not None else None
    desired = _load(settings)
    tg = parse_targets(targets, desired)
    with _progress_hooks(settings) as hooks:  # opening the store may seed it
        provider = provider_for(
            settings, desired, provider_url, parallelism, create=create, on_progress=hooks.on_progress
        )
        try:
            if before_plan is not None:
                before_plan(desired, provider)
            plan = make_plan(
                desired,
                provider,
                targets=tg,
                hooks=hooks,
                override_limits=override_limits,
                parallelism=parallelism,
                shard=the_shard,
            )
        except BaseException:
            provider.close()
            raise
    _warn([w for w in plan.warnings if w not in set(desired.warnings)])
    return desired, provider, plan


def _render(plan: Plan, fmt: str, settings: Settings) -> str:
    if fmt == "json":
        from reconciler.render.json import render_plan_json

        return render_plan_json(plan)
    if fmt == "markdown":
        from reconciler.render.markdown import render_plan_markdown

        return render_plan_markdown(plan)
    from reconciler.render.text import render_plan_text

    return render_plan_text(plan, style=_styler(settings))


_provider_option = click.option(
    "--provider",
    "provider_url",
    metavar="URL",
    help="Override the Workspace's provider: sqlite:PATH, encord: or encord:https://DOMAIN.",
)
_format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
_shard_option = click.option(
    "--shard",
    metavar="K/N",
    help="Plan only shard K of N (by folder, or by file uuid inside fewer folders than shards).",
)
_override_limits_option = click.option(
    "--override-limits",
    is_flag=True,
    help="Allow a plan beyond the Workspace's settings.limits max_files / max_removed_keys.",
)


@cli.command()
@_common
@_provider_option
@_format_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan to FILE.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="SEL",
    help="Plan only this manifest path, folder:PATH or schema (repeatable).",
)
@_override_limits_option
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="Folders listed at once (default: the Workspace's settings.parallelism).",
)
@_shard_option
@click.pass_context
def plan(
    ctx: click.Context,
    manifest_dir: Path | None,
    debug: bool | None,
    provider_url: str | None,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    override_limits: bool,
    parallelism: int | None,
    shard: str | None,
) -> None:
    """Read live state, diff it against the manifests, and print the plan."""
    settings = _settings(ctx, manifest_dir, debug)
    _desired, provider, the_plan = _make_plan(
        settings, provider_url, targets, override_limits, parallelism=parallelism, shard=shard
    )
    provider.close()
    if out is not None:
        from reconciler.plan.planfile import plan_key, write_planfile

        write_planfile(out, the_plan, key=plan_key(settings.env))
    click.echo(_render(the_plan, fmt, settings), nl=False)
    if out is not None and fmt == "text":
        click.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: reconciler apply {out}")
    if detailed_exitcode and the_plan.has_changes:
        raise _Exit(EXIT_CHANGES)


# --------------------------------------------------------------------------------------------- apply
@contextlib.contextmanager
def _interruptible() -> Iterator[_Cancel]:
    """The first Ctrl-C or SIGTERM: stop after the batch in flight. A second signal: stop at once."""
    cancel = _Cancel()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt
        cancel.signum = signum
        cancel.set()
        what = "Terminated (SIGTERM)" if signum == signal.SIGTERM else "Interrupted"
        _err(f"\n{what}: stopping after the batch in flight (Ctrl-C again to stop at once)...")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


class _Cancel(threading.Event):
    """Set by the first signal; ``signum`` says which one (for the exit code)."""

    signum: int = signal.SIGINT


def _lock_store(provider: StateProvider, journal_dir: Path, command: str, timeout: float) -> StoreLock:
    """Take the store's lock (reconciler/lock.py) before anything is read for writing; stderr says when it waits
    and when it takes over a lock a dead run left behind."""
    from reconciler.lock import StoreLock, lock_path

    path = lock_path(provider.identity, journal_dir, beside_store=provider.capabilities.lock_beside_store)
    lock = StoreLock(path, str(provider.identity), command)

    def waiting(holder: LockHolder | None) -> None:
        who = f" ({holder})" if holder is not None else ""
        _err(f"Waiting up to {timeout:g}s for the lock of {provider.identity}, held by another run{who}...")

    lock.acquire(timeout, on_wait=waiting)
    if lock.took_over is not None:
        _err(
            f"Warning: took over the lock of {provider.identity} left by {lock.took_over}, which no longer holds "
            "it."
        )
    return lock


class _Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in type stubs of newer click
    name = "DURATION"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from reconciler.lock import parse_duration

        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_lock_timeout_option = click.option(
    "--lock-timeout",
    type=_Duration(),
    default="0",
    show_default=True,
    help="How long to wait for another apply or rollback of the same store to end (30s, 2m, or seconds).",
)


def _confirm(question: str) -> bool:
    click.echo(question)
    click.echo("  Only 'yes' will be accepted to approve.\n")
    click.echo("  Enter a value: ", nl=False)
    # No standard input at all (closed: `<&-`) is no answer, as an empty one is.
    line = sys.stdin.readline() if sys.stdin is not None else ""
    click.echo("")
    return line.strip() == "yes"


def _run_apply(
    settings: Settings,
    the_plan: Plan,
    provider: StateProvider,
    journal_dir: Path,
    *,
    allow_destructive: bool,
    parallelism: int,
    precheck: bool,
    rolls_back: Path | None = None,
    echo_err: bool = False,
    limits: Limits | None = None,
    override_limits: bool = False,
    desired: DesiredState | None = None,
    saved: bool = False,
    rollback: bool = False,
    plan_checksum: str | None = None,
    fmt: str = "text",
) -> None:
    from reconciler.apply import apply_plan
    from reconciler.journal import JournalWriter
    from reconciler.render.text import render_apply_result

    kind = "apply" if rolls_back is None else "rollback"
    journal = JournalWriter(
        journal_dir,
        the_plan,
        kind=kind,
        rolls_back=None if rolls_back is None else str(rolls_back),
        plan_checksum=plan_checksum,
    )
    try:
        with _interruptible() as cancel, _progress_hooks(settings) as hooks:
            try:
                result = apply_plan(
                    the_plan,
                    provider,
                    allow_destructive=allow_destructive,
                    precheck=precheck,
                    parallelism=parallelism,
                    hooks=hooks,
                    journal=journal,  # probed before the first write (the schema's too)
                    cancel=cancel,
                    limits=limits,
                    override_limits=override_limits,
                    desired=desired,
                    saved=saved,
                    rollback=rollback,
                )
            except KeyboardInterrupt:  # a second signal: stopped at once, mid-batch
                global _EXIT_AT_ONCE
                _EXIT_AT_ONCE = True  # (requests still in flight are not waited for: see run)
                if journal.path is not None:
                    _err(
                        f"Stopped at once: the batch in flight may or may not have landed. Journal: {journal.path} "
                        f"(undo what was written with `reconciler rollback {journal.path}`)."
                    )
                raise
    finally:
        journal.close()
    if fmt == "json":
        from reconciler.render.json import render_apply_result_json

        click.echo(
            render_apply_result_json(result, None if journal.path is None else str(journal.path)), nl=False
        )
        echo_err = True
    click.echo(render_apply_result(result), nl=False, err=echo_err)
    if journal.path is not None:
        click.echo(f"Journal: {journal.path}", err=echo_err)
    undo = ""
    if journal.path is not None:
        undo = f", or `reconciler rollback {journal.path}` to undo what was written"
    if result.journal_error is not None:
        from reconciler.apply import FileStatus

        written = result.count(FileStatus.WRITTEN) + result.count(FileStatus.CHANGED_AFTER_WRITE)
        _err(
            f"Error: the journal could not be written ({result.journal_error}); no further batch was sent. "
            f"{written:,} file(s) written before that; they are recorded in {journal.path}. Undo them with "
            f"`reconciler rollback {journal.path}`, or fix the disk and run the apply again."
        )
        raise _Exit(EXIT_ERROR)
    if result.interrupted:
        again = "reconciler apply" if rolls_back is None else f"reconciler rollback {rolls_back}"
        _err(f"Interrupted: stopped after the batches in flight. Run `{again}` again to finish{undo}.")
        raise _Exit(_signal_exit_code(cancel.signum))
    if not result.ok:
        raise _Exit(EXIT_ERROR)


@cli.command()
@_common
@_provider_option
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Allow destructive changes: schema deletions and type changes, removals over max_removed_share.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="Concurrent requests: folders listed and write batches sent at once.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="SEL",
    help="Apply only this manifest path, folder:PATH or schema (repeatable; not with PLANFILE).",
)
@_override_limits_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the plan and the report go to stderr, a result document to stdout (needs PLANFILE or "
    "--auto-approve).",
)
@_lock_timeout_option
@_shard_option
@click.pass_context
def apply(
    ctx: click.Context,
    manifest_dir: Path | None,
    debug: bool | None,
    provider_url: str | None,
    planfile: Path | None,
    auto_approve: bool,
    allow_destructive: bool,
    parallelism: int | None,
    targets: tuple[str, ...],
    override_limits: bool,
    lock_timeout: float,
    fmt: str,
    shard: str | None,
) -> None:
    """Apply a saved PLANFILE exactly, or plan, show, ask 'yes', and apply."""
    settings = _settings(ctx, manifest_dir, debug)
    if fmt == "json" and planfile is None and not auto_approve:
        raise UsageError(
            "apply --format json needs PLANFILE or --auto-approve (the prompt cannot be part of it)"
        )
    if planfile is not None:
        if targets:
            raise UsageError(
                "--target cannot be combined with a saved PLANFILE (the plan is applied exactly)"
            )
        if shard is not None:
            raise UsageError(
                "--shard cannot be combined with a saved PLANFILE (a shard's saved plan records its shard)"
            )
        _apply_saved(settings, planfile, provider_url, allow_destructive, parallelism, lock_timeout,
                     override_limits, fmt)  # fmt: skip
        return
    with contextlib.ExitStack() as locks:

        def lock_first(
            desired: DesiredState, provider: StateProvider
        ) -> None:  # before planning, as Terraform does
            locks.enter_context(_lock_store(provider, _journal_dir(desired), "apply", lock_timeout))

        _apply_fresh(settings, provider_url, targets, override_limits, allow_destructive, auto_approve,
                     parallelism, lock_first, fmt, shard)  # fmt: skip


def _journal_dir(desired: DesiredState) -> Path:
    journal_dir = Path(desired.workspace.settings.journal_dir)
    return journal_dir if journal_dir.is_absolute() else Path(desired.root) / journal_dir


def _apply_fresh(
    settings: Settings,
    provider_url: str | None,
    targets: tuple[str, ...],
    override_limits: bool,
    allow_destructive: bool,
    auto_approve: bool,
    parallelism: int | None,
    before_plan: Callable[[DesiredState, StateProvider], None],
    fmt: str,
    shard: str | None = None,
) -> None:
    desired, provider, the_plan = _make_plan(
        settings,
        provider_url,
        targets,
        override_limits,
        before_plan,
        create=True,
        parallelism=parallelism,
        shard=shard,
    )
    try:
        click.echo(_render(the_plan, "text", settings), nl=False, err=fmt == "json")
        if not the_plan.has_changes:
            _no_changes_json(fmt)
            return
        if the_plan.is_destructive and not allow_destructive:
            raise ReconcilerError(
                "the plan has destructive changes (marked above); re-run with --allow-destructive to apply them. "
                "Nothing was written."
            )
        if not auto_approve and not _confirm("\nDo you want to perform these actions?"):
            _err("Apply cancelled. Nothing was written.")
            raise _Exit(EXIT_ERROR)
        _run_apply(
            settings,
            the_plan,
            provider,
            _journal_dir(desired),
            allow_destructive=allow_destructive,
            parallelism=parallelism or desired.workspace.settings.parallelism,
            precheck=False,
            limits=desired.workspace.settings.limits,
            override_limits=override_limits,
            fmt=fmt,
        )
    finally:
        provider.close()


def _apply_saved(
    settings: Settings,
    planfile: Path,
    provider_url: str | None,
    allow_destructive: bool,
    parallelism: int | None,
    lock_timeout: float,
    override_limits: bool,
    fmt: str = "text",
) -> None:
    from reconciler.plan.planfile import open_saved_plan

    the_plan, provider, workspace = open_saved_plan(planfile, settings, provider_url)
    try:
        click.echo(_render(the_plan, "text", settings), nl=False, err=fmt == "json")
        if not the_plan.has_changes:
            _no_changes_json(fmt)
            return
        with _lock_store(provider, workspace.journal_dir, "apply", lock_timeout):
            _run_apply(
                settings,
                the_plan,
                provider,
                workspace.journal_dir,
                allow_destructive=allow_destructive,
                parallelism=parallelism or workspace.parallelism,
                precheck=True,
                limits=workspace.limits,
                override_limits=override_limits,
                desired=workspace.desired,
                saved=True,
                plan_checksum=workspace.checksum,
                fmt=fmt,
            )
    finally:
        provider.close()


def _no_changes_json(fmt: str) -> None:
    if fmt == "json":
        from reconciler.apply import ApplyResult
        from reconciler.render.json import render_apply_result_json

        click.echo(render_apply_result_json(ApplyResult(), None), nl=False)


# --------------------------------------------------------------------------------------------- snapshot
@cli.command()
@_common
@_provider_option
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (.json or .jsonl; default: snapshot.json in the current directory).",
)
@click.option(
    "--folder", "folders", multiple=True, metavar="PATH", help="Only this folder and below (repeatable)."
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="HASH",
    help="Write this dataset's data units (repeatable; default: every dataset the store can list, "
    "none with --folder).",
)
@click.pass_context
def snapshot(
    ctx: click.Context,
    manifest_dir: Path | None,
    debug: bool | None,
    provider_url: str | None,
    out: Path | None,
    folders: tuple[str, ...],
    datasets: tuple[str, ...],
) -> None:
    """Write the live state as a snapshot file (the seed/emulator format)."""
    from reconciler.config import command_target
    from reconciler.model import LiveItem
    from reconciler.snapshot import SnapshotDataset, live_dataset_record, write_snapshot

    settings = _settings(ctx, manifest_dir, debug)
    store = command_target(settings, provider_url, purpose="snapshot reads")
    provider = store.open(settings.env)
    try:
        schema = provider.read_schema()
        all_folders = provider.list_folders()
        chosen = all_folders
        if folders:
            roots = [provider.resolve_folder(f) for f in folders]
            chosen = [
                f
                for f in all_folders
                if any(f.path == r.path or f.path.startswith(r.path + "/") for r in roots)
            ]
        items: list[LiveItem] = []
        for f in chosen:
            items.extend(li.item for li in provider.iter_items(f, recursive=False, children=True))
        hashes = list(dict.fromkeys(datasets))
        if not hashes and not folders and provider.capabilities.lists_datasets:
            hashes = [h for h, _ in provider.list_datasets()]
        written: list[SnapshotDataset] = []
        item_uuids = {i.uuid.lower() for i in items}
        for h in hashes:
            ds = provider.read_dataset(h)
            for r in ds.rows:
                if r.backing_item and r.backing_item.lower() not in item_uuids:
                    raise UsageError(
                        f"--dataset {h}: data unit {r.title!r} is backed by file {r.backing_item}, which is "
                        "outside the folders written (add its folder with --folder, or leave --folder out)"
                    )
            written.append(live_dataset_record(ds))
    finally:
        provider.close()
    target = out or Path("snapshot.json")
    write_snapshot(target, schema, chosen, items, written)
    rows = sum(len(d.rows) for d in written)
    also = f", {len(written)} dataset(s) with {rows} data unit(s)" if written else ""
    click.echo(f"Wrote {len(chosen)} folder(s) and {len(items)} file(s){also} to {target}.")


# --------------------------------------------------------------------------------------------- schema-json
@cli.command("schema-json")
@_common
@click.pass_context
def schema_json(ctx: click.Context, manifest_dir: Path | None, debug: bool | None) -> None:
    """Print the JSON Schema of the manifest format (for editors)."""
    from reconciler.manifest.schema import manifest_json_schema

    _settings(ctx, manifest_dir, debug)
    click.echo(json.dumps(manifest_json_schema(), indent=2, sort_keys=True))


# --------------------------------------------------------------------------------------------- show
@cli.command()
@_common
@_format_option
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def show(ctx: click.Context, manifest_dir: Path | None, debug: bool | None, fmt: str, planfile: Path) -> None:
    """Render a saved PLANFILE (no network and no manifests needed; an altered file is refused)."""
    from reconciler.plan.planfile import read_planfile

    settings = _settings(ctx, manifest_dir, debug)
    click.echo(_render(read_planfile(planfile), fmt, settings), nl=False)


# --------------------------------------------------------------------------------------------- rollback
@cli.command()
@_common
@_provider_option
@_format_option
@click.argument("journal_path", metavar="JOURNAL", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Roll back without asking for 'yes'.")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Allow a rollback that removes keys from more than max_removed_share of the journaled files.",
)
@_override_limits_option
@click.option("--parallelism", type=click.IntRange(1, 64), default=None, help="Concurrent write batches.")
@_lock_timeout_option
@click.pass_context
def rollback(
    ctx: click.Context,
    manifest_dir: Path | None,
    debug: bool | None,
    provider_url: str | None,
    fmt: str,
    journal_path: Path,
    auto_approve: bool,
    allow_destructive: bool,
    override_limits: bool,
    parallelism: int | None,
    lock_timeout: float,
) -> None:
    """Plan and (on 'yes') apply the restoration of the before-images in an apply JOURNAL.

    Files whose metadata changed since that apply are reported as conflicts and left alone (exit 1).
    """
    from reconciler.journal import read_journal
    from reconciler.rollback import open_journal_provider

    settings = _settings(ctx, manifest_dir, debug)
    if fmt != "text" and not auto_approve:
        raise UsageError(f"--format {fmt} needs --auto-approve (the prompt cannot be part of {fmt} output)")
    journal = read_journal(journal_path)
    if journal.torn:
        _err(f"Warning: {journal_path}: its last line was incomplete (the apply was killed) and is left out.")
    provider, workspace = open_journal_provider(journal, settings, provider_url)
    with contextlib.ExitStack() as locks:
        try:
            # The lock of the journal directory the rollback writes to: the one the apply it undoes held.
            locks.enter_context(_lock_store(provider, journal.path.parent, "rollback", lock_timeout))
        except BaseException:
            provider.close()
            raise
        _rollback_locked(settings, fmt, journal, provider, workspace, auto_approve, allow_destructive,
                         override_limits, parallelism)  # fmt: skip


def _rollback_locked(
    settings: Settings,
    fmt: str,
    journal: JournalFile,
    provider: StateProvider,
    workspace: RollbackWorkspace,
    auto_approve: bool,
    allow_destructive: bool,
    override_limits: bool,
    parallelism: int | None,
) -> None:
    from reconciler.rollback import plan_rollback

    try:
        rb = plan_rollback(journal, provider, limits=workspace.limits, override_limits=override_limits)
        the_plan = rb.plan
        if fmt == "text":
            _warn([w for w in the_plan.warnings if not str(w.location).startswith(str(journal.path))])
        click.echo(_render(the_plan, fmt, settings), nl=False)
        if fmt == "text":
            if rb.conflicts:
                click.echo(f"\nConflicts: {len(rb.conflicts):,} file(s) changed since the apply; left alone:")
                for c in rb.conflicts[:50]:
                    click.echo(f"  ! {c.entry.address}: {c.reason} ({journal.path}:{c.entry.line})")
                if len(rb.conflicts) > 50:
                    click.echo(f"  ... and {len(rb.conflicts) - 50:,} more (`--format json` lists every one)")
            click.echo(
                f"\nRollback of {journal.path}: {len(the_plan.files):,} to restore, {rb.already:,} already as "
                f"before, {len(rb.conflicts):,} conflict(s)."
            )
        if the_plan.has_changes:
            if the_plan.is_destructive and not allow_destructive:
                raise ReconcilerError(
                    "the rollback is destructive (marked above); re-run with --allow-destructive to apply it. "
                    "Nothing was written."
                )
            if not auto_approve and not _confirm("\nDo you want to perform this rollback?"):
                _err("Rollback cancelled. Nothing was written.")
                raise _Exit(EXIT_ERROR)
            _run_apply(
                settings,
                the_plan,
                provider,
                journal.path.parent,
                allow_destructive=allow_destructive,
                parallelism=parallelism or workspace.parallelism,
                precheck=True,
                rolls_back=journal.path,
                echo_err=fmt != "text",
                limits=workspace.limits,
                override_limits=override_limits,
                saved=True,  # a journal is untrusted input: each value it restores is checked as a saved plan's
                rollback=True,
            )
    finally:
        provider.close()
    if rb.conflicts:
        _err(
            f"Error: {len(rb.conflicts):,} file(s) changed since the apply were left alone (conflicts); "
            "their before-images are in the journal."
        )
        raise _Exit(EXIT_ERROR)


# --------------------------------------------------------------------------------------------- import
@cli.command("import")
@_common
@_provider_option
@click.option("--schema", "with_schema", is_flag=True, help="Import the metadata schema (schema.yaml).")
@click.option(
    "--folder",
    "folders",
    multiple=True,
    metavar="PATH",
    help="Import this folder and its subfolders (repeatable).",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="HASH",
    help="Import this dataset's data units (repeatable; only when named).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty directory to write the manifests to.",
)
@click.pass_context
def import_command(
    ctx: click.Context,
    manifest_dir: Path | None,
    debug: bool | None,
    provider_url: str | None,
    with_schema: bool,
    folders: tuple[str, ...],
    datasets: tuple[str, ...],
    out: Path,
) -> None:
    """Write manifests that describe the live state exactly (default: the schema and every folder)."""
    from reconciler.config import command_target
    from reconciler.manifest.importer import import_live_state, prepare_out_dir

    settings = _settings(ctx, manifest_dir, debug)
    if not provider_url and not settings.manifest_dir.is_dir():
        raise UsageError(
            "import needs to know where the live state is: pass --provider URL (sqlite:PATH, encord: or "
            "encord:https://DOMAIN), or -C a manifest directory whose Workspace names one"
        )
    target = command_target(settings, provider_url, purpose="import reads")
    if out.exists():
        prepare_out_dir(out)  # refuses a file or a non-empty directory before the store is opened
    provider = target.open(settings.env)
    try:
        prepare_out_dir(out)
        result = import_live_state(
            provider,
            out,
            provider_config=target.config,
            provider_root=target.root,
            schema=with_schema,
            folders=folders,
            datasets=datasets,
        )
    finally:
        provider.close()
    _OUT.base = None  # the import's warnings name the files it wrote, under --out as given
    _warn(result.warnings)
    also = f" and {result.datasets} dataset(s)" if result.datasets else ""
    click.echo(
        f"Imported {result.schema_keys} schema key(s) and {result.folders} folder(s){also} with "
        f"{result.items:,} file(s) from {provider.identity} into {out}:"
    )
    for rel in result.files_written:
        click.echo(f"  {out / rel}")
    if result.skipped_folders:
        click.echo(
            f"Skipped {len(result.skipped_folders)} folder(s) without files: {', '.join(result.skipped_folders)}"
        )
    click.echo(f"Check it with: reconciler plan -C {out}  (it shows no changes)")


# --------------------------------------------------------------------------------------------- fmt
@cli.command("fmt")
@_common
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing: list the files not in canonical form; exit 1 if there are any.",
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Change nothing: print a unified diff of what would change; exit 1 if anything would.",
)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def fmt_command(
    ctx: click.Context,
    manifest_dir: Path | None,
    debug: bool | None,
    check: bool,
    show_diff: bool,
    paths: tuple[Path, ...],
) -> None:
    """Rewrite manifests in canonical form (key order, indentation), keeping comments.

    Without PATHS: every manifest under the manifest directory. PATHS may be files or directories.
    """
    from reconciler.manifest.discovery import find_manifest_files
    from reconciler.manifest.fmt import format_manifest_dir
    from reconciler.render.diagnostics import display_path

    settings = _settings(ctx, manifest_dir, debug)
    _OUT.base = (
        None  # fmt locates files by the paths it was given (already relative to the current directory)
    )
    root = settings.manifest_dir
    files: list[Path] | None = None
    if paths:
        root = Path.cwd()
        files = []
        for p in paths:
            if p.is_dir():
                listed = find_manifest_files(p)
                if listed.errors:
                    raise ManifestValidationError(listed.errors)
                found = listed.files
            else:
                found = [p]
            files.extend(Path(os.path.abspath(f)) for f in found)
        files = sorted(dict.fromkeys(files))
    elif not root.is_dir():
        raise UsageError(f"manifest directory {str(root)!r} does not exist (use -C/--dir to point at it)")
    dry = check or show_diff
    result = format_manifest_dir(root, check=dry, files=files)
    for rel in result.changed:
        shown = display_path(str(root / rel))
        if show_diff:
            old, new = result.texts[rel]
            click.echo(
                "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), shown, shown)),
                nl=False,
            )
        else:
            click.echo(shown)
    if dry and result.changed:
        n = len(result.changed)
        _err(f"{n} file{'s' if n != 1 else ''} not in canonical form; run `reconciler fmt` to rewrite them.")
        raise _Exit(EXIT_ERROR)


# --------------------------------------------------------------------------------------------- completion
@cli.command("completion")
@_common
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, manifest_dir: Path | None, debug: bool | None, shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash: eval "$(reconciler completion bash)"      (in ~/.bashrc)
    zsh:  eval "$(reconciler completion zsh)"       (in ~/.zshrc)
    fish: reconciler completion fish > ~/.config/fish/completions/reconciler.fish
    """
    from click.shell_completion import get_completion_class

    _settings(ctx, manifest_dir, debug)
    cls = get_completion_class(shell)
    assert cls is not None  # the choice only offers shells click knows
    click.echo(cls(cli, {}, "reconciler", "_RECONCILER_COMPLETE").source())


# --------------------------------------------------------------------------------------------- entry point
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def _silence_stdout() -> None:
    """Standard output to /dev/null: what is still buffered for a reader that cannot take it goes nowhere, so
    the interpreter's last flush cannot fail again at exit."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _environment_problem(exc: Exception) -> str | None:
    """What went wrong, when it is the input or the machine and not a bug: too deep input, a full disk."""
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to process (run with --debug to see where)"
    if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
        # Standard output could not be written (files are written through reconciler.fileio).
        _silence_stdout()
        return f"cannot write the output: {exc.strerror}"
    return None


#: Terraform's single-dash flags and reconciler's spelling of each (``VALUE`` is replaced by the given value).
_TERRAFORM_FLAGS = {
    "auto-approve": "--auto-approve",
    "out": "--out VALUE",
    "detailed-exitcode": "--detailed-exitcode",
    "chdir": "-C VALUE",
    "target": "--target VALUE",
    "parallelism": "--parallelism VALUE",
    "no-color": "--no-color",
    "json": "--format json",
    "lock": None,
    "input": None,
}
_TERRAFORM_FLAG = re.compile(r"-([a-z][a-z-]+)(?:=(.*))?", re.DOTALL)


def _terraform_hint(args: Sequence[str]) -> str | None:
    """A one-line hint for the first Terraform-style single-dash flag (``-auto-approve``, ``-out=plan.json``)."""
    for arg in args:
        if arg == "--":
            return None
        m = _TERRAFORM_FLAG.fullmatch(arg)
        if m is None or m.group(1) not in _TERRAFORM_FLAGS:
            continue
        ours = _TERRAFORM_FLAGS[m.group(1)]
        if ours is None:
            return f"{arg} is a Terraform flag; reconciler has no such option (drop it)"
        value = m.group(2)
        ours = ours.replace("VALUE", value if value else ours.split()[-1].replace("VALUE", "…"))
        return f"{arg} is Terraform's spelling; reconciler's is {ours}"
    return None


#: The cyclic collector's thresholds while a command runs (Python's default: 700, 10, 10). A command keeps
#: most of what it reads (listings, answers, plans: hundreds of thousands of objects); at the default, every
#: 700 new ones start a collection that walks them, and every few tens of thousands one that walks
#: everything, which cost more than a tenth of the CPU of an ``apply`` of 10,000 files. Garbage in
#: reference cycles is still collected, after every 100,000 new objects instead of 700.
GC_THRESHOLD: Final = (100_000, 10, 10)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        with _terminate_on_sigterm():
            return _main(args)
    finally:
        gc.set_threshold(*previous)


#: Set when a second signal stopped an apply at once: the process then exits without joining its threads.
_EXIT_AT_ONCE = False


def run() -> NoReturn:
    """The console script and ``python -m reconciler``: :func:`main`, then the process exits with its code."""
    code = main()
    if _EXIT_AT_ONCE:
        # Stopped at once by a second signal: the threads of requests still in flight are not joined (the
        # interpreter's exit would wait for their answers, up to the request deadline).
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    # The process ends here: what the command built (listings, answers, plans) is freed without the collector
    # walking all of it once more on the way out (a tenth of a second after an apply of 10,000 files).
    gc.freeze()
    sys.exit(code)


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM (docker stop, CI cancel, ``timeout``) ends any command like Ctrl-C does, with exit 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args: list[str]) -> int:
    debug = "--debug" in args
    _OUT.base = None
    _OUT.annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    hint = _terraform_hint(args)
    if hint is not None:
        _report("error", hint)
        return EXIT_ERROR
    if (
        sys.stdout is None
    ):  # closed (`>&-`): what the command says, the journal's path included, would be lost
        _err("Error: cannot write the output: standard output is closed; nothing was done")
        return EXIT_ERROR
    try:
        try:
            cli.main(args=args, prog_name="reconciler", standalone_mode=False)
        except SystemExit:
            # click ends a run whose standard output's reader went away (EPIPE) with a silent exit 1, its
            # streams wrapped so that nothing more is said: said here instead.
            if type(sys.stdout).__name__ == "_PacifyFlushWrapper":
                raise BrokenPipeError from None
            raise
    except _Exit as exc:
        return exc.code
    except _Terminated:
        _err("Terminated.")
        return EXIT_TERMINATED
    except click.exceptions.Abort as exc:  # click turns KeyboardInterrupt (and so _Terminated) into Abort
        if isinstance(exc.__cause__, _Terminated):
            _err("Terminated.")
            return EXIT_TERMINATED
        _err("Aborted.")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:  # bad flags and arguments: exit 1, one line
        msg = exc.format_message()
        ctx_hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            ctx_hint = f" (see '{exc.ctx.command_path} --help')"
        _report("error", f"{msg}{ctx_hint}")
        return EXIT_ERROR
    except ManifestValidationError as exc:
        for issue in exc.issues:
            _report(issue.severity, issue.message, issue.location)
        n = len(exc.issues)
        _err(f"{n} problem{'s' if n != 1 else ''} found; nothing was written.")
        return EXIT_ERROR
    except ManifestError as exc:
        if exc.location is not None and str(exc).startswith(f"{exc.location}: "):
            _report("error", str(exc)[len(f"{exc.location}: ") :], exc.location)
        else:
            _report("error", str(exc))
        if debug:
            traceback.print_exc()
        return EXIT_ERROR
    except ReconcilerError as exc:
        _report("error", str(exc))
        if debug:
            traceback.print_exc()
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (`| head -1`): said on stderr, so a CI log shows why an
        # apply that may have written everything ends with 1.
        _silence_stdout()
        with contextlib.suppress(OSError, ValueError):
            _err("Error: cannot write the output: the reader of standard output has gone (broken pipe)")
        return EXIT_ERROR
    except Exception as exc:  # the one broad catch: an internal error is a bug
        problem = _environment_problem(exc)
        if problem is not None:
            _err(f"Error: {problem}")
            if debug:
                traceback.print_exc()
            return EXIT_ERROR
        _err(
            f"reconciler {__version__} hit an internal error ({type(exc).__name__}). This is a bug: please "
            f"report it at {ISSUES_URL} with the output of the same command run with --debug."
        )
        if debug:
            traceback.print_exc()
        return EXIT_INTERNAL
    return EXIT_OK
