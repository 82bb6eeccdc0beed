"""Preview backend ``comfyui``: Wan previews rendered by the running ComfyUI servers of Settings.

The servers form a pool (a ``comfy:<name>`` job lane each, used while its health check answers);
the LoRA stack is copied into a server's LoRA folder under names unique to the bytes, the
workflow checked against the server's nodes before it is sent, and the video it saves is
downloaded into the same render cache the diffusers backend uses. The work is
:mod:`difflora_gui.comfy.preview_backend`; this module stays import-light (no httpx, no numpy).
"""

from __future__ import annotations

from difflora_gui import hookimpl
from difflora_gui.params import Param
from difflora_gui.specs import PreviewBackendSpec

_BACKEND = "difflora_gui.comfy.preview_backend"


def _templates() -> tuple[str, ...]:
    # asked when a form is built, not at import: the plugin stays light
    from difflora_gui.comfy.preview_backend import video_templates

    return video_templates()


PARAMS = (
    Param(
        "template",
        "choice",
        "wan21_t2v",
        "the workflow: native Wan2.1 T2V with a LoRA chain, native Wan2.2 A14B with its two experts, "
        "or WanVideoWrapper T2V (block weights through WanVideoLoraBlockEdit)",
        choices=_templates,
        title="Workflow",
    ),
    Param(
        "workflow_file",
        "path",
        "",
        "your own workflow, saved in ComfyUI with Export (API), used in place of Workflow; "
        "blank: the template",
        title="Own workflow (API JSON)",
        form=False,
    ),
    Param(
        "bindings_file",
        "path",
        "",
        "which inputs of your workflow take the prompt, seed, LoRA and the rest (saved by Tools ▸ "
        "ComfyUI workflow bindings…); blank: the app's suggestions",
        title="Bindings file",
        form=False,
    ),
    Param(
        "server",
        "str",
        "",
        "the server to render on, by name or URL; blank: any healthy server of Settings ▸ ComfyUI servers",
        title="Server",
    ),
    Param(
        "unet",
        "str",
        "",
        "the Wan DiT file as the server lists it (models/diffusion_models; Wan2.2 A14B: the low-noise expert)",
        title="Diffusion model",
    ),
    Param(
        "unet_high",
        "str",
        "",
        "the Wan2.2 A14B high-noise expert as the server lists it",
        title="High-noise model",
        visible_when={"template": "wan22_t2v_a14b"},
    ),
    Param(
        "clip",
        "str",
        "",
        "the UMT5 text encoder as the server lists it (models/text_encoders)",
        title="Text encoder",
    ),
    Param("vae", "str", "", "the Wan VAE as the server lists it (models/vae)", title="VAE"),
    Param(
        "num_blocks",
        "int",
        0,
        "blocks of the model for the block panel; 0: from the model's name (40 for 14B, 30 for 1.3B and 5B)",
        minimum=0,
        maximum=64,
        title="Blocks",
        advanced=True,
    ),
    Param(
        "servers",
        "dict",
        {},
        "the servers to render on: name → {url, lora_dir}; default: the enabled servers of Settings ▸ ComfyUI servers",
        title="Servers",
        form=False,
    ),
    Param(
        "builder",
        "str",
        "difflora_gui.comfy.workflows:build_preview_workflow",
        "module:function that builds the API-format workflow (the shipped templates by default)",
        title="Workflow builder",
        advanced=True,
        form=False,
    ),
    Param(
        "timeout_s",
        "float",
        1800.0,
        "the longest a render may take on the server before the job gives up",
        minimum=1.0,
        title="Timeout (s)",
        advanced=True,
    ),
)


@hookimpl
def difflora_register_preview_backends():
    return [
        PreviewBackendSpec(
            name="comfyui",
            title="Wan (ComfyUI servers)",
            description=(
                "Renders Wan previews on your running ComfyUI servers, with the models and nodes "
                "already installed there; several servers share the work, and a render whose server "
                "fails runs again on another."
            ),
            params=PARAMS,
            run=f"{_BACKEND}:run_comfy_preview",
            model_facts=f"{_BACKEND}:model_facts",
            cached=f"{_BACKEND}:cached_comfy_preview",
            settings_defaults=f"{_BACKEND}:settings_defaults",
            lane="comfy",
        )
    ]
