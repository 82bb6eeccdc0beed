"""One declaration per config: the CLI flags, the form, the recipe and the equivalent command."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import pytest
from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QLineEdit

from difflora_gui.config import (
    ConfigDeclaration,
    Param,
    add_arguments,
    check_dataclass,
    command_args,
    values_from_args,
    when,
)
from difflora_gui.errors import UserError
from difflora_gui.merge.config import MERGE_CONFIG
from difflora_gui.merge.params import MergeParams
from difflora_gui.qt.param_form import ParamForm, PathListEditor

TRAINER = ConfigDeclaration(
    name="training config",
    groups=(("model", "Model"), ("optimizer", "Optimizer")),
    params=(
        Param("dit", "path", "", "the DiT checkpoint", group="model", metavar="FILE"),
        Param("network_dim", "int", 16, "LoRA rank", group="model", minimum=1, flag="rank", aliases=("dim",)),
        Param(
            "optimizer_type",
            "choice",
            "AdamW",
            "optimizer",
            group="optimizer",
            choices=("AdamW", "Adafactor"),
        ),
        Param("learning_rate", "float", 2e-4, "learning rate", group="optimizer", minimum=0.0),
    ),
)


def parse(declaration: ConfigDeclaration, *argv: str) -> dict:
    parser = argparse.ArgumentParser(prog="train", exit_on_error=False)
    add_arguments(parser, declaration)
    return values_from_args(declaration, parser.parse_args(list(argv)))


def test_a_new_field_appears_in_the_flags_the_form_the_recipe_and_the_command(qtbot):
    field = Param(
        "gradient_accumulation_steps",
        "int",
        1,
        "steps whose gradients are summed",
        group="optimizer",
        minimum=1,
    )
    extended = TRAINER.with_fields(field, after="optimizer_type")
    assert "gradient_accumulation_steps" not in TRAINER and "gradient_accumulation_steps" in extended
    assert [p.name for p in extended][2:4] == ["optimizer_type", "gradient_accumulation_steps"]

    # the CLI flags: the parser built from the declaration takes the new flag (and its dashed spelling)
    assert parse(extended, "--gradient_accumulation_steps", "4") == {"gradient_accumulation_steps": 4}
    assert parse(extended, "--gradient-accumulation-steps", "2") == {"gradient_accumulation_steps": 2}
    with pytest.raises(SystemExit):
        parse(TRAINER, "--gradient_accumulation_steps", "4")  # unknown before the field was declared
    with pytest.raises(UserError, match="--gradient_accumulation_steps.*>= 1"):
        parse(extended, "--gradient_accumulation_steps", "0")

    # the form has an editor for it, in its group's section
    form = ParamForm(extended)
    qtbot.addWidget(form)
    assert (
        "gradient_accumulation_steps" in form.editors
        and "gradient_accumulation_steps" not in ParamForm(TRAINER).editors
    )
    assert form.labels["gradient_accumulation_steps"].text() == "Gradient accumulation steps"
    assert [h.text() for h in form.findChildren(QLabel, "formGroupHeading")] == ["Model", "Optimizer"]
    form.editors["gradient_accumulation_steps"].editor.setValue(8)
    assert form.changed_values() == {"gradient_accumulation_steps": 8}

    # the recipe holds it (JSON), and reads back
    recipe = extended.to_recipe(form.values())
    assert json.loads(json.dumps(recipe))["gradient_accumulation_steps"] == 8
    assert extended.from_recipe(recipe) == recipe
    assert extended.to_recipe()["gradient_accumulation_steps"] == 1  # the default when not set

    # the equivalent command has it only when it differs from its default and applies
    assert "--gradient_accumulation_steps" not in command_args(extended, extended.defaults())
    assert command_args(extended, recipe) == ["--gradient_accumulation_steps", "8"]
    assert parse(extended, *command_args(extended, recipe)) == {"gradient_accumulation_steps": 8}
    conditional = TRAINER.with_fields(
        Param(
            "relative_step",
            "bool",
            False,
            "Adafactor's own schedule",
            visible_when=when(optimizer_type="Adafactor"),
        )
    )
    assert command_args(conditional, {"relative_step": True}) == []  # AdamW: it does not apply
    assert command_args(conditional, {"relative_step": True, "optimizer_type": "Adafactor"}) == [
        "--optimizer_type",
        "Adafactor",
        "--relative_step",
    ]


def test_flag_names_aliases_and_dashed_spellings():
    assert TRAINER.get("network_dim").flags == ("--rank", "--dim")
    for flag in ("--rank", "--dim"):
        assert parse(TRAINER, flag, "32") == {"network_dim": 32}
    assert command_args(TRAINER, {"network_dim": 32}) == ["--rank", "32"]  # the canonical spelling
    with pytest.raises(ValueError, match="--dim"):
        TRAINER.with_fields(Param("dim", "int", 1, "a clash"))
    # the merge's model-card spellings
    names = {p.name: p.flags for p in MERGE_CONFIG.cli_params()}
    assert names["targets"] == ("--target_blocks", "--target-blocks", "--targets")
    assert names["analyze"] == ("--analyze_blocks", "--analyze-blocks")
    assert names["lora_a"] == ("--lora_a", "--lora-a")


def test_lists_and_path_lists(qtbot, tmp_path):
    declaration = ConfigDeclaration(
        params=(
            Param("target_frames", "list", [1], "frame counts", item_type="int", minimum=1),
            Param("ratios", "list", [], "ratios", item_type="float"),
            Param("base_weights", "paths", [], "LoRAs merged in before training"),
            Param("network_args", "list", [], "key=value", repeat=True, metavar="KEY=VALUE"),
        )
    )
    first, second = tmp_path / "ä b.safetensors", tmp_path / "c.safetensors"
    values = parse(
        declaration,
        "--target_frames", "1", "25", "45",
        "--base_weights", str(first), str(second),
        "--network_args", "a=1", "--network_args", "b=[2, 3]",
    )  # fmt: skip
    assert values == {
        "target_frames": [1, 25, 45],
        "base_weights": [str(first), str(second)],
        "network_args": ["a=1", "b=[2, 3]"],
    }
    args = command_args(declaration, values)
    assert args == [
        "--target_frames", "1", "25", "45",
        "--base_weights", str(first), str(second),
        "--network_args", "a=1", "--network_args", "b=[2, 3]",
    ]  # fmt: skip
    assert parse(declaration, *args) == values
    param = declaration.get("target_frames")
    assert param.coerce("1, 9") == [1, 9] and param.coerce("[5]") == [5]
    with pytest.raises(UserError, match=">= 1"):
        param.coerce([0])
    with pytest.raises(UserError, match="integer"):
        param.coerce("1, x")
    assert declaration.get("base_weights").coerce(f"{first}\n{second}\n") == [str(first), str(second)]
    assert declaration.to_recipe(values)["base_weights"] == [str(first), str(second)]

    form = ParamForm(declaration)
    qtbot.addWidget(form)
    assert isinstance(form.editors["target_frames"].editor, QLineEdit)
    paths = form.editors["base_weights"].editor
    assert isinstance(paths, PathListEditor)
    form.set_values(values)
    assert form.editors["target_frames"].editor.text() == "1, 25, 45"
    assert form.values()["base_weights"] == [str(first), str(second)] and form.errors() == {}
    paths.list.item(0).setSelected(True)
    paths.remove_selected()
    assert form.value("base_weights") == [str(second)]
    form.editors["ratios"].editor.setText("0.5, nope")
    assert "ratios" in form.errors()
    form.editors["ratios"].editor.setText("0.5, 2")
    assert form.changed_values()["ratios"] == [0.5, 2.0]
    assert form.changed_values()["base_weights"] == [str(second)]


def test_conditional_fields_are_hidden_and_left_out(qtbot):
    declaration = ConfigDeclaration(
        params=(
            Param("mode", "choice", "fixed", "mode", choices=("fixed", "energy", "ratio")),
            Param(
                "energy", "float", 0.99, "energy", minimum=0.0, maximum=1.0, visible_when={"mode": "energy"}
            ),
            Param("ratio", "float", 10.0, "ratio", minimum=1.0, visible_when=when(mode=("ratio", "energy"))),
            Param("cap", "int", 0, "cap", applies_when=lambda v: v["mode"] != "fixed"),
        )
    )
    form = ParamForm(declaration)
    qtbot.addWidget(form)
    assert not form.is_row_visible("energy") and not form.is_row_visible("ratio")
    assert form.is_row_visible("cap")  # applies_when decides what is used, not what is shown
    form.set_values({"energy": 0.5, "cap": 3})
    assert form.changed_values() == {}  # hidden or not applying: not part of the recipe's changes
    form.editors["mode"].editor.setCurrentText("energy")
    assert form.is_row_visible("energy") and form.is_row_visible("ratio")
    assert form.changed_values() == {"mode": "energy", "energy": 0.5, "cap": 3}
    form.editors["mode"].editor.setCurrentText("ratio")
    assert not form.is_row_visible("energy") and form.is_row_visible("ratio")
    assert command_args(declaration, {"mode": "ratio", "energy": 0.5, "ratio": 4.0}) == [
        "--mode", "ratio", "--ratio", "4",
    ]  # fmt: skip
    assert declaration.applicable({"mode": "fixed"}) == ["mode"]
    assert "mode is energy" in declaration.get("energy").to_json()["visible_when"]


def test_the_merge_command_leaves_out_hidden_settings():
    recipe = MergeParams(
        lora_a="a", lora_b="b", output="o.safetensors", energy=0.5, target_norm="mean", sv_ratio=4
    )
    assert recipe.to_cli_args() == ["merge", "--lora_a", "a", "--lora_b", "b", "--output", "o.safetensors"]
    auto = MergeParams(
        lora_a="a", lora_b="b", alpha=3.0, auto_alpha=True, target_norm="b", rank_mode="energy", energy=0.5
    )
    argv = auto.to_cli_args()
    assert "--alpha" not in argv and argv[argv.index("--target_norm") + 1] == "b"
    assert argv[argv.index("--energy") + 1] == "0.5" and "--sv_ratio" not in argv


def test_choices_computed_at_run_time_are_read_when_the_form_and_parser_are_built(qtbot):
    registered = ["cpu"]
    declaration = ConfigDeclaration(
        params=(Param("device", "choice", "cpu", "where to run", choices=lambda: registered),)
    )
    registered.append("cuda:0")
    form = ParamForm(declaration)
    qtbot.addWidget(form)
    combo = form.editors["device"].editor
    assert isinstance(combo, QComboBox) and [combo.itemText(i) for i in range(combo.count())] == [
        "cpu",
        "cuda:0",
    ]
    assert parse(declaration, "--device", "cuda:0") == {"device": "cuda:0"}
    with pytest.raises(UserError, match="must be one of cpu, cuda:0"):
        parse(declaration, "--device", "cuda:1")


def test_a_nested_config_is_one_field_of_its_parent(qtbot):
    dataset = ConfigDeclaration(
        name="dataset",
        params=(
            Param("resolution", "list", [960, 544], "width, height", item_type="int"),
            Param("num_repeats", "int", 1, "repeats", minimum=1),
        ),
    )
    declaration = TRAINER.with_fields(Param("dataset", "config", None, "the dataset", config=dataset))
    assert declaration.defaults()["dataset"] == {"resolution": [960, 544], "num_repeats": 1}
    values = parse(declaration, "--num_repeats", "3", "--rank", "8")
    assert values == {"network_dim": 8, "dataset": {"num_repeats": 3}}
    recipe = declaration.to_recipe(values)
    assert recipe["dataset"] == {"resolution": [960, 544], "num_repeats": 3}
    assert command_args(declaration, recipe) == ["--rank", "8", "--num_repeats", "3"]
    with pytest.raises(UserError, match="unknown parameter"):
        declaration.to_recipe({"dataset": {"bogus": 1}})
    form = ParamForm(declaration)
    qtbot.addWidget(form)
    box = form.editors["dataset"].editor
    assert isinstance(box, QGroupBox) and box.title() == "Dataset"
    form.set_values({"dataset": {"num_repeats": 5}})
    assert form.values()["dataset"] == {"resolution": [960, 544], "num_repeats": 5}
    assert form.changed_values() == {"dataset": {"resolution": [960, 544], "num_repeats": 5}}


def test_an_optional_choice_can_name_its_unset_entry(qtbot):
    form = ParamForm(MERGE_CONFIG.group("output"))
    qtbot.addWidget(form)
    editor = form.editors["save_dtype"]
    assert editor.set_check is None and editor.editor.itemText(0) == "same as inputs"
    assert form.value("save_dtype") is None
    form.set_values({"save_dtype": "bfloat16"})
    # the form starts from the GUI default of exclude_non_targeted, which differs from the CLI's
    assert form.changed_values() == {"save_dtype": "bfloat16", "exclude_non_targeted": True}
    assert MERGE_CONFIG.get("save_dtype").coerce("bf16") == "bfloat16"  # value aliases


def test_records_are_checked_against_their_declaration():
    check_dataclass(MergeParams, MERGE_CONFIG)

    @dataclass
    class Trainer:
        dit: str = ""
        network_dim: int = 16
        optimizer_type: str = "AdamW"
        learning_rate: float = 2e-4

    check_dataclass(Trainer, TRAINER)
    with pytest.raises(TypeError, match="only declared"):
        check_dataclass(Trainer, TRAINER.with_fields(Param("seed", "int", 0, "seed")))

    @dataclass
    class Drifted(Trainer):
        network_dim: int = 32

    with pytest.raises(TypeError, match="network_dim defaults to 32"):
        check_dataclass(Drifted, TRAINER)


def test_a_form_of_one_group_reads_conditions_on_another_groups_fields(qtbot):
    declaration = ConfigDeclaration(
        params=(
            Param("sampling", "bool", False, "sample during training", group="samples"),
            Param("sample_every", "int", 100, "steps", group="schedule", visible_when={"sampling": True}),
        )
    )
    form = ParamForm(declaration.group("schedule"))
    qtbot.addWidget(form)
    assert not form.is_row_visible("sample_every")
    form.set_context({"sampling": True})
    assert form.is_row_visible("sample_every") and form.applicable() == ["sample_every"]
