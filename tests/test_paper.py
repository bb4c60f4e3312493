"""The paper's numbers file: its transcription and its validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cap.reporting.paper import load_paper_results, paper_rows, reported_rows
from cap.utils.errors import ConfigError

PAPER_FILE = Path(__file__).resolve().parents[1] / "config" / "paper_results.yaml"


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(PAPER_FILE.read_text())


def write(tmp_path: Path, content: dict) -> Path:
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def test_repo_file_holds_the_papers_tables():
    paper = load_paper_results(PAPER_FILE)
    assert paper["backbones"] == {
        "cifar10": "resnet152",
        "cifar100": "resnet152",
        "fmnist": "resnet152",
        "mvtec": "wide_resnet50_2",
    }
    assert list(paper_rows(paper, "table1")) == ["DN2", "CAP (no adaptation)", "CAP"]
    assert paper_rows(paper, "table1")["CAP"] == {
        "cifar10": 97.0,
        "cifar100": 96.5,
        "fmnist": 95.5,
        "mvtec": 89.9,
    }
    assert paper["table1"]["reported"]["Distillation"]["cifar100"] is None  # "-" in the paper
    assert list(paper_rows(paper, "table2")) == ["L+ReLU+L", "L+ReLU", "L", "L, no attention"]
    assert list(paper_rows(paper, "table3")) == ["1", "4", "8", "16", "32", "64"]
    assert paper_rows(paper, "table3")["64"]["mvtec"] == 86.7
    assert paper_rows(paper, "table4")["no adaptation"] == {"cifar10": 96.6}
    assert list(paper_rows(paper, "table4"))[:6] == ["0", "0.1", "1", "2", "10", "100"]


def test_reported_rows_are_the_whole_printed_table():
    paper = load_paper_results(PAPER_FILE)
    assert list(reported_rows(paper, "table1")) == [
        "Deep-SVDD",
        "MHRot",
        "Distillation",
        "PANDA",
        "DN2",
        "CAP (no adaptation)",
        "CAP",
    ]
    assert reported_rows(paper, "table3") == paper_rows(paper, "table3")


def test_unknown_table_key_is_refused():
    with pytest.raises(ConfigError, match="table9"):
        paper_rows(load_paper_results(PAPER_FILE), "table9")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("table3"), "expected keys"),
        (lambda r: r["table3"]["1"].update(cifar10=150), r"'1', cifar10.*got 150"),
        (lambda r: r["table2"]["L"].update(svhn=90.0), "dataset 'svhn'"),
        (lambda r: r["table4"].update({7: {"cifar10": 90.0}}), "must be a string"),
        (lambda r: r["table1"].pop("reported"), "'computed' and 'reported'"),
        (lambda r: r["backbones"].update(cifar10=None), "backbone of 'cifar10'"),
    ],
)
def test_malformed_files_raise_config_error_naming_the_entry(tmp_path, raw, edit, message):
    edit(raw)
    with pytest.raises(ConfigError, match=message):
        load_paper_results(write(tmp_path, raw))


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text("table1: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_paper_results(path)
