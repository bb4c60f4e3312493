"""`cap verify` on the committed demo report: it passes what another machine gives and
fails a real change (a deterministic run, a seed mean, a verdict)."""

from __future__ import annotations

import pandas as pd
import pytest
from assets import REPO

from cap.cli import main as cap_main
from cap.evaluation.records import write_runs_table
from cap.reporting.claims import write_claims
from cap.reporting.verification import compare_runs, read_tables, verify
from cap.utils.errors import ConfigError, DataError

DEMO = REPO / "docs" / "demo-report" / "tables"
#: The largest |ΔAUROC| of a λ = 0 run between two machines, measured (issue 17).
NEW_MACHINE = 0.0165


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_tables(DEMO)


def check(demo, runs=None, claims=None, **options):
    expected, expected_claims = demo
    return verify(
        expected,
        expected if runs is None else runs,
        expected_claims=expected_claims,
        actual_claims=expected_claims if claims is None else claims,
        **options,
    )


def test_the_committed_report_has_chaotic_runs_and_verdicts(demo):
    runs, claims = demo
    assert runs["chaotic"].sum() == 9  # λ = 0: 3 CIFAR-10 classes × 3 seeds
    assert set(runs.loc[runs["chaotic"], "lam"]) == {0.0}
    assert claims["verdict"].isin(["holds", "does not hold", "inconclusive", "not run"]).all()
    assert check(demo).ok


@pytest.mark.parametrize("signs", ["all up", "all down", "alternating"])
def test_chaotic_runs_moved_as_far_as_on_a_new_machine_pass(demo, signs):
    runs = demo[0].copy()
    chaotic = runs.index[runs["chaotic"]]
    shift = {"all up": 1, "all down": -1}.get(signs)
    steps = [shift or (-1) ** i for i in range(len(chaotic))]
    runs.loc[chaotic, "auroc"] += [NEW_MACHINE * step for step in steps]
    result = check(demo, runs)
    assert result.ok, result.report()


def test_a_deterministic_run_moved_by_a_thousandth_fails(demo):
    runs = demo[0].copy()
    row = runs.index[(runs["variant"] == "head_lrl") & (runs["cls"] == "0")][0]
    runs.loc[row, "auroc"] += 0.001
    result = check(demo, runs)
    assert not result.ok
    assert result.runs[["cls", "variant"]].values.tolist() == [["0", "head_lrl"]]
    assert result.runs["difference"].iloc[0] == pytest.approx(0.001)


def test_pixel_metrics_are_compared_run_by_run_where_runs_localize(demo):
    expected = demo[0].copy()
    localizing = expected.index[expected["variant"] == "head_lrl"]
    expected.loc[localizing, "aupro"] = 0.5  # the other runs hold none (NaN)
    actual = expected.copy()
    assert verify(expected, actual).ok
    actual.loc[localizing[0], "aupro"] += 0.001
    result = verify(expected, actual)
    assert result.runs[["variant", "metric"]].values.tolist() == [["head_lrl", "aupro"]]
    assert "aupro" in result.summary
    actual.loc[localizing[0], "aupro"] = float("nan")  # a localizing run lost its maps
    assert not verify(expected, actual).ok


def test_a_cap_seed_mean_shifted_by_a_hundredth_on_one_class_fails(demo):
    runs = demo[0].copy()
    seeds = (runs["variant"] == "cap") & (runs["cls"] == "1") & (runs["dataset"] == "cifar10")
    assert seeds.sum() == 3
    runs.loc[seeds, "auroc"] += 0.01
    result = check(demo, runs)
    assert not result.ok
    assert sorted(result.runs["seed"]) == [0, 1, 2]


def test_a_chaotic_seed_mean_beyond_its_bound_fails(demo):
    """The bound (4 pooled seed stds of the mean difference) is about 0.02 here: a real
    change of 0.03 on one class is caught."""
    runs = demo[0].copy()
    group = runs["chaotic"] & (runs["cls"] == "2")
    runs.loc[group, "auroc"] += 0.03
    result = check(demo, runs)
    assert not result.ok
    assert result.groups[["cls", "variant"]].values.tolist() == [["2", "lam0"]]
    assert 0.015 < result.groups["bound"].iloc[0] < 0.03


def test_a_changed_verdict_fails(demo):
    claims = demo[1].copy()
    judged = claims.index[claims["verdict"] == "inconclusive"][0]
    claims.loc[judged, "verdict"] = "holds"
    result = check(demo, claims=claims)
    assert not result.ok
    assert result.verdicts["verdict_actual"].tolist() == ["holds"]


def test_a_missing_or_extra_run_fails(demo):
    runs = demo[0]
    for chaotic in (True, False):
        dropped = runs.drop(runs.index[runs["chaotic"] == chaotic][0])
        assert not check(demo, dropped).ok
    extra = pd.concat([runs, runs.iloc[[0]].assign(seed=7)])
    assert not check(demo, extra).ok


def test_a_single_seeded_chaotic_variant_cannot_be_verified(demo):
    runs = demo[0]
    single = runs[~runs["chaotic"] | (runs["seed"] == 0)]
    result = verify(single, single)
    assert not result.ok  # no spread over seeds to bound its mean by
    assert result.groups["bound"].isna().all()


def test_a_slice_compares_only_its_runs(demo):
    runs = demo[0]
    baselines = runs[runs["method"].isin(["dn2", "no_adaptation"])]
    assert verify(runs, baselines, subset=True).ok
    moved = baselines.assign(auroc=baselines["auroc"] + 0.001)
    assert not verify(runs, moved, subset=True).ok
    assert not verify(runs, baselines).ok  # without --subset the rest is missing


def test_cli_exit_status_and_message(demo, tmp_path, capsys):
    runs, claims = demo
    moved = runs.copy()
    moved.loc[moved.index[0], "auroc"] += 0.001
    folder = tmp_path / "tables"
    folder.mkdir()
    write_runs_table(folder / "runs.csv", moved)
    write_claims(folder / "claims.csv", claims)
    assert cap_main(["verify", str(DEMO), str(DEMO)]) == 0
    assert cap_main(["verify", str(DEMO), str(folder)]) == 2
    assert "runs beyond the tolerance" in capsys.readouterr().err
    write_runs_table(folder / "runs.csv", runs.drop(columns="chaotic"))
    assert cap_main(["verify", str(folder), str(DEMO)]) == 2  # an old table: regenerate


@pytest.mark.parametrize(
    ("write", "said"),
    [
        (lambda path, runs: path.write_text(""), "runs.csv is not a runs table"),
        (
            lambda path, runs: write_runs_table(path, runs.rename(columns={"auroc": "AUROC"})),
            "runs.csv is not a runs table: it has no column(s) auroc",
        ),
        (lambda path, runs: write_runs_table(path, runs.iloc[:0]), "runs.csv is an empty runs"),
    ],
    ids=["empty-file", "renamed-column", "no-rows"],
)
def test_a_malformed_table_is_a_one_line_error(demo, tmp_path, capsys, write, said):
    folder = tmp_path / "tables"
    folder.mkdir()
    write(folder / "runs.csv", demo[0])
    assert cap_main(["verify", str(DEMO), str(folder)]) == 2
    error = capsys.readouterr().err.strip()
    assert said in error and len(error.splitlines()) == 1, error


def test_verdicts_that_cannot_be_compared_fail_unless_allowed(demo, tmp_path, capsys):
    folder = tmp_path / "tables"
    folder.mkdir()
    write_runs_table(folder / "runs.csv", demo[0])  # no claims.csv beside it
    assert cap_main(["verify", str(DEMO), str(folder)]) == 2
    assert "has no claims.csv" in capsys.readouterr().err
    assert cap_main(["verify", "--no-claims", str(DEMO), str(folder)]) == 0
    assert verify(*[demo[0]] * 2).summary.endswith("claims: none compared")


def test_a_config_without_claims_verifies_with_its_empty_claims_table(demo, tmp_path, capsys):
    runs, claims = demo
    expected, actual = tmp_path / "expected", tmp_path / "actual"
    for folder in (expected, actual):
        folder.mkdir()
        write_runs_table(folder / "runs.csv", runs)
    write_claims(actual / "claims.csv", claims.iloc[:0])  # the claims rule judged none
    assert cap_main(["verify", str(expected), str(actual)]) == 0
    write_claims(expected / "claims.csv", claims)  # verdicts expected: none to compare with
    assert cap_main(["verify", str(expected), str(actual)]) == 2
    assert "verdict" in capsys.readouterr().err


def write_table(folder, runs):
    """``runs`` as ``folder``/runs.csv (no claims.csv beside it)."""
    folder.mkdir(exist_ok=True)
    write_runs_table(folder / "runs.csv", runs)
    return folder


def localizing(runs):
    """``runs`` where the head_lrl runs localize (an AUPRO) and the others hold none."""
    return runs.assign(aupro=runs["auroc"].where(runs["variant"] == "head_lrl"))


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("auroc", "abc", "'abc' is not a number"),
        ("aupro", "abc", "'abc' is not a number"),
        ("seed", "x", "'x' is not an integer"),
        ("seed", "1.5", "'1.5' is not an integer"),
        ("dataset", None, "an empty cell is not a name"),
        ("variant", None, "an empty cell is not a name"),
        ("chaotic", "maybe", "'maybe' is not a boolean"),
    ],
)
def test_a_bad_cell_is_a_one_line_error_naming_file_line_and_column(
    demo, tmp_path, capsys, column, value, said
):
    runs = localizing(demo[0])
    bad = runs.astype({column: object})
    bad.loc[5, column] = value  # line 7 of the file: the header is line 1
    good = write_table(tmp_path / "good", runs)
    table = write_table(tmp_path / "bad", bad)
    for expected, actual in ((good, table), (table, good)):
        assert cap_main(["verify", "--no-claims", str(expected), str(actual)]) == 2
        error = capsys.readouterr().err.strip()
        assert error == f"cap verify: error: {table / 'runs.csv'}, line 7, column {column}: {said}"


def test_empty_pixel_metrics_of_runs_that_do_not_localize_pass(demo, tmp_path):
    table = write_table(tmp_path / "tables", localizing(demo[0]))
    assert read_tables(table)[0]["aupro"].isna().any()
    assert cap_main(["verify", "--no-claims", str(table), str(table)]) == 0


def test_chaotic_as_text_is_refused_not_read_as_true(demo):
    runs = demo[0]
    assert read_tables(DEMO)[0]["chaotic"].dtype == bool
    with pytest.raises(DataError, match="'chaotic' column holds"):
        verify(runs.assign(chaotic=runs["chaotic"].astype(str)), runs)  # "False" is truthy


@pytest.mark.parametrize("option", ["--tolerance", "--z"])
@pytest.mark.parametrize("value", ["nan", "inf", "-0.001", "abc"])
def test_a_bound_that_is_not_a_finite_number_at_least_zero_is_refused(capsys, option, value):
    with pytest.raises(SystemExit) as raised:
        cap_main(["verify", option, value, str(DEMO), str(DEMO)])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}: '{value}' is not a finite number ≥ 0" in error
    assert "Traceback" not in error


@pytest.mark.parametrize("bound", ["tolerance", "z"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_verify_refuses_a_bound_that_is_not_a_finite_number_at_least_zero(demo, bound, value):
    with pytest.raises(ConfigError, match=f"{bound} must be a finite number"):
        check(demo, **{bound: value})


def test_a_nan_tolerance_passes_no_run(demo):
    runs = demo[0][~demo[0]["chaotic"]]
    assert len(compare_runs(runs, runs, tolerance=float("nan"))) == len(runs)
