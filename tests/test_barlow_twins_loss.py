import pytest
import torch

from stl10_lightning.common.errors import UserError
from stl10_lightning.losses import BarlowTwinsLoss


def reference_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> tuple[float, float]:
    """The paper's equation term by term, in float64: (on-diagonal sum, weighted off-diagonal sum)."""
    z1, z2 = z1.double(), z2.double()
    a = (z1 - z1.mean(0)) / torch.sqrt(z1.std(0, unbiased=False) ** 2 + 1e-5)
    b = (z2 - z2.mean(0)) / torch.sqrt(z2.std(0, unbiased=False) ** 2 + 1e-5)
    n, d = z1.shape
    on_diag = off_diag = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[k, i].item() * b[k, j].item() for k in range(n)) / n
            if i == j:
                on_diag += (1 - c_ij) ** 2
            else:
                off_diag += lambd * c_ij**2
    return on_diag, off_diag


def correlated_views(batch: int = 32, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=generator) * 3 + 1
    return z1, z1 + torch.randn(batch, dim, generator=generator)


@pytest.mark.parametrize("lambd", [5e-3, 0.5])
def test_matches_the_equation_term_by_term(lambd):
    z1, z2 = correlated_views()
    out = BarlowTwinsLoss(lambd)(z1, z2)
    on_diag, off_diag = reference_loss(z1, z2, lambd)
    assert out["on_diag"].item() == pytest.approx(on_diag, abs=1e-5)
    assert out["off_diag"].item() == pytest.approx(off_diag, abs=1e-5)
    assert out["loss"].item() == pytest.approx(on_diag + off_diag, abs=1e-5)


def decorrelated_features(batch: int = 64, dim: int = 8) -> torch.Tensor:
    """Centred columns that are exactly orthogonal with unit variance, so their correlation is I."""
    random = torch.randn(batch, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    q, _ = torch.linalg.qr(random - random.mean(0))  # combinations of centred columns stay centred
    return (q * batch**0.5).float()


def test_near_zero_for_identical_decorrelated_views():
    z = decorrelated_features()
    out = BarlowTwinsLoss()(z, z)
    assert out["loss"].item() < 1e-6
    assert out["mean_abs_off_diag"].item() < 1e-6


def test_collapsed_features_pay_the_off_diagonal_penalty():
    batch, dim, lambd = 64, 8, 5e-3
    column = torch.randn(batch, 1, generator=torch.Generator().manual_seed(2))
    collapsed = column.expand(batch, dim) + 1e-4 * torch.randn(batch, dim, generator=torch.Generator())
    out = BarlowTwinsLoss(lambd)(collapsed, collapsed)
    assert out["off_diag"].item() == pytest.approx(lambd * dim * (dim - 1), rel=1e-3)  # every c_ij ~ 1
    assert out["mean_abs_off_diag"].item() > 0.99


def test_unrelated_views_pay_the_invariance_penalty():
    generator = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(256, 8, generator=generator), torch.randn(256, 8, generator=generator)
    assert BarlowTwinsLoss()(z1, z2)["on_diag"].item() > 8 / 2  # every c_ii ~ 0


def test_invariant_to_the_order_of_pairs():
    z1, z2 = correlated_views()
    order = torch.randperm(z1.size(0), generator=torch.Generator().manual_seed(4))
    loss = BarlowTwinsLoss()
    torch.testing.assert_close(loss(z1, z2)["loss"], loss(z1[order], z2[order])["loss"])


def test_gradients_reach_both_views():
    z1, z2 = (z.requires_grad_() for z in correlated_views())
    BarlowTwinsLoss()(z1, z2)["loss"].backward()
    for z in (z1, z2):
        assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_float32_under_bfloat16_autocast():
    z1, z2 = correlated_views(dim=64)
    projector = torch.nn.Linear(64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p1, p2 = projector(z1), projector(z2)
        out = BarlowTwinsLoss()(p1, p2)
    assert p1.dtype == torch.bfloat16
    assert out["loss"].dtype == torch.float32
    # Equal to the float32 loss of the same bf16 projections: nothing inside ran in bf16.
    torch.testing.assert_close(out["loss"], BarlowTwinsLoss()(p1.float(), p2.float())["loss"])


def test_bad_inputs_raise_user_errors():
    with pytest.raises(UserError, match="batch_size >= 2"):
        BarlowTwinsLoss()(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(UserError, match="differ in shape"):
        BarlowTwinsLoss()(torch.randn(4, 4), torch.randn(4, 5))
    with pytest.raises(UserError, match="lambd"):
        BarlowTwinsLoss(lambd=-1.0)
