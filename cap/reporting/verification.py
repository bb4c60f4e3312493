"""Verifying a run against a committed report: each number by what its nature allows.

Two runs of the same code on two machines differ where floating-point kernels do (BLAS
blocking, vector widths). For most runs that moves an AUROC by about 1e-5: a
*deterministic* run is compared run by run with a tight tolerance. A *chaotic* run
(its detector says so, e.g. CAP with λ = 0, which collapses: the paper's Proposition)
amplifies those last bits into a different ranking: on another machine it behaves like
a fresh seed. Its single AUROC cannot be checked, but what the report concludes from it
can: the mean over seeds of each (dataset, class, variant) must stay within

    Z · s · √(2 / n)

of the committed mean, where s is the committed std over seeds, pooled over the
variant's classes on the dataset (more degrees of freedom than one class's seeds), and n
the seeds per class: the two means are each a mean of n draws of spread s, so their
difference has a standard deviation s·√(2/n), and Z = 4 standard deviations leave a
false alarm about once in 16,000 groups. On top of that, the claims' verdicts (holds / does
not hold / inconclusive) must be unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cap.evaluation.records import read_runs_table
from cap.metrics.localization import PIXEL_METRICS
from cap.reporting.claims import read_claims
from cap.utils.errors import ConfigError, DataError

#: Keys that identify a run across two runs tables.
RUN_KEY: tuple[str, ...] = ("dataset", "cls", "variant", "seed")
#: A chaotic run's group: its seeds' mean is what is compared.
GROUP_KEY: tuple[str, ...] = ("dataset", "cls", "variant")
#: Keys that identify a claim's row in a claims table.
CLAIM_KEY: tuple[str, ...] = ("claim", "dataset")
#: Default largest |ΔAUROC| of a deterministic run (machines differ by ~1e-5).
RUN_TOLERANCE = 5e-4
#: Default number of standard deviations of a chaotic group's mean difference allowed.
CHAOTIC_Z = 4.0


@dataclass(frozen=True)
class Verification:
    """What a comparison found: every mismatch, and what was compared."""

    runs: pd.DataFrame  # deterministic runs beyond the tolerance, or on one side only
    groups: pd.DataFrame  # chaotic groups whose seed mean moved beyond its bound
    verdicts: pd.DataFrame  # claims whose verdict changed, or on one side only
    summary: str  # one line per kind of comparison, for the log

    @property
    def ok(self) -> bool:
        return self.runs.empty and self.groups.empty and self.verdicts.empty

    def report(self) -> str:
        """The mismatches as text, one table per kind."""
        parts = [self.summary]
        for title, frame in (
            ("runs beyond the tolerance or on one side only", self.runs),
            ("chaotic groups whose seed mean moved beyond its bound", self.groups),
            ("claims whose verdict changed", self.verdicts),
        ):
            if not frame.empty:
                parts.append(f"{title}:\n{frame.to_string(index=False)}")
        return "\n".join(parts)


def verify(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    expected_claims: pd.DataFrame | None = None,
    actual_claims: pd.DataFrame | None = None,
    tolerance: float = RUN_TOLERANCE,
    z: float = CHAOTIC_Z,
    subset: bool = False,
) -> Verification:
    """Compare two runs tables (and, when both are given, two claims tables).

    ``expected`` must have the ``chaotic`` column (the workflow's ``aggregate`` writes it). With
    ``subset``, ``actual`` may hold a slice of ``expected``'s runs (e.g. CI's slice of a
    long benchmark): only the runs it has are compared.
    """
    check_bound(tolerance, "tolerance")
    check_bound(z, "z")
    if "chaotic" not in expected:
        raise DataError(
            "the expected runs table has no 'chaotic' column: it predates this version; "
            "regenerate it (docs/update-*-report.sh)"
        )
    chaotic = expected["chaotic"]
    if not pd.api.types.is_bool_dtype(chaotic):  # "False" as text would be truthy
        raise DataError(
            f"the expected runs table's 'chaotic' column holds {chaotic.dtype}, not booleans: "
            "read it with read_tables"
        )
    if subset:
        present = actual.set_index(list(RUN_KEY)).index
        expected = expected[expected.set_index(list(RUN_KEY)).index.isin(present)]
        chaotic = chaotic.loc[expected.index]
    runs = compare_runs(expected[~chaotic], actual, tolerance=tolerance, chaotic=expected[chaotic])
    groups, bounds = compare_chaotic_means(expected[chaotic], actual, z=z)
    verdicts = (
        compare_verdicts(expected_claims, actual_claims)
        if expected_claims is not None and actual_claims is not None and not subset
        else pd.DataFrame(columns=[*CLAIM_KEY, "verdict_expected", "verdict_actual"])
    )
    deterministic = expected[~chaotic].merge(actual, on=list(RUN_KEY), suffixes=("", "_actual"))
    largest = {
        metric: (deterministic[f"{metric}_actual"] - deterministic[metric]).abs().max()
        for metric in verified_metrics(expected)
    }
    lines = [
        f"deterministic runs: {len(deterministic)} compared, |Δ| ≤ {tolerance:g} in "
        f"{', '.join(largest)}; largest "
        + ", ".join(f"{metric} {_number(value)}" for metric, value in largest.items()),
        f"chaotic runs: {int(chaotic.sum())} in {len(bounds)} (dataset, class, variant) groups, "
        f"seed mean within {z:g}·s·√(2/n); largest |Δmean| / bound "
        f"{_number((bounds['difference'].abs() / bounds['bound']).max())}",
    ]
    if expected_claims is not None and actual_claims is not None and not subset:
        lines.append(f"claims: {len(expected_claims)} verdicts compared")
    else:
        lines.append("claims: none compared" + (" (a subset of the runs)" if subset else ""))
    return Verification(runs, groups, verdicts, "\n".join(lines))


def compare_runs(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    tolerance: float,
    chaotic: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Runs of ``expected`` whose AUROC (and pixel metrics, where it has them) differ by
    more than ``tolerance``, and runs that only one table has (the runs of ``chaotic``,
    compared by group elsewhere, excepted on the actual side). One row per mismatch: key,
    metric, both values, their difference."""
    elsewhere = pd.DataFrame(columns=list(RUN_KEY)) if chaotic is None else chaotic
    others = actual.merge(elsewhere[list(RUN_KEY)], on=list(RUN_KEY), how="left", indicator=True)
    actual = others[others["_merge"] == "left_only"].drop(columns="_merge")
    mismatches = []
    for metric in verified_metrics(expected):
        merged = (
            expected[[*RUN_KEY, metric]]
            .merge(
                actual.reindex(columns=[*RUN_KEY, metric]),
                on=list(RUN_KEY),
                how="outer",
                suffixes=("_expected", "_actual"),
            )
            .rename(columns={f"{metric}_expected": "expected", f"{metric}_actual": "actual"})
        )
        if metric != "auroc":  # a pixel metric: only of the runs that localize
            merged = merged[merged["expected"].notna() | merged["actual"].notna()]
        difference = merged["actual"] - merged["expected"]
        bad = ~(difference.abs() <= tolerance)  # a NaN difference (or tolerance) fails
        mismatches.append(merged[bad].assign(metric=metric, difference=difference[bad]))
    columns = [*RUN_KEY, "metric", "expected", "actual", "difference"]
    return pd.concat(mismatches, ignore_index=True)[columns].assign(tolerance=tolerance)


def check_bound(value: float, name: str) -> float:
    """``value`` if it is a finite number ≥ 0: every comparison with a NaN bound is false,
    so a NaN tolerance would pass any difference, a negative one fail every run."""
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number ≥ 0, not {value!r}")
    return value


def verified_metrics(expected: pd.DataFrame) -> list[str]:
    """The metrics compared run by run: AUROC, and the pixel metrics a table holds."""
    return ["auroc", *(m for m in PIXEL_METRICS if m in expected and expected[m].notna().any())]


def compare_chaotic_means(
    expected: pd.DataFrame, actual: pd.DataFrame, *, z: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each chaotic (dataset, class, variant): the actual seed mean against the expected one.

    Returns the groups beyond their bound (or whose seeds differ between the tables) and
    every group with its means, difference and bound. A variant's seed std is pooled
    over its classes on the dataset; a variant with a single seed everywhere has no
    spread to judge by, so its groups fail (give chaotic variants several seeds).
    """
    columns = [*GROUP_KEY, "n", "mean_expected", "mean_actual", "difference", "bound"]
    if expected.empty:
        empty = pd.DataFrame(columns=columns)
        return empty, empty
    keys = list(GROUP_KEY)
    own = expected.groupby(keys)["auroc"].agg(["mean", "var", "count"])
    pooled = own.groupby(level=["dataset", "variant"])["var"].mean() ** 0.5
    mine = actual.merge(expected[list(RUN_KEY)], on=list(RUN_KEY), how="inner")
    theirs = mine.groupby(keys)["auroc"].agg(["mean", "count"])
    joined = own.join(theirs.add_suffix("_actual")).reset_index()
    spread = joined.set_index(["dataset", "variant"]).index.map(pooled).to_numpy(dtype=float)
    groups = joined.assign(
        n=joined["count"],
        mean_expected=joined["mean"],
        difference=joined["mean_actual"] - joined["mean"],
        bound=z * spread * np.sqrt(2.0 / joined["count"]),
    )[columns]
    complete = joined["count_actual"] == joined["count"]
    bad = ~complete | ~(groups["difference"].abs() <= groups["bound"])  # a NaN bound fails
    return groups[bad].reset_index(drop=True), groups


def compare_verdicts(expected: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """Claims (claim, dataset) whose verdict differs, or that one table lacks."""
    merged = expected[[*CLAIM_KEY, "verdict"]].merge(
        actual[[*CLAIM_KEY, "verdict"]],
        on=list(CLAIM_KEY),
        how="outer",
        suffixes=("_expected", "_actual"),
    )
    return merged[merged["verdict_expected"] != merged["verdict_actual"]].reset_index(drop=True)


def read_tables(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A report's runs table and claims table: ``path`` is its ``tables`` folder (with
    ``runs.csv`` and, when the report judged claims, ``claims.csv``) or a runs CSV. A
    file that is not such a table (empty, unparsable, a column missing) raises
    :class:`DataError` naming it."""
    path = Path(path)
    runs_path = path / "runs.csv" if path.is_dir() else path
    if not runs_path.is_file():
        raise DataError(f"no runs table at {runs_path}")
    claims_path = runs_path.with_name("claims.csv")
    claims = (  # a config without claims judges none: a claims table of no rows
        _read_checked(claims_path, read_claims, (*CLAIM_KEY, "verdict"), "claims table", True)
        if claims_path.is_file()
        else None
    )
    runs = _read_checked(runs_path, read_runs_table, (*RUN_KEY, "auroc"), "runs table")
    return check_runs_table(runs, runs_path), claims


def check_runs_table(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame``, as read from the CSV ``path``, with the columns that :func:`verify` reads
    typed: text keys, integer seeds, numeric metrics (an empty cell: a run without it) and
    a boolean ``chaotic`` (empty: False). The first bad cell raises :class:`DataError`
    naming the file, its line (the header is line 1) and the column: a comparison would
    otherwise fail on it with a traceback, or, for ``chaotic``, read "False" as true."""
    for column in ("dataset", "cls", "variant"):
        _refuse(frame, column, frame[column].isna(), path, "a name")
    seeds = pd.to_numeric(frame["seed"], errors="coerce")
    _refuse(frame, "seed", ~(seeds % 1 == 0), path, "an integer")
    typed = {"seed": seeds.astype("int64")}
    for metric in ("auroc", *(m for m in PIXEL_METRICS if m in frame)):
        typed[metric] = pd.to_numeric(frame[metric], errors="coerce")
        _refuse(frame, metric, typed[metric].isna() & frame[metric].notna(), path, "a number")
    if "chaotic" in frame:
        text = frame["chaotic"].astype("string").str.lower()
        _refuse(frame, "chaotic", text.notna() & ~text.isin(["true", "false"]), path, "a boolean")
        typed["chaotic"] = text.eq("true").fillna(False).astype(bool)
    return frame.assign(**typed)


def _refuse(frame: pd.DataFrame, column: str, bad: pd.Series, path: Path, what: str) -> None:
    """Raise :class:`DataError` at the first row of ``bad``, if any."""
    if not bad.any():
        return
    row = bad.to_numpy().argmax()
    value = frame[column].iloc[row]
    cell = "an empty cell" if pd.isna(value) else repr(str(value)[:40])
    more = f" ({int(bad.sum())} such cells)" if bad.sum() > 1 else ""
    raise DataError(f"{path}, line {row + 2}, column {column}: {cell} is not {what}{more}")


def _read_checked(
    path: Path,
    reader: Callable[[Path], pd.DataFrame],
    columns: tuple[str, ...],
    what: str,
    allow_empty: bool = False,
) -> pd.DataFrame:
    try:
        frame = reader(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not a {what}: {str(error).splitlines()[0]}") from error
    missing = [column for column in columns if column not in frame]
    if missing:
        raise DataError(f"{path} is not a {what}: it has no column(s) {', '.join(missing)}")
    if frame.empty and not allow_empty:
        raise DataError(f"{path} is an empty {what}: it has no rows")
    return frame


def _number(value: float) -> str:
    return (
        "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"
    )
