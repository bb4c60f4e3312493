"""The planning package: variant resolution and content keys, runs per target, batches,
each job's typed spec, and the config's cross-references."""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_helpers import SCHEMA, validated

from cap.evaluation import jobs
from cap.reporting.tables import TABLE_SUFFIXES
from cap.utils.errors import ConfigError
from cap.workflow import Batch, ConfigReferenceError, Plan, Run, Steps, layout, registry
from cap.workflow.figures import FIGURE_KINDS
from cap.workflow.variants import detector_defaults

REPO = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    """A repository config, validated (defaults filled) as the workflow does."""
    return validated(yaml.safe_load((REPO / name).read_text()))


@pytest.fixture(scope="module")
def paper_config() -> dict:
    return load("config/config.yaml")


@pytest.fixture(scope="module")
def paper_plan(paper_config) -> Plan:
    return Plan(paper_config)


#: The wildcards of the paper config's embedding of MVTec AD bottle's test split.
MVTEC_BOTTLE_TEST = {
    "dataset": "mvtec",
    "backbone": "wide_resnet50_2",
    "subset": "bottle",
    "split": "test",
}


def figure_job(
    plan: Plan, kind: str, wildcards: dict[str, str], what: str = "params"
) -> dict[str, Any]:
    """The params (or inputs) of the job of the ``kind`` figure behind ``wildcards``."""
    planned = getattr(FIGURE_KINDS[kind], what)
    return dict(planned(Steps(plan), plan.targets.find_figure(kind, wildcards)))


def key(plan: Plan, dataset: str, variant: str) -> str:
    return plan.variants.setting(dataset, variant).key


def run(plan: Plan, dataset: str, cls: str, variant: str, seed: int = 0) -> Run:
    setting = plan.variants.setting(dataset, variant)
    return Run(dataset, plan.backbone_of(dataset), cls, setting.bank, setting.key, seed)


# ------------------------------------------------------------------------- variants


def test_variant_resolution_layers_detector_method_dataset_and_variant(paper_plan):
    settings = paper_plan.variants.setting("cifar10", "k4").settings
    assert settings["k"] == 4 and settings["lam"] == 2.0
    assert settings["matmul_precision"] == "highest"  # the detector's own default
    assert "seed" not in settings  # the run's, not the setting's
    # MVTec's settings override the method's defaults, a variant's override MVTec's
    mvtec = paper_plan.variants.setting("mvtec", "cap").settings
    assert (mvtec["k"], mvtec["lam"], mvtec["batch_size"], mvtec["lr"]) == (4, 0.1, 16, 1e-4)
    assert paper_plan.variants.setting("mvtec", "k64").settings["lam"] == 0.1


def test_variants_with_the_same_settings_share_one_key_and_the_first_name(paper_plan):
    variants = paper_plan.variants
    assert key(paper_plan, "cifar10", "k32") == key(paper_plan, "cifar10", "cap")
    assert key(paper_plan, "cifar10", "lam2") == key(paper_plan, "cifar10", "cap")
    assert key(paper_plan, "mvtec", "k4") == key(paper_plan, "mvtec", "cap")  # K=4 is MVTec's
    assert key(paper_plan, "mvtec", "k32") != key(paper_plan, "mvtec", "cap")
    assert variants.label("cifar10", key(paper_plan, "cifar10", "k32")) == "cap"
    assert key(paper_plan, "cifar10", "cap").startswith("cap-")


def test_a_key_depends_on_what_runs_compute_not_on_how_the_config_says_it(paper_config):
    """Settings stated or left at the detector's default, in any key order, under any
    variant name: one key. Another value or bank: another key."""
    base = Plan(paper_config)
    config = copy.deepcopy(paper_config)
    # every default of the detector stated, in reverse order
    config["methods"]["cap"] = dict(reversed(list(detector_defaults("cap").items())))
    config["variants"] = {"zz_renamed": {"method": "cap"}, **config["variants"]}
    again = Plan(yaml.safe_load(yaml.safe_dump(config, sort_keys=True)))
    assert key(again, "cifar10", "zz_renamed") == key(base, "cifar10", "cap")
    assert again.variants.label("cifar10", key(base, "cifar10", "cap")) == "cap"  # sorted first
    config["variants"]["n200"] = {"method": "cap", "bank_size": 200}
    other = Plan(config)
    assert key(other, "cifar10", "n200") != key(base, "cifar10", "cap")
    assert key(other, "cifar10", "lam1") != key(base, "cifar10", "cap")


def test_seeds_apply_to_trainable_methods_only(paper_config):
    config = copy.deepcopy(paper_config)
    config["seeds"] = [3, 1, 2]
    plan = Plan(config)
    assert plan.variants.seeds_of("cifar10", key(plan, "cifar10", "cap")) == [1, 2, 3]
    assert plan.variants.seeds_of("cifar10", key(plan, "cifar10", "no_adaptation")) == [1]
    runs = plan.targets.variant_runs("cifar10", "k4", classes=["0"])
    assert [r.seed for r in runs] == [1, 2, 3]


def test_a_variant_may_run_more_seeds_and_shares_them_with_its_equals(paper_config):
    config = copy.deepcopy(paper_config)
    config["seeds"] = [0]
    config["variants"]["k32"]["seeds"] = [2, 0, 1]  # K=32 is CIFAR's default CAP run
    config["variants"]["no_adaptation"]["seeds"] = [0, 1, 2]  # deterministic: once
    plan = Plan(config)
    seeds = plan.variants.seeds_of
    assert seeds("cifar10", key(plan, "cifar10", "cap")) == [0, 1, 2]
    assert seeds("mvtec", key(plan, "mvtec", "cap")) == [0]
    assert seeds("mvtec", key(plan, "mvtec", "k32")) == [0, 1, 2]
    assert seeds("cifar10", key(plan, "cifar10", "no_adaptation")) == [0]


# ------------------------------------------------------------------- targets and runs


def test_a_table_needs_its_variants_on_its_datasets(paper_plan):
    runs = paper_plan.targets.table_runs("table3")
    assert {r.dataset for r in runs} == {"cifar10", "cifar100", "mvtec"}
    labels = {
        d: {paper_plan.variants.label(d, r.setting) for r in runs if r.dataset == d}
        for d in ("cifar10", "mvtec")
    }
    assert labels["cifar10"] == {"k1", "k4", "k8", "k16", "cap", "k64"}
    assert labels["mvtec"] == {"k1", "cap", "k8", "k16", "k32", "k64"}
    assert len(runs) == 3 * (6 * 10 + 6 * 20 + 6 * 15)  # 3 seeds


def test_figures_need_every_seed_of_their_variants_on_their_class(paper_config):
    config = copy.deepcopy(paper_config)
    config["seeds"] = [0, 1]
    plan = Plan(config)
    cap = run(plan, "cifar10", "1", "cap")
    assert plan.targets.runs("fig_attention") == [cap, dataclasses.replace(cap, seed=1)]
    attention = {"dataset": "cifar10", "backbone": "resnet152", "cls": "1", "variant": "cap"}
    inputs = figure_job(plan, "attention", attention, "inputs")
    assert inputs["model"] == cap.path(layout.MODEL)  # its first seed's model
    curves = figure_job(
        plan, "score_curves", {"dataset": "cifar10", "backbone": "resnet152", "cls": "2"}
    )["curves"]
    assert [c["label"] for c in curves] == ["0", "0.1", "1", "2", "10", "100"]
    names = ["lam0", "lam0.1", "lam1", "cap", "lam10", "lam100"]
    assert [c["settings"] for c in curves] == [[key(plan, "cifar10", n)] for n in names]
    assert {seed for c in curves for seed in c["seeds"]} == {0, 1}
    curve_classes = {r.cls for r in plan.targets.runs("fig_score_curves") if r.dataset == "cifar10"}
    assert curve_classes == {"0", "2"}


def test_targets_cover_every_table_and_figure_kind(paper_plan):
    targets = paper_plan.targets
    assert targets.names() == [
        "table1", "table2", "table3", "table4",
        "fig_attention", "fig_score_curves", "fig_anomaly_maps",
        "fig_bank_curves", "fig_localization",  # none in the paper's config: empty targets
    ]  # fmt: skip
    assert targets.outputs("fig_bank_curves") == targets.outputs("fig_localization") == []
    assert targets.outputs("table2") == [
        f"results/tables/table2{suffix}" for suffix in TABLE_SUFFIXES.values()
    ]
    assert "results/figures/anomaly_maps/mvtec/wide_resnet50_2/bottle/cap.pdf" in targets.outputs(
        "fig_anomaly_maps"
    )


def test_table_spec_names_each_entry_by_its_runs_label(paper_config):
    config = copy.deepcopy(paper_config)
    config["tables"]["k_ablation"] = config["tables"].pop("table3")
    spec = Plan(config).targets.table_spec("k_ablation")
    assert spec["name"] == "k_ablation" and spec["paper_key"] == "table3"
    assert spec["entries"][4] == {
        "label": "32",
        "variants": {"cifar10": "cap", "cifar100": "cap", "mvtec": "k32"},
    }


def test_k_max_is_the_largest_k_a_bank_needs(paper_plan):
    assert paper_plan.k_max("cifar10") == 64
    assert paper_plan.k_max("fmnist") == 32  # only Table 1 (K=32 CAP, no adaptation)


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("config/config.yaml", {"cap": 1410, "dn2": 55, "no_adaptation": 55}),
        ("config/demo.yaml", {"cap": 81, "dn2": 8, "no_adaptation": 8}),
        ("config/study.yaml", {"cap": 138, "dn2": 26, "no_adaptation": 26}),
    ],
)
def test_each_config_plans_the_runs_it_planned_before_the_content_keys(name, counts):
    """The runs per method that the plan of variant names made (commit e66c686)."""
    plan = Plan(load(name))
    assert Counter(plan.setting_of(run).method for run in plan.all_runs) == counts


# -------------------------------------------------------------------------- batches


def test_a_batch_is_every_run_of_one_class_and_bank(paper_plan):
    assert len(paper_plan.batches) == 10 + 20 + 10 + 15  # one per class
    batch = Batch("cifar10", "resnet152", "3", "all")
    labels = {paper_plan.variants.label("cifar10", r.setting) for r in paper_plan.batch_runs(batch)}
    assert labels == {
        "cap", "no_adaptation", "dn2", "head_lrl", "head_lr", "no_attention",
        "k1", "k4", "k8", "k16", "k64", "lam0", "lam0.1", "lam1", "lam10", "lam100",
    }  # fmt: skip
    assert batch.path(layout.RECORDS) == "results/runs/cifar10/resnet152/3/all.json"
    batched = [r for b in paper_plan.batches for r in paper_plan.batch_runs(b)]
    assert sorted(batched) == paper_plan.all_runs  # a partition
    assert paper_plan.batch_trains(batch)


def test_bank_sizes_get_their_own_neighbours_batches_and_runs(paper_config):
    config = copy.deepcopy(paper_config)
    config["variants"]["cap_n200"] = {"method": "cap", "bank_size": 200}
    config["variants"]["na_n200"] = {"method": "no_adaptation", "bank_size": 200}
    config["tables"]["sizes"] = {
        "title": "bank size",
        "layout": "variants_as_rows",
        "datasets": ["cifar10"],
        "classes": {"cifar10": [0, 3]},
        "entries": [
            {"label": "CAP 200", "variant": "cap_n200"},
            {"label": "NA 200", "variant": "na_n200"},
        ],
    }
    validated(config)
    plan = Plan(config)
    assert plan.variants.setting("cifar10", "cap_n200").bank == "200"
    assert {r.cls for r in plan.targets.table_runs("sizes")} == {"0", "3"}
    batch = plan.batch_of(run(plan, "cifar10", "3", "cap_n200"))
    assert batch == Batch("cifar10", "resnet152", "3", "200")
    assert {plan.setting_of(r).method for r in plan.batch_runs(batch)} == {"cap", "no_adaptation"}
    job = Steps(plan).spec("evaluate", batch.wildcards())
    assert job.task.bank_size == 200 and job.neighbors.endswith("/3/200.h5")
    assert plan.k_max("cifar10", "200") == 32
    bad = copy.deepcopy(config)
    bad["tables"]["sizes"]["classes"] = {"cifar10": [0, 11]}
    with pytest.raises(ConfigReferenceError, match="tables.sizes.classes.cifar10"):
        Plan(bad)


def test_bank_curves_need_every_size_of_every_method_on_their_classes(paper_config):
    config = copy.deepcopy(paper_config)
    config["variants"].update(
        {
            "cap_n200": {"method": "cap", "bank_size": 200},
            "na_n200": {"method": "no_adaptation", "bank_size": 200},
        }
    )
    config["figures"]["bank_curves"] = [{
        "name": "sizes", "dataset": "cifar10", "classes": [0, 8],
        "curves": [{"label": "CAP", "variants": ["cap_n200", "cap"]},
                   {"label": "NA", "variants": ["na_n200", "no_adaptation"]}],
    }]  # fmt: skip
    validated(config)
    plan = Plan(config)
    names = ("cap_n200", "cap", "na_n200", "no_adaptation")
    assert {(r.cls, r.setting) for r in plan.targets.runs("fig_bank_curves")} == {
        (c, key(plan, "cifar10", v)) for c in ("0", "8") for v in names
    }
    wildcards = {"dataset": "cifar10", "backbone": "resnet152", "name": "sizes"}
    assert figure_job(plan, "bank_curves", wildcards)["curves"][1] == {
        "label": "NA",
        "settings": [key(plan, "cifar10", "na_n200"), key(plan, "cifar10", "no_adaptation")],
        "seeds": [0],
    }
    assert "results/figures/bank_curves/cifar10/resnet152/sizes.png" in plan.targets.all_figures()


def test_models_are_kept_for_model_figures_or_on_request(paper_config):
    plan = Plan(paper_config)
    kept = {run(plan, "cifar10", "1", "cap"), run(plan, "mvtec", "bottle", "cap")}
    assert plan.kept_runs == kept
    assert {r.cls for r in plan.monitored_runs} == {"0", "2", "1"}
    assert all(r.dataset != "mvtec" for r in plan.monitored_runs)
    steps = Steps(plan)
    spec = steps.run_spec(run(plan, "cifar10", "1", "cap"))
    cap_key = key(plan, "cifar10", "cap")
    assert spec.model == f"results/models/cifar10/resnet152/1/all/{cap_key}/seed0.pt"
    assert not spec.monitor and steps.run_spec(run(plan, "cifar10", "0", "lam0")).monitor
    assert len(Plan({**copy.deepcopy(paper_config), "keep_models": True}).kept_runs) == 3 * 470


def test_an_entry_may_run_on_some_of_its_tables_datasets(paper_config):
    config = copy.deepcopy(paper_config)
    entries = config["tables"]["table1"]["entries"]
    position = next(i for i, entry in enumerate(entries) if entry["variant"] == "cap")
    entries[position]["datasets"] = ["cifar10"]  # CAP on CIFAR-10 only
    plan = Plan(config)
    methods = {(r.dataset, plan.setting_of(r).method) for r in plan.targets.table_runs("table1")}
    assert ("cifar10", "cap") in methods and ("fmnist", "cap") not in methods
    assert ("fmnist", "dn2") in methods
    entry = plan.targets.table_spec("table1")["entries"][position]
    assert entry == {"label": "CAP", "variants": {"cifar10": "cap"}}  # an empty cell elsewhere
    entries[position]["datasets"] = ["imagenet"]
    with pytest.raises(ConfigReferenceError, match="tables.table1.entries"):
        Plan(config)


def test_only_selects_datasets_and_methods_everywhere(paper_config):
    config = copy.deepcopy(paper_config)
    config["only"] = {"datasets": ["cifar10"], "methods": ["dn2", "no_adaptation"]}
    plan = Plan(config)
    assert {(r.dataset, plan.setting_of(r).method) for r in plan.all_runs} == {
        ("cifar10", "dn2"),
        ("cifar10", "no_adaptation"),
    }
    assert len(plan.batches) == 10 and not plan.kept_runs and not plan.monitored_runs
    assert plan.targets.all_figures() == []  # CAP's figures have nothing to draw
    assert plan.targets.table_outputs("table2")  # the tables are made, their cells empty
    config["only"] = {"methods": ["svdd"]}
    with pytest.raises(ConfigReferenceError, match="only.methods"):
        Plan(config)


# ---------------------------------------------------------------------------- specs


def test_an_evaluate_spec_carries_every_run_with_its_settings(paper_plan):
    steps = Steps(paper_plan)
    job = steps.spec("evaluate", Batch("mvtec", "wide_resnet50_2", "bottle", "all").wildcards())
    assert job.task.normal_class is None and job.task.backbone == "wide_resnet50_2"
    assert job.identity == jobs.Identity("mvtec", "wide_resnet50_2", "bottle")
    assert job.clip_k and job.cache == layout.RUN_CACHE
    caps = [spec for spec in job.runs if spec.setting == key(paper_plan, "mvtec", "cap")]
    assert [spec.seed for spec in caps] == [0, 1, 2]
    assert caps[0].model is not None and caps[1].model is None  # the figures draw seed 0
    assert caps[0].settings["k"] == 4 and caps[0].settings["lr_decay"] == 0.9
    assert steps.task(Batch("cifar10", "resnet152", "3", "all")).normal_class == 3
    cifar = Batch("cifar10", "resnet152", "0", "all")
    assert (
        not steps.spec("evaluate", cifar.wildcards()).clip_k
        and not steps.spec("neighbors", cifar.wildcards()).clip_k
    )
    assert steps.spec(
        "neighbors", Batch("mvtec", "wide_resnet50_2", "toothbrush", "all").wildcards()
    ).clip_k


def test_specs_round_trip_through_their_files(paper_plan, tmp_path):
    steps = Steps(paper_plan)
    cases = [
        (jobs.FetchJob, steps.spec("fetch", {"resource": "cifar10"})),
        (
            jobs.EmbedJob,
            steps.spec(
                "embed",
                MVTEC_BOTTLE_TEST,
            ),
        ),
        (
            jobs.NeighborsJob,
            steps.spec("neighbors", Batch("cifar10", "resnet152", "0", "all").wildcards()),
        ),
        (jobs.TrainJob, steps.spec("train", run(paper_plan, "cifar10", "1", "cap").wildcards())),
        (
            jobs.EvaluateJob,
            steps.spec("evaluate", Batch("cifar10", "resnet152", "0", "all").wildcards()),
        ),
    ]
    for kind, spec in cases:
        jobs.write_spec(tmp_path / "spec.json", spec)
        assert jobs.read_spec(kind, tmp_path / "spec.json") == spec


def test_a_spec_file_with_a_wrong_field_names_it(tmp_path):
    path = tmp_path / "spec.json"
    jobs.write_spec_data(path, {"destination": "x", "offline": "yes"})
    with pytest.raises(jobs.ConfigError, match=r"FetchJob.offline: expected true or false"):
        jobs.read_spec(jobs.FetchJob, path)
    jobs.write_spec_data(path, {"destination": "x", "mirror": "y"})
    with pytest.raises(jobs.ConfigError, match=r"no field\(s\) \['mirror'\]"):
        jobs.read_spec(jobs.FetchJob, path)
    jobs.write_spec_data(path, {})
    with pytest.raises(jobs.ConfigError, match=r"lacks field\(s\) \['destination'\]"):
        jobs.read_spec(jobs.FetchJob, path)


def test_embed_specs_follow_the_dataset_entry(paper_config):
    config = copy.deepcopy(paper_config)
    config["datasets"]["cifar10"]["preprocessing"] = "torchvision"
    steps = Steps(Plan(config))
    job = steps.spec(
        "embed", {"dataset": "cifar10", "backbone": "resnet152", "subset": "all", "split": "train"}
    )
    assert job.preprocessing == "torchvision" and job.category is None
    assert job.out == "results/embeddings/cifar10/resnet152/all/train.h5"
    assert (
        steps.spec(
            "embed",
            MVTEC_BOTTLE_TEST,
        ).category
        == "bottle"
    )


# ------------------------------------------------------------------ cross-references


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c["datasets"]["cifar10"].update(classes=[0, 1, 12]), "datasets.cifar10.classes"),
        (
            lambda c: c["datasets"]["mvtec"].update(classes=["bottle", "bottel"]),
            "datasets.mvtec.classes",
        ),
        (lambda c: c["datasets"]["fmnist"].update(classes=["shirt"]), "datasets.fmnist.classes"),
        (
            lambda c: c["tables"]["table2"]["entries"].append({"label": "x", "variant": "k3"}),
            "tables.table2.entries",
        ),
        (lambda c: c["figures"]["attention"][0].update(cls=12), "figures.attention[0].cls"),
        (
            lambda c: c["datasets"]["cifar10"].update(resource="cifar-ten"),
            "datasets.cifar10.resource",
        ),
        (
            lambda c: c["figures"]["attention"][0].update(variant="no_adaptation"),
            "figures.attention[0] draws a trained model of variant 'no_adaptation'",
        ),
        (
            lambda c: c["figures"]["score_curves"][0]["curves"][0].update(variant="dn2"),
            "figures.score_curves[0] draws a training history of variant 'dn2'",
        ),
        (
            lambda c: c["backbones"]["resnet152"]["options"].update(pooled_tensor="x"),
            "backbones.resnet152: model 'resnet152' has no option 'pooled_tensor'",
        ),
        (
            lambda c: c["tables"]["table1"].update(metric="aupr"),
            "tables.table1: the paper's table1 reports AUROC",
        ),
    ],
    ids=[
        "class-id-out-of-range",
        "unknown-category",
        "class-name-for-ids",
        "unknown-variant",
        "figure-class",
        "unknown-resource",
        "model-figure-of-a-baseline",
        "score-curve-of-a-baseline",
        "option-of-another-model",
        "paper-table-of-another-metric",
    ],
)
def test_bad_references_name_the_key(paper_config, edit, named):
    config = copy.deepcopy(paper_config)
    edit(config)
    with pytest.raises(ConfigReferenceError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Plan(config)


def test_image_folder_classes_pass_planning_for_the_split_to_check():
    config = load("config/demo.yaml")
    config["datasets"]["cifar10"]["classes"] = [0, 1, 2, 12]
    assert Plan(config).class_ids("cifar10") == ["0", "1", "2", "12"]  # its folders are unknown yet


@pytest.mark.parametrize(
    "name",
    ["runs", "claims", "leaderboard", "all", "table", "report", "embed", "spec_train", "fig_x"],
)
def test_a_table_may_not_take_the_name_of_an_output_or_a_rule(paper_config, name):
    config = copy.deepcopy(paper_config)
    config["tables"][name] = config["tables"]["table1"]
    with pytest.raises(ConfigError, match=f"tables.{name}: '{name}' is taken by the workflow"):
        Plan(config)


def test_the_reserved_names_follow_the_rules():
    """Derived from the registry: every rule (and its spec writer), and the files the
    once-rules write under results/tables/."""
    reserved = registry.reserved_table_names()
    assert {rule.name for rule in registry.RULES} <= reserved
    assert {"all", "runs", "claims", "leaderboard", "spec_evaluate"} <= reserved


def test_the_schema_takes_its_names_from_the_registries():
    from cap.backbones import BACKBONES, backbone_options
    from cap.data import DATASETS
    from cap.data.transforms import PREPROCESSINGS
    from cap.workflow.schema import config_schema

    properties = config_schema()["properties"]  # detectors: test_settings
    backbone = properties["backbones"]["additionalProperties"]["properties"]
    # every backbone option the schema allows is one some model takes, and vice versa (but
    # those the workflow sets itself: from the dataset, the backbone's own keys, the cores,
    # where the ONNX exports are kept)
    taken = {option for model in BACKBONES for option in backbone_options(model)}
    own = {"offline", "bf16", "preprocessing", "num_threads", "export_cache"}
    assert set(backbone["options"]["properties"]) == taken - own
    dataset = properties["datasets"]["additionalProperties"]["properties"]
    assert set(dataset["source"]["enum"]) == set(DATASETS)
    assert set(dataset["preprocessing"]["enum"]) == set(PREPROCESSINGS)


def test_an_empty_patch_layer_is_refused_by_the_schema(paper_config):
    """An empty module name would be the whole network, which no patch method can read."""
    config = copy.deepcopy(paper_config)
    config["backbones"]["resnet152"]["options"]["patch_layers"] = ["layer2", ""]
    with pytest.raises(ConfigError, match=r"patch_layers\.1: '' should be non-empty"):
        validated(config)


def test_every_schema_property_is_described():
    schema = yaml.safe_load(SCHEMA.read_text())
    undescribed = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, child in node.get("properties", {}).items():
                if isinstance(child, dict) and "description" not in child:
                    undescribed.append(f"{where}.{name}")
            for name, child in node.items():
                walk(child, f"{where}.{name}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{where}[{index}]")

    walk(schema, "")
    assert not undescribed, undescribed


def test_the_schemas_defaults_are_the_specs_and_the_code():
    """A default stated in the schema and in a job spec's field of the same name (or the
    code's constant) is one fact: the two must agree."""
    from cap.data.transforms import DEFAULT_PREPROCESSING

    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    entries = {
        jobs.EmbedJob: [
            schema["datasets"]["additionalProperties"]["properties"],
            schema["backbones"]["additionalProperties"]["properties"],
        ],
        jobs.NeighborsJob: [schema["datasets"]["additionalProperties"]["properties"]],
        jobs.FetchJob: [schema["resources"]["additionalProperties"]["properties"], schema],
    }
    compared = 0
    for spec, sections in entries.items():
        defaults = {f.name: f.default for f in dataclasses.fields(spec)}
        for section in sections:
            for name, prop in section.items():
                if name in defaults and not isinstance(prop.get("default", []), list | dict):
                    assert prop["default"] == defaults[name], (spec.__name__, name)
                    compared += 1
    assert compared >= 8
    assert jobs.EmbedJob.preprocessing == DEFAULT_PREPROCESSING


# ---------------------------------------------------------------- datasets with masks


@pytest.fixture(scope="module")
def industrial_config() -> dict:
    return load("config/industrial.yaml")


def test_a_dataset_with_masks_is_localized_and_keeps_patches_only_where_read(
    industrial_config, paper_config
):
    plan, steps = Plan(industrial_config), Steps(Plan(industrial_config))
    batch = Batch("tire_mnv2", "mobilenet_v2", "tire", "all")
    assert (
        steps.spec("evaluate", batch.wildcards()).maps
        == "results/maps/tire_mnv2/mobilenet_v2/tire/all.npz"
    )
    assert steps.spec(
        "embed",
        {"dataset": "tire_mnv2", "backbone": "mobilenet_v2", "subset": "tire", "split": "train"},
    ).patch_maps
    assert plan.localized_datasets_pattern() == "tire_lite0|tire_mnv2"
    without_patchcore = copy.deepcopy(industrial_config)
    without_patchcore["only"] = {"methods": ["cap", "dn2"]}
    assert (
        not Steps(Plan(without_patchcore))
        .spec(
            "embed",
            {"dataset": "tire_mnv2", "backbone": "mobilenet_v2", "subset": "tire", "split": "test"},
        )
        .patch_maps
    )
    cifar = Steps(Plan(paper_config))
    assert (
        cifar.spec("evaluate", Batch("cifar10", "resnet152", "0", "all").wildcards()).maps is None
    )
    assert not cifar.spec(
        "embed", {"dataset": "cifar10", "backbone": "resnet152", "subset": "all", "split": "test"}
    ).patch_maps
    assert Plan(paper_config).localized_datasets_pattern() == "mvtec"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda c: c["figures"]["localization"][0].update(variants=["dn2"]),
            "figures.localization[0] draws the anomaly maps of variant 'dn2'",
        ),
        (
            lambda c: c["figures"]["localization"][0].update(variants=["cap", "patchcor"]),
            "figures.localization[0].variant",
        ),
    ],
    ids=["method-without-maps", "unknown-variant"],
)
def test_a_localization_figure_draws_methods_that_localize(industrial_config, edit, named):
    config = copy.deepcopy(industrial_config)
    edit(config)
    with pytest.raises(ConfigReferenceError, match=named.replace("[", r"\[").replace("]", r"\]")):
        Plan(config)


def test_a_localization_figure_needs_a_dataset_with_masks(paper_config):
    config = copy.deepcopy(paper_config)
    config["figures"]["localization"] = [
        {"dataset": "cifar10", "cls": "0", "variants": ["cap"], "n_per_type": 1, "title": ""}
    ]
    with pytest.raises(ConfigReferenceError, match="dataset 'cifar10' .cifar10. has none"):
        Plan(config)


def test_the_bootstrap_covers_the_categories_when_asked(industrial_config):
    assert "bootstrap" in {rule.name for rule in Plan(industrial_config).final_rules()}
    config = copy.deepcopy(industrial_config)
    config["report"]["bootstrap"] = 0
    assert layout.BOOTSTRAP["md"] not in Plan(config).final_outputs()


def test_only_narrows_every_target_to_what_it_runs(industrial_config, paper_config):
    """Item 8 of issue 29: a figure draws the methods ``only`` keeps, and a table, figure,
    claim or once-rule left without runs is dropped from ``all``, never failed."""
    config = copy.deepcopy(industrial_config)
    config["only"] = {"datasets": ["tire_lite0"], "methods": ["patchcore", "no_adaptation"]}
    plan = Plan(config)
    (figure,) = plan.targets.figures["localization"]
    wildcards = {"dataset": "tire_lite0", "backbone": "efficientnet_lite0", "cls": "tire"}
    assert set(figure_job(plan, "localization", wildcards)["columns"]) == {
        "patchcore",
        "no_adaptation",
    }
    assert figure.dataset == "tire_lite0" and "cap" not in figure.variants
    config["only"] = {"datasets": ["tire_lite0"], "methods": ["dn2"]}  # draws no map
    plan = Plan(config)
    assert plan.targets.figures["localization"] == ()
    assert not [path for path in plan.final_outputs() if "figures/localization" in path]
    plan = Plan({**paper_config, "only": {"methods": ["dn2"]}})  # CAP's tables, figures go
    assert set(plan.targets.tables) == {"table1"}
    assert all(not figures for figures in plan.targets.figures.values())
    assert set(plan.claims_job().paper_tables) == {"table1"}
    outputs = plan.final_outputs()
    assert layout.table_files("table3")["csv"] not in outputs
    assert layout.table_files("table1")["csv"] in outputs
    study = Plan({**load("config/study.yaml"), "only": {"methods": ["no_adaptation"]}})
    (figure,) = study.targets.figures["bank_curves"]
    assert [curve.label for curve in figure.curves] == ["no adaptation"]


def test_an_unknown_backbone_model_is_refused_naming_its_key(paper_config):
    config = copy.deepcopy(paper_config)
    config["backbones"]["resnet152"]["model"] = "resnet9000"
    with pytest.raises(
        ConfigReferenceError, match=r"backbones\.resnet152\.model refers to 'resnet9000'"
    ):
        Plan(config)


def test_a_table_metric_that_no_run_measures_is_refused_naming_its_key(paper_config):
    config = copy.deepcopy(paper_config)
    config["tables"]["table1"]["metric"] = "accuracy"
    with pytest.raises(ConfigReferenceError, match=r"tables\.table1\.metric refers to 'accuracy'"):
        Plan(config)


def test_a_datasets_seeds_replace_the_configs_there_only(paper_config):
    config = copy.deepcopy(paper_config)
    config["datasets"]["cifar100"]["seeds"] = [3, 4]
    plan = Plan(validated(config))
    cap = key(plan, "cifar100", "cap")
    assert plan.variants.seeds_of("cifar100", cap) == [3, 4]
    assert plan.variants.seeds_of("cifar10", key(plan, "cifar10", "cap")) == config["seeds"]
    assert plan.variants.seeds_of("cifar100", key(plan, "cifar100", "dn2")) == [0]  # untrained


def test_a_dataset_on_an_unknown_backbone_is_refused_naming_its_key(paper_config):
    config = copy.deepcopy(paper_config)
    config["datasets"]["fmnist"]["backbone"] = "vit"
    with pytest.raises(ConfigReferenceError, match=r"datasets\.fmnist\.backbone refers to 'vit'"):
        Plan(config)


def test_a_concordance_needs_two_backbones_left_by_only():
    config = load("config/backbones.yaml")
    assert "concordance" in {rule.name for rule in Plan(config).final_rules()}
    config["only"] = {"datasets": ["cifar10_mnv1"], "methods": ["dn2", "no_adaptation"]}
    assert "concordance" not in {rule.name for rule in Plan(config).final_rules()}
