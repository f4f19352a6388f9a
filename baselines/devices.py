"""Choosing and describing the device a baseline runs on (for the run record and metadata)."""

from __future__ import annotations

import os
import platform


from baselines.errors import BaselineUsageError


class DeviceError(BaselineUsageError):
    pass


def resolve(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {device}: torch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}); use --device cpu")
    return device


def describe(device: str) -> dict:
    import torch

    info = {"device": device, "torch_threads": torch.get_num_threads(),
            "cpu": _cpu_name(), "cpu_count": os.cpu_count()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory,
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def hardware_text(info: dict) -> str:
    """One line for the entry's metadata, e.g. '1x NVIDIA H100 80GB HBM3 (CUDA 12.4)'."""
    if "gpu" in info:
        gpus = info.get("processes", 1)  # torchrun: one GPU per process
        return f"{gpus}x {info['gpu']} (CUDA {info['cuda']}), {info['cpu_count']} CPU cores"
    return f"CPU only: {info['cpu']} ({info['cpu_count']} cores)"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_bytes(device: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    return None
