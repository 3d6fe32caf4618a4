"""MAML's inner loop (:mod:`sb3_ext.meta.inner`): batched over tasks, first order, second order, on a tiny network."""

import pytest
import torch as th

from sb3_ext.meta import TaskBatch, adapt, adapt_one, module_logits, pg_loss

TASKS, N, OBS, ACTIONS = 3, 16, 4, 5


def tiny(seed=0):
    th.manual_seed(seed)
    net = th.nn.Sequential(th.nn.Linear(OBS, 8), th.nn.Tanh(), th.nn.Linear(8, ACTIONS)).double()
    return net, {name: p.detach().clone().requires_grad_(True) for name, p in net.named_parameters()}


def batches(seed):
    generator = th.Generator().manual_seed(seed)
    return TaskBatch(
        th.randn(TASKS, N, OBS, generator=generator, dtype=th.float64),
        th.randint(0, ACTIONS, (TASKS, N), generator=generator),
        th.randn(TASKS, N, generator=generator, dtype=th.float64),
    )


def task(batch, k):
    return TaskBatch(*(tensor[k] for tensor in batch))


def meta_loss(logits, params, inner, outer, first_order, steps=2):
    adapted = adapt(logits, params, inner, inner_lr=0.3, steps=steps, first_order=first_order)
    return th.stack(
        [pg_loss(logits, {n: p[k] for n, p in adapted.items()}, task(outer, k)) for k in range(TASKS)]
    ).mean()


@pytest.mark.parametrize("steps", [1, 3])
def test_the_vmapped_inner_update_equals_a_per_task_loop_and_plain_autograd(steps):
    net, params = tiny()
    logits, inner = module_logits(net), batches(1)
    adapted = adapt(logits, params, inner, inner_lr=0.3, steps=steps)
    for k in range(TASKS):
        one = adapt_one(logits, params, task(inner, k), 0.3, steps, first_order=False)
        reference = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
        for _ in range(steps):  # the same update with torch.autograd, no torch.func
            loss = pg_loss(logits, reference, task(inner, k))
            grads = dict(zip(reference, th.autograd.grad(loss, list(reference.values())), strict=True))
            reference = {n: (p - 0.3 * grads[n]).detach().requires_grad_(True) for n, p in reference.items()}
        for name in params:
            assert th.allclose(adapted[name][k], one[name], atol=1e-6, rtol=0)
            assert th.allclose(adapted[name][k], reference[name], atol=1e-6, rtol=0)
        assert not th.allclose(adapted["0.weight"][k], params["0.weight"])  # it did move


def test_first_order_maml_is_the_outer_gradient_at_the_adapted_parameters():
    net, params = tiny()
    logits, inner, outer = module_logits(net), batches(1), batches(2)
    meta = th.autograd.grad(meta_loss(logits, params, inner, outer, first_order=True), list(params.values()))
    by_hand = [th.zeros_like(p) for p in params.values()]
    adapted = adapt(logits, params, inner, inner_lr=0.3, steps=2, first_order=True)
    for k in range(TASKS):
        point = {name: p[k].detach().clone().requires_grad_(True) for name, p in adapted.items()}
        grads = th.autograd.grad(pg_loss(logits, point, task(outer, k)), list(point.values()))
        by_hand = [total + g / TASKS for total, g in zip(by_hand, grads, strict=True)]
    for got, expected in zip(meta, by_hand, strict=True):
        assert th.allclose(got, expected, atol=1e-10, rtol=0)
    second = th.autograd.grad(meta_loss(logits, params, inner, outer, first_order=False), list(params.values()))
    assert max((a - b).abs().max().item() for a, b in zip(meta, second, strict=True)) > 1e-4  # the terms it drops


def test_the_second_order_meta_gradient_matches_finite_differences():
    net, params = tiny()
    logits, inner, outer = module_logits(net), batches(3), batches(4)
    meta = th.autograd.grad(meta_loss(logits, params, inner, outer, first_order=False), list(params.values()))
    eps = 1e-6
    with th.no_grad():
        for (name, value), analytic in zip(params.items(), meta, strict=True):
            numeric = th.zeros_like(value)
            for index in range(value.numel()):
                shifted = []
                for sign in (1.0, -1.0):
                    moved = {n: p.detach().clone() for n, p in params.items()}
                    moved[name].view(-1)[index] += sign * eps
                    shifted.append(meta_loss(logits, moved, inner, outer, first_order=False))
                numeric.view(-1)[index] = (shifted[0] - shifted[1]) / (2 * eps)
            assert th.allclose(analytic, numeric, atol=1e-7, rtol=1e-5), name
