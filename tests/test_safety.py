"""A config is shared like code: its names cannot run a command or write outside
``results/``, a hand-edited job spec is refused, settings are checked at planning, a
deleted output is made again and a changed dataset re-embeds."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from assets import needs_offline_assets
from data_fixtures import make_image_folder, write_image
from workflow_helpers import smoke_config, snakemake, validated, write_config

from cap.cli import main as cap_main
from cap.evaluation import jobs
from cap.utils.errors import ConfigError
from cap.utils.io import DIGEST_FIELD
from cap.workflow import Plan, Steps, registry
from cap.workflow.names import UnsafeNameError

REPO = Path(__file__).resolve().parents[1]
INJECTION = "r$(touch PWNED)"


def rename(section: str, old: str, new: str):
    """An edit renaming entry ``old`` of ``config[section]`` to ``new``, everywhere it is
    referred to by name."""

    def edit(config: dict) -> None:
        renamed = json.loads(json.dumps(config).replace(f'"{old}"', json.dumps(new)))
        config.clear()
        config.update(renamed)
        assert new in config[section]

    return edit


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (rename("resources", "mobilenet-v2", INJECTION), "resources.r$(touch PWNED)"),
        (rename("backbones", "mobilenet_v2", INJECTION), "backbones.r$(touch PWNED)"),
        (rename("datasets", "cifar10", "cifar 10"), "datasets.cifar 10"),
        (rename("datasets", "cifar10", "../../../ESCAPED"), "datasets.../../../ESCAPED"),
        (rename("tables", "table1", "../../../T_ESC"), "tables.../../../T_ESC"),
        (rename("variants", "k4", ".hidden"), "variants..hidden"),
        (lambda c: c["resources"]["cifar10-jpg"].update(file="../x.zip"), "cifar10-jpg.file"),
        (lambda c: c["datasets"]["cifar10"]["classes"].append("a/b"), "datasets.cifar10.classes"),
    ],
    ids=[
        "resource-injection",
        "backbone-injection",
        "space",
        "dataset-traversal",
        "table-traversal",
        "hidden",
        "file-traversal",
        "category-slash",
    ],
)
def test_an_unsafe_name_is_refused_at_planning_naming_its_key(edit, key):
    config = smoke_config()
    edit(config)
    with pytest.raises(UnsafeNameError, match=re.escape(key) + ".*not a safe name"):
        Plan(validated(config))


@pytest.mark.parametrize("name", ["cifar10", "mobilenet_v2", "lam0.1", "k-4", "A.B_c-1"])
def test_ordinary_names_are_safe(name):
    config = smoke_config()
    rename("variants", "k4", name)(config)
    Plan(validated(config))


def test_a_planted_command_runs_nowhere_and_nothing_leaves_results(tmp_path):
    """The injected resource name of a shared config stops the run at planning: no job,
    no file outside the working directory, the command never runs."""
    workdir = tmp_path / "a" / "b" / "c" / "work"
    workdir.mkdir(parents=True)
    config = smoke_config()
    rename("resources", "mobilenet-v2", INJECTION)(config)
    path = write_config(tmp_path / "shared.yaml", config)
    result = snakemake(workdir, "--cores", "1", "all", "--configfile", str(path))
    assert result.returncode != 0
    assert "resources.r$(touch PWNED): 'r$(touch PWNED)' is not a safe name" in result.stderr
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p == Path("shared.yaml") or p.parts[:4] == ("a", "b", "c", "work") for p in written)


#: A module that leaves a mark where it is imported (the F1 payloads' evil.py).
EVIL_MODULE = "from pathlib import Path\nPath('EXECUTED').write_text('')\n"


@pytest.mark.parametrize("on_pythonpath", [False, True], ids=["plain", "project-on-pythonpath"])
@pytest.mark.parametrize(
    ("package", "message"),
    [
        ("this.x/foo.tflite", "is not of type 'object'"),  # the old form: an import name
        ({"distribution": "this.x", "path": "foo.tflite"}, "'this.x' is not an installed"),
        (
            {"distribution": "resources.evil.evil.x", "path": "m.tflite"},
            "'resources.evil.evil.x' is not an installed",
        ),
        ("resources.evil.evil.x/m.tflite", "is not of type 'object'"),
    ],
    ids=["this-string", "this", "linked-module", "linked-module-string"],
)
def test_a_package_resource_imports_nothing(tmp_path, package, message, on_pythonpath):
    """F1: a resource's ``package`` names a distribution and a file it ships, looked up in
    its file list: neither the standard library's ``this`` (which prints the Zen of Python
    when imported) nor a module that a resource linked into resources/ runs at planning."""
    workdir = tmp_path / "work"
    (workdir / "resources" / "evil").mkdir(parents=True)
    (workdir / "resources" / "evil" / "evil.py").write_text(EVIL_MODULE)
    config = smoke_config()
    config["resources"]["weights"] = {"file": "m.tflite", "package": package}
    path = write_config(tmp_path / "shared.yaml", config)
    env = {**os.environ, "PYTHONPATH": str(workdir)} if on_pythonpath else None
    result = snakemake(workdir, "-n", "all", "--configfile", str(path), env=env)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert "Beautiful is better than ugly" not in result.stdout + result.stderr
    assert not list(tmp_path.rglob("EXECUTED"))


@pytest.mark.parametrize(
    ("paper_results", "message"),
    [
        ("/etc/passwd", "report.paper_results: '/etc/passwd' is outside the project"),
        ("../paper.yaml", "report.paper_results: '../paper.yaml' is outside the project"),
        ("absent.yaml", "report.paper_results: there is no file 'absent.yaml'"),
        ("notes.yaml", "report.paper_results: paper results .*notes.yaml: expected keys"),
    ],
)
def test_the_paper_results_file_is_read_at_planning_from_the_project_only(
    tmp_path, paper_results, message
):
    """F13: the paper's numbers come from a file of the project, checked before any job
    (not a traceback in the table job)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "paper.yaml").write_text((REPO / "config" / "paper_results.yaml").read_text())
    (workdir / "notes.yaml").write_text("a: 1\n")
    config = smoke_config()
    config["report"]["paper_results"] = paper_results
    path = write_config(tmp_path / "shared.yaml", config)
    result = snakemake(workdir, "-n", "all", "--configfile", str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and re.search(message, output), output[-2000:]
    assert "Traceback" not in output and "rule table" not in output


def shell_commands() -> list[tuple[str, str]]:
    """(rule file, command) of every ``shell:`` of the workflow."""
    commands = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for match in re.finditer(r'shell:\s*\n\s*"([^"]*)"', path.read_text()):
            commands.append((path.name, match.group(1)))
    return commands


def test_every_path_in_a_shell_command_is_quoted():
    """Even a name that escaped the check could not run: each path is quoted (``:q``);
    only numbers (``{threads}``) go in as they are."""
    commands = shell_commands()
    assert len(commands) == 5  # fetch, embed, neighbors, train, evaluate
    for rule_file, command in commands:
        for field in re.findall(r"\{([^}]*)\}", command):
            assert field == "threads" or field.endswith(":q"), (rule_file, field)


# ---------------------------------------------------------------- settings at planning


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["variants"]["k4"].update(lam=math.nan), r"variants.k4.lam is nan"),
        (lambda c: c["variants"]["k4"].update(lam=math.inf), r"variants.k4.lam is inf"),
        (lambda c: c["methods"]["cap"].update(lr=math.nan), r"methods.cap.lr is nan"),
        (
            lambda c: c["variants"]["dn2"].update(lam=2.0),
            r"variants.dn2.lam: 'lam' is not a setting of method 'dn2'",
        ),
        (
            lambda c: c["datasets"]["cifar10"].update(settings={"dn2": {"epochs": 3}}),
            r"datasets.cifar10.settings.dn2.epochs: 'epochs' is not a setting",
        ),
        (
            lambda c: c["variants"]["k4"].update(bank_size=4),
            r"variants.k4.bank_size = 4 .* variant 'k4' runs there with k = 4.*k \+ 1 = 5",
        ),
        (
            lambda c: c["datasets"]["cifar10"]["limit_per_class"].update(train=8),
            r"datasets.cifar10.limit_per_class.train = 8 .* k = 8",
        ),
    ],
    ids=[
        "nan-lambda",
        "inf-lambda",
        "nan-method-setting",
        "another-methods-setting",
        "dataset-setting-of-another-method",
        "bank-size-not-above-k",
        "limit-not-above-k",
    ],
)
def test_a_bad_setting_fails_at_planning_naming_it(edit, message):
    config = smoke_config()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        Plan(validated(config))


def test_clip_k_lets_a_small_bank_run():
    config = smoke_config()
    config["datasets"]["cifar10"].update(clip_k=True, limit_per_class={"train": 8})
    Plan(validated(config))


# -------------------------------------------------------------------- hand-edited specs


def evaluate_spec(plan: Plan) -> tuple[str, dict]:
    """The path and planned data of the first evaluate job."""
    batch = plan.batches[0]
    return batch.path(registry.spec_path("evaluate")), jobs.spec_data(
        Steps(plan).spec("evaluate", batch.wildcards())
    )


def edit_setting(path: Path, run: int, name: str, value: object) -> None:
    payload = json.loads(path.read_text())
    payload["runs"][run]["settings"][name] = value
    path.write_text(json.dumps(payload))


def test_a_spec_edited_by_hand_is_refused_where_it_is_read(tmp_path):
    plan = Plan(validated(smoke_config()))
    _, planned = evaluate_spec(plan)
    path = tmp_path / "evaluate.json"
    jobs.write_spec_data(path, planned)
    assert jobs.read_spec(jobs.EvaluateJob, path).runs[0].setting == planned["runs"][0]["setting"]
    edit_setting(path, 0, "k", 2)
    with pytest.raises(ConfigError, match="was changed after it was written"):
        jobs.read_spec(jobs.EvaluateJob, path)
    with pytest.raises(ConfigError, match=r"\(runs\[0\]\.settings\.k: 2 in the file, 8 in the"):
        jobs.check_unedited(path, planned)
    # without its sha256 (F2: edited, then its sha256 line deleted) it is refused too
    strip_digest(path)
    with pytest.raises(ConfigError, match="has no sha256"):
        jobs.read_spec(jobs.EvaluateJob, path)
    with pytest.raises(ConfigError, match=r"has no sha256.* \(runs\[0\]\.settings\.k: 2 in the"):
        jobs.check_unedited(path, planned)
    # one written with a fresh sha256 over edited settings: the run's content key tells
    payload = json.loads(path.read_text())
    jobs.write_spec_data(path, payload)
    job = jobs.read_spec(jobs.EvaluateJob, path)
    with pytest.raises(ConfigError, match=r"runs\[0\] is named setting .* but its method"):
        jobs.check_run_keys(job.runs, job.task, str(path))


def strip_digest(path: Path) -> None:
    payload = json.loads(path.read_text())
    del payload[DIGEST_FIELD]
    path.write_text(json.dumps(payload))


def test_the_workflow_stops_on_a_hand_edited_spec_naming_the_field(tmp_path):
    config = smoke_config()
    plan = Plan(validated(copy.deepcopy(config)))
    spec_path, planned = evaluate_spec(plan)
    run = next(i for i, r in enumerate(planned["runs"]) if r["method"] == "dn2")
    jobs.write_spec_data(tmp_path / spec_path, planned)
    path = write_config(tmp_path / "c.yaml", config)
    assert snakemake(tmp_path, "-n", "all", "--configfile", str(path)).returncode == 0
    edit_setting(tmp_path / spec_path, run, "k", 4)
    result = snakemake(tmp_path, "-n", "all", "--configfile", str(path))
    assert result.returncode != 0
    assert f"runs[{run}].settings.k: 4 in the file, 2 in the plan" in result.stdout + result.stderr
    strip_digest(tmp_path / spec_path)  # F2: the edit's traces removed with its sha256
    result = snakemake(tmp_path, "-n", "all", "--configfile", str(path))
    assert result.returncode != 0
    assert "has no sha256" in result.stdout + result.stderr


# ----------------------------------------------------------- deleted and stale inputs


@needs_offline_assets
def test_a_deleted_scores_file_is_made_again(smoke_run, tmp_path):
    reference, config, _ = smoke_run
    workdir = tmp_path / "copy"
    shutil.copytree(reference, workdir, symlinks=True)
    scores = next((workdir / "results" / "scores").rglob("*.csv.gz"))
    scores.unlink()
    result = snakemake(workdir, "-n", "all", "--configfile", str(config))
    assert result.returncode == 0
    assert str(scores.relative_to(workdir)) in result.stdout
    assert "rule evaluate:" in result.stdout


def test_images_or_weights_changed_in_a_linked_copy_change_the_embed_spec(tmp_path):
    images = make_image_folder(tmp_path / "images")
    weights = tmp_path / "model.tflite"
    weights.write_bytes(b"weights")
    config = smoke_config()
    config["resources"]["cifar10-jpg"].update(file="images", local=[str(images)])
    config["resources"]["mobilenet-v2"].update(local=[str(weights)])

    def inputs_version() -> str:
        plan = Plan(validated(copy.deepcopy(config)))
        return (
            Steps(plan)
            .spec(
                "embed",
                {
                    "dataset": "cifar10",
                    "backbone": "mobilenet_v2",
                    "subset": "all",
                    "split": "train",
                },
            )
            .inputs_version
        )

    versions = [inputs_version()]
    assert versions[0] == inputs_version()  # the same files: the same spec, nothing re-embeds
    write_image(images / "train" / "cat" / "99.png", seed=99)
    versions.append(inputs_version())
    weights.write_bytes(b"other weights")
    versions.append(inputs_version())
    assert len(set(versions)) == 3


#: A YTE template: Snakemake evaluates its ?-expression as Python when it loads the file.
TEMPLATE = "__use_yte__: true\nseeds: ?__import__('pathlib').Path('EVALUATED').touch() or [0]\n"


def test_cap_check_reads_a_shared_config_as_data_and_refuses_a_template(tmp_path, monkeypatch):
    """Snakemake loads --configfile files itself and evaluates a YTE template's
    expressions before the workflow runs: `cap check` reads the file as data first,
    evaluating nothing, and refuses the template; a plain config plans."""
    monkeypatch.chdir(tmp_path)
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    assert cap_main(["check", str(template)]) == 2
    assert not (tmp_path / "EVALUATED").exists()
    plain = write_config(tmp_path / "plain.yaml", smoke_config())
    assert cap_main(["check", str(plain)]) == 0
    bad = smoke_config()
    bad["seeds"] = [-1]
    assert cap_main(["check", str(write_config(tmp_path / "bad.yaml", bad))]) == 2


def test_a_run_from_a_template_stops_at_planning(tmp_path):
    """Once Snakemake has loaded (and evaluated) a template, the workflow refuses to go
    on from it, naming the key."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = tmp_path / "template.yaml"
    config.write_text(TEMPLATE.replace("EVALUATED", str(tmp_path / "EVALUATED")) + "\n")
    with config.open("a") as handle:
        handle.write(yaml.safe_dump({k: v for k, v in smoke_config().items() if k != "seeds"}))
    result = snakemake(workdir, "-n", "all", "--configfile", str(config))
    assert result.returncode != 0
    assert "sets __use_yte__" in result.stdout + result.stderr
