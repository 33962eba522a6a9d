"""Interop with :mod:`torch.nn.utils.prune`: masks made there, analysed here.

``torch.nn.utils.prune`` reparametrises a pruned tensor: the parameter
``weight`` becomes ``weight_orig``, a buffer ``weight_mask`` holds the mask and
a forward pre-hook recomputes the plain attribute ``weight = weight_orig *
weight_mask`` before every call. This toolkit keeps ``weight`` as the
parameter and applies its ``weight_mask`` buffer inside ``forward``
(:class:`~tcmp_pyg.nn.PrunableModule`).

**The name clash.** Both representations call the mask ``weight_mask``. When
torch prunes a :class:`~tcmp_pyg.nn.PrunableModule`, its ``register_buffer``
*replaces* our buffer by torch's (same name), ``weight`` becomes torch's
product and our ``forward`` multiplies by the mask once more, which changes
nothing for a 0/1 mask: the model keeps computing
``weight_orig * weight_mask``. Which earlier mask torch starts from depends on
the call: :func:`~torch.nn.utils.prune.global_unstructured` reads an existing
``weight_mask`` as its default mask (kept zeros stay zero), whereas a
per-layer method such as :func:`~torch.nn.utils.prune.l1_unstructured`
starts from all ones on a layer torch has not pruned yet, so a mask set by
this toolkit is *replaced*. Call :func:`to_torch_prune` first to hand it
over: torch then combines new pruning with it (its ``PruningContainer``).
While torch's hook is active, :meth:`~tcmp_pyg.nn.PrunableModule.set_mask`
writes torch's buffer in place (both stay in agreement), but pruned latent
weights get no gradient: straight-through training needs
:func:`from_torch_prune` first.

:func:`from_torch_prune` undoes the reparametrisation without baking the
mask into the weight (unlike :func:`torch.nn.utils.prune.remove`): the
``weight_orig`` parameter object becomes ``weight`` again, torch's mask stays
in ``weight_mask`` and the hook goes. Outputs do not change and the
state_dict returns to this toolkit's keys. :func:`to_torch_prune` is the
inverse (:func:`torch.nn.utils.prune.custom_from_mask` on every prunable
weight).

**Plain layers.** A plain :class:`nn.Linear` or :class:`nn.Conv1d` /
``Conv2d`` / ``Conv3d`` (``groups=1``) pruned by torch already stores its mask
as ``weight_mask`` with the input channels on axis 1 and the output channels
on axis 0, so it is left as it is: the connectivity analysis reads it through
the automatic flow of an :class:`nn.Sequential`
(:func:`~tcmp_pyg.pruning.connectivity.channel_flow_of`), without class
swapping. To prune such a model with this toolkit (its methods write masks
and route gradients inside ``forward``), ask for ``convert=True``: the
layers become :class:`PrunableLinear` / :class:`PrunableConv1d` ... which
subclass both the torch layer and :class:`~tcmp_pyg.nn.PrunableModule`, share
the original parameter objects and have the state_dict keys of an unpruned
torch layer plus ``weight_mask``. :func:`to_torch_prune` turns them back into
the plain torch classes.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import prune

from tcmp_pyg.nn.prunable import PrunableModule

_Size = Union[int, Tuple[int, ...]]


class PrunableLinear(PrunableModule, nn.Linear):
    r"""An :class:`nn.Linear` whose ``weight`` carries a ``weight_mask``
    applied in ``forward``; ``isinstance(m, nn.Linear)`` still holds.

    Args:
        in_features (int): Input features.
        out_features (int): Output features.
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(*, H_{in})`
        - **output:** :math:`(*, H_{out})`
    """
    in_axis = 1
    out_axis = 0

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self._init_mask()

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.masked_weight(), self.bias)


class _PrunableConvNd(PrunableModule):
    """Shared constructor and forward of the prunable convolutions."""
    in_axis = 1
    out_axis = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Size,
                 stride: _Size = 1, padding: Union[str, _Size] = 0,
                 dilation: _Size = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = 'zeros',
                 device: Optional[torch.device] = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        if groups != 1:
            raise ValueError(f"{type(self).__name__}: expected groups=1 (got "
                             f"{groups}); a grouped weight does not connect "
                             f"every input channel to every output channel")
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding, dilation, groups, bias, padding_mode,
                         device, dtype)
        self._init_mask()

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.masked_weight(), self.bias)


class PrunableConv1d(_PrunableConvNd, nn.Conv1d):
    r"""An :class:`nn.Conv1d` (``groups=1``) whose ``weight`` carries a
    ``weight_mask`` applied in ``forward``. Arguments as :class:`nn.Conv1d`."""


class PrunableConv2d(_PrunableConvNd, nn.Conv2d):
    r"""An :class:`nn.Conv2d` (``groups=1``) whose ``weight`` carries a
    ``weight_mask`` applied in ``forward``. Arguments as :class:`nn.Conv2d`."""


class PrunableConv3d(_PrunableConvNd, nn.Conv3d):
    r"""An :class:`nn.Conv3d` (``groups=1``) whose ``weight`` carries a
    ``weight_mask`` applied in ``forward``. Arguments as :class:`nn.Conv3d`."""


# torch class <-> prunable class, for exact types only (a subclass of
# nn.Linear may change forward()).
_PRUNABLE: Dict[Type[nn.Module], Type[PrunableModule]] = {
    nn.Linear: PrunableLinear, nn.Conv1d: PrunableConv1d,
    nn.Conv2d: PrunableConv2d, nn.Conv3d: PrunableConv3d}
_PLAIN = {v: k for k, v in _PRUNABLE.items()}


def _pruning_hooks(module: nn.Module) -> List[Tuple[int, prune.BasePruningMethod]]:
    return [(k, h) for k, h in module._forward_pre_hooks.items()
            if isinstance(h, prune.BasePruningMethod)]


def _check_pruned_tensors(name: str, module: nn.Module) -> bool:
    """Whether torch prunes ``module.weight``; refuses other pruned tensors."""
    pruned = False
    for _, hook in _pruning_hooks(module):
        if hook._tensor_name != 'weight':
            raise ValueError(
                f"from_torch_prune(): '{name}' ({type(module).__name__}) has a "
                f"torch.nn.utils.prune mask on '{hook._tensor_name}', but only "
                f"weights are prunable here (they connect channels). Make it "
                f"permanent first: torch.nn.utils.prune.remove(module, "
                f"'{hook._tensor_name}')")
        pruned = True
    return pruned


def _unwrap(module: nn.Module) -> Tuple[nn.Parameter, Tensor]:
    """Removes torch's reparametrisation of ``weight``; returns the latent
    parameter (``weight_orig``) and torch's mask. ``weight`` is left unset."""
    for k, _ in _pruning_hooks(module):
        del module._forward_pre_hooks[k]
    orig = module._parameters.pop('weight_orig')
    mask = module._buffers.pop('weight_mask')
    if 'weight' in module.__dict__:  # torch's plain product attribute
        del module.__dict__['weight']
    return orig, mask.detach().to(dtype=orig.dtype)


def _replace(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    if not name:
        return new
    parent, _, leaf = name.rpartition('.')
    setattr(model.get_submodule(parent), leaf, new)
    return model


def _empty_like(cls: Type[nn.Module], module: nn.Module) -> nn.Module:
    """A ``cls`` layer with ``module``'s hyperparameters on the meta device
    (no memory, no initialisation: its tensors are replaced next)."""
    if issubclass(cls, nn.Linear):
        new = cls(module.in_features, module.out_features,
                  bias=module.bias is not None, device='meta')
    else:
        new = cls(module.in_channels, module.out_channels, module.kernel_size,
                  stride=module.stride, padding=module.padding,
                  dilation=module.dilation, groups=module.groups,
                  bias=module.bias is not None,
                  padding_mode=module.padding_mode, device='meta')
    new.bias = module.bias
    return new.train(module.training)


def _prunable_like(module: nn.Module, weight: nn.Parameter,
                   mask: Tensor) -> PrunableModule:
    """A prunable copy of a plain layer sharing its parameter objects."""
    new = _empty_like(_PRUNABLE[type(module)], module)
    new.weight = weight
    new.register_buffer('weight_mask', mask)
    return new


def _plain_like(module: PrunableModule) -> nn.Module:
    """The plain torch layer of a converted one, sharing its parameters."""
    new = _empty_like(_PLAIN[type(module)], module)
    new.weight = module.weight
    return new


def from_torch_prune(model: nn.Module, *, convert: bool = False) -> nn.Module:
    r"""Turns :mod:`torch.nn.utils.prune` masks into this toolkit's masks
    (in place).

    - A :class:`~tcmp_pyg.nn.PrunableModule` pruned by torch gets its
      parameter ``weight`` back (the same object as ``weight_orig``, latent
      values kept, not multiplied by the mask), torch's mask as its
      ``weight_mask`` and no hook. Outputs are unchanged.
    - A plain :class:`nn.Linear` / :class:`nn.Conv1d` / ``Conv2d`` /
      ``Conv3d`` (``groups=1``) keeps torch's representation, which the
      connectivity analysis reads as it is; with ``convert=True`` it becomes
      a :class:`PrunableLinear` / :class:`PrunableConv1d` ... (same parameter
      objects, mask applied in ``forward``), pruned by torch or not, so this
      toolkit's pruning methods can work on it. Hooks registered on the old
      layer object are not carried over.

    Args:
        model (nn.Module): A model (or a single layer) pruned with
            :mod:`torch.nn.utils.prune`.
        convert (bool, optional): Convert plain torch layers into prunable
            layers. (default: :obj:`False`)

    Returns:
        The model, modified in place (a new module only when ``model`` itself
        is a converted layer).

    Raises:
        ValueError: if torch prunes another tensor than ``weight`` (a bias).
        TypeError: if torch prunes the weight of a layer whose channel axes
            are unknown (an embedding, a grouped convolution, a subclass of
            :class:`nn.Linear`...).
    """
    for name, module in list(model.named_modules()):
        pruned = _check_pruned_tensors(name, module)
        if isinstance(module, PrunableModule):
            if pruned:
                weight, mask = _unwrap(module)
                module.register_parameter('weight', weight)
                module.register_buffer('weight_mask', mask)
            continue
        convertible = type(module) in _PRUNABLE and getattr(module, 'groups', 1) == 1
        if pruned and not convertible:
            raise TypeError(
                f"from_torch_prune(): '{name}' ({type(module).__name__}) "
                f"carries a torch.nn.utils.prune mask, but its channel axes "
                f"are unknown: only nn.Linear and nn.Conv1d/2d/3d with "
                f"groups=1 (exact classes) and this toolkit's prunable layers "
                f"are understood. Make it permanent with "
                f"torch.nn.utils.prune.remove(module, 'weight') or leave it "
                f"unpruned.")
        if convert and convertible:
            if pruned:
                weight, mask = _unwrap(module)
            else:
                weight, mask = module.weight, torch.ones_like(module.weight.detach())
            model = _replace(model, name, _prunable_like(module, weight, mask))
    return model


def to_torch_prune(model: nn.Module) -> nn.Module:
    r"""Gives every prunable weight :mod:`torch.nn.utils.prune`'s
    representation (in place): ``weight_orig`` (the same parameter object),
    ``weight_mask`` (this toolkit's mask) and torch's forward pre-hook, via
    :func:`torch.nn.utils.prune.custom_from_mask`. Layers converted by
    :func:`from_torch_prune` become the plain torch classes again. Outputs
    are unchanged, and further torch pruning combines with these masks.

    Every prunable weight is handed over, all-ones masks included.
    :class:`~tcmp_pyg.nn.ChannelGate` gates are not masks and stay as they
    are.

    Args:
        model (nn.Module): A model with prunable layers.

    Returns:
        The model, modified in place (a new module only when ``model`` itself
        is a converted layer).

    Raises:
        ValueError: if a mask is relaxed (not 0/1, or carries a gradient) or
            a layer routes gradients straight through its mask (a pruning
            method is still training it): torch's hook multiplies by the mask
            once before ``forward``, which is only equivalent for frozen 0/1
            masks.
    """
    for name, module in list(model.named_modules()):
        if not isinstance(module, PrunableModule) or _pruning_hooks(module):
            continue
        mask = module.weight_mask
        if mask.requires_grad or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"to_torch_prune(): the mask of '{name}' is "
                             f"relaxed (not 0/1 or carrying a gradient); "
                             f"finalise the pruning method first")
        if module.straight_through:
            raise ValueError(f"to_torch_prune(): '{name}' routes gradients "
                             f"straight through its mask (a pruning method is "
                             f"training it); freeze or finalise the method "
                             f"first")
        mask = mask.detach().clone()
        if type(module) in _PLAIN:
            plain = _plain_like(module)
            model = _replace(model, name, plain)
            prune.custom_from_mask(plain, 'weight', mask)
        else:
            # torch replaces our 'weight_mask' buffer by its own (same values).
            prune.custom_from_mask(module, 'weight', mask)
    return model
