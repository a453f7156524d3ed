"""Reading weight files safely: safetensors, or ``torch.load(weights_only=True)`` for .pth/.bin.

Every failure is an :class:`~au_ttt.errors.InputError` that names the file and the fix, never a
traceback: a missing file, a truncated or corrupt file, a text file, a pickle that is not a plain state
dict. Nothing here executes code from the file (no unpickling of arbitrary objects).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from au_ttt.errors import InputError

__all__ = ["read_shapes", "read_state_dict"]

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def _unwrap(obj: object, path: Path, fix: str) -> dict[str, Tensor]:
    for wrapper in ("model", "state_dict", "model_state"):  # common training-checkpoint nestings
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, Tensor)
                                                       for k, v in obj.items()):
        raise InputError(f"{path}: does not hold a state dict (a mapping of names to tensors); {fix}")
    return obj


def read_state_dict(path: str | Path, fix: str, *, allow_torch: bool = False) -> tuple[dict[str, Tensor],
                                                                                       dict[str, str]]:
    """Tensors and safetensors metadata ({} for torch files) of a weights file.

    Args:
        path: the file.
        fix: what the user should do instead, appended to every error message.
        allow_torch: also accept .pth/.pt/.bin files, read with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found; {fix}")
    if path.suffix in TORCH_SUFFIXES:
        if not allow_torch:
            raise InputError(f"{path}: a torch pickle; this loader reads .safetensors only; {fix}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated zip, random bytes, a pickle with objects weights_only refuses
            raise InputError(f"{path}: not a readable torch weights file ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:200] if str(err) else ''}); {fix}") from err
        return _unwrap(obj, path, fix), {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as err:  # header not JSON, truncated data, not a safetensors file at all
        kinds = ", ".join(SAFETENSORS_SUFFIXES + (TORCH_SUFFIXES if allow_torch else ()))
        raise InputError(f"{path}: not a readable safetensors file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''}); expected {kinds}; "
                         f"{fix}") from err
    return _unwrap(state, path, fix), meta


def read_shapes(path: str | Path, fix: str) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a safetensors file, from its header only (no tensor data is read).

    Lets a loader check that a config fits a file before it allocates the model the config describes.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (no __iter__)
    except Exception as err:  # header not JSON, offsets beyond the file, not a safetensors file at all
        raise InputError(f"{path}: not a readable safetensors file ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''}); {fix}") from err
