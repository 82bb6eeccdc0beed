import pytest

from difflora_gui.errors import UserError
from difflora_gui.params import Param, ParamSchema, parse_key_values


def make_schema():
    return ParamSchema(
        (
            Param("rank", "int", 4, "target rank", minimum=0, maximum=1024),
            Param("energy", "float", 0.99, "energy kept", minimum=0.0, maximum=1.0),
            Param("relative", "bool", False, "relative to input norms"),
            Param("mode", "choice", "fixed", "rank mode", choices=("fixed", "energy")),
            Param("label", "str", "", "a label", advanced=True),
            Param("seed", "int", None, "random seed", optional=True),
        )
    )


def test_resolve_applies_defaults_and_converts_strings():
    values = make_schema().resolve({"rank": "8", "energy": "0.5", "relative": "yes", "mode": "energy"})
    assert values == {"rank": 8, "energy": 0.5, "relative": True, "mode": "energy", "label": "", "seed": None}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": "-1"}, "must be >= 0"),
        ({"rank": "2.5"}, "rank"),
        ({"energy": "1.5"}, "must be <= 1"),
        ({"energy": "nan"}, "finite"),
        ({"relative": "maybe"}, "true/false"),
        ({"mode": "wild"}, "must be one of fixed, energy"),
        ({"bogus": "1"}, "unknown parameter(s) bogus"),
    ],
)
def test_bad_values_are_user_errors_naming_the_parameter(values, message):
    with pytest.raises(UserError, match=None) as info:
        make_schema().resolve(values, owner="full_svd")
    assert message in str(info.value)


def test_optional_accepts_none_text():
    assert make_schema().resolve({"seed": "none"})["seed"] is None
    assert make_schema().resolve({"seed": "7"})["seed"] == 7


def test_invalid_declarations_fail_at_definition():
    with pytest.raises(ValueError):
        Param("x", "int", 5, "help", maximum=3)
    with pytest.raises(ValueError):
        Param("x", "weird", 1, "help")
    with pytest.raises(ValueError):
        Param("x", "int", 1, "")
    with pytest.raises(ValueError):
        ParamSchema((Param("a", "int", 1, "h"), Param("a", "int", 2, "h")))


def test_parse_key_values():
    assert parse_key_values(["a=1", "b-c=x=y"]) == {"a": "1", "b_c": "x=y"}
    with pytest.raises(UserError):
        parse_key_values(["novalue"])


def test_to_json_describes_the_form():
    data = make_schema().get("rank").to_json()
    assert data == {
        "name": "rank",
        "type": "int",
        "default": 4,
        "help": "target rank",
        "minimum": 0,
        "maximum": 1024,
    }


def test_a_plugin_parameter_may_be_a_list_and_its_text_form_splits():
    sizes = Param("sizes", "list", [1], "frame counts", item_type="int", minimum=1)
    files = Param("files", "paths", [], "extra files")
    values = ParamSchema((sizes, files)).resolve(parse_key_values(["sizes=1, 25,45", 'files=["a b", "c"]']))
    assert values == {"sizes": [1, 25, 45], "files": ["a b", "c"]}
    assert sizes.to_json() == {
        "name": "sizes", "type": "list", "default": [1], "help": "frame counts", "minimum": 1, "item_type": "int",
    }  # fmt: skip
    with pytest.raises(ValueError):
        Param("x", "list", [], "help", item_type="bool")
    with pytest.raises(ValueError):
        Param("x", "config", None, "help")  # a nested config needs its declaration


def test_positional_declarations_of_existing_plugins_keep_working():
    old = Param("niter", "int", 2, "power iterations", "Iterations", 0, 10, (), True, 1.0, False)
    assert (old.title, old.minimum, old.maximum, old.advanced, old.step) == ("Iterations", 0, 10, True, 1.0)
    assert old.flags == ("--niter",) and old.applies({}) and hash(old) == hash(Param("niter", "int", 3, "x"))
