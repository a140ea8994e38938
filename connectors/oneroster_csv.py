"""The ``oneroster-csv`` connector: a OneRoster 1.1 or 1.2 CSV bundle, folder or zip.

The manifest decides which files are read and whether each is a bulk snapshot (the whole
truth: what is missing is gone) or a delta (changes and ``tobedeleted`` tombstones).
Headers are matched by name, case-insensitively; a BOM and unknown or blank columns are
tolerated (unknown ones reported by name). A bad row (more fields than the header, or
fewer than it names) becomes a reject naming its file and line; a bad file (no manifest,
not UTF-8, a truncated zip, a member failing its checksum, a last row cut short) stops
with a clear error, so nothing of it is applied.
No ``password`` column is ever read into a record.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from gateway.errors import FatalSyncError
from gateway.settings import ConnectorSettings, Settings

from connectors.base import checked_options, guardian_portal_access
from connectors.oneroster_notes import FileNotes
from connectors.oneroster_reader import ERROR, OneRosterReader

OPTION_KEYS = {"path", "guardian_portal_access"}


class BundleError(FatalSyncError):
    """The bundle cannot be read at all (not a bad row: a bad file)."""

    exit_code = 2

    def __init__(self, path: str, problem: str, hint: str) -> None:
        self.path, self.problem, self.hint = path, problem, hint
        super().__init__(f"OneRoster bundle {path}: {problem}; {hint}")


class Bundle:
    """A folder or zip of OneRoster CSV files, driven by its manifest."""

    cheap_rereads = True  # a file read again costs no request: the reader may scan it for duplicates

    def __init__(self, path: Path) -> None:
        self.path = path
        self.notes: dict[str, FileNotes] = {}  # per file, from its last full read
        self._zip = self._open_zip(path) if path.suffix.lower() == ".zip" else None
        if self._zip is None and not path.is_dir():
            raise BundleError(str(path), "is neither a folder nor a .zip", "point path at the export")
        self.names = self._names()
        if "manifest" not in self.names:
            raise BundleError(str(path), "has no manifest.csv", "export the bundle with its manifest")
        self.manifest = {row.get("propertyname", "").strip().lower(): (row.get("value") or "").strip().lower()
                         for _, row in self.rows("manifest")}
        self.incremental = False
        self.version = self.manifest.get("oneroster.version", "1.1")
        if self.version not in ("1.1", "1.2"):
            raise BundleError(str(path), f"declares OneRoster {self.version}", "only 1.1 and 1.2 are read")

    def mode(self, file: str) -> str:
        """bulk, delta or absent (a file the manifest lists but the bundle lacks is an error)."""
        mode = self.manifest.get(f"file.{file.lower()}", "absent")
        if mode not in ("bulk", "delta", "absent"):
            raise BundleError(str(self.path), f"manifest says {mode!r} for {file}", "use bulk, delta or absent")
        if mode != "absent" and file.lower() not in self.names:
            raise BundleError(str(self.path), f"manifest lists {file}.csv as {mode} but the file is missing", "re-export")
        return mode

    def fields(self, file: str) -> list[str]:
        with self._text(file) as handle:
            return [name.strip().lower() for name in next(csv.reader(handle), [])]

    def rows(self, file: str, since: dt.datetime | int | None = None) -> Iterator[tuple[str, dict[str, str]]]:
        """(``file.csv line N``, row by lower-cased header name), skipping blank lines.

        A file is what it is: ``since`` is not applied (a delta file already holds changes).
        A last row cut short (fewer fields than the header names, or an unclosed quote)
        means the file itself was cut: ``BundleError``, so nothing of it is applied.
        """
        notes = FileNotes(file)
        with self._text(file) as handle:
            lines = _Lines(handle)
            reader = csv.reader(lines)
            try:
                header = [name.strip().lower() for name in next(reader, [])]
                named = max((i + 1 for i, name in enumerate(header) if name), default=0)
                notes.header(header)
                pending: tuple[int, list[str], str] | None = None
                for values in reader:
                    raw = lines.take()
                    if not any(value.strip() for value in values):
                        continue
                    if pending is not None:
                        yield self._shaped(file, header, named, pending, notes)
                    pending = (reader.line_num, values, raw)
                if pending is not None:
                    self._check_last(file, named, pending)
                    yield self._shaped(file, header, named, pending, notes)
            except UnicodeDecodeError as exc:
                raise BundleError(str(self.path), f"{file}.csv is not UTF-8 (near line {reader.line_num}, {exc.reason})",
                                  "re-export it as UTF-8") from None
            except csv.Error as exc:
                raise BundleError(str(self.path), f"{file}.csv line {reader.line_num}: {exc}", "fix the file") from None
            except zipfile.BadZipFile as exc:
                raise BundleError(str(self.path), f"{file}.csv is damaged in the zip ({exc})",
                                  "copy the export again; it may be truncated") from None
        self.notes[file.lower()] = notes

    def _shaped(self, file: str, header: list[str], named: int, pending: tuple[int, list[str], str],
                notes: FileNotes) -> tuple[str, dict[str, str]]:
        line, values, _ = pending
        position = f"{file}.csv line {line}"
        notes.row(position, header, values)
        return position, _row(header, named, values)

    def _check_last(self, file: str, named: int, last: tuple[int, list[str], str]) -> None:
        """The last row is where a cut file shows: short, or inside a quoted field."""
        line, values, raw = last
        if _unclosed_quote(raw):
            raise BundleError(str(self.path), f"{file}.csv line {line} ends inside an unclosed quote: the file was cut",
                              "re-export the bundle; nothing of this file was applied")
        if len(values) < named:
            raise BundleError(str(self.path), f"{file}.csv line {line} is cut short: it has {len(values)} fields "
                              f"but the header names {named} columns, so the file was cut",
                              "re-export the bundle; nothing of this file was applied")

    def _text(self, file: str) -> IO[str]:
        name = self.names[file.lower()]
        try:
            raw = self._zip.open(name) if self._zip else open(self.path / name, "rb")  # noqa: SIM115
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(str(self.path), f"cannot open {name} ({exc})", "re-export the bundle") from None
        return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

    def _names(self) -> dict[str, str]:
        listing = self._zip.namelist() if self._zip else [p.name for p in self.path.iterdir()]
        return {Path(name).name.lower().removesuffix(".csv"): name for name in listing if name.lower().endswith(".csv")}

    @staticmethod
    def _open_zip(path: Path) -> zipfile.ZipFile:
        """Open the archive; each member's checksum is checked as it is read (``rows``)."""
        try:
            return zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(str(path), f"is not a readable zip ({exc})", "copy the export again; it may be truncated") from None


class _Lines:
    """The lines handed to ``csv.reader``, with the raw text of the record being read."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.raw: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        self.raw.append(line)
        return line

    def take(self) -> str:
        raw, self.raw = "".join(self.raw), []
        return raw


def _unclosed_quote(raw: str) -> bool:
    """Whether a record's raw text stops inside a quoted field (strict parsing says so)."""
    try:
        list(csv.reader(io.StringIO(raw, newline=""), strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _row(header: list[str], named: int, values: list[str]) -> dict[str, str]:
    """The row by column name; more fields than the header, or fewer than it names, is an error."""
    if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
        return _error(header, values, f"has {len(values)} fields but the header has {len(header)}")
    if len(values) < named:
        return _error(header, values, f"has {len(values)} fields but the header names {named} columns")
    return {name: value for name, value in zip(header, values, strict=False) if name}


def _error(header: list[str], values: list[str], problem: str) -> dict[str, str]:
    """An unusable row, still naming its ``sourcedid`` where it has one, so its old rows are kept."""
    row = {ERROR: problem}
    if header and header[0] == "sourcedid" and values and values[0].strip():
        row["sourcedid"] = values[0].strip()
    return row


def from_settings(entry: ConnectorSettings, settings: Settings) -> OneRosterReader:
    options = checked_options(entry, OPTION_KEYS, ("path",))
    access = guardian_portal_access(entry, options)
    return OneRosterReader(entry.name, entry.source_system, Bundle(Path(options["path"])), access)
