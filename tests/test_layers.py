"""gankit's maxout and dropout against their definitions."""

import pytest
import torch

from gankit.models.layers import Dropout, keep_mask, maxout


def _reference_maxout(y, pieces, dim):
    dim = dim % y.dim()
    return y.unflatten(dim, (pieces, -1)).amax(dim)


@pytest.mark.parametrize("shape,pieces,dim", [((6, 15), 5, -1), ((3, 8, 4, 4), 2, 1)])
def test_maxout_value_and_gradient_match_amax(shape, pieces, dim):
    torch.manual_seed(0)
    y = torch.randn(shape, dtype=torch.float64)
    v = y.unflatten(dim % y.dim(), (pieces, -1)).movedim(dim % y.dim(), 0)  # a view: [pieces, ...]
    v[1] = torch.maximum(v[0], v[1])
    v[0] = v[1]  # every unit's top two pieces tie
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    h1, h2 = maxout(y1, pieces, dim), _reference_maxout(y2, pieces, dim)
    assert torch.equal(h1, h2)
    g = torch.randn_like(h1)
    h1.backward(g), h2.backward(g)
    assert torch.allclose(y1.grad, y2.grad)
    assert torch.autograd.gradcheck(lambda t: maxout(t, pieces, dim), (torch.randn(shape, dtype=torch.float64,
                                                                                      requires_grad=True),))


def test_maxout_tie_shares_the_gradient():
    y = torch.tensor([[1.0, 3.0, 2.0, 3.0]], requires_grad=True)  # pieces [1, 3] and [2, 3]: unit 1 ties
    maxout(y, 2).sum().backward()
    assert y.grad.tolist() == [[0.0, 0.5, 1.0, 0.5]]
    with pytest.raises(ValueError, match="multiple of 3 pieces"):
        maxout(torch.zeros(2, 4), 3)


@pytest.mark.parametrize("keep", [0.8, 0.5])
def test_keep_mask_rate_and_scale(keep):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1000, 1000]), keep, torch.float32, torch.device("cpu"))
    kept = (mask > 0).float().mean().item()
    sigma = (keep * (1 - keep) / 1e6) ** 0.5
    assert abs(kept - keep) < 5 * sigma
    assert torch.allclose(mask.unique(), torch.tensor([0.0, 1 / keep]))


def test_dropout_training_eval_and_determinism():
    x = torch.ones(64, 32)
    d = Dropout(0.2)
    torch.manual_seed(1)
    a = d(x)
    torch.manual_seed(1)
    assert torch.equal(a, d(x))
    assert not torch.equal(a, d(x))  # fresh masks each call
    assert a.dtype == x.dtype and torch.allclose(a.unique(), torch.tensor([0.0, 1.25]))
    d.eval()
    assert d(x) is x
    bf = Dropout(0.5)(torch.ones(8, 8, dtype=torch.bfloat16))
    assert bf.dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)
