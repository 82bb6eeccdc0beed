"""The selector grammar: parsing, normalised text, parts for the GUI, and errors that say why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from difflora_gui.errors import UserError
from difflora_gui.lora.selector import Selector, format_blocks, parse_blocks, parse_selector
from difflora_gui.lora.wan_layout import VARIANTS

I2V_14B = VARIANTS["14B"].module_names("i2v", outside=True)  # 480 block modules + 8 outside


def _count(selector: str, names=I2V_14B) -> int:
    return len(parse_selector(selector).select(names))


def test_layer_groups():
    assert _count("all") == len(I2V_14B) == 488
    assert _count("") == 488
    assert _count("attn") == 40 * 10  # q, k, v, o twice + k_img, v_img
    assert _count("self_attn") == 160
    assert _count("cross_attn") == 240
    assert _count("ffn") == 80
    assert _count("other") == 8
    assert _count("self_attn,ffn") == 240
    assert _count("attn ffn") == 480


def test_attn_means_self_and_cross_attention_including_image_projections():
    chosen = parse_selector("attn blocks=0").select(I2V_14B)
    assert [n.removeprefix("blocks.0.") for n in chosen] == [
        "self_attn.q",
        "self_attn.k",
        "self_attn.v",
        "self_attn.o",
        "cross_attn.q",
        "cross_attn.k",
        "cross_attn.v",
        "cross_attn.o",
        "cross_attn.k_img",
        "cross_attn.v_img",
    ]


def test_blocks_and_ranges():
    assert parse_blocks("0-10,20,35-39") == frozenset([*range(11), 20, *range(35, 40)])
    assert format_blocks({0, 1, 2, 3, 5, 7, 8}) == "0-3,5,7-8"
    assert _count("blocks=0-9") == 10 * 12  # block selection leaves out modules outside the blocks
    assert _count("0-10,20,35-39") == 17 * 12
    assert _count("ffn 39") == 2
    assert parse_selector("attn 3 blocks=5") == parse_selector("attn blocks=3,5")


def test_regexes_include_and_exclude():
    assert _count("all exclude=k_img|v_img") == 488 - 80
    assert _count(r"self_attn include=\.(q|k)$") == 80
    assert _count(r"include=^blocks\.1\. exclude=ffn") == 10  # blocks.1. only, not blocks.1x
    assert _count(r"attn include=blocks\.3\. include=blocks\.4\.") == 20  # several includes: any of them


def test_normalised_text_round_trips():
    cases = {
        "": "all",
        "ATTN;  blocks=3,1,2  ": "attn blocks=1-3",
        "self_attn,cross_attn": "attn",
        "ffn,self_attn 0-4 7": "self_attn,ffn blocks=0-4,7",
        r"attn exclude=k_img include=\.q$": r"attn include=\.q$ exclude=k_img",
        "self_attn,cross_attn,ffn,other": "all",
    }
    for text, normal in cases.items():
        selector = parse_selector(text)
        assert str(selector) == normal
        assert parse_selector(str(selector)) == selector


def test_parts_for_the_gui():
    selector = Selector.from_parts(groups={"ffn", "self_attn"}, blocks="0-2,9", exclude="ffn\\.2")
    assert selector.to_text() == "self_attn,ffn blocks=0-2,9 exclude=ffn\\.2"
    assert selector.groups == {"self_attn", "ffn"} and selector.blocks == {0, 1, 2, 9}
    again = Selector.from_parts(selector.groups, selector.blocks, selector.include, selector.exclude)
    assert again == selector
    assert Selector.from_parts(["attn"], blocks="") == parse_selector("attn")
    assert parse_selector("all").is_everything and not selector.is_everything
    assert "feed-forward" in selector.describe() and "blocks 0-2,9" in selector.describe()
    assert selector.matches("blocks.9.self_attn.q") and not selector.matches("blocks.9.ffn.2")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("atn", "unknown layer group 'atn'"),
        ("attn blocks=3-1", "end is before the start"),
        ("attn blocks=x", "bad block list"),
        ("include=(", "bad include regular expression"),
        ("foo=1", "unknown term 'foo'"),
        ("exclude=", "exclude= needs a regular expression"),
    ],
)
def test_bad_selector_text_is_a_user_error(text, fragment):
    with pytest.raises(UserError, match="bad selector") as info:
        parse_selector(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "names", "fragment"),
    [
        ("ffn", VARIANTS["14B"].module_names("t2v")[:8], "none of the 8 modules is in ffn (present: attn)"),
        ("attn blocks=50-60", I2V_14B, "blocks 50-60 are not present (attn has blocks 0-39)"),
        (
            "attn include=nothing_like_this",
            I2V_14B,
            "include=nothing_like_this matches none of the 400 modules",
        ),
        ("ffn exclude=ffn", I2V_14B, "exclude=ffn removes all 80 modules"),
        ("all", [], "there are no modules"),
    ],
)
def test_empty_selection_says_why(text, names, fragment):
    with pytest.raises(UserError) as info:
        parse_selector(text).select(names)
    message = str(info.value)
    assert f"selector '{parse_selector(text)}' selects nothing" in message
    assert fragment in message


# --- float block weights ------------------------------------------------------------------------


def test_block_weights_parse_with_and_without_blocks_equals():
    selector = parse_selector("attn blocks=0-9@1.0,10-19@0.5,20-29")
    assert selector.blocks == frozenset(range(30))
    assert selector.weights == dict.fromkeys(range(10, 20), 0.5)  # only the weights that are not 1
    assert selector.weight_of("blocks.3.self_attn.q") == 1.0
    assert selector.weight_of("blocks.12.ffn.0") == 0.5  # the block's weight, whatever the group
    assert selector.weight_of("blocks.35.self_attn.q") == 0.0  # a block it does not select
    assert selector.weight_of("head.head") == 1.0  # outside the blocks
    assert parse_selector("attn 0-9@0.5,10-19") == parse_selector("attn blocks=0-9@.5 blocks=10-19@1")
    assert parse_selector("attn").weight_of("blocks.7.ffn.0") == 1.0
    assert parse_selector("attn 0-3@-1.5").weights == dict.fromkeys(range(4), -1.5)  # negative: allowed
    assert parse_selector("ffn 2@1e-3").weights == {2: 0.001}


def test_weight_zero_is_the_same_as_leaving_the_block_out():
    selector = parse_selector("attn 0-9@0,10-19,20@0.0")
    assert selector == parse_selector("attn 10-19")
    assert selector.blocks == frozenset(range(10, 20)) and not selector.weights
    assert _count("attn 0@0,1-2") == _count("attn 1-2") == 20
    assert not selector.matches("blocks.5.self_attn.q")


def test_weights_count_in_equality_and_hash():
    plain, weighted = parse_selector("attn 0-2"), parse_selector("attn 0-2@0.5")
    assert plain != weighted and plain.blocks == weighted.blocks
    assert hash(weighted) == hash(parse_selector("attn blocks=0@0.5,1-2@0.50"))
    assert len({plain, weighted, parse_selector("attn 0,1-2@0.5")}) == 3


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("attn blocks=0-9@1.0,10-19@0.5,20-29", "attn blocks=0-9,10-19@0.5,20-29"),
        ("attn 0@0.5 1@0.5 2@.5 3 4@2.0", "attn blocks=0-2@0.5,3,4@2"),
        ("ffn 5@-1 6@-1 9@0.25", "ffn blocks=5-6@-1,9@0.25"),
        ("all 0-3@0 4-5@1", "all blocks=4-5"),
        ("attn 0@0.1 1@0.30000000000000004", "attn blocks=0@0.1,1@0.30000000000000004"),
        ("self_attn 0-1@1e-5 exclude=k", "self_attn blocks=0-1@1e-05 exclude=k"),
    ],
)
def test_weighted_text_is_shortest_and_round_trips(text, normal):
    selector = parse_selector(text)
    assert selector.to_text() == normal
    assert parse_selector(normal) == selector


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("attn 0-9@nan", "block weight 'nan' in '0-9@nan' must be a finite number"),
        ("attn 0-9@inf", "must be a finite number"),
        ("attn 0-9@-infinity", "must be a finite number"),
        ("attn 0-9@1e999", "must be a finite number"),
        ("attn 0-9@x", "bad block weight 'x'"),
        ("attn 0-9@", "bad block weight ''"),
        ("attn 0-9@0.5@1", "bad block weight"),
        ("attn 0-9@0.5 5", "block 5 is given two weights (0.5 and 1)"),
        ("attn 0-9@0.5,3-4@0.25", "block 3 is given two weights (0.5 and 0.25)"),
        ("attn 0-3@0", "every block named (0-3) has weight 0"),
        ("attn 4-2@0.5", "end is before the start"),
        ("attn 0-100000000@0.5", "block 100000000 is out of reach"),
        ("attn blocks=0-100000000", "block 100000000 is out of reach"),
    ],
)
def test_bad_weights_are_user_errors_naming_the_problem(text, fragment):
    with pytest.raises(UserError, match="bad selector") as info:
        parse_selector(text)
    assert fragment in str(info.value)


def test_weights_from_parts_for_the_block_grid():
    grid = {0: 1.0, 1: 0.5, 2: 0.0, 3: 2.0}
    selector = Selector.from_parts(["attn"], weights=grid)  # a whole grid: its blocks are the blocks
    assert selector.to_text() == "attn blocks=0,1@0.5,3@2"
    assert selector.blocks == {0, 1, 3} and selector.weights == {1: 0.5, 3: 2.0}
    again = Selector.from_parts(selector.groups, selector.blocks, weights=selector.weights)
    assert again == selector
    assert Selector.from_parts(["attn"], blocks="0-3@0.25", weights={1: 2}).to_text() == (
        "attn blocks=0@0.25,1@2,2-3@0.25"
    )
    assert Selector.from_parts(["attn"], blocks={0, 1}, weights={1: 0}) == parse_selector("attn 0")
    with pytest.raises(UserError, match="block.s. 7, which are not selected"):
        Selector.from_parts(["attn"], blocks={0, 1}, weights={7: 0.5})
    with pytest.raises(UserError, match="finite"):
        Selector.from_parts(["attn"], weights={0: float("nan")})
    with pytest.raises(UserError, match="not a number"):
        Selector.from_parts(["attn"], weights={0: "0.5"})
    assert [selector.block_weight(b) for b in range(5)] == [1.0, 0.5, 0.0, 2.0, 0.0]
    assert parse_selector("attn").block_weight(3) == 1.0


def test_describe_mentions_the_weights_and_out_of_range_blocks_are_listed():
    selector = parse_selector("attn 0-9@0.5,10-45")
    assert "blocks 0-45" in selector.describe() and "weighted 0-9 ×0.5" in selector.describe()
    assert "weighted" not in parse_selector("attn 0-9").describe()
    assert selector.blocks_out_of_range(40) == [40, 41, 42, 43, 44, 45]
    assert selector.blocks_out_of_range(46) == [] and parse_selector("attn").blocks_out_of_range(1) == []
    assert selector.is_weighted and not parse_selector("attn 0-9").is_weighted


def test_block_weight_text_helpers():
    from difflora_gui.lora.selector import format_block_weights, parse_block_weights

    assert parse_block_weights("0-2@0.5,4,6@0") == {0: 0.5, 1: 0.5, 2: 0.5, 4: 1.0, 6: 0.0}
    assert format_block_weights({0: 0.5, 1: 0.5, 2: 1, 3: 0, 4: 2}) == "0-1@0.5,2,4@2"
    assert format_block_weights({5: 1.0, 7: 1.0, 6: 1.0}) == "5-7"
    with pytest.raises(UserError, match="bad block list"):
        parse_blocks("0-9@0.5")  # the on/off block list takes no weights
    with pytest.raises(UserError, match="out of reach"):
        parse_blocks("5-123456789")


# --- presets and the grid helpers (difflora_gui.lora.block_weights) ---------------------------


def test_presets_for_a_grid():
    from difflora_gui.lora.block_weights import PRESETS, preset_weights

    assert PRESETS == ("flat", "ramp up", "ramp down", "first third", "middle third", "last third")
    assert preset_weights("flat", 30) == dict.fromkeys(range(30), 1.0)
    up = preset_weights("ramp up", 40)
    assert list(up) == list(range(40)) and up[39] == 1.0 and 0 < up[0] < up[1] <= up[20] < up[39]
    assert list(up.values()) == sorted(up.values())
    down = preset_weights("ramp down", 40)
    assert list(down.values()) == list(reversed(up.values()))
    assert preset_weights("Ramp Up", 4) == {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0}
    for n in (30, 40):
        thirds = [
            {b for b, w in preset_weights(f"{which} third", n).items() if w == 1.0}
            for which in ("first", "middle", "last")
        ]
        assert set().union(*thirds) == set(range(n)) and sum(map(len, thirds)) == n  # a partition
        assert max(map(len, thirds)) - min(map(len, thirds)) <= 1
        assert min(thirds[0]) == 0 and max(thirds[2]) == n - 1 and max(thirds[0]) < min(thirds[1])
    assert [b for b, w in preset_weights("first third", 30).items() if w] == list(range(10))
    for n in (1, 2):  # tiny models: every third still has a block
        for which in ("first", "middle", "last"):
            assert any(preset_weights(f"{which} third", n).values())
    with pytest.raises(UserError, match="unknown block weight preset 'steep'"):
        preset_weights("steep", 30)
    with pytest.raises(UserError, match="at least one block"):
        preset_weights("flat", 0)


def test_grid_to_selector_text_and_back():
    from difflora_gui.lora.block_weights import (
        preset_weights,
        selector_with_weights,
        weights_from_selector,
        weights_from_text,
        weights_to_text,
    )

    assert weights_to_text(preset_weights("last third", 30)) == "20-29"
    assert weights_to_text(preset_weights("ramp up", 4)) == "0@0.25,1@0.5,2@0.75,3"
    assert weights_to_text({0: 0.0, 1: 0.0}) == ""
    assert weights_from_text("0-1@0.5,3", 5) == {0: 0.5, 1: 0.5, 2: 0.0, 3: 1.0, 4: 0.0}
    assert weights_from_text("", 3) == {0: 1.0, 1: 1.0, 2: 1.0}
    assert weights_from_selector("attn 0-1@0.5,3,7", 5) == {0: 0.5, 1: 0.5, 2: 0.0, 3: 1.0, 4: 0.0}
    assert weights_from_selector("attn exclude=k_img", 2) == {0: 1.0, 1: 1.0}
    ramp = preset_weights("ramp down", 30)
    selector = selector_with_weights("ffn exclude=ffn\\.2", ramp, num_blocks=30)
    assert selector.groups == {"ffn"} and selector.exclude == ("ffn\\.2",)
    assert weights_from_selector(selector, 30) == ramp  # the grid survives the text
    assert weights_from_selector(parse_selector(selector.to_text()), 30) == ramp
    flat = selector_with_weights("attn 3-4", preset_weights("flat", 30), num_blocks=30)
    assert flat == parse_selector("attn")  # every block at 1: the plain every-block selector
    assert selector_with_weights("attn", preset_weights("flat", 30)).to_text() == "attn blocks=0-29"


# --- docs/selectors.md ----------------------------------------------------------------------------

SELECTORS_MD = (Path(__file__).resolve().parent.parent / "docs" / "selectors.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return SELECTORS_MD.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_docs_example_table_counts_are_true():
    rows = re.findall(r"^\| `(.+?)` \| \D*(\d+)", _section("Examples"), flags=re.M)
    assert len(rows) >= 12
    for text, count in rows:
        assert _count(text.replace("\\|", "|")) == int(count), text


def test_docs_block_weight_examples_parse():
    block = _section("Block weights").split("```\n", 2)[1]
    examples = [line.split("  ")[0] for line in block.splitlines() if line.strip()]
    assert len(examples) == 5
    for text in examples:
        selector = parse_selector(text)
        assert selector.blocks is not None and parse_selector(selector.to_text()) == selector
    assert parse_selector(examples[0]).weights == dict.fromkeys(range(10, 20), 0.5)
    assert parse_selector("attn 0-19,20-29@-1").block_weight(25) == -1.0


def test_docs_code_examples_run():
    for title in ("In code", "Block weight presets"):
        code = _section(title).split("```python\n", 1)[1].split("```", 1)[0]
        exec(compile(code, f"docs/selectors.md ({title})", "exec"), {"lora": _FakeLora()})


class _FakeLora:
    def names(self):
        return I2V_14B
