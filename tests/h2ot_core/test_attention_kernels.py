"""The attention kernels :func:`h2ot_core.attention.sdpa` chooses between compute the same function, and the
measured rule sends each shape where the benchmark says."""

from __future__ import annotations

import pytest
import torch

from h2ot_core import attention
from h2ot_core.attention import Kernel, choose_kernel


@pytest.mark.parametrize("shape", [(3, 2, 17, 8, 17), (2, 4, 27, 16, 27), (2, 2, 9, 32, 40)])
def test_explicit_and_fused_kernels_agree_forward_and_backward(shape):
    """Random ``q [N, H, Tq, d]``, ``k, v [N, H, Tk, d]``: outputs and all three gradients within 1e-5."""
    n, h, tq, d, tk = shape
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(n, h, t, d, generator=g) for t in (tq, tk, tk)]
    grad_out = torch.randn(n, h, tq, d, generator=g)
    results = []
    for kernel in (attention.fused_attention, attention.explicit_attention):
        q, k, v = (t.clone().requires_grad_() for t in inputs)
        out = kernel(q, k, v)
        out.backward(grad_out)
        results.append((out.detach(), q.grad, k.grad, v.grad))
    for fused, explicit in zip(*results, strict=True):
        torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)


def test_sdpa_runs_the_kernel_the_rule_names(monkeypatch):
    """fp32 training on a CPU: few keys go explicit at any head width, more keys (and inference) fused."""
    calls: list[str] = []
    for kernel in Kernel:
        real = attention.KERNELS[kernel]
        monkeypatch.setitem(attention.KERNELS, kernel,
                            lambda *a, kernel=kernel, real=real: calls.append(kernel) or real(*a))
    keys = attention.CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS
    narrow = torch.randn(2, 2, keys, 8, requires_grad=True)
    wide = torch.randn(2, 2, keys, 64, requires_grad=True)
    long = torch.randn(2, 2, keys + 1, 8, requires_grad=True)
    for q in (narrow, wide, long):
        attention.sdpa(q, q, q)
    with torch.no_grad():
        attention.sdpa(narrow, narrow, narrow)
    assert calls == [Kernel.explicit, Kernel.explicit, Kernel.fused, Kernel.fused]


def test_tensors_off_the_cpu_always_take_the_fused_kernel():
    """The same training call that goes explicit on a CPU stays fused elsewhere (meta stands in for a GPU)."""
    cpu = torch.zeros(2, 2, 17, 64, requires_grad=True)
    meta = torch.empty(2, 2, 17, 64, device="meta", requires_grad=True)
    assert choose_kernel(cpu, cpu) is Kernel.explicit
    assert choose_kernel(meta, meta) is Kernel.fused


def test_a_model_trains_the_same_through_either_kernel(monkeypatch):
    """A tiny MotionAGFormer training step: gradients equal whichever kernel runs its attention."""
    from h2ot_core.factory import create_model

    torch.manual_seed(0)
    model = create_model("motionagformer", "none", "none", "", num_frames=9, dim=32, depth=1, num_heads=2,
                         dim_rep=32).train()
    x = torch.randn(2, 9, 17, 3)
    grads = []
    for kernel in (Kernel.explicit, Kernel.fused):
        monkeypatch.setattr(attention, "choose_kernel", lambda q, k, kernel=kernel: kernel)
        model.zero_grad()
        torch.manual_seed(1)
        model(x).pose3d.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)
