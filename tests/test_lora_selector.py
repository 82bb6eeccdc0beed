"""The selector grammar: parsing, normalised text, parts for the GUI, and errors that say why."""

from __future__ import annotations

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
