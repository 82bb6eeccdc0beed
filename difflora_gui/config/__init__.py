"""One declaration per config: the fields of a config (the merge recipe, a trainer's settings) are
declared once, as :class:`~difflora_gui.params.Param`, in a :class:`ConfigDeclaration`, and that
declaration gives

* the command-line flags (:func:`add_arguments`, :func:`values_from_args`; aliases and dashed
  spellings included),
* the GUI form (``difflora_gui.qt.param_form.ParamForm(declaration)``: groups, advanced fields,
  fields shown only when another has a value, lists and path lists),
* the stored recipe (:meth:`ConfigDeclaration.to_recipe` / :meth:`ConfigDeclaration.from_recipe`, JSON),
* the equivalent command (:func:`command_args`: only the fields that apply and differ from their
  defaults).

Qt-free and import-light.
"""

from difflora_gui.config.cli import add_arguments, command_args, values_from_args
from difflora_gui.config.declaration import ConfigDeclaration, check_dataclass
from difflora_gui.params import Condition, Param, when

__all__ = [
    "Condition",
    "ConfigDeclaration",
    "Param",
    "add_arguments",
    "check_dataclass",
    "command_args",
    "values_from_args",
    "when",
]
