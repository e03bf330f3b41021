"""Models uploaded as the Stable Diffusion WebUI's AWS extension uploads them: a tar named like the model file.

The extension's "Upload Models to Cloud" makes, for every model type, a plain
tar (``tarfile.open(name, 'w')``, ``tar.add('models/Lora/x.safetensors')``)
and uploads it as ``.../x.safetensors``. Each use of a model file (checkpoint,
LoRA, embedding, ControlNet, merge input, training's model channel) must take
such a tar by its content and load the model inside as if it had been sent
alone: the images are compared with those of the plain file.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sd_runtime.__main__ import main
from sd_runtime.archives import ArchiveError, is_tar, model_file_in, safe_extract
from sd_runtime.errors import RequestError
from tests.unit.sd_runtime.conftest import BUCKET, counting_store, images_of, invocation, upload
from tests.unit.sd_runtime.test_addons import controlnet_unit, with_controlnet
from tests.unit.sd_runtime.test_merge import merge_body, merged_output

YAML = b"model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n"


def extension_tar(path: Path, members: dict[str, Path | bytes], mode: str = "w") -> Path:
    """A tar as the extension makes it: each member added under its relative path (``models/<type>/<file>``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, source in members.items():
            if isinstance(source, Path):
                tar.add(source, arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(source)
                tar.addfile(info, io.BytesIO(source))
    return path


def upload_tar(world, tmp_path: Path, key: str, members: dict[str, Path | bytes], mode: str = "w") -> str:
    """The tar uploaded under ``key``, whose last part is the model's own file name, as the extension names it."""
    name = key.rsplit("/", 1)[-1]
    return upload(world.s3, extension_tar(tmp_path / "tars" / key / name, members, mode), key)


def with_checkpoint(world, uri: str, name: str, **params) -> dict:
    body = invocation(world, **params)
    body["models"]["checkpoint"] = {"name": name, "s3_uri": uri}
    return body


def image(world, body) -> np.ndarray:
    return images_of(world.runtime.invoke(body))[0]


# ----------------------------------------------------------------------------------------------- inference


@pytest.mark.parametrize("mode", ["w", "w:gz"], ids=["tar", "tar.gz"])
def test_a_checkpoint_uploaded_as_the_extensions_tar_gives_the_single_files_image(world, tmp_path, mode):
    uri = upload_tar(
        world,
        tmp_path,
        "Stable-diffusion/ext/tiny-sd.safetensors",
        {
            "models/Stable-diffusion/tiny-sd.safetensors": world.models.single_file,
            "models/Stable-diffusion/tiny-sd.yaml": YAML,
        },
        mode,
    )

    from_tar = image(world, with_checkpoint(world, uri, "tiny-sd.safetensors"))
    built_configs = world.make_runtime(single_file_config=None)
    without_setting = images_of(built_configs.invoke(with_checkpoint(world, uri, "tiny-sd.safetensors")))[0]
    plain = image(world, invocation(world, checkpoint="tiny-sd.safetensors"))

    assert np.array_equal(from_tar, plain)
    assert np.array_equal(without_setting, plain)


def test_a_lora_uploaded_as_the_extensions_tar_is_applied_as_the_plain_file(world, tmp_path):
    world.uris["tar-lora"] = upload_tar(
        world, tmp_path, "Lora/ext/tinylora.safetensors", {"models/Lora/tinylora.safetensors": world.models.lora}
    )
    body = invocation(world, prompt="a red cube <lora:tinylora:0.8>")
    body["models"]["loras"] = [{"name": "tinylora.safetensors", "s3_uri": world.uris["tar-lora"]}]

    from_tar = image(world, body)
    plain = image(world, invocation(world, prompt="a red cube <lora:tinylora:0.8>", loras=("tinylora.safetensors",)))
    baseline = image(world, invocation(world, prompt="a red cube"))

    assert np.array_equal(from_tar, plain)
    assert np.abs(from_tar - baseline).max() > 10  # the LoRA was applied


def test_an_embedding_uploaded_as_the_extensions_tar_is_loaded_as_the_plain_file(world, tmp_path):
    uri = upload_tar(
        world,
        tmp_path,
        "embeddings/ext/tinyemb.safetensors",
        {"embeddings/tinyemb.safetensors": world.models.embedding},
    )
    body = invocation(world, prompt="a photo of tinyemb")
    body["models"]["embeddings"] = [{"name": "tinyemb.safetensors", "s3_uri": uri}]

    from_tar = image(world, body)
    plain = image(world, invocation(world, prompt="a photo of tinyemb", embeddings=("tinyemb.safetensors",)))
    baseline = image(world, invocation(world, prompt="a photo of tinyemb"))

    assert np.array_equal(from_tar, plain)
    assert np.abs(from_tar - baseline).max() > 10  # the embedding was used


def test_a_controlnet_uploaded_as_the_extensions_tar_steers_as_the_plain_file(world, tmp_path):
    world.uris["tar-controlnet"] = upload_tar(
        world,
        tmp_path,
        "ControlNet/ext/tiny_control_canny.safetensors",
        {"models/ControlNet/tiny_control_canny.safetensors": world.models.controlnet_file},
    )

    from_tar = image(
        world,
        with_controlnet(
            world, controlnet_unit("tiny_control_canny"), controlnets={"tiny_control_canny": "tar-controlnet"}
        ),
    )
    plain = image(
        world,
        with_controlnet(
            world,
            controlnet_unit("tiny_control_canny"),
            controlnets={"tiny_control_canny": "tiny_control_canny.safetensors"},
        ),
    )
    baseline = image(world, invocation(world))

    assert np.array_equal(from_tar, plain)
    assert np.abs(from_tar - baseline).max() > 10


def test_a_merge_input_uploaded_as_the_extensions_tar_merges_as_the_plain_file(world, tmp_path):
    uri = upload_tar(
        world,
        tmp_path,
        "Stable-diffusion/ext/tiny-sd-other.safetensors",
        {"models/Stable-diffusion/tiny-sd-other.safetensors": world.models.other_single_file},
    )

    for folder in ("from-tar", "plain"):
        (tmp_path / folder).mkdir()
    world.runtime.invoke(merge_body(world.uris["tiny-sd.safetensors"], uri, multiplier=0.3))
    from_tar = merged_output(world, tmp_path / "from-tar")
    world.runtime.invoke(
        merge_body(world.uris["tiny-sd.safetensors"], world.uris["tiny-sd-other.safetensors"], multiplier=0.3)
    )
    plain = merged_output(world, tmp_path / "plain")

    assert from_tar.keys() == plain.keys()
    assert all(torch.equal(from_tar[k], plain[k]) for k in plain)


def test_a_tar_with_no_model_file_or_an_unclear_one_is_a_400_saying_what_it_holds(world, tmp_path):
    nothing = upload_tar(
        world, tmp_path, "Lora/ext/empty.safetensors", {"models/Lora/readme.txt": b"hi", "models/Lora/x.yaml": YAML}
    )
    several = upload_tar(
        world,
        tmp_path,
        "Lora/ext/wanted.safetensors",
        {"models/Lora/a.safetensors": world.models.lora, "models/Lora/b.pt": b"not used"},
    )

    refused = []
    for uri, name in ((nothing, "empty.safetensors"), (several, "wanted.safetensors")):
        body = invocation(world, prompt="x")
        body["models"]["loras"] = [{"name": name, "s3_uri": uri}]
        with pytest.raises(RequestError) as error:
            world.runtime.invoke(body)
        assert error.value.status == 400
        refused.append(error.value.message)

    assert refused[0] == (
        f"LoRA {nothing} is a tar archive holding no model file (.safetensors, .ckpt, .pt, .pth, .bin); "
        "it holds: models/Lora/readme.txt, models/Lora/x.yaml"
    )
    assert refused[1] == (
        f"LoRA {several} is a tar archive holding several model files and none named wanted.safetensors: "
        "models/Lora/a.safetensors, models/Lora/b.pt; it should hold one model"
    )


def test_the_file_named_like_the_object_wins_and_a_lone_model_file_of_another_name_is_used(tmp_path):
    root = tmp_path / "unpacked"
    (root / "models" / "Lora").mkdir(parents=True)
    for name in ("x.safetensors", "y.safetensors", "x.yaml"):
        (root / "models" / "Lora" / name).write_bytes(b"")
    lone = tmp_path / "lone"
    (lone / "embeddings").mkdir(parents=True)
    (lone / "embeddings" / "other.pt").write_bytes(b"")
    (lone / "embeddings" / "._other.pt").write_bytes(b"")  # macOS metadata: not a model

    assert model_file_in(root, "x.safetensors", "LoRA x") == root / "models" / "Lora" / "x.safetensors"
    assert model_file_in(lone, "x.pt", "embedding x") == lone / "embeddings" / "other.pt"
    with pytest.raises(ArchiveError, match=r"several model files and none named z\.safetensors"):
        model_file_in(root, "z.safetensors", "LoRA z")


def malicious_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w") as tar:
        if kind == "dotdot":
            info = tarfile.TarInfo("models/Lora/../../../escape.safetensors")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        elif kind == "symlink":
            info = tarfile.TarInfo("models/Lora/evil.safetensors")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:  # a relative link climbing out of the folder
            info = tarfile.TarInfo("models/Lora/evil.safetensors")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../../../outside.safetensors"
            tar.addfile(info)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "symlink", "relative-symlink"])
def test_a_malicious_tar_is_refused_and_nothing_is_written_outside_the_cache(world, tmp_path, kind):
    tar = malicious_tar(tmp_path / "evil.safetensors", kind)
    uri = upload(world.s3, tar, f"Lora/{kind}/evil.safetensors")
    body = invocation(world, prompt="x")
    body["models"]["loras"] = [{"name": "evil.safetensors", "s3_uri": uri}]

    with pytest.raises(RequestError) as refused:
        world.runtime.invoke(body)

    assert refused.value.status == 400
    assert refused.value.message.startswith(f"LoRA {uri}: evil.safetensors holds ")
    assert "refusing to unpack it" in refused.value.message or "would leave" in refused.value.message
    cache = world.runtime.settings.cache_dir
    assert not list(tmp_path.glob("escape*")) and not list(cache.parent.glob("escape*"))
    assert not [p for p in cache.rglob("*") if p.is_symlink()]


def test_safe_extract_refuses_an_archive_larger_than_the_free_disk(tmp_path, monkeypatch):
    import shutil

    tar = extension_tar(tmp_path / "x.safetensors", {"models/Lora/x.safetensors": b"0123456789"})

    class Usage:
        free = 5

    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(ArchiveError, match=r"x.safetensors unpacks to .* GiB free where it is unpacked"):
        safe_extract(tar, tmp_path / "out")


def test_a_tar_is_recognised_by_its_content_whatever_its_name(tmp_path, tiny_models):
    plain_tar = extension_tar(tmp_path / "a.safetensors", {"models/Lora/a.safetensors": b"x"})
    gz_tar = extension_tar(tmp_path / "b.ckpt", {"models/Lora/b.ckpt": b"x"}, "w:gz")
    ckpt = tmp_path / "c.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, ckpt)

    assert is_tar(plain_tar) and is_tar(gz_tar)
    assert not is_tar(tiny_models.single_file) and not is_tar(tiny_models.lora) and not is_tar(ckpt)
    assert not is_tar(tmp_path / "missing")


def test_a_tar_is_unpacked_once_per_object_version_and_the_archive_is_not_kept(world, tmp_path):
    store, calls = counting_store(tmp_path / "cache")
    key = "Lora/ext/tinylora.safetensors"
    uri = upload_tar(world, tmp_path, key, {"models/Lora/tinylora.safetensors": world.models.lora})

    first = store.fetch(uri, what="LoRA")
    again = store.fetch(uri, what="LoRA")

    assert first == again and first.name == "tinylora.safetensors"
    assert first.read_bytes() == world.models.lora.read_bytes()
    assert calls == [key]
    local = store._local_path(BUCKET, key)
    assert not local.exists()  # the unpacked model is what is kept
    unpacked_root = local.with_name(local.name + ".unpacked")
    assert first.is_relative_to(unpacked_root)

    # A changed object is unpacked anew, and the older version goes.
    other = tmp_path / "other-lora.safetensors"
    other.write_bytes(world.models.embedding.read_bytes())
    upload_tar(world, tmp_path / "v2", key, {"models/Lora/tinylora.safetensors": other})
    changed = store.fetch(uri, what="LoRA")
    assert changed != first and changed.read_bytes() == other.read_bytes()
    assert not first.exists()
    assert len(calls) == 2

    # An object that stops being a tar is a plain file again; nothing unpacked is left.
    world.s3.upload_file(str(world.models.lora), BUCKET, key)
    plain = store.fetch(uri, what="LoRA")
    assert plain == local and plain.read_bytes() == world.models.lora.read_bytes()
    assert not unpacked_root.exists()


# ----------------------------------------------------------------------------------------------- training


def run_job(root: Path, capsys) -> tuple[int, str, str | None]:
    capsys.readouterr()
    code = main(["train"])
    failure = root / "output" / "failure"
    return code, capsys.readouterr().out, failure.read_text() if failure.is_file() else None


def test_create_model_from_the_extensions_tar_named_like_the_checkpoint(create_model_root, tiny_models, capsys):
    # DreamBooth's "create model from local checkpoint": the model channel holds the object the extension
    # uploaded, a tar called tiny-sd.safetensors.
    extension_tar(
        create_model_root / "input" / "data" / "model" / "tiny-sd.safetensors",
        {
            "models/Stable-diffusion/tiny-sd.safetensors": tiny_models.single_file,
            "models/Stable-diffusion/tiny-sd.yaml": YAML,
        },
    )

    code, log, failure = run_job(create_model_root, capsys)

    assert code == 0, failure or log
    assert "tiny-sd.safetensors in the model channel is a tar archive" in log
    assert "single-file checkpoint tiny-sd.safetensors" in log
    model = create_model_root / "model"
    for part, file in (("unet", "diffusion_pytorch_model"), ("text_encoder", "model")):
        ours = load_file(str(model / part / f"{file}.safetensors"))
        theirs = load_file(str(tiny_models.pipeline_dir / part / f"{file}.safetensors"))
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (
            {"models/Stable-diffusion/tiny-sd.yaml": YAML},
            "tiny-sd.safetensors in the model channel is a tar archive holding no model file "
            "(.safetensors, .ckpt, .pt, .pth, .bin); it holds: models/Stable-diffusion/tiny-sd.yaml",
        ),
        (
            {"models/Stable-diffusion/../../../escape.safetensors": b"hi"},
            "the model channel's tiny-sd.safetensors holds an unsafe path "
            "'models/Stable-diffusion/../../../escape.safetensors'; refusing to unpack it",
        ),
    ],
    ids=["no-model", "dotdot"],
)
def test_create_model_from_an_unusable_or_malicious_tar_fails_saying_why(create_model_root, capsys, members, expected):
    extension_tar(create_model_root / "input" / "data" / "model" / "tiny-sd.safetensors", members)

    code, log, failure = run_job(create_model_root, capsys)

    assert code == 1
    assert failure is not None and expected in failure, failure
    assert not (create_model_root / "model").exists() or not any((create_model_root / "model").iterdir())


def test_create_model_refuses_a_tar_with_a_link_pointing_outside(create_model_root, capsys):
    malicious_tar(create_model_root / "input" / "data" / "model" / "evil.safetensors", "symlink")

    code, log, failure = run_job(create_model_root, capsys)

    assert code == 1
    assert failure is not None and "holds a link 'models/Lora/evil.safetensors' -> '/etc/passwd'" in failure
