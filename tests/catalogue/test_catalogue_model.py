"""Pure parts of the catalogue: labels -> hints, artifacts -> images, static entries."""

from __future__ import annotations

import pytest
from gpulab.hub.catalogue.harbor import encode_repository, parse_link_next
from gpulab.hub.catalogue.model import (
    Image,
    hints_from_metadata,
    image_from_static,
    images_from_artifact,
    is_index,
    normalise_cuda,
    pick_platform_child,
    split_reference,
)


def test_gpulab_labels_are_read():
    h = hints_from_metadata(
        {
            "io.gpulab.display-name": "PyTorch 2.4 (CUDA 12.4)",
            "io.gpulab.description": "PyTorch, torchvision, JupyterLab",
            "io.gpulab.framework": "PyTorch",
            "io.gpulab.cuda": "12.4",
            "io.gpulab.gpu": "true",
        }
    )
    assert (h.display_name, h.description, h.framework, h.cuda, h.gpu, h.hidden) == (
        "PyTorch 2.4 (CUDA 12.4)",
        "PyTorch, torchvision, JupyterLab",
        "pytorch",
        "12.4",
        True,
        False,
    )


def test_oci_and_nvidia_labels_are_fallbacks():
    h = hints_from_metadata(
        {
            "org.opencontainers.image.title": "NGC PyTorch",
            "org.opencontainers.image.description": "NVIDIA's container",
            "com.nvidia.cuda.version": "12.4.1.003",
            "com.nvidia.pytorch.version": "2.4.0a0",
        }
    )
    assert (h.display_name, h.description, h.framework, h.cuda, h.gpu) == (
        "NGC PyTorch",
        "NVIDIA's container",
        "pytorch",
        "12.4",
        True,
    )


def test_gpulab_label_wins_over_oci_title():
    h = hints_from_metadata(
        {"org.opencontainers.image.title": "generic", "io.gpulab.display-name": "Specific"}
    )
    assert h.display_name == "Specific"


def test_cuda_from_environment_and_framework_from_repository_name():
    h = hints_from_metadata(
        {}, None, ["PATH=/usr/bin", "CUDA_VERSION=12.2.2"], repository="team/tensorflow-notebook"
    )
    assert (h.cuda, h.gpu, h.framework) == ("12.2", True, "tensorflow")


def test_explicit_gpu_false_wins_over_cuda():
    h = hints_from_metadata({"io.gpulab.cuda": "12.4", "io.gpulab.gpu": "no"})
    assert (h.cuda, h.gpu) == ("12.4", False)


def test_no_hints_means_cpu_image_without_framework():
    h = hints_from_metadata(None, None, None, repository="base")
    assert (h.display_name, h.framework, h.cuda, h.gpu) == (None, None, None, None)


def test_labels_win_over_annotations_and_annotations_fill_gaps():
    h = hints_from_metadata(
        {"io.gpulab.framework": "jax"},
        {"io.gpulab.framework": "pytorch", "io.gpulab.cuda": "11.8"},
    )
    assert (h.framework, h.cuda) == ("jax", "11.8")


def test_hidden_by_label_or_harbor_label():
    assert hints_from_metadata({"io.gpulab.hidden": "true"}).hidden
    assert hints_from_metadata({}, harbor_labels=["gpulab-hidden"]).hidden
    assert not hints_from_metadata({}, harbor_labels=["prod"]).hidden


def test_recommended_by_label_or_harbor_label():
    assert hints_from_metadata({"io.gpulab.recommended": "true"}).recommended
    assert hints_from_metadata({}, harbor_labels=["gpulab-recommended"]).recommended
    assert not hints_from_metadata({}, harbor_labels=["prod"]).recommended


def test_a_recommended_artifact_gives_recommended_images():
    kw = {"registry": "harbor.local", "project": "vision", "repository": "pytorch"}
    imgs = images_from_artifact(_artifact(["1", "2"], {"io.gpulab.recommended": "yes"}), **kw)
    assert [i.recommended for i in imgs] == [True, True]


def test_a_static_entry_may_be_recommended():
    assert image_from_static({"image": "harbor.local/vision/x:1", "recommended": True}).recommended
    assert not image_from_static({"image": "harbor.local/vision/x:1"}).recommended


def test_long_and_multiline_text_is_bounded_and_flattened():
    h = hints_from_metadata({"org.opencontainers.image.description": "a\n b  " + "x" * 2000})
    assert h.description is not None
    assert "\n" not in h.description and len(h.description) <= 500


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.4.1", "12.4"),
        ("v11.8", "11.8"),
        (12.4, "12.4"),
        ("", None),
        (None, None),
        ("cu124", "cu124"),
    ],
)
def test_normalise_cuda(raw, expected):
    assert normalise_cuda(raw) == expected


def _artifact(tags, labels=None, **extra):
    return {
        "type": "IMAGE",
        "media_type": "application/vnd.oci.image.config.v1+json",
        "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "a" * 64,
        "tags": [{"name": t, "push_time": "2024-05-01T10:00:00.000Z"} for t in tags] or None,
        "extra_attrs": {"os": "linux", "architecture": "amd64", "config": {"Labels": labels}},
        **extra,
    }


def test_one_image_per_tag():
    imgs = images_from_artifact(
        _artifact(["2.4", "latest"], {"org.opencontainers.image.title": "PyTorch"}),
        registry="harbor.local",
        project="vision",
        repository="team/pytorch",
    )
    assert [i.reference for i in imgs] == [
        "harbor.local/vision/team/pytorch:2.4",
        "harbor.local/vision/team/pytorch:latest",
    ]
    assert [i.display_name for i in imgs] == ["PyTorch [2.4]", "PyTorch [latest]"]
    assert all(i.digest == "sha256:" + "a" * 64 and i.platform == "linux/amd64" for i in imgs)
    assert imgs[0].framework == "pytorch"  # from the repository name


def test_single_tag_uses_title_as_is_and_untitled_uses_repo_tag():
    (titled,) = images_from_artifact(
        _artifact(["1"], {"org.opencontainers.image.title": "Base"}),
        registry="h",
        project="p",
        repository="base",
    )
    (plain,) = images_from_artifact(_artifact(["1"]), registry="h", project="p", repository="base")
    assert (titled.display_name, plain.display_name) == ("Base", "base:1")


def test_untagged_hidden_and_non_image_artifacts_give_nothing():
    kw = {"registry": "h", "project": "p", "repository": "r"}
    assert images_from_artifact(_artifact([]), **kw) == []
    assert images_from_artifact(_artifact(["1"], {"io.gpulab.hidden": "1"}), **kw) == []
    assert images_from_artifact(_artifact(["1"], type="CHART"), **kw) == []


def test_index_reads_child_config_and_index_annotations_win():
    index = {
        "type": "IMAGE",
        "media_type": "application/vnd.oci.image.index.v1+json",
        "manifest_media_type": "application/vnd.oci.image.index.v1+json",
        "digest": "sha256:" + "b" * 64,
        "tags": [{"name": "0.4"}],
        "annotations": {"io.gpulab.description": "from the index"},
    }
    child = _artifact(
        [], {"io.gpulab.framework": "jax", "io.gpulab.cuda": "12.3"}, annotations={"x": "y"}
    )
    assert is_index(index) and not is_index(child)
    (img,) = images_from_artifact(index, registry="h", project="p", repository="jax", child=child)
    assert (img.framework, img.cuda, img.gpu, img.description, img.digest) == (
        "jax",
        "12.3",
        True,
        "from the index",
        "sha256:" + "b" * 64,
    )


def test_pick_platform_child_prefers_linux_amd64_and_skips_attestations():
    refs = [
        {"child_digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
        {"child_digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
        {"child_digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
    ]
    assert pick_platform_child(refs) == ("sha256:amd", "linux/amd64")
    assert pick_platform_child(refs[:2]) == ("sha256:arm", "linux/arm64")
    assert pick_platform_child(refs[:1]) is None
    assert pick_platform_child(None) is None


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("harbor.local/shared/pytorch:2.4", ("harbor.local", "shared", "pytorch", "2.4", None)),
        ("harbor.local:8443/a/b/c:1", ("harbor.local:8443", "a", "b/c", "1", None)),
        ("localhost/p/r", ("localhost", "p", "r", "latest", None)),
        ("jupyter/base-notebook:x", ("docker.io", "jupyter", "base-notebook", "x", None)),
        ("ubuntu", ("docker.io", "library", "ubuntu", "latest", None)),
        ("h.io/p/r@sha256:" + "c" * 64, ("h.io", "p", "r", "latest", "sha256:" + "c" * 64)),
    ],
)
def test_split_reference(ref, parts):
    assert split_reference(ref) == parts


@pytest.mark.parametrize("bad", ["", " h/p/r", "h.io//r:1", "h.io/p/r:"])
def test_split_reference_rejects(bad):
    with pytest.raises(ValueError, match="not an image reference"):
        split_reference(bad)


def test_static_entry_dict_and_object():
    img = image_from_static(
        {
            "image": "harbor.local/shared/pytorch:2.4-cuda12.4",
            "display_name": "PyTorch 2.4 (CUDA 12.4)",
            "framework": "pytorch",
            "cuda": 12.4,
        }
    )
    assert img == Image(
        reference="harbor.local/shared/pytorch:2.4-cuda12.4",
        project="shared",
        repository="pytorch",
        tag="2.4-cuda12.4",
        digest=None,
        display_name="PyTorch 2.4 (CUDA 12.4)",
        framework="pytorch",
        cuda="12.4",
        gpu=True,
        description="",
        registry="harbor.local",
    )

    class Entry:  # the policy's StaticImage has these attributes
        image = "harbor.local/shared/base:1"
        display_name = ""
        description = "CPU only"
        framework = None
        cuda = None
        gpu = False

    obj = image_from_static(Entry())
    assert (obj.display_name, obj.gpu, obj.description) == ("base:1", False, "CPU only")


def test_repository_encoding_and_link_header():
    assert encode_repository("team/sub/repo") == "team%252Fsub%252Frepo"
    assert encode_repository("plain") == "plain"
    link = (
        '</api/v2.0/projects/p/repositories?page=1&page_size=10>; rel="prev" , '
        '</api/v2.0/projects/p/repositories?page=3&page_size=10>; rel="next"'
    )
    assert parse_link_next(link) == "/api/v2.0/projects/p/repositories?page=3&page_size=10"
    assert parse_link_next('</x?page=1>; rel="prev"') is None
    assert parse_link_next(None) is None
