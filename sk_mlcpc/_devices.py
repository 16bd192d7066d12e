"""Where tensors live: device resolution, copies only when needed, per-device generators."""

from __future__ import annotations

import torch

__all__ = ["device_generator", "forked_cuda_devices", "resolve_device", "to_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return resolved


def device_generator(seed_source: torch.Generator | None, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded by one draw from ``seed_source`` (a CPU generator).

    Random draws made every batch (views, negatives) come from it, so they are made where
    the data lives: drawing on the host and copying to an accelerator would wait for the
    device at every step. ``None`` draws the seed from torch's global generator.
    """
    seed = int(torch.randint(0, 2**62, (), generator=seed_source))
    return torch.Generator(device=device).manual_seed(seed)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; no call at all when it is there already."""
    return tensor if tensor.device == torch.device(device) else tensor.to(device)


def forked_cuda_devices(device: torch.device) -> list[int]:
    """The CUDA device whose random state a fit on ``device`` seeds (and must restore).

    ``"cuda"`` without an index means the current device, not necessarily device 0.
    """
    if device.type != "cuda":
        return []
    return [torch.cuda.current_device() if device.index is None else device.index]
