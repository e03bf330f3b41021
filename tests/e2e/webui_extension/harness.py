"""The WebUI's side: the AWS extension v1.1.0's own modules, loaded and driven as the WebUI drives them.

This module runs in a process of its own (``WebUI`` in ``tests/e2e/webui_extension/__init__.py`` starts
it), because the extension changes its process for good: it patches asyncio
(``nest_asyncio.apply()``), puts itself on ``sys.path`` under generic names
(``utils``, ``scripts``) and works in its current directory. That process is
the WebUI: its working directory is a WebUI folder (``models/``,
``embeddings/``, ``outputs/``), the stand-ins in ``webui/`` answer what the
extension imports from the WebUI (gradio, ``modules.*``, the built-in LoRA
extension, the DreamBooth and ControlNet extensions), and the extension's files
are read from ``../shared/clients/webui-extension-v1.1.0`` (never copied here).

``boot`` loads the extension as the WebUI does (its ``scripts/main.py`` as a
script, its always-on script placed in the txt2img and img2img tabs, its tab
built) and every other function is one thing a user does in the WebUI, done
by calling what the extension wired to that control, as gradio would. What
each returns is what the WebUI would show. Where the extension's browser
JavaScript makes the call, ``browser`` replays the requests a browser sends
for it (``javascript/*.js``): its headers, its body, its CORS preflight.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

EXTENSION = Path(__file__).resolve().parents[3].parent / "shared" / "clients" / "webui-extension-v1.1.0"
WEBUI_STANDINS = Path(__file__).resolve().parent / "webui"
#: The WebUI's own origin, which the extension's browser scripts run from.
WEBUI_ORIGIN = "http://127.0.0.1:7860"

main: Any = None  # the extension's scripts/main.py
sagemaker_ui: Any = None
scripts: dict[str, Any] = {}  # "txt2img"/"img2img" -> the extension's always-on script in that tab


# ---------------------------------------------------------------- loading


def boot(webui_root: str) -> None:
    """Start the WebUI in ``webui_root`` with the extension installed (and not yet connected)."""
    global main, sagemaker_ui
    os.chdir(webui_root)
    for folder in ("models/Stable-diffusion", "models/Lora", "models/hypernetworks", "models/ControlNet", "embeddings"):
        os.makedirs(folder, exist_ok=True)
    sys.path[:0] = [str(WEBUI_STANDINS), str(EXTENSION)]
    import gradio as gr
    from modules import script_callbacks

    gr.AFTER_CREATE.append(_after_component)
    spec = importlib.util.spec_from_file_location("main.py", EXTENSION / "scripts" / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    sagemaker_ui = main.sagemaker_ui
    _build_tab("txt2img")
    _build_tab("img2img")
    _dreambooth_tab()
    script_callbacks.ui_tabs_callback()


def _after_component(component: Any, **kwargs: Any) -> None:
    """The WebUI's hook on component creation: the callbacks, then each placed script's ``after_component``."""
    from modules import script_callbacks

    for callback in script_callbacks.after_component_callbacks:
        callback(component, **kwargs)
    for script in scripts.values():
        script.after_component(component, **kwargs)


class ControlNetScript:
    """The sd-webui-controlnet extension's always-on script, as far as a tab's script list needs it."""

    alwayson = True
    name = "controlnet"

    def title(self) -> str:
        return "ControlNet"


def _build_tab(tab: str) -> None:
    """A txt2img or img2img tab, built in the WebUI's order: prompt, generate button, input images,
    the always-on scripts' UIs, then the gallery and the info boxes the extension hooks."""
    import gradio as gr
    from modules import scripts as webui_scripts

    script = main.SageMakerUI()
    script.is_txt2img, script.is_img2img = tab == "txt2img", tab == "img2img"
    script.alwayson, script.name = True, script.title().lower()
    scripts[tab] = script
    gr.Textbox(elem_id=f"{tab}_prompt", label="Prompt")
    gr.Button(elem_id=f"{tab}_generate", value="Generate")
    if tab == "img2img":
        for elem_id in ("img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch"):
            gr.Image(elem_id=elem_id)
        gr.Image(elem_id="img_inpaint_base")
        gr.Image(elem_id="img_inpaint_mask")
    components = script.ui(tab == "img2img")
    script.args_from, script.args_to = 1, 1 + len(components)
    script.controls = components
    gr.Gallery(elem_id=f"{tab}_gallery")
    gr.Textbox(elem_id=f"generation_info_{tab}")
    gr.HTML(elem_id=f"html_info_{tab}")
    assert isinstance(script, webui_scripts.Script)


def _dreambooth_tab() -> None:
    """The DreamBooth extension's tab, as far as the AWS extension extends it: its model dropdown, its
    Train button, its "Use txt2img" box and a "Select" tab the AWS extension puts its cloud tabs beside."""
    import gradio as gr
    from modules import script_callbacks

    with gr.Blocks() as blocks:
        gr.Dropdown(elem_id="model_name", label="Model")
        gr.Checkbox(label="Use txt2img")
        gr.Button(elem_id="db_train", value="Train")
        with gr.Row() as tabs:
            select = gr.Tab(label="Select")
            select.parent = tabs
    blocks.blocks = {id(select): select}
    script_callbacks.on_ui_tabs(lambda: [(blocks, "Dreambooth", "dreambooth_interface")])


# ---------------------------------------------------------------- gradio's side of a click


def _event(component: Any, name: str) -> Any:
    """The function wired to a component's event. Some are wired more than once (the extension's
    ``after_component`` wires the info box's change again for each later component): the same
    function each time, and gradio's first run does the work, so the first wiring stands for them."""
    return next(e for e in component.events if e.name == name)


def click(elem_id: str | None = None, *inputs: Any, value: str | None = None) -> Any:
    """What gradio does when the user clicks the button: call the function wired to it with the inputs' values."""
    import gradio as gr

    button = gr.find(elem_id, value=value, kind=gr.Button)
    return _event(button, "click").fn(*inputs)


def refresh(elem_id: str) -> Any:
    """A click on one of the WebUI's refresh buttons (🔄): what the dropdown is then given."""
    import gradio as gr

    return gr.find(elem_id).refresh()


def finish_background_work() -> None:
    """Wait for the threads the extension started (it uploads and starts jobs in threads of its own)."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon and thread.name != "MainThread":
            thread.join(timeout=300)


# ---------------------------------------------------------------- the AWS tab


def connect(api_url: str, api_key: str) -> dict[str, str]:
    """The user pastes the API URL and token, clicks "Update Setting", then "Test Connection"."""
    updated = click("aws_config_save", api_url, api_key)
    tested = click("aws_config_test", api_url, api_key)
    return {"update": updated, "test": tested}


def put_local_model(model_type: str, name: str, data: bytes) -> str:
    """A model file in the WebUI's own folders (where the user keeps it); its absolute path."""
    folder = {
        "Stable-diffusion": "models/Stable-diffusion",
        "embeddings": "embeddings",
        "Lora": "models/Lora",
        "hypernetworks": "models/hypernetworks",
        "ControlNet": "models/ControlNet",
    }[model_type]
    path = Path(folder) / name
    path.write_bytes(data)
    return str(path.resolve())


def upload_models_from_webui(
    sd: str = "", embedding: str = "", lora: str = "", hypernetwork: str = "", controlnet: str = ""
) -> Any:
    """ "Upload Model to S3 from WebUI": the dropdowns hold absolute paths of local model files."""
    return click("sagemaker_model_update_button", sd, embedding, lora, hypernetwork, controlnet)


def cloud_models(model_type: str) -> list[str]:
    """The cloud models of a type, as the extension's dropdowns list them."""
    return sagemaker_ui.get_model_list_by_type(model_type)


def deploy_endpoint(name: str, instance_type: str, count: str, autoscaling: bool) -> str:
    return click("sagemaker_deploy_endpoint_buttion", name, instance_type, count, autoscaling)


def endpoint_choices() -> list[str]:
    """The "Select Cloud SageMaker Endpoint" dropdown after a refresh: ``name+status+time`` entries."""
    return refresh("refresh_sagemaker_endpoints")["choices"]


def select_endpoint(choice: str) -> str:
    """Picking an endpoint in the txt2img tab's dropdown: what the info box then shows (the failure
    reason of a failed deployment), from the function the extension wires to that change."""
    return sagemaker_ui.displayEndpointInfo(choice)


def delete_endpoints(choices: list[str]) -> Any:
    return click("sagemaker_endpoint_delete_button", choices)


# ---------------------------------------------------------------- generating in the txt2img / img2img tabs


def select_checkpoint(title_or_name: str) -> None:
    """The WebUI's top "Stable Diffusion checkpoint" dropdown."""
    from modules import shared

    shared.opts.sd_model_checkpoint = title_or_name


def _ui_defaults(tab: str) -> dict[str, Any]:
    """What the WebUI 1.5 tab's controls hold before the user changes anything."""
    common = {
        "prompt": "",
        "negative_prompt": "",
        "styles": [],
        "seed": -1,
        "subseed": -1,
        "subseed_strength": 0,
        "seed_resize_from_h": 0,
        "seed_resize_from_w": 0,
        "seed_enable_extras": False,
        "sampler_name": "Euler a",
        "batch_size": 1,
        "n_iter": 1,
        "steps": 20,
        "cfg_scale": 7,
        "width": 512,
        "height": 512,
        "restore_faces": False,
        "tiling": False,
        "override_settings": {},
    }
    if tab == "txt2img":
        return {
            **common,
            "enable_hr": False,
            "denoising_strength": 0.7,
            "hr_scale": 2,
            "hr_upscaler": "Latent",
            "hr_second_pass_steps": 0,
            "hr_resize_x": 0,
            "hr_resize_y": 0,
            "hr_sampler_name": None,
            "hr_prompt": "",
            "hr_negative_prompt": "",
        }
    return {
        **common,
        "mask": None,
        "mask_blur": 4,
        "inpainting_fill": 1,
        "resize_mode": 0,
        "denoising_strength": 0.75,
        "image_cfg_scale": 1.5,
        "inpaint_full_res": False,
        "inpaint_full_res_padding": 32,
        "inpainting_mask_invert": 0,
    }


def _processing(tab: str, values: dict[str, Any]) -> Any:
    """The processing object the WebUI 1.5 makes from the tab's controls (``modules/txt2img.py``,
    ``modules/img2img.py``)."""
    from modules import processing, shared

    if tab == "txt2img":
        enable_hr = values["enable_hr"]
        return processing.StableDiffusionProcessingTxt2Img(
            sd_model=shared.sd_model,
            outpath_samples=shared.opts.outdir_samples or shared.opts.outdir_txt2img_samples,
            outpath_grids=shared.opts.outdir_grids or shared.opts.outdir_txt2img_grids,
            **{**values, "denoising_strength": values["denoising_strength"] if enable_hr else None},
        )
    return processing.StableDiffusionProcessingImg2Img(
        sd_model=shared.sd_model,
        outpath_samples=shared.opts.outdir_samples or shared.opts.outdir_img2img_samples,
        outpath_grids=shared.opts.outdir_grids or shared.opts.outdir_img2img_grids,
        **values,
    )


def generate(
    tab: str,
    endpoint_choice: str,
    units: list[dict[str, Any]] | None = None,
    init_image_png: bytes | None = None,
    **controls: Any,
) -> dict[str, Any]:
    """The user sets the tab's controls, picks the cloud endpoint, and clicks Generate.

    As the WebUI's ``process_images``: the always-on scripts' ``before_process`` (the extension's
    creates the cloud job and replaces the local generation), then the generation, whose info the
    tab shows; that change of the info box is the extension's cue to wait for the cloud job and show
    its images. Returns what the tab then shows.
    """
    import controlnet_units as cn
    from modules import processing, shared
    from modules import scripts as webui_scripts
    from PIL import Image

    # What the WebUI has listed of its LoRAs and hypernetworks when a job starts.
    importlib.import_module("extensions-builtin.Lora.networks").list_available_networks()
    shared.reload_hypernetworks()
    values = {**_ui_defaults(tab), **controls}
    if tab == "img2img":
        values["init_images"] = [Image.open(io.BytesIO(init_image_png)).convert("RGB")]
    p = _processing(tab, values)
    script = scripts[tab]
    # The ControlNet tab's units (three by default): those given, the rest as the UI leaves them.
    unit_objects = [_controlnet_unit(cn, **fields) for fields in (units or [])]
    unit_objects += [cn.UiControlNetUnit() for _ in range(3 - len(unit_objects))]
    controlnet = ControlNetScript()
    # The extension's controls in the tab, as gradio hands their values to scripts: the endpoint picked,
    # the job dropdown and the merge models unset, the buttons' labels.
    controls_values = [endpoint_choice, None, "🔄", None, None, None, "Merge on Cloud"]
    controlnet.args_from, controlnet.args_to = script.args_to, script.args_to + len(unit_objects)
    p.scripts = webui_scripts.ScriptRunner([script, controlnet])
    p.script_args = [0, *controls_values, *unit_objects]
    for always_on in p.scripts.alwayson_scripts:
        if hasattr(always_on, "before_process"):
            always_on.before_process(p, *p.script_args[always_on.args_from : always_on.args_to])
    processed = processing.process_images_inner(p)
    shown = _event(script.txt2img_generation_info if tab == "txt2img" else script.img2img_generation_info, "change")
    gallery, info, html = shown.fn()[:3]
    return {"processed_info": processed.info, "gallery": gallery, "info": info, "html": html}


def _controlnet_unit(cn: Any, image_png: bytes | None = None, **fields: Any) -> Any:
    """A ControlNet unit as its UI hands it over: the dropped image as gradio's sketch value (RGB array,
    and an RGBA mask, transparent where nothing was drawn)."""
    import numpy as np
    from PIL import Image

    image = None
    if image_png is not None:
        rgb = np.asarray(Image.open(io.BytesIO(image_png)).convert("RGB"))
        image = {"image": rgb, "mask": np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)}
    return cn.UiControlNetUnit(image=image, **fields)


# ---------------------------------------------------------------- the inference job list


def job_choices(show_all: bool = False) -> list[str]:
    """The "Inference Job" dropdown: after its refresh, or after ticking "Show All"."""
    import gradio as gr

    if show_all:
        box = gr.find("inference_job_page_checkbox")
        return _event(box, "change").fn(None, None, None, None, "False", True)["choices"]
    return refresh("refresh_txt2img_inference_job_ids")["choices"]


def show_job(choice: str, prompt: str = "") -> dict[str, Any]:
    """Picking a job in the dropdown: the gallery, info and prompt the tab then shows."""
    gallery, info, html, shown_prompt = _event(sagemaker_ui.inference_job_dropdown, "change").fn(choice, prompt)
    return {"gallery": gallery, "info": info, "html": html, "prompt": shown_prompt}


def interrogate(endpoint_choice: str, image_png: bytes, api_url: str, api_key: str, kind: str = "clip") -> dict:
    """img2img's "Interrogate CLIP"/"Interrogte DeepBooru": the browser script uploads the tab's values
    to ``config/aigc.json`` first (``img2img_config_save``), then the button's function runs."""
    from tests.e2e.webui_extension import browser

    image_url = "data:image/png;base64," + base64.b64encode(image_png).decode()
    saved = browser.img2img_config_save(api_url, api_key, endpoint_choice, image_url)
    button = "interrogate_clip_on_cloud_button" if kind == "clip" else "interrogate_deep_booru_on_cloud_button"
    answer = click(button, *saved)
    gallery, info, html, *prompt = answer
    return {"gallery": gallery, "info": info, "html": html, "prompt": prompt[0] if prompt else None}


def merge(primary: str, secondary: str, tertiary: str = "") -> Any:
    """The checkpoint merger's cloud merge (the extension's function behind its "Merge on Cloud")."""
    return sagemaker_ui.modelmerger_on_cloud_func(primary, secondary, tertiary)


# ---------------------------------------------------------------- datasets


def create_dataset(name: str, description: str, files: dict[str, bytes]) -> Any:
    """ "Create" in AWS Dataset Management: upload the files, name and describe the dataset, click."""
    import gradio as gr

    uploads = []
    folder = Path("tmp-uploads")
    folder.mkdir(exist_ok=True)
    for file_name, data in files.items():
        path = folder / file_name
        path.write_bytes(data)
        uploads.append(gr.FileUpload(name=str(path.resolve()), orig_name=file_name))
    return click("sagemaker_dataset_create_button", uploads, name, description)


def browse_dataset(name: str) -> dict[str, Any]:
    """ "Browse": refresh the dataset list, pick one; its S3 location, description and gallery."""
    import gradio as gr

    choices = refresh("refresh_cloud_dataset")["choices"]
    dropdown = gr.find("cloud_dataset_dropdown")
    s3, description, gallery = _event(dropdown, "select").fn(choices.index(name))
    return {"choices": choices, "s3": s3, "description": description, "gallery": gallery}


# ---------------------------------------------------------------- DreamBooth


def dreambooth_sources() -> list[str]:
    """ "Source Checkpoint" of "Create From Cloud": ``local-<title>`` and ``cloud-<name>-<id>`` entries."""
    from dreambooth_on_cloud.create_model import get_sd_cloud_models

    return list(get_sd_cloud_models())


def create_dreambooth_model(name: str, source: str) -> list[list[str]]:
    """ "Create Model From Cloud" with the tab's defaults; waits for the upload thread; the dashboard."""
    import gradio as gr

    button = gr.find(value="Create Model From Cloud", kind=gr.Button)
    _event(button, "click").fn(name, source, "", False, "", "", False, False, True)
    finish_background_work()
    from dreambooth_on_cloud.create_model import get_create_model_job_list

    return get_create_model_job_list()


def model_creation_dashboard() -> list[list[str]]:
    from dreambooth_on_cloud.create_model import get_create_model_job_list

    return get_create_model_job_list()


def cloud_dreambooth_models() -> list[str]:
    """ "Select From Cloud"'s model dropdown (it also writes each model's db_config.json locally)."""
    from dreambooth_on_cloud.train import get_cloud_db_model_name_list

    return get_cloud_db_model_name_list()


def save_dreambooth_settings(local_model: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The DreamBooth tab's settings for ``local_model``, as its "Save Settings" writes them: the cloud
    model's config (as the extension downloaded it) with the user's changes."""
    from dreambooth.dataclasses.db_config import save_config

    cloud_name = changes.pop("_cloud_model")
    with open(f"models/sagemaker_dreambooth/{cloud_name}/db_config.json") as file:
        config = json.load(file)
    config.update(changes)
    save_config(local_model, config)
    return config


def local_folder(name: str, files: dict[str, bytes]) -> str:
    """A folder of the user's (instance images); its absolute path."""
    folder = Path("user-data") / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)
    return str(folder.resolve())


def train(local_model: str, cloud_model: str, instance_type: str = "ml.g4dn.2xlarge") -> list[list[str]]:
    """ "SageMaker Train": the extension uploads and starts the job in a thread; the dashboard after it."""
    from dreambooth_on_cloud.train import async_cloud_train

    async_cloud_train(local_model, cloud_model, False, instance_type)
    finish_background_work()
    return train_dashboard()


def train_dashboard() -> list[list[str]]:
    from dreambooth_on_cloud.train import get_train_job_list

    return get_train_job_list()
