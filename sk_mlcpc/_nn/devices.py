"""Where tensors live: device resolution, copies only when needed, per-device generators."""

from __future__ import annotations

import torch

__all__ = [
    "DEVICE_CHOICES",
    "device_generator",
    "forked_cuda_devices",
    "resolve_device",
    "to_device",
]


#: How the accepted values are named in error messages.
DEVICE_CHOICES = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps' (or a torch.device of those)"


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(device: str | torch.device) -> torch.device:
    """The device a fit trains on, checked before any work is done.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:<index>"`` or ``"mps"``, or a :class:`torch.device` of those types.

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        For a string that names no device (``"nonsense"``), a device type that cannot
        train (``"meta"``, which holds no data, and the types above only), and a device
        that this machine lacks (``"cuda"`` without CUDA, an index past the last GPU).
        The message names the value and the choices.

    Examples
    --------
    >>> from sk_mlcpc._nn.devices import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("nonsense")
    Traceback (most recent call last):
    ...
    ValueError: device='nonsense' is not a device; choose 'auto', 'cpu', 'cuda', \
'cuda:<index>' or 'mps' (or a torch.device of those).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str | torch.device):
        raise ValueError(f"device={device!r} is not a device; choose {DEVICE_CHOICES}.")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device={device!r} is not a device; choose {DEVICE_CHOICES}.") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type not in ("cuda", "mps"):
        what = (
            "cannot train a model (a 'meta' tensor holds no data)"
            if resolved.type == "meta"
            else "is not a device sk-mlcpc trains on"
        )
        raise ValueError(f"device={device!r} {what}; choose {DEVICE_CHOICES}.")
    if not _available(resolved.type):
        what = "CUDA" if resolved.type == "cuda" else "MPS (Apple GPU)"
        raise ValueError(
            f"device={device!r} was requested but {what} is not available on this machine; "
            "use device='cpu', or 'auto' to take a GPU whenever there is one."
        )
    if resolved.type == "cuda" and resolved.index is not None:
        count = torch.cuda.device_count()
        if resolved.index >= count:
            raise ValueError(
                f"device={device!r} names GPU {resolved.index}, but this machine has {count} "
                f"(cuda:0 to cuda:{count - 1})."
            )
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
