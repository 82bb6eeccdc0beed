"""The resident preview pipeline: loaded once, LoRA files read once, Wan2.2 expert routing, cancel,
single-file DiTs, and the model's facts and checks read from its files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from preview_resident_helpers import REQUEST, entry, latents_recorder, render, write_original_dit
from wan_tiny import save_tiny_wan, tiny_transformer

from difflora_gui.errors import JobCancelled, UserError
from difflora_gui.lora.synthetic import make_wan_combo, make_wan_lora
from difflora_gui.preview.model_files import ModelSettings, check_model, model_facts, model_problems
from difflora_gui.preview.resident import ResidentPipeline, get_resident, release_resident
from difflora_gui.settings import AppSettings


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("resident")
    save_tiny_wan(base / "wan")
    save_tiny_wan(base / "wan22", two_experts=True)
    for name, seed in (("a", 1), ("b", 2)):
        make_wan_lora("tiny", path=base / f"{name}.safetensors", up_std=0.5, seed=seed)
    make_wan_lora("tiny", path=base / "style_low_noise.safetensors", up_std=0.5, seed=3)
    make_wan_combo("tiny", path=base / "combo.safetensors", up_std=0.5, seed=4)
    yield base
    release_resident()


def settings(folder, **kw) -> ModelSettings:
    return ModelSettings(model_dir=str(folder), dtype="fp32", **kw)


def test_seven_renders_load_the_model_once_and_read_each_file_once(base):
    loads = ResidentPipeline.loads
    a, b = str(base / "a.safetensors"), str(base / "b.safetensors")
    first = get_resident(settings(base / "wan"))
    stacks = [
        [entry(a, 1.0)],
        [entry(a, 2.0)],
        [entry(a, -1.0, "blocks=1@0.5")],
        [entry(a, 1.0, "attn blocks=0")],
        [entry(a, 0.5), entry(b, 1.0)],
        [entry(a, 3.0, "ffn"), entry(b, -0.5, "blocks=0@0.25,1")],
        [entry(b, 1.0)],
    ]
    outputs = []
    for stack in stacks:
        resident = get_resident(settings(base / "wan"))
        assert resident is first
        outputs.append(render(resident, *stack))
    assert ResidentPipeline.loads - loads == 1
    assert first.file_reads == {a: 1, b: 1}
    assert len({o.tobytes() for o in outputs}) == len(outputs)  # every setting rendered differently
    # back to the first setting: the same frames, still no reload or re-read
    assert np.array_equal(render(first, entry(a, 1.0)), outputs[0])
    assert ResidentPipeline.loads - loads == 1 and first.file_reads == {a: 1, b: 1}


def test_switching_files_loads_only_the_new_one(base, tmp_path):
    resident = get_resident(settings(base / "wan"))
    before = dict(resident.file_reads)
    c = tmp_path / "c.safetensors"
    make_wan_lora("tiny", path=c, up_std=0.5, seed=9)
    loads = ResidentPipeline.loads
    render(resident, entry(c, 1.0))
    render(resident, entry(base / "a.safetensors", 1.0))
    render(resident, entry(c, 2.0))
    assert ResidentPipeline.loads == loads
    assert resident.file_reads[str(c)] == 1
    assert {k: v for k, v in resident.file_reads.items() if k != str(c)} == before
    # a file rewritten on disk is a new file: read again
    make_wan_lora("tiny", path=c, up_std=0.5, seed=10, overwrite=True)
    os.utime(c, ns=(1, 1))
    render(resident, entry(c, 1.0))
    assert resident.file_reads[str(c)] == 2


def test_unused_adapters_stay_loaded_up_to_a_few_then_the_oldest_go(base, tmp_path):
    resident = get_resident(settings(base / "wan"))
    stack = resident.adapters
    files = []
    for index in range(stack.keep + 3):
        path = tmp_path / f"lru{index}.safetensors"
        make_wan_lora("tiny", path=path, seed=20 + index)
        files.append(path)
    for path in files:
        resident.apply_loras([entry(path)])
    loaded = {str(a.path) for a in stack.adapters.values()}
    assert str(files[-1]) in loaded and str(files[0]) not in loaded
    assert len([f for f in files if str(f) in loaded]) == stack.keep + 1  # the current one and `keep` spare
    resident.apply_loras([entry(files[-2])])  # kept: no read
    assert resident.file_reads[str(files[-2])] == 1
    resident.apply_loras([entry(files[0])])  # deleted: read again
    assert resident.file_reads[str(files[0])] == 2


def test_full_weight_modules_are_skipped_with_a_log_line(base, tmp_path):
    import torch

    from difflora_gui.lora.model import LoraModule
    from difflora_gui.lora.writer import write_lora

    modules = make_wan_lora("tiny", seed=1, up_std=0.5)
    modules = [m for m in modules if m.name != "blocks.1.ffn.2"]
    modules.append(LoraModule(name="blocks.0.norm3", dense=torch.randn(24), kind="diff"))
    modules.append(LoraModule(name="blocks.1.ffn.2", dense=torch.randn(24, 32) * 0.1, kind="diff"))
    path = write_lora(tmp_path / "with_diff.safetensors", modules)
    lines = []
    resident = get_resident(settings(base / "wan"))
    resident.log = lines.append
    out = render(resident, entry(path, 1.0))
    assert any("2 module(s) skipped in the preview" in line and "blocks.0.norm3" in line for line in lines)
    assert np.isfinite(out).all()


def test_cancel_between_steps_ends_the_render_and_the_next_one_works(base):
    resident = get_resident(settings(base / "wan"))
    a = entry(base / "a.safetensors", 1.0)
    expected = render(resident, a)
    seen = []

    def cancel_at_two(step, total, latents):
        seen.append((step, total))
        if step == 2:
            raise JobCancelled()

    with pytest.raises(JobCancelled):
        render(resident, a, on_step=cancel_at_two)
    assert seen == [(1, REQUEST.steps), (2, REQUEST.steps)]
    assert np.array_equal(render(resident, a), expected)


def _high_steps(resident) -> int:
    """How many of the render's steps ran on the high-noise expert (t ≥ boundary)."""
    boundary = resident.facts.boundary_ratio * resident.pipe.scheduler.config.num_train_timesteps
    return int(sum(float(t) >= boundary for t in resident.pipe.scheduler.timesteps))


def test_wan22_a_low_noise_lora_changes_only_the_low_noise_steps(base):
    resident = get_resident(settings(base / "wan22"))
    assert resident.facts.two_experts and resident.pipe.transformer_2 is not None
    request = REQUEST.replace(steps=4)
    plain, on_plain = latents_recorder()
    render(resident, request=request, on_step=on_plain)
    high = _high_steps(resident)
    assert 0 < high < request.steps
    cases = {
        "expert=low": entry(base / "a.safetensors", 2.0, expert="low"),
        "file named _low_noise": entry(base / "style_low_noise.safetensors", 2.0),
        "per-expert strength": entry(base / "a.safetensors", 1.0, strength_high=0.0, strength_low=2.0),
    }
    for what, low_only in cases.items():
        steps, on_step = latents_recorder()
        render(resident, low_only, request=request, on_step=on_step)
        for i in range(high):
            assert np.array_equal(steps[i], plain[i]), (what, i)
        assert np.abs(steps[high] - plain[high]).max() > 1e-3, what
    # and the high-noise expert alone changes the first steps
    steps, on_step = latents_recorder()
    render(resident, entry(base / "a.safetensors", 2.0, expert="high"), request=request, on_step=on_step)
    assert np.abs(steps[0] - plain[0]).max() > 1e-3


def test_wan22_combo_file_routes_each_part_to_its_expert(base):
    resident = get_resident(settings(base / "wan22"))
    combo = base / "combo.safetensors"
    request = REQUEST.replace(steps=4)
    plain, on_plain = latents_recorder()
    render(resident, request=request, on_step=on_plain)
    high = _high_steps(resident)
    steps, on_step = latents_recorder()
    render(resident, entry(combo, 2.0, strength_high=0.0), request=request, on_step=on_step)
    assert all(np.array_equal(steps[i], plain[i]) for i in range(high))
    assert np.abs(steps[high] - plain[high]).max() > 1e-3
    name = next(n for n, a in resident.adapters.adapters.items() if a.path == combo)
    assert set(resident.adapters.adapters[name].layers) == {"high", "low"}
    assert resident.file_reads[str(combo)] == 1


def test_a_combo_file_on_a_one_transformer_model_is_refused(base):
    resident = get_resident(settings(base / "wan"))
    with pytest.raises(UserError, match="combo file"):
        resident.apply_loras([entry(base / "combo.safetensors")])


def test_single_file_dit_renders_like_the_folder(base, tmp_path):
    folder_render = render(get_resident(settings(base / "wan")), entry(base / "a.safetensors", 1.0))
    dit = write_original_dit(tiny_transformer(0), tmp_path / "wan_dit.safetensors")
    options = settings(base / "wan", dit_file=str(dit))
    assert model_facts(options).num_blocks == 2
    resident = get_resident(options)
    assert resident.settings.dit_file == str(dit)
    single = render(resident, entry(base / "a.safetensors", 1.0))
    np.testing.assert_allclose(single, folder_render, rtol=0, atol=1e-5)


def test_wan22_single_file_low_noise_dit_replaces_transformer_2(base, tmp_path):
    request = REQUEST.replace(steps=4)
    a = entry(base / "a.safetensors", 1.0)
    folder_render = render(get_resident(settings(base / "wan22")), a, request=request)
    # tiny_pipeline seeds transformer_2 with seed + 1: the same weights as the folder's
    low = write_original_dit(tiny_transformer(1), tmp_path / "wan22_low_noise.safetensors")
    resident = get_resident(settings(base / "wan22", dit_file=str(low)))
    np.testing.assert_allclose(render(resident, a, request=request), folder_render, rtol=0, atol=1e-5)
    other = write_original_dit(tiny_transformer(7), tmp_path / "other_low_noise.safetensors")
    changed = render(get_resident(settings(base / "wan22", dit_file=str(other))), a, request=request)
    assert np.abs(changed - folder_render).max() > 1e-3


def test_bf16_renders_on_this_cpu_or_falls_back_with_a_reason(base):
    lines = []

    class Ctx:
        log = staticmethod(lines.append)

    options = ModelSettings(model_dir=str(base / "wan"), dtype="bf16", offload="model", vae_tiling=True)
    resident = get_resident(options, Ctx())
    out = render(resident, entry(base / "a.safetensors", 1.0))
    assert out.dtype == np.float32 and out.shape == (REQUEST.frames, REQUEST.height, REQUEST.width, 3)
    assert any("loaded in" in line for line in lines)
    assert any("model offload" in line and "does nothing" in line for line in lines)
    assert resident.pipe.vae.use_tiling
    release_resident()


def test_samplers_unipc_and_euler_on_the_flow_schedule(base):
    from difflora_gui.preview.samplers import make_scheduler

    unipc = make_scheduler("unipc", 5.0)
    assert unipc.config.prediction_type == "flow_prediction" and unipc.config.flow_shift == 5.0
    assert make_scheduler("euler", 3.0).config.shift == 3.0
    with pytest.raises(UserError, match="flow shift"):
        make_scheduler("euler", 0.0)
    resident = get_resident(settings(base / "wan"))
    a = entry(base / "a.safetensors", 1.0)
    euler = render(resident, a, request=REQUEST.replace(sampler="euler"))
    assert type(resident.pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    uni = render(resident, a)
    assert type(resident.pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert np.abs(euler - uni).max() > 1e-3
    assert np.array_equal(render(resident, a, request=REQUEST.replace(sampler="euler")), euler)


def test_damaged_weights_are_a_one_line_error(tmp_path):
    folder = save_tiny_wan(tmp_path / "wan")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot load the Wan pipeline"):
        get_resident(settings(folder))


# --- model facts and checks (no weights loaded) --------------------------------------------------


def test_model_facts_from_configs_and_headers(base, tmp_path):
    one = model_facts(settings(base / "wan"))
    assert (one.num_blocks, one.two_experts, one.variant) == (2, False, "unknown")
    two = model_facts(settings(base / "wan22"))
    assert two.two_experts and two.boundary_ratio == 0.875 and "experts" in two.label
    dit = write_original_dit(tiny_transformer(0, num_layers=3), tmp_path / "three.safetensors")
    assert model_facts(settings(base / "wan", dit_file=str(dit))).num_blocks == 3
    config = json.loads((base / "wan" / "transformer" / "config.json").read_text())
    fake = tmp_path / "wan14b"
    (fake / "transformer").mkdir(parents=True)
    (fake / "model_index.json").write_text((base / "wan" / "model_index.json").read_text())
    config.update(num_layers=40, num_attention_heads=40, attention_head_dim=128)
    (fake / "transformer" / "config.json").write_text(json.dumps(config))
    facts = model_facts(settings(fake))
    assert (facts.num_blocks, facts.variant) == (40, "14B")


def test_check_model_names_each_missing_thing(base, tmp_path):
    check_model(settings(base / "wan"))
    with pytest.raises(UserError, match="does not exist"):
        check_model(settings(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="no Wan diffusers folder"):
        check_model(ModelSettings())
    broken = tmp_path / "broken"
    for name in ("model_index.json", "transformer/config.json", "scheduler/scheduler_config.json"):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes((base / "wan" / name).read_bytes())
    problems = model_problems(settings(broken, dit_file=str(tmp_path / "missing.safetensors")))
    assert any("no vae/ folder" in p for p in problems)
    assert any("no text_encoder/ folder" in p for p in problems)
    assert any("missing.safetensors: the DiT file does not exist" in p for p in problems)
    assert not any("transformer: no weights" in p for p in problems)  # the DiT file replaces them
    assert any("transformer: no weights" in p for p in model_problems(settings(broken)))
    with pytest.raises(UserError, match=r"\(and \d+ more\)"):
        check_model(settings(broken))
    three = write_original_dit(tiny_transformer(0, num_layers=3), tmp_path / "three.safetensors")
    mismatch = model_problems(settings(base / "wan", dit_file=str(three)))
    assert any("(3 blocks) but" in p and "(2 blocks)" in p for p in mismatch)
    high_only = model_problems(settings(base / "wan", dit_high_file=str(tmp_path / "h.safetensors")))
    assert any("has one transformer" in p for p in high_only)


def test_settings_round_trip_and_fingerprint_follows_the_files(base, tmp_path):
    app = AppSettings(wan_model_dir=str(base / "wan"), preview_dtype="fp16", preview_offload="model")
    options = ModelSettings.from_settings(app, device="cuda:0")
    assert (options.model_dir, options.dtype, options.offload, options.device) == (
        str(base / "wan"),
        "fp16",
        "model",
        "cuda:0",
    )
    assert ModelSettings.from_json(options.to_json()) == options
    with pytest.raises(UserError, match="unknown preview model option"):
        ModelSettings.from_json({"model": "x"})
    with pytest.raises(UserError, match="dtype"):
        ModelSettings(dtype="int8")
    copy = tmp_path / "wan"
    save_tiny_wan(copy)
    first = settings(copy).fingerprint()
    assert settings(copy).fingerprint() == first
    assert settings(copy, offload="model").fingerprint() == first  # same pixels
    assert ModelSettings(model_dir=str(copy), dtype="bf16").fingerprint() != first
    os.utime(copy / "vae" / "config.json", ns=(5, 5))
    assert settings(copy).fingerprint() != first


class _LoadRecorder:
    """Stands in for loading a Wan pipeline (no second device here): records what was loaded on
    which device and when it was released."""

    loads: list = []
    released: list = []

    def __init__(self, settings, log=None):
        self.settings, self.pipe = settings, object()
        self.fingerprint = settings.fingerprint()
        _LoadRecorder.loads.append(settings.device)

    def release(self):
        _LoadRecorder.released.append(self.settings.device)


def test_each_device_keeps_its_own_pipeline(base, monkeypatch):
    """A grid spread over two devices keeps a model loaded on each (no reload per cell); a change
    of options on one device releases only that device's pipeline."""
    from difflora_gui.preview import resident as module

    release_resident()
    monkeypatch.setattr(module, "ResidentPipeline", _LoadRecorder)
    monkeypatch.setattr(module, "_free_device_memory", lambda: None)
    _LoadRecorder.loads, _LoadRecorder.released = [], []
    folder = str(base / "wan")
    on = {d: ModelSettings(model_dir=folder, device=d, dtype="fp32") for d in ("cuda:0", "cuda:1")}
    first = {d: get_resident(on[d]) for d in on}
    for _cell in range(3):  # cells alternate between the devices
        assert all(get_resident(on[d]) is first[d] for d in on)
    assert _LoadRecorder.loads == ["cuda:0", "cuda:1"] and _LoadRecorder.released == []
    other = ModelSettings(model_dir=folder, device="cuda:1", dtype="bf16")
    assert get_resident(other) is not first["cuda:1"]
    assert _LoadRecorder.released == ["cuda:1"] and get_resident(on["cuda:0"]) is first["cuda:0"]
    release_resident()
    assert sorted(_LoadRecorder.released) == ["cuda:0", "cuda:1", "cuda:1"] and not module._residents
