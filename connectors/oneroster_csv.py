"""The ``oneroster-csv`` connector: a OneRoster 1.1 or 1.2 CSV bundle, folder or zip.

The manifest decides which files are read and whether each is a bulk snapshot (the whole
truth: what is missing is gone) or a delta (changes and ``tobedeleted`` tombstones).
Headers are matched by name, case-insensitively; a BOM and unknown or blank columns are
tolerated (unknown ones reported by name). A bad row becomes a reject naming its file and
line; a bad file (no manifest, not UTF-8, a truncated zip) stops with a clear error.
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

    def __init__(self, path: Path) -> None:
        self.path = path
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
        """
        with self._text(file) as handle:
            reader = csv.reader(handle)
            try:
                header = [name.strip().lower() for name in next(reader, [])]
                for values in reader:
                    if any(value.strip() for value in values):
                        yield f"{file}.csv line {reader.line_num}", _row(header, values)
            except UnicodeDecodeError as exc:
                raise BundleError(str(self.path), f"{file}.csv is not UTF-8 (near line {reader.line_num}, {exc.reason})",
                                  "re-export it as UTF-8") from None
            except csv.Error as exc:
                raise BundleError(str(self.path), f"{file}.csv line {reader.line_num}: {exc}", "fix the file") from None

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
        try:
            bundle = zipfile.ZipFile(path)
            broken = bundle.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(str(path), f"is not a readable zip ({exc})", "copy the export again; it may be truncated") from None
        if broken:
            raise BundleError(str(path), f"{broken} is damaged", "copy the export again; it may be truncated")
        return bundle


def _row(header: list[str], values: list[str]) -> dict[str, str]:
    if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
        return {ERROR: f"has {len(values)} fields but the header has {len(header)}"}
    return {name: value for name, value in zip(header, values, strict=False) if name}


def from_settings(entry: ConnectorSettings, settings: Settings) -> OneRosterReader:
    options = checked_options(entry, OPTION_KEYS, ("path",))
    access = guardian_portal_access(entry, options)
    return OneRosterReader(entry.name, entry.source_system, Bundle(Path(options["path"])), access)
