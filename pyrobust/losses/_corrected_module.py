"""What the ``nn.Module`` forms of both corrections share (:class:`_CorrectedLoss`): T as a checked buffer, the
tables derived from it, their per-device cache, ``state_dict`` loading and ``repr``."""

from __future__ import annotations

import torch
from torch import nn

from pyrobust._checks import (
    check_input_and_target,
    check_label_smoothing,
    check_reduction,
    check_transition_matrix,
    check_weight,
)
from pyrobust.losses._correction_checks import _check_same_device, _check_soft
from pyrobust.losses._tables import _free_logits


class _CorrectedLoss(nn.Module):
    """Shared by the two modules: T held as a buffer (``state_dict()["T"]``), checked once; what is derived
    from it (``log T^T``, ``T^{-1}``) held as non-persistent buffers, re-derived when T is replaced, and cast
    per device and dtype of the logits in a cache that ``.to()`` and ``load_state_dict()`` clear."""

    _kind: str
    #: probability clip of the backward correction (``BackwardCorrectedLoss(clip=...)``); the forward
    #: correction is always exact
    clip: float = 0.0
    learnable: bool = False

    def __init__(
        self,
        T: torch.Tensor,
        reduction: str = "mean",
        ignore_index: int = -100,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        T = check_transition_matrix(T).detach().to(torch.float64).clone()
        self.reduction = reduction
        self.ignore_index = int(ignore_index)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.num_classes = T.shape[0]
        if weight is not None:
            weight = check_weight(weight, self.num_classes, weight.device).detach().clone()
        self.register_buffer("weight", weight)  # as nn.CrossEntropyLoss: in the state_dict when given
        self._tables: dict[tuple[torch.device, torch.dtype], tuple] = {}
        self._init_T(T)

    # -- T and what derives from it

    def _init_T(self, T: torch.Tensor) -> None:
        self._buffers["T"] = T  # `T` is also a property (below): registered past register_buffer's name check
        self._derive()

    @property
    def T(self) -> torch.Tensor:
        """The transition matrix ``T[i, j] = p(noisy = j | clean = i)`` (C x C; float64 unless the module was
        cast). A learnable T is ``softmax(T_logits, dim=1)``, differentiable (e.g. for a regulariser)."""
        if self.learnable:
            return torch.softmax(self.T_logits, dim=1)
        return self._buffers["T"]

    def __setattr__(self, name: str, value) -> None:
        if name == "T":  # `loss.T = T_new`: checked and derived as at construction
            self.set_transition_matrix(value)
        else:
            super().__setattr__(name, value)

    def set_transition_matrix(self, T: torch.Tensor) -> None:
        """Replace T (C x C, row-stochastic; checked) and re-derive what depends on it; a learnable T restarts
        from it. What ``load_state_dict`` does with a checkpoint's ``T``.

        Raises:
            TypeError, ValueError: T is not a valid C x C transition matrix (:func:`check_transition_matrix`);
                for the backward correction, also an ill-conditioned T.
        """
        T = check_transition_matrix(torch.as_tensor(T), self.num_classes).detach()
        self._check_new_T(T)
        with torch.no_grad():
            if self.learnable:
                self.T_logits.copy_(_free_logits(T.to(self.T_logits.device), self.T_logits.dtype))
            else:
                self._buffers["T"].copy_(T)
        self._derive()

    def _derive(self) -> None:
        """Re-derive the non-persistent buffers from T and clear the cast tables."""
        self._tables.clear()

    def _check_new_T(self, T: torch.Tensor) -> None:
        """Raise what deriving from ``T`` would raise, before it replaces the current T."""

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._tables.clear()  # the derived buffers moved or were cast: cast them again on the next call
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + "T"
        if key in state_dict and not self.learnable:
            # Check before the buffer is overwritten: an invalid T never reaches the module.
            self._check_new_T(check_transition_matrix(state_dict[key], self.num_classes))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "T_logits" in unexpected_keys:  # a learnable T's checkpoint: its "T" is the matrix
            unexpected_keys.remove(prefix + "T_logits")
        if not self.learnable and key in state_dict:
            self._derive()

    def extra_repr(self) -> str:
        parts = [f"num_classes={self.num_classes}", f"reduction={self.reduction!r}", f"ignore_index={self.ignore_index}"]
        if self.weight is not None:
            parts.append(f"weight=({self.weight.shape[0]},)")
        parts.append(f"label_smoothing={self.label_smoothing}")
        parts += [f"{name}={value}" for name, value in self._options()]
        return ", ".join(parts)

    def _options(self) -> list[tuple[str, object]]:
        return []

    # -- the loss

    def _check_call(self, input: torch.Tensor, target: torch.Tensor) -> tuple[int, bool]:
        C, soft = check_input_and_target(input, target, self.reduction)
        if C != self.num_classes:
            raise ValueError(f"T is {self.num_classes} x {self.num_classes} but the logits have {C} classes")
        _check_soft(soft, self.ignore_index)
        if self.weight is not None:
            _check_same_device("weight", self.weight, input)
        return C, soft
