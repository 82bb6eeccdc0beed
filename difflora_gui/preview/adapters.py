"""The preview's LoRA stack as PEFT adapters on the resident Wan transformer(s), re-weighted in place.

Each LoRA file is read once (:func:`~difflora_gui.lora.reader.open_lora`: every trainer's format,
canonical modules), converted to diffusers module names with its alpha/rank scale folded into
``lora_B``, and loaded with ``transformer.load_lora_adapter(state_dict, prefix=None)``; diffusers
then sets PEFT's scaling to lora_alpha/r = 1 per module (no alphas given), which is read back and
kept as each module's base. Wan2.2 A14B: a combo file's high-noise part goes into ``transformer``
and its low-noise part into ``transformer_2``; any other file goes into both (it is read once
either way), and its expert (the entry's, or the file's own ``_high_noise``/``_low_noise`` role)
decides which of the two copies are active.

A strength, a block weight or the layer filter changes only numbers: per LoRA layer,
``module.scaling[adapter] = base * strength_for(expert) * block weight`` (0 where the selector
leaves the module out). Never ``set_adapters``: it resets every per-module scale, and its dict
form matches ``blocks.1`` inside ``blocks.10`` (``shared/reference/feasibility.md`` §2); never a
call-time ``attention_kwargs`` scale (it rescales every layer and back); never fuse/unfuse (not
exact: strength 0 would differ from no LoRA). A scale of exactly 0 adds exact zeros, so strength 0
renders bit-identically to no LoRA. Which adapters run at all (PEFT's per-layer active list) changes
only when the stack's files or their expert routing change; unused adapters stay loaded for a quick
switch back, the least recently used beyond :attr:`AdapterStack.keep` deleted.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from difflora_gui.errors import UserError
from difflora_gui.lora import wan_layout
from difflora_gui.lora.selector import Selector, parse_selector
from difflora_gui.preview.request import LoraEntry

#: a one-transformer model's expert key, and the two experts of Wan2.2 A14B (diffusers' names)
EXPERT_ATTRS = {None: "transformer", "high": "transformer", "low": "transformer_2"}


# --- per-module factors (pure) -------------------------------------------------------------------


def _parts(names: Sequence[str]) -> list[tuple[int | None, str]]:
    """(block index, layer group) of each canonical name, worked out once per adapter."""
    return [(wan_layout.block_index(n), wan_layout.layer_group(n)) for n in names]


def _selector_weights(
    selector: Selector, names: Sequence[str], parts: Sequence[tuple[int | None, str]] | None = None
) -> list[float]:
    """The selector's weight of each canonical name: its block weight, 0 where it does not select
    the module (equal to ``weight_of(n) if matches(n) else 0``, with one lookup per block)."""
    if selector.include or selector.exclude:
        return [selector.weight_of(n) if selector.matches(n) else 0.0 for n in names]
    groups = selector.groups
    outside = 1.0 if selector.blocks is None else 0.0
    by_block: dict[int | None, float] = {None: outside}
    out = []
    for block, group in parts if parts is not None else _parts(names):
        if group not in groups:
            out.append(0.0)
            continue
        weight = by_block.get(block)
        if weight is None:
            weight = by_block[block] = selector.block_weight(block)
        out.append(weight)
    return out


def module_factors(entry: LoraEntry, names: Iterable[str], expert: str | None) -> dict[str, float]:
    """What the entry multiplies each module's ΔW by on ``expert`` (None: a one-transformer model):
    ``strength_for(expert) * block weight``, 0 for modules the selector leaves out."""
    names = list(names)
    strength = entry.strength_for(expert)
    weights = _selector_weights(parse_selector(entry.selector), names)
    return {n: strength * w for n, w in zip(names, weights, strict=True)}


# --- reading a file into diffusers state dicts ---------------------------------------------------


def file_key(path: str | Path) -> str:
    """Path, size and modification time: a file changed on disk is a new adapter."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


def _state_dict(part, layers: dict, skipped: list[str]) -> tuple[dict, list[str]]:
    """(diffusers-keyed PEFT state dict, canonical names in it) of one file or expert part;
    ``layers``: the transformer's modules by name (a LoRA of another model size is refused)."""
    import torch

    state: dict = {}
    names: list[str] = []
    for name in part.names():
        module = part.load(name)
        try:
            target = wan_layout.to_diffusers(name)
        except KeyError:
            target = None
        if module.dense is not None:
            skipped.append(f"{name} (full-weight {module.kind} change)")
            continue
        if module.down is None or module.up is None:
            skipped.append(f"{name} (bias change only)")
            continue
        layer = layers.get(target) if target is not None else None
        weight = getattr(layer, "weight", None)
        if weight is None or weight.ndim != 2:
            skipped.append(f"{name} (no such layer in this model)")
            continue
        if tuple(weight.shape) != module.shape:
            model = getattr(getattr(part, "model", None), "label", "another model")
            raise UserError(
                f"{part.path}: is a LoRA for {model}: its {name} is {module.shape[0]}×{module.shape[1]} but "
                f"this model's layer is {weight.shape[0]}×{weight.shape[1]} (a LoRA of another Wan size)"
            )
        state[f"{target}.lora_A.weight"] = module.down.to(torch.float32)
        # alpha/rank folded in here, so PEFT's own scaling stays 1 and is ours to set
        state[f"{target}.lora_B.weight"] = module.up.to(torch.float32) * float(module.scale)
        if module.bias is not None:
            state[f"{target}.lora_B.bias"] = module.bias.to(torch.float32)
        names.append(name)
    if any(k.endswith(".lora_B.bias") for k in state):
        # PEFT gives every layer of the adapter a bias once one has it: the others' are zero
        for key in [k for k in state if k.endswith(".lora_B.weight")]:
            bias = key[: -len("weight")] + "bias"
            if bias not in state:
                state[bias] = torch.zeros(state[key].shape[0])
    return state, names


@dataclass
class _Layers:
    """One adapter on one transformer: its LoRA layers, their canonical names and base scalings."""

    modules: list
    names: list[str]
    base: list[float]
    _parts: list[tuple[int | None, str]] = field(default_factory=list)
    _weights: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self):
        self._parts = _parts(self.names)

    def weights(self, selector_text: str) -> list[float]:
        cached = self._weights.get(selector_text)
        if cached is None:
            if len(self._weights) > 64:
                self._weights.clear()
            selector = parse_selector(selector_text)
            cached = self._weights[selector_text] = _selector_weights(selector, self.names, self._parts)
        return cached


@dataclass
class Adapter:
    """A LoRA file loaded as a PEFT adapter ``name`` into one or both transformers."""

    name: str
    path: Path
    keys: set[str]
    #: "high" / "low" when the file is for one Wan2.2 expert (its name, metadata or key prefix)
    role: str
    layers: dict[str | None, _Layers]
    skipped: list[str]
    last_used: float = 0.0

    def routes(self, entry: LoraEntry, expert: str | None) -> bool:
        """Whether this entry's adapter runs on ``expert`` at all."""
        if expert not in self.layers:
            return False
        if expert is None:
            return True
        if entry.expert != "both":
            return entry.expert == expert
        return self.role in ("both", expert)


class AdapterStack:
    """The adapters loaded into a pipeline and the stack they currently render."""

    #: unused adapters kept loaded (a switch back costs nothing); older ones are deleted
    keep = 4

    def __init__(self, pipe, *, two_experts: bool, file_reads: Counter | None = None, log=None):
        self.pipe = pipe
        self.experts: tuple[str | None, ...] = ("high", "low") if two_experts else (None,)
        self.file_reads = file_reads if file_reads is not None else Counter()
        self.log: Callable[[str], None] = log or (lambda text: None)
        self.adapters: dict[str, Adapter] = {}
        self._by_key: dict[str, Adapter] = {}
        self._active: dict[str | None, tuple[str, ...] | None] = dict.fromkeys(self.experts)
        self._counter = 0
        self._tuner_layers: dict[str | None, list] = {}

    def transformer(self, expert: str | None):
        return getattr(self.pipe, EXPERT_ATTRS[expert])

    # --- loading ---------------------------------------------------------------------------------

    def _keys(self, entry: LoraEntry) -> list[str]:
        keys = [f"sha256:{entry.sha256}"] if entry.sha256 else []
        try:
            keys.append(file_key(entry.file))
        except OSError:
            if not keys:
                raise UserError(f"{entry.file}: the LoRA file does not exist") from None
        return keys

    def adapter_for(self, entry: LoraEntry) -> Adapter:
        """The loaded adapter of the entry's file, loading it (one read of the file) if needed."""
        keys = self._keys(entry)
        for key in keys:
            adapter = self._by_key.get(key)
            if adapter is not None:
                for other in keys:
                    adapter.keys.add(other)
                    self._by_key[other] = adapter
                return adapter
        adapter = self._load(entry.file, set(keys))
        for key in keys:
            self._by_key[key] = adapter
        return adapter

    def _load(self, file: str, keys: set[str]) -> Adapter:
        from difflora_gui.lora.reader import open_lora

        started = time.perf_counter()
        self._counter += 1
        name = f"preview{self._counter}"
        path = Path(file).expanduser()
        skipped: list[str] = []
        with open_lora(path) as lora:
            self.file_reads[str(path)] += 1
            role = lora.expert_role.role
            if lora.is_combo and self.experts == (None,):
                raise UserError(
                    f"{path}: holds both Wan2.2 A14B experts (a combo file), but the model has one "
                    "transformer; pick a Wan2.2 A14B folder, or the file of one expert"
                )
            parts = {e: (lora.part(e) if lora.is_combo else lora) for e in self.experts}
            states: dict[str | None, tuple[dict, list[str]]] = {}
            converted: dict[int, tuple[dict, list[str]]] = {}
            for expert, part in parts.items():
                if id(part) not in converted:
                    layers = dict(self.transformer(expert).named_modules())
                    converted[id(part)] = _state_dict(part, layers, skipped)
                states[expert] = converted[id(part)]
        if not any(state for state, _ in states.values()):
            raise UserError(
                f"{path}: none of its modules can be previewed here ({'; '.join(skipped[:3])}"
                f"{' …' if len(skipped) > 3 else ''})"
            )
        layers = {}
        try:
            for expert, (state, names) in states.items():
                if state:
                    layers[expert] = self._inject(expert, name, state, names)
        except BaseException:
            for expert in self.experts:  # no half-loaded adapter stays behind
                transformer = self.transformer(expert)
                if name in (getattr(transformer, "peft_config", None) or {}):
                    transformer.delete_adapters(name)
            raise
        if skipped:
            self.log(
                f"{path.name}: {len(skipped)} module(s) skipped in the preview (PEFT holds LoRA pairs "
                f"only): {', '.join(skipped[:4])}{' …' if len(skipped) > 4 else ''}"
            )
        role = role if role in ("high", "low") else "both"
        adapter = Adapter(name, path, keys, role, layers, skipped)
        self.adapters[name] = adapter
        self.log(f"{path.name}: loaded as an adapter in {time.perf_counter() - started:.2f} s")
        return adapter

    def _inject(self, expert: str | None, name: str, state: dict, names: list[str]) -> _Layers:
        from peft.tuners.tuners_utils import BaseTunerLayer

        transformer = self.transformer(expert)
        with warnings.catch_warnings():
            # several adapters in one model is the point here, not a mistake
            warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
            transformer.load_lora_adapter(dict(state), prefix=None, adapter_name=name, _pipeline=self.pipe)
        self._tuner_layers.pop(expert, None)
        self._active[expert] = None  # the new adapter's activity is set on the next apply
        by_module = {}
        for module_name, module in transformer.named_modules():
            if isinstance(module, BaseTunerLayer) and name in getattr(module, "scaling", {}):
                by_module[module_name] = module
        modules, kept, base = [], [], []
        for canonical in names:
            module = by_module.get(wan_layout.to_diffusers(canonical))
            if module is None:
                raise RuntimeError(f"{name}: no LoRA layer for {canonical} after loading")
            modules.append(module)
            kept.append(canonical)
            base.append(float(module.scaling[name]))
        return _Layers(modules, kept, base)

    def _evict(self, used: set[str]) -> None:
        spare = sorted((a for n, a in self.adapters.items() if n not in used), key=lambda a: a.last_used)
        for adapter in spare[: max(0, len(spare) - self.keep)]:
            for expert in adapter.layers:
                self.transformer(expert).delete_adapters(adapter.name)
                self._tuner_layers.pop(expert, None)
            for key in adapter.keys:
                self._by_key.pop(key, None)
            del self.adapters[adapter.name]

    # --- applying a stack ------------------------------------------------------------------------

    def _set_active(self, expert: str | None, names: tuple[str, ...]) -> None:
        """PEFT's per-layer active adapter list, rewritten only when it changes (it walks every
        layer); a first-layer check catches a list someone else changed (``set_adapters``, a load)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = self._tuner_layers.get(expert)
        if layers is None:
            transformer = self.transformer(expert)
            layers = [m for m in transformer.modules() if isinstance(m, BaseTunerLayer)]
            self._tuner_layers[expert] = layers
        if self._active.get(expert) == names and (not layers or tuple(layers[0].active_adapters) == names):
            return
        for layer in layers:
            layer.set_adapter(list(names), inference_mode=True)
        self._active[expert] = names

    def apply(self, entries: Sequence[LoraEntry]) -> None:
        """Make the model render ``entries``: load what is new, set activity and every scale."""
        entries = list(entries)
        now = time.monotonic()
        pairs = [(entry, self.adapter_for(entry)) for entry in entries]
        for _entry, adapter in pairs:
            adapter.last_used = now
        for expert in self.experts:
            running = [(e, a) for e, a in pairs if a.routes(e, expert)]
            names = tuple(dict.fromkeys(a.name for _e, a in running))
            self._set_active(expert, names)
            self._write_scales(expert, running)
        self._evict({a.name for _e, a in pairs})  # after: what is deleted is no longer active

    def _write_scales(self, expert: str | None, running: list[tuple[LoraEntry, Adapter]]) -> None:
        totals: dict[str, list[float]] = {}
        for entry, adapter in running:
            layers = adapter.layers[expert]
            strength = entry.strength_for(expert)
            weights = layers.weights(entry.selector)
            total = totals.get(adapter.name)
            if total is None:
                totals[adapter.name] = [strength * w for w in weights]
            else:  # the same file twice in the stack: the factors add (ΔW is linear in them)
                totals[adapter.name] = [t + strength * w for t, w in zip(total, weights, strict=True)]
        for name, total in totals.items():
            layers = self.adapters[name].layers[expert]
            for module, base, factor in zip(layers.modules, layers.base, total, strict=True):
                module.scaling[name] = base * factor

    def scales(self, expert: str | None = None) -> dict[str, dict[str, float]]:
        """{adapter name: {canonical module: scaling}} as set now (for tests and the log)."""
        out = {}
        for name, adapter in self.adapters.items():
            layers = adapter.layers.get(expert)
            if layers is not None:
                out[name] = {
                    n: float(m.scaling[name]) for n, m in zip(layers.names, layers.modules, strict=True)
                }
        return out

    def active(self, expert: str | None = None) -> tuple[str, ...]:
        return self._active.get(expert) or ()


def describe_stack(entries: Sequence[LoraEntry]) -> str:
    """``a.safetensors ×1.5 (attn blocks=0-9), b.safetensors ×-1`` for log lines."""
    parts = []
    for entry in entries:
        text = f"{os.path.basename(entry.file)} ×{entry.strength:g}"
        if entry.selector.strip() not in ("", "all"):
            text += f" ({entry.selector})"
        if entry.expert != "both":
            text += f" [{entry.expert}-noise only]"
        parts.append(text)
    return ", ".join(parts) or "no LoRA"
