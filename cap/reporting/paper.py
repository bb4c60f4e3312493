"""The CAP paper's own numbers (Tables 1–4) and claims, read from ``config/paper_results.yaml``.

The file is the single place the paper's values and claims live: tables and the
report read them from here, never from literals in code. Values are average AUROC
in percent; ``None`` stands for a cell the paper leaves empty ("-").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import yaml

from cap.utils.errors import ConfigError

#: Row label → dataset → AUROC (%) or None.
PaperRows = dict[str, dict[str, float | None]]

#: Tables whose rows split into ``computed`` (we compute them too) and ``reported``.
SPLIT_TABLES: tuple[str, ...] = ("table1",)
#: Every table the file must hold.
TABLES: tuple[str, ...] = ("table1", "table2", "table3", "table4")
#: Keys of one claim in the file.
CLAIM_KEYS: tuple[str, ...] = ("text", "table", "higher", "lower", "datasets")


@dataclass(frozen=True)
class Claim:
    """The paper claims that row ``higher`` of one of its tables scores above ``lower``."""

    text: str  # the claim as the paper states it, with its section
    table: str  # the paper's table ("table1"...), see TABLES
    higher: str  # row label expected to score higher
    lower: str  # row label expected to score lower
    datasets: tuple[str, ...]  # where the paper makes the claim


def load_paper_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate the paper-results file.

    Returns ``{"backbones": {dataset: backbone}, "scale": {dataset: {"train_per_class",
    "test", "steps"}}, "table1": {"computed": rows, "reported": rows}, "table2": rows,
    ..., "claims": [Claim, ...]}`` where ``rows`` is :data:`PaperRows`.
    Raises ConfigError naming the bad entry when the structure is off.
    """
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"paper results {path}: not valid YAML{where}: {problem}") from error
    if not isinstance(raw, Mapping):
        raise ConfigError(f"paper results {path}: expected a mapping at the top level")
    expected = {"backbones", "scale", "claims", *TABLES}
    if set(raw) != expected:
        raise ConfigError(
            f"paper results {path}: expected keys {sorted(expected)}, got {sorted(map(str, raw))}"
        )
    backbones = _check_backbones(raw["backbones"], path)
    paper: dict[str, Any] = {"backbones": backbones}
    for table in TABLES:
        where = f"paper results {path}: {table}"
        if table in SPLIT_TABLES:
            parts = raw[table]
            if not isinstance(parts, Mapping) or set(parts) != {"computed", "reported"}:
                raise ConfigError(f"{where}: expected exactly the keys 'computed' and 'reported'")
            paper[table] = {
                part: _check_rows(parts[part], backbones, f"{where}.{part}") for part in parts
            }
        else:
            paper[table] = _check_rows(raw[table], backbones, where)
    paper["scale"] = _check_scale(raw["scale"], backbones, f"paper results {path}: scale")
    paper["claims"] = _check_claims(raw["claims"], paper, f"paper results {path}: claims")
    return paper


def check_paper_results(
    path: str | os.PathLike[str],
    project: Sequence[str | os.PathLike[str]],
    where: str = "report.paper_results",
) -> None:
    """Refuse, naming the config key ``where``, a paper-results file outside the
    ``project`` folders (a shared config reads no other file: not /etc/passwd) or one that
    is not a paper-results file (:func:`load_paper_results`); at planning, before a job."""
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(Path(root).resolve()) for root in project):
        raise ConfigError(
            f"{where}: {str(path)!r} is outside the project ({', '.join(map(str, project))}): "
            "the paper's numbers are read from the project's files only"
        )
    if not resolved.is_file():
        raise ConfigError(f"{where}: there is no file {str(path)!r}")
    try:
        load_paper_results(resolved)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from error


def paper_rows(paper: Mapping[str, Any], key: str) -> PaperRows:
    """The rows of table ``key`` that we also compute (Table 1: its ``computed`` part)."""
    _check_key(paper, key)
    return paper[key]["computed"] if key in SPLIT_TABLES else paper[key]


def reported_rows(paper: Mapping[str, Any], key: str) -> PaperRows:
    """Every row of table ``key`` as the paper prints it, in the file's order.

    Table 1's ``reported`` rows come first, then its ``computed`` ones, which the
    paper reports too; other tables have no reported-only rows, so this is their
    whole table.
    """
    _check_key(paper, key)
    if key in SPLIT_TABLES:
        return {**paper[key]["reported"], **paper[key]["computed"]}
    return dict(paper[key])


def _check_key(paper: Mapping[str, Any], key: str) -> None:
    if key not in TABLES:
        raise ConfigError(f"unknown paper table {key!r}; valid: {list(TABLES)}")


def _check_backbones(backbones: object, path: object) -> dict[str, str]:
    if not isinstance(backbones, Mapping) or not backbones:
        raise ConfigError(f"paper results {path}: 'backbones' must map dataset → backbone name")
    for dataset, backbone in backbones.items():
        if not isinstance(backbone, str):
            raise ConfigError(
                f"paper results {path}: backbone of {dataset!r} must be a name, got {backbone!r}"
            )
    return {str(dataset): backbone for dataset, backbone in backbones.items()}


def _check_rows(rows: object, backbones: Mapping[str, str], where: str) -> PaperRows:
    """Row label → dataset → value in [0, 100] or None, datasets known from ``backbones``."""
    if not isinstance(rows, Mapping) or not rows:
        raise ConfigError(f"{where}: expected a mapping of row label → {{dataset: AUROC %}}")
    checked: PaperRows = {}
    for label, cells in rows.items():
        if not isinstance(label, str):
            raise ConfigError(f"{where}: row label {label!r} must be a string (quote it)")
        if not isinstance(cells, Mapping) or not cells:
            raise ConfigError(f"{where}: row {label!r} must map dataset → AUROC %")
        checked[label] = {}
        for dataset, value in cells.items():
            if dataset not in backbones:
                raise ConfigError(
                    f"{where}: row {label!r} names dataset {dataset!r}; "
                    f"valid (from 'backbones'): {sorted(backbones)}"
                )
            valid = value is None or (
                isinstance(value, Real) and not isinstance(value, bool) and 0 <= value <= 100
            )
            if not valid:
                raise ConfigError(
                    f"{where}: row {label!r}, {dataset}: expected an AUROC in % "
                    f"(0–100) or null, got {value!r}"
                )
            checked[label][dataset] = None if value is None else float(value)
    return checked


def _check_claims(claims: object, paper: Mapping[str, Any], where: str) -> list[Claim]:
    """Claims whose rows and datasets exist in the table they name."""
    if not isinstance(claims, list):
        raise ConfigError(f"{where}: expected a list of claims")
    checked = []
    for index, claim in enumerate(claims):
        here = f"{where}[{index}]"
        if not isinstance(claim, Mapping) or set(claim) != set(CLAIM_KEYS):
            raise ConfigError(f"{here}: expected exactly the keys {list(CLAIM_KEYS)}")
        if claim["table"] not in TABLES:
            raise ConfigError(f"{here}: unknown table {claim['table']!r}; valid: {list(TABLES)}")
        rows = reported_rows(paper, claim["table"])
        for side in ("higher", "lower"):
            if str(claim[side]) not in rows:
                raise ConfigError(
                    f"{here}: {side} row {claim[side]!r} is not in {claim['table']}; "
                    f"valid: {list(rows)}"
                )
        for dataset in claim["datasets"]:
            if rows[str(claim["higher"])].get(dataset) is None:
                raise ConfigError(f"{here}: {claim['table']} has no {dataset!r} value")
        checked.append(
            Claim(
                text=str(claim["text"]),
                table=str(claim["table"]),
                higher=str(claim["higher"]),
                lower=str(claim["lower"]),
                datasets=tuple(claim["datasets"]),
            )
        )
    return checked


def _check_scale(
    scale: object, backbones: Mapping[str, str], where: str
) -> dict[str, dict[str, Any]]:
    """Dataset → the paper's training images per class, test images and steps (or nulls)."""
    keys = {"train_per_class", "test", "steps"}
    if not isinstance(scale, Mapping):
        raise ConfigError(f"{where}: expected a mapping of dataset → {sorted(keys)}")
    for dataset, sizes in scale.items():
        if dataset not in backbones:
            raise ConfigError(f"{where}: unknown dataset {dataset!r}; valid: {sorted(backbones)}")
        valid = isinstance(sizes, Mapping) and set(sizes) == keys
        if not valid or not all(
            v is None or (isinstance(v, int) and v > 0) for v in sizes.values()
        ):
            raise ConfigError(
                f"{where}.{dataset}: expected {sorted(keys)}, each a positive integer or null"
            )
    return {str(dataset): dict(sizes) for dataset, sizes in scale.items()}
