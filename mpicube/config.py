"""Load a hutch cube config (a Python file) and validate it into plain typed objects.

The config format is the facility's: ``binBoundaries(run)``, ``binName(run)`` or
``bin_name``, ``filters`` or ``get_filters(run)``, ``laser``, ``varList`` (field paths
and detector dicts), ``hist_list`` and ``save_tiff``. Any problem becomes a
:class:`CubeError` naming the config file and, where known, the line.
"""

from __future__ import annotations

import difflib
import numbers
import runpy
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mpicube import postproc
from mpicube.detectors.commonmode import ALL_NUMBERS
from mpicube.errors import CubeError, did_you_mean

STANDARD_FILTER = "filter1"

KNOWN_NAMES = (
    "binBoundaries",
    "binName",
    "bin_name",
    "filters",
    "get_filters",
    "laser",
    "varList",
    "hist_list",
    "save_tiff",
)

DETECTOR_KEYS = ("source", "full", "image", "thresADU", "thresRms", "common_mode", "det_proc")


@dataclass(frozen=True)
class FilterRow:
    """One selection cut: events pass where ``low < field < high`` and field is not NaN."""

    field: str
    low: float
    high: float
    name: str = STANDARD_FILTER

    def describe(self) -> str:
        """Return the cut as the log shows it, e.g. ``0.500000 < evr/code_94 < 1.500000``."""
        return f"{self.low:f} < {self.field} < {self.high:f}"


@dataclass(frozen=True)
class DetectorRequest:
    """One area detector to cube, as given by a detector dict of ``varList``.

    ``full`` is accepted and has no effect (the seed marks it "not implemented").
    ``common_mode`` None means the detector type's default (see ``detectors.commonmode``).
    """

    source: str
    image: bool = False
    thres_adu: float | None = None
    common_mode: int | None = None
    full: bool = False
    thres_rms: float | None = None
    det_proc: tuple[postproc.ProcSpec, ...] = ()


@dataclass(frozen=True)
class RunSettings:
    """Everything the config says about one run: the bins, the filters, the outputs."""

    edges: np.ndarray | None
    bin_name: str | None
    filters: tuple[FilterRow, ...]
    laser: bool
    fields: tuple[str, ...]
    detectors: tuple[DetectorRequest, ...]
    hist_list: dict[str, list[float] | None]
    save_tiff: bool


@dataclass
class CubeConfig:
    """A loaded config file; :meth:`for_run` evaluates its run-dependent parts."""

    path: Path
    text: str
    namespace: dict[str, Any] = field(repr=False)

    def for_run(self, run: int) -> RunSettings:
        """Return the validated settings of ``run`` (calls ``binBoundaries(run)`` etc.)."""
        ns = self.namespace
        edges = self._call_or_value("binBoundaries", run, default=None)
        bin_name = self._call_or_value("binName", run, default=ns.get("bin_name"))
        filter_rows = self._call_or_value("get_filters", run, default=ns.get("filters", []))
        fields, detectors = self._var_list(ns.get("varList"))
        return RunSettings(
            edges=self._edges(edges),
            bin_name=self._optional_str("binName", bin_name),
            filters=self._filters(filter_rows),
            laser=self._bool("laser", ns.get("laser", False)),
            fields=fields,
            detectors=detectors,
            hist_list=self._hist_list(ns.get("hist_list")),
            save_tiff=self._bool("save_tiff", ns.get("save_tiff", False)),
        )

    # -- helpers ---------------------------------------------------------------

    def error(self, name: str, message: str) -> CubeError:
        """Return a CubeError naming this config file and the line that defines ``name``."""
        line = self._line_of(name)
        where = f"{self.path}:{line}" if line else str(self.path)
        return CubeError(f"{where}: {name}: {message}")

    def _detector_error(self, key: str, message: str) -> CubeError:
        """Return a CubeError naming the first line that mentions the detector dict key
        ``key`` (else the line of ``varList``)."""
        for number, text in enumerate(self.text.splitlines(), start=1):
            if f"'{key}'" in text or f'"{key}"' in text:
                return CubeError(f"{self.path}:{number}: varList: {message}")
        return self.error("varList", message)

    def _line_of(self, name: str) -> int | None:
        for number, text in enumerate(self.text.splitlines(), start=1):
            stripped = text.lstrip()
            if stripped.startswith((f"{name} ", f"{name}=", f"def {name}(")):
                return number
        return None

    def _call_or_value(self, name: str, run: int, default: Any) -> Any:
        value = self.namespace.get(name, default)
        if not callable(value):
            return value
        try:
            return value(run)
        except Exception as exc:  # the user's function failed: point at its line
            raise CubeError(_user_code_failure(self.path, f"{name}({run})", exc)) from exc

    def _edges(self, edges: Any) -> np.ndarray | None:
        if edges is None:
            return None
        try:
            array = np.asarray(edges, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise self.error("binBoundaries", f"bin edges are not numbers: {exc}") from exc
        if array.ndim != 1 or array.size < 2:
            raise self.error("binBoundaries", "needs a 1-d array of at least 2 bin edges")
        if not np.all(np.isfinite(array)):
            raise self.error("binBoundaries", "bin edges must be finite (no NaN or inf)")
        if not np.all(np.diff(array) > 0):
            raise self.error("binBoundaries", "bin edges must be strictly increasing")
        return array

    def _optional_str(self, name: str, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value or None
        raise self.error(name, f"must be a field path string, not {type(value).__name__}")

    def _bool(self, name: str, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)) or value in (0, 1):
            return bool(value)
        raise self.error(name, f"must be True or False, not {value!r}")

    def _filters(self, rows: Any) -> tuple[FilterRow, ...]:
        name = "get_filters" if "get_filters" in self.namespace else "filters"
        if not isinstance(rows, (list, tuple)):
            raise self.error(name, "must be a list of [field, low, high, name] rows")
        parsed = []
        for i, row in enumerate(rows):
            ok = (
                isinstance(row, (list, tuple))
                and len(row) in (3, 4)
                and isinstance(row[0], str)
                and all(_is_real(v) for v in row[1:3])
                and (len(row) == 3 or isinstance(row[3], str))
            )
            if not ok:
                raise self.error(name, f"row {i} {row!r} is not [field, low, high, name]")
            low, high = float(row[1]), float(row[2])
            if not low < high:
                raise self.error(name, f"row {i} {row!r}: low must be below high")
            parsed.append(
                FilterRow(row[0], low, high, row[3] if len(row) == 4 else STANDARD_FILTER)
            )
        return tuple(parsed)

    def _var_list(self, var_list: Any) -> tuple[tuple[str, ...], tuple[DetectorRequest, ...]]:
        if var_list is None:
            raise self.error("varList", "is missing: list the fields and detectors to cube")
        if not isinstance(var_list, (list, tuple)):
            raise self.error("varList", "must be a list of field paths and detector dicts")
        fields: list[str] = []
        detectors: list[DetectorRequest] = []
        for entry in var_list:
            if isinstance(entry, str):
                if entry not in fields:
                    fields.append(entry)
            elif isinstance(entry, dict):
                detectors.append(self._detector(entry))
            else:
                raise self.error("varList", f"entry {entry!r} is neither a field path nor a dict")
        names = [d.source for d in detectors]
        for source in names:
            if names.count(source) > 1:
                raise self.error("varList", f"detector {source!r} is listed twice")
        return tuple(fields), tuple(detectors)

    def _detector(self, entry: dict) -> DetectorRequest:
        for key in entry:
            if key not in DETECTOR_KEYS:
                hint = did_you_mean(str(key), DETECTOR_KEYS)
                raise self.error("varList", f"detector dict has unknown key {key!r}{hint}")
        source = entry.get("source")
        if not isinstance(source, str) or not source:
            raise self.error("varList", "a detector dict needs 'source': the detector name")
        thresholds = {}
        for key in ("thresADU", "thresRms"):
            value = entry.get(key)
            if value is not None and not (_is_real(value) and np.isfinite(value)):
                raise self._detector_error(key, f"{source}: {key} must be a number, not {value!r}")
            thresholds[key] = None if value is None else float(value)
        common_mode = entry.get("common_mode")
        if common_mode is not None and (
            not isinstance(common_mode, numbers.Integral) or isinstance(common_mode, bool)
        ):
            raise self._detector_error(
                "common_mode", f"{source}: common_mode must be an int or None"
            )
        if common_mode is not None and common_mode not in ALL_NUMBERS:
            known = ", ".join(map(str, sorted(ALL_NUMBERS)))
            raise self._detector_error(
                "common_mode",
                f"{source}: common_mode {common_mode} is not supported (known numbers: {known})",
            )
        try:
            det_proc = postproc.parse(entry.get("det_proc"))
        except ValueError as exc:
            raise self._detector_error("det_proc", f"{source}: {exc}") from None
        return DetectorRequest(
            source=source,
            image=self._bool("image", entry.get("image", False)),
            thres_adu=thresholds["thresADU"],
            common_mode=None if common_mode is None else int(common_mode),
            full=self._bool("full", entry.get("full", False)),
            thres_rms=thresholds["thresRms"],
            det_proc=det_proc,
        )

    def _hist_list(self, value: Any) -> dict[str, list[float] | None]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error("hist_list", "must be a dict {field: [low, high, n] or None}")
        for key, spec in value.items():
            ok = spec is None or (
                isinstance(spec, (list, tuple)) and len(spec) == 3 and all(map(_is_real, spec))
            )
            if not isinstance(key, str) or not ok:
                raise self.error("hist_list", f"entry {key!r}: {spec!r} is not [low, high, n]")
        return {k: None if v is None else [float(x) for x in v] for k, v in value.items()}


def load_config(path: str | Path) -> CubeConfig:
    """Return the config file at ``path``, executed and checked for misspelt names.

    Raises CubeError (file and line) for a missing file, a syntax error, an exception
    while executing it, or a top-level name that looks like a typo of a known one.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CubeError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        compile(text, str(path), "exec")
    except SyntaxError as exc:
        raise CubeError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    try:
        namespace = runpy.run_path(str(path), run_name="cube_config")
    except Exception as exc:
        raise CubeError(_user_code_failure(path, "loading the config", exc)) from exc
    config = CubeConfig(path=path, text=text, namespace=namespace)
    _check_names(config)
    return config


def _check_names(config: CubeConfig) -> None:
    """Raise CubeError for a top-level name that is a near miss of a known config name."""
    for name in config.namespace:
        if name.startswith("_") or name in KNOWN_NAMES:
            continue
        close = difflib.get_close_matches(name, KNOWN_NAMES, n=1, cutoff=0.75)
        if close and close[0] not in config.namespace:
            raise config.error(name, f"unknown name, did you mean {close[0]!r}?")


def _user_code_failure(path: Path, what: str, exc: BaseException) -> str:
    """Return a one-line message for an exception raised by the config's own code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    where = f"{path}:{frames[-1].lineno}" if frames else str(path)
    return f"{where}: {what} failed: {type(exc).__name__}: {exc}"


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
