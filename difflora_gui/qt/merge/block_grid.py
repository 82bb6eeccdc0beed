"""The block grid of the targets box: one cell per block, an on/off toggle over a weight field.

A click on a block's number switches it on or off (off is weight 0: the block is left out); the
field under it is the block's weight (the ``@`` weights of ``docs/selectors.md``: 1 = as is, 0.5 =
half the difference). Both are keyboard-reachable: Tab walks the cells in reading order, Space
toggles the focused block, the field takes typed numbers and the arrow keys. The grid only shows
and reports; :class:`~difflora_gui.qt.merge.targets.TargetSelector` keeps the state.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from difflora_gui.lora.block_weights import PRESET_DESCRIPTIONS
from difflora_gui.lora.block_weights import PRESETS as BLOCK_PRESETS
from difflora_gui.lora.block_weights import preset_weights as core_preset_weights
from difflora_gui.lora.selector import Selector, format_blocks

GRID_COLUMNS = 10
#: the weights a cell's field accepts (the grammar takes any finite number; −1 flips a block)
WEIGHT_MAXIMUM = 4.0
WEIGHT_DECIMALS = 2
CELL_WIDTH = 36

#: the grid's presets, as ``preset_weights`` names them (flat, ramp up/down, first/middle/last third)
PRESETS = BLOCK_PRESETS

GRID_STYLE = """
QToolButton#blockToggle {
    min-width: 26px; max-width: 36px; min-height: 18px; padding: 1px 0;
    border: 1px solid #3a3e45; border-radius: 4px; background: #1b1c1f; color: #8b9098;
}
QToolButton#blockToggle:checked { background: #2f4a7a; border-color: #5b8def; color: #ffffff; }
QToolButton#blockToggle:focus { border: 2px solid #f0c060; }
QToolButton#blockToggle:disabled { color: #4a4d52; border-color: #2a2d32; }
QDoubleSpinBox#blockWeight { padding: 0px; min-height: 16px; font-size: 10px; color: #c4c7cc; }
QDoubleSpinBox#blockWeight[off="true"] { color: #5a5e66; }
QDoubleSpinBox#blockWeight::up-button, QDoubleSpinBox#blockWeight::down-button {
    width: 0px; height: 0px; border: none; image: none; subcontrol-origin: border;
}
QDoubleSpinBox#blockWeight:focus { border: 1px solid #f0c060; }
"""


def round_weight(value: float) -> float:
    """A weight as the grid shows it (the text and the fields must agree)."""
    return round(float(value), WEIGHT_DECIMALS)


def preset_weights(name: str, count: int) -> list[float]:
    """The weight of each of ``count`` blocks for a preset, rounded as the grid shows them."""
    weights = core_preset_weights(name, count)
    return [round_weight(weights.get(b, 0.0)) for b in range(count)]


def grid_selector(groups, blocks, weights: Mapping[int, float], include, exclude) -> Selector:
    """The selector of the targets box's state (weights only for the blocks that are not at 1)."""
    extra = {"weights": dict(weights)} if weights else {}
    return Selector.from_parts(groups, blocks, include, exclude, **extra)


def selector_weights(selector: Selector) -> dict[int, float]:
    """A selector's block weights that are not 1."""
    return {int(b): float(w) for b, w in selector.weights.items() if w != 1}


def out_of_range_text(blocks: list[int], count: int) -> str:
    """The warning for named blocks the model does not have ("" when there are none)."""
    if not blocks:
        return ""
    return (
        f"⚠ Blocks {format_blocks(blocks)} are not in this model (it has {count} blocks, "
        f"0-{count - 1}); they select nothing."
    )


class PresetMenu(QComboBox):
    """The weight presets as a menu of actions: "Weights…" until one is chosen, then again."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("weightPreset")
        self.setToolTip("Block weights: flat (every block 1), a ramp over the blocks, or one third of them")
        self.addItem("Weights…", "")
        for name in PRESETS:
            self.addItem(name.capitalize(), name)
            self.setItemData(self.count() - 1, PRESET_DESCRIPTIONS.get(name, ""), Qt.ItemDataRole.ToolTipRole)


class WeightBox(QDoubleSpinBox):
    """A block's weight: no arrows (too small for them), typed or stepped with the arrow keys."""

    def __init__(self, block: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.block = block
        self.setObjectName("blockWeight")
        self.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.setRange(-WEIGHT_MAXIMUM, WEIGHT_MAXIMUM)
        self.setDecimals(WEIGHT_DECIMALS)
        self.setSingleStep(0.05)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setFixedWidth(CELL_WIDTH)
        self.setKeyboardTracking(True)
        self.setToolTip(f"weight of block {block} (1 = as is, 0.5 = half, 0 = left out, −1 = flipped)")

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:.{WEIGHT_DECIMALS}f}".rstrip("0").rstrip(".")


class BlockCell(QWidget):
    """One block: its toggle over its weight field."""

    def __init__(self, block: int, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        self.button = QToolButton()
        self.button.setObjectName("blockToggle")
        self.button.setText(str(block))
        self.button.setCheckable(True)
        self.button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.button.setToolTip(f"block {block}: click (or Space) to switch it on or off")
        self.button.setFixedWidth(CELL_WIDTH)
        self.button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.weight = WeightBox(block)
        layout.addWidget(self.button)
        layout.addWidget(self.weight)


class BlockGrid(QWidget):
    """``count`` cells in rows of ``columns`` (:data:`GRID_COLUMNS`); reports what the user does to them."""

    #: the user switched block N on (True) or off (False)
    toggled = Signal(int, bool)
    #: the user set block N's weight (typed or stepped)
    weight_edited = Signal(int, float)

    def __init__(self, parent: QWidget | None = None, *, columns: int = GRID_COLUMNS):
        super().__init__(parent)
        self.setObjectName("blockGrid")
        self.columns = columns
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(3)
        self.grid.setVerticalSpacing(4)
        self.cells: list[BlockCell] = []

    @property
    def count(self) -> int:
        return len(self.cells)

    def set_count(self, count: int) -> None:
        for cell in self.cells:
            self.grid.removeWidget(cell)
            cell.deleteLater()
        self.cells = []
        for block in range(count):
            cell = BlockCell(block)
            cell.button.clicked.connect(lambda checked, b=block: self.toggled.emit(b, checked))
            cell.weight.valueChanged.connect(lambda value, b=block: self.weight_edited.emit(b, value))
            self.grid.addWidget(cell, block // self.columns, block % self.columns)
            self.cells.append(cell)
        for column in range(self.columns):
            self.grid.setColumnStretch(column, 0)
        self.grid.setColumnStretch(self.columns, 1)

    def show_weights(self, weights: list[float]) -> None:
        """Show each block's weight (0 = off); nothing is reported."""
        for cell, weight in zip(self.cells, weights, strict=False):
            with signals_blocked(cell.button):
                cell.button.setChecked(weight != 0)
            if bool(cell.weight.property("off")) != (weight == 0):
                cell.weight.setProperty("off", weight == 0)  # a left-out block's 0 is dimmed
                cell.weight.style().unpolish(cell.weight)
                cell.weight.style().polish(cell.weight)
            if cell.weight.hasFocus() and round_weight(cell.weight.value()) == round_weight(weight):
                continue  # the user is typing this value: leave the text as typed
            with signals_blocked(cell.weight):
                cell.weight.setValue(weight)

    def focus_chain(self) -> list[QWidget]:
        """The cells' widgets in reading order (button, then weight, block by block)."""
        chain: list[QWidget] = []
        for cell in self.cells:
            chain += [cell.button, cell.weight]
        return chain
