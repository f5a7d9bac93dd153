"""The GPU probe: fake-file semantics, NVIDIA_VISIBLE_DEVICES, choice from the environment."""

from __future__ import annotations

import logging

from gpulab.extensions.gpu_probe import (
    FakeProbe,
    GpuProbe,
    GpuSample,
    NullProbe,
    NvmlProbe,
    probe_from_env,
)

GiB = 1024**3


def test_fake_probe_reports_busy_and_idle_as_written(tmp_path):
    path = tmp_path / "gpus.json"
    probe = FakeProbe(path, visible_devices="all")
    FakeProbe.write(path, FakeProbe.gpus(2, 80, processes={1: [(4242, 2 * GiB)]}))
    busy = probe.sample()
    assert [(g.index, g.uuid, g.utilization_pct) for g in busy] == [
        (0, "GPU-fake-0", 80.0),
        (1, "GPU-fake-1", 80.0),
    ]
    assert busy[1].processes[0].pid == 4242 and busy[1].memory_used_bytes == 2 * GiB
    FakeProbe.write(path, FakeProbe.gpus(2, 0))
    assert [g.utilization_pct for g in probe.sample()] == [0.0, 0.0]


def test_fake_probe_shows_only_the_pods_gpus_renumbered(tmp_path):
    path = tmp_path / "gpus.json"
    FakeProbe.write(path, [{"uuid": f"GPU-n{i}", "utilization_pct": 10 * i} for i in range(4)])
    by_index = FakeProbe(path, visible_devices="1,3").sample()
    assert [(g.index, g.uuid, g.utilization_pct) for g in by_index] == [
        (0, "GPU-n1", 10.0),
        (1, "GPU-n3", 30.0),
    ]
    by_uuid = FakeProbe(path, visible_devices="GPU-n2").sample()
    assert [(g.index, g.uuid) for g in by_uuid] == [(0, "GPU-n2")]
    assert FakeProbe(path, visible_devices="none").sample() == []
    assert FakeProbe(path, visible_devices="void").sample() == []
    assert len(FakeProbe(path, visible_devices="all").sample()) == 4


def test_fake_probe_reads_nvidia_visible_devices_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "gpus.json"
    FakeProbe.write(path, FakeProbe.gpus(4, 50))
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "GPU-fake-2,GPU-fake-3")
    assert [g.uuid for g in FakeProbe(path).sample()] == ["GPU-fake-2", "GPU-fake-3"]
    monkeypatch.setenv("GPULAB_GPU_PROBE", f"fake:{path}")
    assert [g.uuid for g in probe_from_env().sample()] == ["GPU-fake-2", "GPU-fake-3"]


def test_fake_probe_never_raises_and_logs_a_bad_file_once(tmp_path, caplog):
    path = tmp_path / "gpus.json"
    probe = FakeProbe(path, visible_devices="all")
    assert probe.sample() == []  # no file yet: no GPUs
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="gpulab.extensions.gpu_probe"):
        assert probe.sample() == [] and probe.sample() == []
    assert len([r for r in caplog.records if "bad file" in r.getMessage()]) == 1
    path.write_text('{"gpus": [{"utilization_pct": "lots"}]}')
    assert probe.sample() == []


def test_memory_used_defaults_to_the_processes_sum(tmp_path):
    path = tmp_path / "gpus.json"
    FakeProbe.write(
        path,
        [
            {
                "processes": [
                    {"pid": 1, "used_memory_bytes": GiB},
                    {"pid": 2, "used_memory_bytes": GiB},
                ]
            }
        ],
    )
    (g,) = FakeProbe(path, visible_devices="all").sample()
    assert g.memory_used_bytes == 2 * GiB and g.memory_total_bytes == 80 * GiB
    assert GpuSample.from_json(g.to_json()) == g


def test_probe_choice_from_environment(tmp_path):
    assert isinstance(probe_from_env({"GPULAB_GPU_PROBE": "none"}), NullProbe)
    fake = probe_from_env({"GPULAB_GPU_PROBE": f"fake:{tmp_path}/g.json"})
    assert isinstance(fake, FakeProbe) and isinstance(fake, GpuProbe)
    assert isinstance(probe_from_env({"GPULAB_GPU_PROBE": "bogus"}), NullProbe)
    # No NVIDIA driver on this machine: NVML is unavailable, so nvml/default fall back.
    default = probe_from_env({})
    if NvmlProbe.create() is None:
        assert isinstance(default, NullProbe)
        assert isinstance(probe_from_env({"GPULAB_GPU_PROBE": "nvml"}), NullProbe)
    assert isinstance(default.sample(), list)
