import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.moe import MoEFeedForward  # noqa: E402


@pytest.mark.parametrize(("top_k", "shared"), [(1, 0), (2, 48), (4, 48)])
def test_dispatch_equals_dense_reference(top_k: int, shared: int) -> None:
    torch.manual_seed(top_k)
    moe = MoEFeedForward(dim=32, n_experts=6, top_k=top_k, hidden=40, shared_hidden=shared)
    x = torch.randn(3, 17, 32)
    with torch.no_grad():
        y, _ = moe(x)
        torch.testing.assert_close(y, moe.forward_dense(x), rtol=1e-5, atol=1e-5)


def test_router_weights_are_top_k_and_normalised() -> None:
    moe = MoEFeedForward(dim=16, n_experts=8, top_k=2, hidden=8, shared_hidden=0)
    probs, weights, ids = moe.route(torch.randn(10, 16))
    assert probs.shape == (10, 8)
    assert ids.shape == (10, 2)
    torch.testing.assert_close(weights.sum(-1), torch.ones(10))
    torch.testing.assert_close(probs.gather(1, ids[:, :1]), probs.max(-1, keepdim=True).values)


def test_aux_loss_is_one_when_balanced_and_higher_when_collapsed() -> None:
    moe = MoEFeedForward(dim=8, n_experts=4, top_k=1, hidden=8, shared_hidden=0)
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform probabilities; ties go to expert 0: all tokens collapse
    _, aux = moe(torch.randn(1, 20, 8))
    assert aux.item() == pytest.approx(1.0)  # E · (1 · 1/E)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(4, 8) * 10)
    x = torch.zeros(1, 4, 8)
    x[0, :, :4] = torch.eye(4)  # token i prefers expert i
    _, balanced = moe(x)
    with torch.no_grad():
        moe.router.weight.copy_(torch.zeros(4, 8))
        moe.router.weight[0, 0] = 10
    _, collapsed = moe(torch.ones(1, 4, 8))
    assert collapsed.item() > balanced.item()


def test_gradients_reach_router_and_used_experts() -> None:
    torch.manual_seed(0)
    moe = MoEFeedForward(dim=16, n_experts=4, top_k=2, hidden=8, shared_hidden=8)
    y, aux = moe(torch.randn(2, 9, 16))
    (y.square().mean() + 0.01 * aux).backward()
    for grad in (moe.router.weight.grad, moe.w_down.grad):
        assert grad is not None
        assert grad.abs().sum() > 0
