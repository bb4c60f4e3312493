"""A detector's settings, declared once: what values each takes and what it means.

Each detector class declares its settings beside ``__init__`` as scikit-learn's estimators
declare ``_parameter_constraints`` (and with scikit-learn's constraint objects:
``Interval``, ``StrOptions``, ``"boolean"``, a type, ``None``), plus a one-line
description. From that one declaration come the checks in ``fit`` and at planning
(:func:`check_values`), and the config schema's settings (:func:`json_schema`), from
which the settings tables of ``config/README.md`` are written; the defaults are the
keyword defaults of ``__init__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval, Options, make_constraint

from cap.utils.errors import ConfigError

#: A positive count (neighbours, epochs, dimensions).
COUNT = Interval(Integral, 1, None, closed="left")
#: A seed: any non-negative integer.
SEED = Interval(Integral, 0, None, closed="left")

#: JSON schema types of the Python types a constraint may name.
_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    str: "string",
    int: "integer",
    Integral: "integer",
    float: "number",
    Real: "number",
    dict: "object",
    list: "array",
}


class Param:
    """One setting's declaration: a one-line description and scikit-learn's constraints on
    its value (any one satisfied is valid; none declared: not checked)."""

    def __init__(self, description: str, *constraints: Any) -> None:
        self.description = description  # one line: the schema's and config/README.md's
        self.constraints = list(constraints)  # scikit-learn's parameter constraints

    def __repr__(self) -> str:
        return f"Param({self.description!r}, {', '.join(map(repr, self.constraints))})"


#: The seed setting of a detector that draws random numbers: the run's seed.
SEED_PARAM = Param("seeds the detector's random numbers: the run's seed", SEED)


def check_values(declared: Mapping[str, Param], settings: Mapping[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` naming ``where.<setting>`` unless every one of
    ``settings`` satisfies one of its declared constraints (scikit-learn's)."""
    for name, value in settings.items():
        param = declared.get(name)
        checks = [make_constraint(constraint) for constraint in param.constraints] if param else []
        if checks and not any(check.is_satisfied_by(value) for check in checks):
            allowed = " or ".join(str(check) for check in checks if not check.hidden)
            raise ConfigError(f"{where}.{name} must be {allowed}; got {value!r}")


def json_schema(param: Param) -> dict[str, Any]:
    """The JSON schema of a setting's values, with its description: each constraint
    translated (an interval's bounds, options as an enum); a constraint JSON cannot state
    (a callable, an estimator) leaves the value to :func:`check_values` at planning."""
    alternatives = [_constraint_schema(constraint) for constraint in param.constraints]
    if not alternatives or None in alternatives:
        schema: dict[str, Any] = {}
    elif len(alternatives) == 1:
        schema = dict(alternatives[0])
    else:
        schema = {"anyOf": alternatives}
    return {**schema, "description": param.description}


def _constraint_schema(constraint: Any) -> dict[str, Any] | None:
    """One scikit-learn constraint as a JSON schema; None where JSON cannot state it."""
    if constraint is None:
        return {"type": "null"}
    if constraint == "boolean":
        return {"type": "boolean"}
    if isinstance(constraint, Interval):
        return _interval_schema(constraint)
    if isinstance(constraint, Options):
        return {"enum": sorted(constraint.options, key=str)}
    if isinstance(constraint, type):
        for python_type, json_type in _JSON_TYPES.items():
            if issubclass(constraint, python_type):
                return {"type": json_type}
    return None


def _interval_schema(interval: Interval) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer" if interval.type is Integral else "number"}
    if interval.left is not None:
        closed = interval.closed in ("left", "both")
        schema["minimum" if closed else "exclusiveMinimum"] = interval.left
    if interval.right is not None:
        closed = interval.closed in ("right", "both")
        schema["maximum" if closed else "exclusiveMaximum"] = interval.right
    return schema
