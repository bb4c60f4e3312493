"""Paper tables from per-class AUROC records: cells, layouts, bold, paper values, files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cap.reporting.paper import load_paper_results
from cap.reporting.tables import (
    build_table,
    display_grid,
    read_table,
    to_latex,
    to_markdown,
    write_table,
)
from cap.utils.errors import ConfigError, DataError

PAPER_FILE = Path(__file__).resolve().parents[1] / "config" / "paper_results.yaml"


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_paper_results(PAPER_FILE)


def runs(
    dataset: str, variant: str, aurocs: dict[int, list[float]], backbone: str = "resnet152"
) -> list[dict]:
    """Run rows of one (dataset, variant): seed → AUROC of classes 0, 1, ..."""
    return [
        {
            "dataset": dataset,
            "backbone": backbone,
            "cls": cls,
            "class_name": f"class{cls}",
            "variant": variant,
            "method": "cap",
            "seed": seed,
            "auroc": auroc,
        }
        for seed, values in aurocs.items()
        for cls, auroc in enumerate(values)
    ]


def spec(name: str, layout: str, datasets: list[str], labels: dict[str, str], **extra) -> dict:
    """A resolved spec whose entries use the same variant on every dataset."""
    entries = [
        {"label": label, "variants": {d: variant for d in datasets}}
        for label, variant in labels.items()
    ]
    return {
        "name": name,
        "title": f"{name} title",
        "layout": layout,
        "datasets": datasets,
        "entries": entries,
        "paper_key": name,
        "reported_rows": False,
        **extra,
    }


def cell(table, entry: str, dataset: str) -> pd.Series:
    cells = table.cells
    (row,) = cells[(cells["entry"] == entry) & (cells["dataset"] == dataset)].itertuples(
        index=False
    )
    return pd.Series(row._asdict())


def plain_grid(table) -> pd.DataFrame:
    return display_grid(table, bold=lambda text: f"*{text}*", plus_minus=" ± ")


def test_cell_is_class_mean_per_seed_then_mean_and_std_across_seeds(paper):
    summary = pd.DataFrame(runs("cifar10", "k1", {0: [0.90, 0.80], 1: [0.92, 0.84]}))
    table = build_table(
        summary, spec("table3", "variants_as_columns", ["cifar10"], {"1": "k1"}), paper
    )
    got = cell(table, "1", "cifar10")
    assert got.value_pct == pytest.approx(86.5)  # seeds: 85.0 and 88.0
    assert got.value_pct_std == pytest.approx(np.std([85.0, 88.0], ddof=1))
    assert (got.n_seeds, got.n_classes, got.backbone) == (2, 2, "resnet152")
    assert plain_grid(table).loc["CIFAR-10", "1"] == "*86.5 ± 2.1*"
    legend = to_markdown(table).splitlines()[-1]
    assert "normal classes (CIFAR-10 2)" in legend and "seeds per cell: 2" in legend
    assert "not a significance test" in legend  # what bold means, and what it does not


def test_one_seed_shows_no_spread(paper):
    summary = pd.DataFrame(runs("cifar10", "k1", {0: [0.9, 0.8]}))
    table = build_table(
        summary, spec("table3", "variants_as_columns", ["cifar10"], {"1": "k1"}), paper
    )
    assert plain_grid(table).loc["CIFAR-10", "1"] == "*85.0*"
    assert "std" not in to_markdown(table)


def test_layouts_put_entries_on_rows_or_columns(paper):
    summary = pd.DataFrame(runs("cifar10", "k1", {0: [0.9]}) + runs("cifar10", "k4", {0: [0.8]}))
    labels = {"1": "k1", "4": "k4"}
    as_columns = plain_grid(
        build_table(
            summary, spec("table3", "variants_as_columns", ["cifar10", "mvtec"], labels), paper
        )
    )
    as_rows = plain_grid(
        build_table(
            summary, spec("table3", "variants_as_rows", ["cifar10", "mvtec"], labels), paper
        )
    )
    assert list(as_columns.index) == ["CIFAR-10", "MVTec AD"] and list(as_columns.columns) == [
        "1",
        "4",
    ]
    assert list(as_rows.index) == ["1", "4"] and list(as_rows.columns) == ["CIFAR-10", "MVTec AD"]


def test_bold_marks_the_best_computed_value_per_dataset_only(paper):
    summary = pd.DataFrame(
        runs("cifar10", "a", {0: [0.95]})
        + runs("cifar10", "b", {0: [0.97]})
        + runs("mvtec", "a", {0: [0.90]})
        + runs("mvtec", "b", {0: [0.85]})
    )
    table = build_table(
        summary,
        spec("table2", "variants_as_rows", ["cifar10", "mvtec"], {"L": "a", "L+ReLU": "b"}),
        paper,
    )
    grid = plain_grid(table)
    assert grid.loc["L+ReLU", "CIFAR-10"] == "*97.0*" and grid.loc["L", "CIFAR-10"] == "95.0"
    assert grid.loc["L", "MVTec AD"] == "*90.0*" and grid.loc["L+ReLU", "MVTec AD"] == "85.0"
    assert "**97.0**" in to_markdown(table) and r"\textbf{97.0}" in to_latex(table)


def test_ties_at_display_precision_are_all_bold(paper):
    summary = pd.DataFrame(
        runs("cifar10", "a", {0: [0.97001]}) + runs("cifar10", "b", {0: [0.96999]})
    )
    table = build_table(
        summary, spec("table2", "variants_as_rows", ["cifar10"], {"L": "a", "L+ReLU": "b"}), paper
    )
    assert table.cells["best"].tolist() == [True, True]


def test_missing_variant_or_runs_give_empty_cells_not_errors(paper):
    summary = pd.DataFrame(runs("cifar10", "cap", {0: [0.9]}))
    table_spec = spec("table2", "variants_as_rows", ["cifar10", "cifar100", "mvtec"], {"L": "cap"})
    table_spec["entries"][0]["variants"].pop("mvtec")  # no variant for mvtec; no cifar100 runs
    table = build_table(summary, table_spec, paper)
    grid = plain_grid(table)
    assert grid.loc["L", "CIFAR-100"] == "–" and grid.loc["L", "MVTec AD"] == "–"
    assert np.isnan(cell(table, "L", "mvtec").value_pct)
    assert cell(table, "L", "mvtec").n_seeds == 0
    assert "--" in to_latex(table)


def test_reported_rows_come_from_the_paper_and_are_marked(paper):
    summary = pd.DataFrame(runs("cifar10", "cap", {0: [0.99]}))
    table_spec = spec(
        "table1", "variants_as_rows", ["cifar10", "cifar100"], {"CAP": "cap"}, reported_rows=True
    )
    table = build_table(summary, table_spec, paper)
    grid = plain_grid(table)
    assert grid.loc["Deep-SVDD (reported)", "CIFAR-10"] == "64.8"
    assert grid.loc["Distillation (reported)", "CIFAR-100"] == "–"
    assert grid.loc["CAP (reported)", "CIFAR-10"] == "97.0"  # the paper's; not bold
    assert grid.loc["CAP", "CIFAR-10"] == "*99.0*"
    latex = to_latex(table)
    assert latex.index(r"\midrule", latex.index("CAP &")) < latex.index("Deep-SVDD (reported)")
    assert "(reported): copied from the paper" in to_markdown(table)


@pytest.mark.parametrize(
    ("key", "row", "dataset", "variant", "edit"),
    [
        ("table1", "CAP", "cifar10", "cap", lambda raw: raw["table1"]["computed"]["CAP"]),
        ("table2", "L+ReLU", "mvtec", "head_lr", lambda raw: raw["table2"]["L+ReLU"]),
        ("table3", "16", "cifar100", "k16", lambda raw: raw["table3"]["16"]),
        ("table4", "0.1", "cifar10", "lam0.1", lambda raw: raw["table4"]["0.1"]),
    ],
)
def test_each_table_reads_the_paper_values_from_the_data_file(
    tmp_path, key, row, dataset, variant, edit
):
    raw = yaml.safe_load(PAPER_FILE.read_text())
    edit(raw)[dataset] = 12.3
    edited = tmp_path / "paper.yaml"
    edited.write_text(yaml.safe_dump(raw))
    summary = pd.DataFrame(runs(dataset, variant, {0: [0.9]}))
    table_spec = spec(key, "variants_as_rows", [dataset], {row: variant})
    original = cell(build_table(summary, table_spec, load_paper_results(PAPER_FILE)), row, dataset)
    changed = cell(build_table(summary, table_spec, load_paper_results(edited)), row, dataset)
    assert original.paper_pct != 12.3 and changed.paper_pct == 12.3


def test_reported_rows_follow_the_data_file(tmp_path):
    raw = yaml.safe_load(PAPER_FILE.read_text())
    raw["table1"]["reported"]["MHRot"]["fmnist"] = 42.4
    edited = tmp_path / "paper.yaml"
    edited.write_text(yaml.safe_dump(raw))
    table_spec = spec("table1", "variants_as_rows", ["fmnist"], {"CAP": "cap"}, reported_rows=True)
    table = build_table(
        pd.DataFrame(runs("fmnist", "cap", {0: [0.9]})), table_spec, load_paper_results(edited)
    )
    assert re.search(r"\| MHRot \(reported\) +\| +42\.4 \|", to_markdown(table))


def test_labels_missing_from_the_paper_are_logged(paper, caplog):
    summary = pd.DataFrame(runs("cifar10", "cap", {0: [0.9]}))
    table = build_table(
        summary, spec("table1", "variants_as_rows", ["cifar10"], {"CAP(typo)": "cap"}), paper
    )
    assert "CAP(typo)" in caplog.text and np.isnan(cell(table, "CAP(typo)", "cifar10").paper_pct)


def test_without_paper_no_paper_values(paper):
    table = build_table(
        pd.DataFrame(runs("cifar10", "k1", {0: [0.9]})),
        spec("table3", "variants_as_rows", ["cifar10"], {"1": "k1"}),
        None,
    )
    assert table.cells["paper_pct"].isna().all()


def test_write_table_files_round_trip(tmp_path, paper):
    summary = pd.DataFrame(
        runs("cifar10", "lam0.1", {0: [0.9, 0.8, 0.7], 1: [0.8, 0.8, 0.8]})
        + runs("cifar10", "lam1", {0: [0.95, 0.9, 0.85]})
    )
    table = build_table(
        summary,
        spec("table4", "variants_as_columns", ["cifar10"], {"0.1": "lam0.1", "1": "lam1"}),
        paper,
    )
    paths = write_table(table, tmp_path / "tables" / "table4")
    assert [p.name for p in paths] == [
        "table4.csv",
        "table4.md",
        "table4.tex",
        "table4_per_class.csv",
    ]
    assert all(p.stat().st_size > 0 for p in paths)
    cells = read_table(paths[0])
    assert cells["entry"].tolist() == ["0.1", "1"]  # labels stay text
    assert cells["paper_pct"].tolist() == [95.6, 96.9]
    per_class = pd.read_csv(paths[3], dtype={"entry": str, "cls": str})
    assert len(per_class) == 9  # every run: lam0.1 2 seeds × 3 classes, lam1 1 × 3
    first = per_class[(per_class["entry"] == "0.1") & (per_class["cls"] == "0")]
    assert first["seed"].tolist() == [0, 1] and first["value_pct"].tolist() == [90.0, 80.0]
    assert set(first["class_name"]) == {"class0"}
    tex = paths[2].read_text()
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\label{tab:table4}"):
        assert command in tex
    assert not list(tmp_path.glob("tables/.*.tmp"))  # atomic writes leave no temporaries


def test_runs_from_several_backbones_in_one_cell_are_refused(paper):
    summary = pd.DataFrame(
        runs("cifar10", "cap", {0: [0.9]}) + runs("cifar10", "cap", {1: [0.8]}, backbone="vit")
    )
    with pytest.raises(DataError, match="several backbones"):
        build_table(summary, spec("table2", "variants_as_rows", ["cifar10"], {"L": "cap"}), paper)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(layout="diagonal"), "unknown layout 'diagonal'"),
        (lambda s: s.pop("entries"), "lacks key"),
        (lambda s: s["entries"].append(dict(s["entries"][0])), "unique"),
    ],
)
def test_bad_specs_raise_config_error(paper, edit, message):
    table_spec = spec("table3", "variants_as_rows", ["cifar10"], {"1": "k1"})
    edit(table_spec)
    with pytest.raises(ConfigError, match=message):
        build_table(pd.DataFrame(runs("cifar10", "k1", {0: [0.9]})), table_spec, paper)


def test_summary_without_auroc_column_is_a_data_error(paper):
    summary = pd.DataFrame(runs("cifar10", "k1", {0: [0.9]})).drop(columns="auroc")
    with pytest.raises(DataError, match="auroc"):
        build_table(summary, spec("table3", "variants_as_rows", ["cifar10"], {"1": "k1"}), paper)


def test_mixed_class_ids_across_datasets(paper):
    bottle = {
        "dataset": "mvtec",
        "backbone": "wide_resnet50_2",
        "cls": "bottle",
        "variant": "cap",
        "method": "cap",
        "seed": 0,
        "auroc": 0.7,
    }
    summary = pd.DataFrame(runs("cifar10", "cap", {0: [0.9, 0.8]}) + [bottle])
    table = build_table(
        summary, spec("table2", "variants_as_rows", ["cifar10", "mvtec"], {"L": "cap"}), paper
    )
    assert set(table.per_class["cls"]) == {"0", "1", "bottle"}
    assert cell(table, "L", "mvtec").value_pct == pytest.approx(70.0)


def test_a_table_shows_its_metric_and_a_lower_is_better_one_bolds_the_lowest():
    rows = [
        {**run, "fpr95": fpr}
        for run, fpr in zip(
            runs("cifar10", "a", {0: [0.9, 0.8]}) + runs("cifar10", "b", {0: [0.7, 0.6]}),
            [0.30, 0.50, 0.60, 0.80],
            strict=True,
        )
    ]
    table = build_table(
        pd.DataFrame(rows),
        spec("fprs", "variants_as_rows", ["cifar10"], {"A": "a", "B": "b"}, metric="fpr95"),
        None,
    )
    assert cell(table, "A", "cifar10").value_pct == pytest.approx(40.0)
    assert set(table.cells["metric"]) == {"fpr95"} and set(table.per_class["metric"]) == {"fpr95"}
    assert plain_grid(table).loc["A", "CIFAR-10"] == "*40.0*"  # the lowest FPR is the best
    legend = to_markdown(table).splitlines()[-1]
    assert legend.startswith("FPR at 95% TPR (%, lower is better)") and "the lowest mean" in legend
    with pytest.raises(DataError, match="aupr"):  # runs without the metric
        build_table(
            pd.DataFrame(rows),
            spec("x", "variants_as_rows", ["cifar10"], {"A": "a"}, metric="aupr"),
            None,
        )
