"""The plugin module named by the entry point. It stays light: the work is referenced by string."""

from difflora_gui import hookimpl
from difflora_gui.params import Param
from difflora_gui.specs import MergeStrategySpec


@hookimpl
def difflora_register_merge_strategies():
    return [
        MergeStrategySpec(
            name="cosine_filter",
            title="Cosine filter",
            description="Keep only modules where LoRA A and LoRA B point in different directions.",
            params=(
                Param(
                    "max_cosine",
                    "float",
                    0.5,
                    "Keep a module when cosine(ΔW_a, ΔW_b) is at most this. 1 keeps everything; "
                    "lower values keep only modules where the two LoRAs learned different things.",
                    minimum=-1.0,
                    maximum=1.0,
                    step=0.05,
                ),
                Param(
                    "compressor",
                    "str",
                    "full_svd",
                    "The compressor that re-factors the kept modules (any registered compressor).",
                    advanced=True,
                ),
            ),
            select="difflora_example_strategy.strategy:select_disagreeing",
        )
    ]
