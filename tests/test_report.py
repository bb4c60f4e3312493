"""The reproduction report: comparison with the paper, flags, claims, runtimes, setup."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cap.evaluation.jobs import ClaimsJob
from cap.reporting.claims import judge_report_claims
from cap.reporting.comparison import compare_with_paper
from cap.reporting.paper import load_paper_results
from cap.reporting.report import ReportInputs, write_report
from cap.reporting.runtime import (
    elapsed_seconds,
    idle_seconds,
    job_intervals,
    read_timings,
    runtime_summary,
)
from cap.reporting.tables import build_table, read_table, write_table

PAPER_FILE = Path(__file__).resolve().parents[1] / "config" / "paper_results.yaml"
PAPER_BACKBONES = {
    "cifar10": "resnet152",
    "cifar100": "resnet152",
    "fmnist": "resnet152",
    "mvtec": "wide_resnet50_2",
}


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_paper_results(PAPER_FILE)


def table_cells(
    paper: dict, name: str, values: dict[tuple[str, str], float], **spec_extra
) -> pd.DataFrame:
    """Cells of table ``name`` whose entry ``label`` on ``dataset`` scored
    ``values[label, dataset]`` %."""
    labels = list(dict.fromkeys(label for label, _ in values))
    datasets = list(dict.fromkeys(dataset for _, dataset in values))
    summary = pd.DataFrame(
        [
            {
                "dataset": d,
                "backbone": "bb",
                "cls": 0,
                "variant": label,
                "method": "m",
                "seed": 0,
                "auroc": v / 100,
            }
            for (label, d), v in values.items()
        ]
    )
    spec = {
        "name": name,
        "title": name,
        "layout": "variants_as_rows",
        "datasets": datasets,
        "paper_key": name,
        "entries": [{"label": label, "variants": {d: label for d in datasets}} for label in labels],
        **spec_extra,
    }
    return build_table(summary, spec, paper).cells


def test_flags_only_differences_beyond_tolerance_with_the_papers_backbone(paper):
    cells = {
        "table1": table_cells(paper, "table1", {("CAP", "cifar10"): 95.5, ("CAP", "fmnist"): 95.0})
    }
    # paper: CAP cifar10 97.0 (−1.5), fmnist 95.5 (−0.5)
    same = compare_with_paper(cells, paper, PAPER_BACKBONES, tolerance=1.0).set_index("dataset")
    assert same.loc["cifar10", "flagged"] and not same.loc["fmnist", "flagged"]
    assert same.loc["cifar10", "difference"] == pytest.approx(-1.5)
    other = compare_with_paper(
        cells, paper, {"cifar10": "tflite", "fmnist": "tflite"}, tolerance=1.0
    )
    assert not other["flagged"].any() and not other["compared"].any()
    loose = compare_with_paper(cells, paper, PAPER_BACKBONES, tolerance=2.0)
    assert not loose["flagged"].any()


def write_timing(path: Path, seconds: float, rss: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\tmax_vms\n{seconds}\t0:00:01\t{rss}\t10\n")
    return path


def test_runtime_summary_per_rule(tmp_path):
    root = tmp_path / "results" / "timings"
    paths = [
        write_timing(root / "train" / "cifar10" / "a.tsv", 10.0, "100.5"),
        write_timing(root / "train" / "cifar10" / "b.tsv", 30.0, "300.0"),
        write_timing(root / "embed" / "c.tsv", 5.0, "NA"),
    ]
    for age, path in enumerate(paths):  # written at t = 1000, 1100, 1200 s
        os.utime(path, (1000 + 100 * age, 1000 + 100 * age))
    rules = ["train", "train", "embed"]
    jobs = read_timings(list(zip(rules, paths, strict=True)))
    intervals = job_intervals(jobs)
    assert elapsed_seconds(intervals) == pytest.approx(1200 - (1000 - 10))  # the first ran 10 s
    assert idle_seconds(intervals) == pytest.approx(210 - (10 + 30 + 5))  # the jobs never overlap
    overlapping = write_timing(root / "train" / "cifar10" / "d.tsv", 150.0, "1.0")
    os.utime(overlapping, (1150, 1150))  # ran 1000-1150, over a's end and all of b
    with_overlap = read_timings([*zip(rules, paths, strict=True), ("train", overlapping)])
    assert idle_seconds(job_intervals(with_overlap)) == pytest.approx(210 - (160 + 5))
    summary = runtime_summary(jobs).set_index("rule")
    assert summary.loc["train"].tolist() == [2, 40.0, 30.0, 300.0]
    assert summary.loc["embed", "jobs"] == 1 and pd.isna(summary.loc["embed", "max_rss_mb"])


@pytest.fixture
def report_inputs(tmp_path, paper):
    """Table files, a figure and a timing file laid out as the workflow writes them."""
    results = tmp_path / "results"
    summary = pd.DataFrame(
        [
            {
                "dataset": "cifar10",
                "backbone": "bb",
                "cls": c,
                "variant": v,
                "method": "m",
                "seed": 0,
                "auroc": a,
                "n_train": 200,
                "n_test": 2000,
                "epochs": 10 if v == "cap" else None,
                "batch_size": 64 if v == "cap" else None,
            }
            for c in (0, 1)
            for v, a in (("cap", 0.95), ("no_adaptation", 0.94))
        ]
    )
    spec = {
        "name": "table1",
        "title": "Table 1 (test)",
        "layout": "variants_as_rows",
        "datasets": ["cifar10"],
        "paper_key": "table1",
        "reported_rows": True,
        "entries": [
            {"label": "CAP", "variants": {"cifar10": "cap"}},
            {"label": "CAP (no adaptation)", "variants": {"cifar10": "no_adaptation"}},
        ],
    }
    write_table(build_table(summary, spec, paper), results / "tables" / "table1")
    figure = results / "figures" / "attention" / "cifar10.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"png")
    timing = write_timing(results / "timings" / "train" / "x.tsv", 12.0, "50")
    return {
        "runs": summary,
        "tables": {"table1": results / "tables" / "table1.csv"},
        "paper": paper,
        "figures": [figure],
        "timings": [("train", timing)],
        "config": {"seeds": [0], "report": {"tolerance": 1.0}},
        "out": results / "report" / "reproduction.md",
    }


def render(report_inputs: dict, model: str, **extra) -> str:
    inputs = dict(report_inputs)
    out = inputs.pop("out")
    cells = {name: read_table(path) for name, path in inputs["tables"].items()}
    job = ClaimsJob("paper.yaml", paper_tables={"table1": "table1"}, table_classes={})
    claims = judge_report_claims(inputs["runs"], cells, inputs["paper"], job)
    backbones = {"cifar10": ("my_backbone", model)}
    write_report(out, ReportInputs(backbones=backbones, claims=claims, **inputs, **extra))
    return out.read_text()


def test_report_with_the_papers_backbone_flags_differences(report_inputs):
    text = render(report_inputs, "resnet152")
    cap_row = next(line for line in text.splitlines() if re.match(r"\| CAP +\| cifar10", line))
    assert "97.0" in cap_row and "95.0" in cap_row and "-2.0" in cap_row and "⚠" in cap_row
    assert "more than 1 AUROC points: **2**" in text
    assert "| CAP (reported)" in text  # the rendered table is embedded


def test_report_with_another_backbone_shows_the_paper_as_context(report_inputs):
    text = render(report_inputs, "tflite", environment={"resnet152 weights sha256": "abc123"})
    assert "⚠" not in text
    assert "context (tflite ≠ paper's resnet152)" in text
    assert re.search(
        r"\| cifar10 +\| – +\| my_backbone \(tflite\) +\| resnet152 +\| context only", text
    )
    claim = next(line for line in text.splitlines() if line.startswith("| CAP > CAP without"))
    # both classes 1 point above: a zero-spread interval above 0; 200 images, 40 steps
    assert re.search(
        r"\| cifar10 +\| 2 +\| 1 vs 1 +\| \+1\.00 +\| \[\+1\.00, \+1\.00\] .*\| holds", claim
    )
    assert "| ours 200 / 2,000 / 40; paper 5,000 / 10,000 / 790 |" in claim
    assert "![attention cifar10](../figures/attention/cifar10.png)" in text
    assert re.search(r"\| train +\| 1 +\| 12\.0", text)
    assert re.search(r"torch version +\| \d", text) and "| device" in text
    assert re.search(r"\| resnet152 weights sha256 +\| abc123", text)
    config_block = text.split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(config_block) == report_inputs["config"]
