"""Each detector's settings, declared once beside its class (``declared_settings``,
:mod:`cap.detectors.settings`), and what comes of the declaration: the checks in ``fit``
and at planning, the config schema's detector parts (:mod:`cap.workflow.schema`) and the
settings table of ``config/README.md`` (:mod:`cap.workflow.readme`)."""

from __future__ import annotations

import subprocess
import sys
from numbers import Integral, Real

import pytest
from assets import REPO
from sklearn.utils._param_validation import Interval, StrOptions
from workflow_helpers import smoke_config, validated

from cap.detectors import detector_class, detector_names
from cap.detectors.settings import Param, json_schema
from cap.utils.errors import ConfigError
from cap.workflow import Plan
from cap.workflow.readme import README, with_table
from cap.workflow.schema import config_schema
from cap.workflow.variants import detector_defaults


def test_the_schema_states_every_methods_settings_as_its_class_declares_them():
    schema = config_schema()
    names = detector_names()
    variant = schema["properties"]["variants"]["additionalProperties"]
    assert variant["properties"]["method"]["enum"] == names
    by_method = schema["definitions"]["settings_by_method"]["properties"]
    assert list(by_method) == names
    for method, branch in zip(names, variant["allOf"], strict=True):
        declared = detector_class(method).declared_settings
        properties = by_method[method]["properties"]
        assert list(properties) == list(detector_defaults(method))  # the seed is the run's
        assert properties == {name: json_schema(declared[name]) for name in properties}
        assert branch == {
            "if": {"properties": {"method": {"const": method}}},
            "then": {"properties": properties},
        }
        assert all(p["description"] for p in properties.values())
    every = schema["definitions"]["setting_properties"]["properties"]
    assert set(every) == {name for method in names for name in by_method[method]["properties"]}


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        (Param("k", Interval(Integral, 1, None, closed="left")), {"type": "integer", "minimum": 1}),
        (
            Param("γ", Interval(Real, 0, 1, closed="right"), None),
            {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"}]},
        ),
        (Param("head", StrOptions({"b", "a"})), {"enum": ["a", "b"]}),
        (Param("flag", "boolean"), {"type": "boolean"}),
        (Param("options", dict, None), {"anyOf": [{"type": "object"}, {"type": "null"}]}),
        (Param("metric", str, callable), {}),  # JSON cannot state a callable: planning checks
        (Param("anything"), {}),
    ],
)
def test_scikit_learns_constraints_become_json_schema(param, expected):
    assert json_schema(param) == {**expected, "description": param.description}


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda c: c["variants"]["k4"].update(lam=-1.0), r"^variants\.k4\.lam: "),
        (lambda c: c["methods"]["cap"].update(head="mlp"), r"^methods\.cap\.head: "),
        (
            lambda c: c["datasets"]["cifar10"].update(settings={"dn2": {"normalize": "yes"}}),
            r"^datasets\.cifar10\.settings\.dn2\.normalize: ",
        ),
        (lambda c: c["variants"]["dn2"].update(neighbours=3), r"'neighbours' was unexpected"),
        (lambda c: c["variants"]["dn2"].update(method="panda"), r"'panda' is not one of"),
        (
            lambda c: c["datasets"]["cifar10"].update(source="imagenet"),
            r"^datasets\.cifar10\.source",
        ),
        (lambda c: c["variants"]["k4"].update(lam="two"), r"^variants\.k4\.lam: 'two'"),
    ],
    ids=[
        "variant-bound",
        "method-option",
        "dataset-type",
        "unknown-setting",
        "unknown-method",
        "unknown-source",
        "setting-type",
    ],
)
def test_the_schema_refuses_a_bad_setting_naming_it(edit, where):
    config = smoke_config()
    edit(config)
    with pytest.raises(ConfigError, match=where):
        validated(config)


def test_planning_checks_each_value_against_its_declaration():
    """What passes the schema (or skips it: ``Plan`` on a dict) is checked by scikit-learn's
    validation of the same declaration, naming the key."""
    config = validated(smoke_config())
    config["methods"]["cap"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"^methods.cap.epochs must be an int in the range"):
        Plan(config)


def test_a_config_loads_only_the_methods_it_names():
    """Every registered method is in the schema's enum; only the config's are imported
    (here dn2's, which the package imports anyway), and no torch."""
    code = (
        "import sys, cap.detectors; from cap.workflow.schema import config_schema\n"
        "before = set(sys.modules)\n"
        "schema = config_schema({'variants': {'v': {'method': 'dn2'}}})\n"
        "variant = schema['properties']['variants']['additionalProperties']\n"
        "assert variant['properties']['method']['enum'] == cap.detectors.detector_names()\n"
        "assert [b['if']['properties']['method']['const'] for b in variant['allOf']] == ['dn2']\n"
        "loaded = [m for m in set(sys.modules) - before if m.startswith('cap.detectors')]\n"
        "assert not loaded and 'torch' not in sys.modules, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_the_readmes_settings_table_is_written_from_the_declarations():
    text = (REPO / README).read_text()
    assert with_table(text) == text, (
        f"{README}'s detector settings differ from the detectors' declarations: rewrite "
        "them with `PYTHONPATH=$PWD python -m cap.workflow.readme` from the repository's root"
    )
