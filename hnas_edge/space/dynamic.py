"""Elastic, weight-sharing layers of the supernet, kept apart from the static blocks they export to.

One :class:`DynamicMBConv` holds the weights of the largest block it can become (kernel 7, the
largest expand ratio). A smaller block uses a slice of them:

- expand ratio: the first ``mid`` channels of the expand, depthwise, SE and project weights and of
  the batch-norm statistics;
- kernel size: the centre of the 7×7 depthwise kernel, passed through a learnt linear map per
  size step (7→5 on the 25 centre weights, then 5→3 on the 9 centre weights). The maps start as
  the identity, so an untrained supernet crops plainly; training lets the small kernels differ
  from the large kernel's centre (once-for-all's kernel transformation).

The module mirrors :class:`~hnas_edge.space.blocks.MBConvLayer` parameter for parameter (same
names, larger shapes), so exporting a static block is slicing each tensor to the static shape,
plus the kernel transform for the depthwise weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hnas_edge.space.blocks import MBConvLayer, SqueezeExcite, conv_bn_act
from hnas_edge.space.specs import MBConvSpec, make_divisible

DEPTHWISE_WEIGHT = "depthwise.conv.weight"


def expanded_width(in_ch: int, expand: int) -> int:
    """Expanded channel count, the same rounding as :attr:`MBConvSpec.mid_ch`."""
    return make_divisible(round(in_ch * expand), 8)


def se_width(channels: int) -> int:
    return make_divisible(channels // 4, 8)


def _crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centred ``kernel``×``kernel`` window of a square kernel tensor (…, K, K)."""
    start = (weight.shape[-1] - kernel) // 2
    return weight[..., start : start + kernel, start : start + kernel]


def _batch_norm(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Batch norm over the first ``x.size(1)`` channels of a wider batch-norm layer.

    The statistics are sliced views of the full buffers, so training updates them in place; the
    update factor follows ``nn.BatchNorm2d`` (``momentum``, or a cumulative average when it is
    None, as batch-norm recalibration sets it).
    """
    c = x.size(1)
    factor = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch_stats = bn.training or bn.running_mean is None
    return F.batch_norm(
        x,
        bn.running_mean[:c] if bn.running_mean is not None else None,
        bn.running_var[:c] if bn.running_var is not None else None,
        bn.weight[:c],
        bn.bias[:c],
        use_batch_stats,
        factor,
        bn.eps,
    )


class DynamicMBConv(nn.Module):
    """An inverted residual block with elastic kernel size and expand ratio.

    ``in_ch``, ``out_ch``, stride, SE and activation are fixed by the block's position in the
    macro-architecture; kernel and expand ratio are chosen with :meth:`set_active`.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        use_se: bool,
        act: str,
        kernels: tuple[int, ...],
        expands: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.use_se, self.act = use_se, act
        self.kernels, self.expands = tuple(sorted(kernels)), tuple(sorted(expands))
        max_kernel = self.kernels[-1]
        max_mid = expanded_width(in_ch, self.expands[-1])
        self.expand = conv_bn_act(in_ch, max_mid, 1, 1, act)
        self.depthwise = conv_bn_act(max_mid, max_mid, max_kernel, stride, act, groups=max_mid)
        self.se = SqueezeExcite(max_mid, se_width(max_mid)) if use_se else None
        self.project = conv_bn_act(max_mid, out_ch, 1, 1, "none")
        self.kernel_transforms = nn.ParameterDict(
            {
                f"{big}to{small}": nn.Parameter(torch.eye(small * small))
                for small, big in zip(self.kernels, self.kernels[1:], strict=False)
            }
        )
        self.active_kernel, self.active_expand = max_kernel, self.expands[-1]

    def set_active(self, kernel: int, expand: int) -> None:
        self.active_kernel, self.active_expand = kernel, expand

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch

    def depthwise_filter(self, kernel: int, channels: int) -> torch.Tensor:
        """The ``channels``×1×``kernel``×``kernel`` depthwise filter of the active block."""
        weight = self.depthwise.conv.weight[:channels]
        size = self.kernels[-1]
        for small in reversed(self.kernels[:-1]):
            if size <= kernel:
                break
            matrix = self.kernel_transforms[f"{size}to{small}"]
            centre = _crop(weight, small).reshape(-1, small * small)
            weight = (centre @ matrix.T).reshape(channels, 1, small, small)
            size = small
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = expanded_width(self.in_ch, self.active_expand)
        kernel = self.active_kernel
        out = F.conv2d(x, self.expand.conv.weight[:mid])
        out = self.expand.act(_batch_norm(out, self.expand.bn))
        weight = self.depthwise_filter(kernel, mid)
        out = F.conv2d(out, weight, None, self.stride, kernel // 2, groups=mid)
        out = self.depthwise.act(_batch_norm(out, self.depthwise.bn))
        if self.se is not None:
            se = se_width(mid)
            gate = out.mean((2, 3), keepdim=True)
            gate = F.conv2d(gate, self.se.reduce.weight[:se, :mid], self.se.reduce.bias[:se])
            gate = F.conv2d(
                torch.relu(gate), self.se.expand.weight[:mid, :se], self.se.expand.bias[:mid]
            )
            out = out * F.hardsigmoid(gate)
        out = _batch_norm(F.conv2d(out, self.project.conv.weight[:, :mid]), self.project.bn)
        return out + x if self.residual else out

    def spec(self, in_shape: tuple[int, int, int], kernel: int, expand: int) -> MBConvSpec:
        return MBConvSpec(
            in_shape=in_shape,
            out_ch=self.out_ch,
            expand=expand,
            kernel=kernel,
            stride=self.stride,
            use_se=self.use_se,
            act=self.act,
        )

    @torch.no_grad()
    def export(self, in_shape: tuple[int, int, int], kernel: int, expand: int) -> MBConvLayer:
        """A static block of this kernel and expand ratio with copies of the shared weights."""
        block = MBConvLayer(self.spec(in_shape, kernel, expand))
        mine = self.state_dict()
        state = {}
        for name, target in block.state_dict().items():
            if name == DEPTHWISE_WEIGHT:
                source = self.depthwise_filter(kernel, target.shape[0])
            else:
                source = mine[name][tuple(slice(0, n) for n in target.shape)]
            state[name] = source.detach().clone()
        block.load_state_dict(state)
        return block.train(self.training)
