"""The merge's linear algebra against dense float64 references: exact factored SVD, rank policy,
randomized SVD, residuals."""

from __future__ import annotations

import math

import pytest
import torch

from difflora_gui.errors import UserError
from difflora_gui.merge import linalg
from difflora_gui.merge.api import Decomposition, ModuleDelta
from difflora_gui.merge.rank import RankPolicy


def _pair(m, n, ra, rb, *, seed=0, decay=None, dtype=torch.bfloat16):
    gen = torch.Generator().manual_seed(seed)

    def factors(r):
        up = torch.randn(m, r, generator=gen)
        down = torch.randn(r, n, generator=gen)
        if decay is not None:
            up = up * torch.tensor([decay**i for i in range(r)])
        return up.to(dtype), down.to(dtype)

    return factors(ra), factors(rb)


def _delta(pair, coefs=(1.0, -1.0), dtype=torch.float32):
    (ua, da), (ub, db) = pair
    return ModuleDelta(
        "blocks.0.self_attn.q",
        0,
        (ua.shape[0], da.shape[1]),
        ups=[ua, ub],
        downs=[da, db],
        coefs=list(coefs),
        dtype=dtype,
        device=torch.device("cpu"),
    )


def _dense(pair, coefs=(1.0, -1.0)):
    (ua, da), (ub, db) = pair
    return coefs[0] * (ua.double() @ da.double()) + coefs[1] * (ub.double() @ db.double())


def _svd64(matrix, k):
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return (u[:, :k] * s[:k]) @ vh[:k], s


def _reconstruct(dec: Decomposition, k: int) -> torch.Tensor:
    return (dec.U[:, :k].double() * dec.S[:k]) @ dec.Vh[:k].double()


@pytest.mark.parametrize("decay", [None, 0.7], ids=["random-spectrum", "decaying-spectrum"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize(
    "coefs",
    [(1.0, -1.0), (16 / 16, -8 / 32), (0.75, -1.3)],
    ids=["alpha-missing", "alpha-rank/alpha", "weights"],
)
def test_factored_svd_equals_dense_truncation(decay, dtype, coefs):
    pair = _pair(320, 448, 16, 32, seed=3, decay=decay, dtype=dtype)
    delta = _delta(pair, coefs)
    reference = _dense(pair, coefs)
    for k in (4, 16, 48):
        dec = linalg.factored_svd(delta, k)
        expected, s = _svd64(reference, k)
        assert dec.exact and dec.width == k
        assert linalg_rel(_reconstruct(dec, k), expected) <= 1e-5, k
        assert torch.allclose(dec.S[:48], s[:48], rtol=1e-9, atol=1e-9 * float(s[0]))
        # orthonormal singular vectors (what makes truncation optimal)
        eye = torch.eye(k, dtype=torch.float64)
        assert torch.allclose(dec.U.double().T @ dec.U.double(), eye, atol=1e-5)
        assert torch.allclose(dec.Vh.double() @ dec.Vh.double().T, eye, atol=1e-5)


def linalg_rel(x, ref):
    return float((x - ref).norm() / ref.norm())


def test_float32_dense_svd_is_itself_only_this_close():
    """The bar: a float32 dense SVD (the field's method) is further from float64 than we are."""
    pair = _pair(512, 512, 16, 16, seed=1, dtype=torch.bfloat16)
    reference = _dense(pair)
    expected, _ = _svd64(reference, 4)
    u, s, vh = torch.linalg.svd(reference.float(), full_matrices=False)
    dense32 = ((u[:, :4] * s[:4]) @ vh[:4]).double()
    ours = _reconstruct(linalg.factored_svd(_delta(pair), 4), 4)
    assert linalg_rel(ours, expected) <= 1e-6
    assert linalg_rel(ours, dense32) <= 1e-4  # agrees with torch.linalg.svd in float32 to its own accuracy


def test_near_identical_inputs_stay_exact():
    """A and B share almost everything (heavy cancellation, nearly dependent factors)."""
    gen = torch.Generator().manual_seed(5)
    ua, da = torch.randn(256, 16, generator=gen), torch.randn(16, 384, generator=gen)
    ub = (ua + 1e-3 * torch.randn(256, 16, generator=gen)).bfloat16()
    db = (da + 1e-3 * torch.randn(16, 384, generator=gen)).bfloat16()
    pair = ((ua.bfloat16(), da.bfloat16()), (ub, db))
    reference = _dense(pair)
    assert float(reference.norm()) < 0.01 * float((ua.double() @ da.double()).norm())
    dec = linalg.factored_svd(_delta(pair), 8)
    expected, _ = _svd64(reference, 8)
    assert linalg_rel(_reconstruct(dec, 8), expected) <= 1e-5


def test_rank_deficient_and_zero_differences():
    gen = torch.Generator().manual_seed(2)
    up, down = torch.randn(64, 8, generator=gen), torch.randn(8, 80, generator=gen)
    same = ModuleDelta(
        "x", 0, (64, 80), ups=[up, up], downs=[down, down], coefs=[1.0, -1.0], dtype=torch.float32
    )
    dec = linalg.factored_svd(same, 4)
    assert dec.S.numel() == 0 or float(dec.S[0]) < 1e-9
    # the same factors twice with different weights: rank 8, not 16
    doubled = ModuleDelta(
        "x", 0, (64, 80), ups=[up, up], downs=[down, down], coefs=[2.0, -0.5], dtype=torch.float32
    )
    dec = linalg.factored_svd(doubled, 16)
    assert dec.S.numel() <= 16 and float(dec.S[8:].abs().max() if dec.S.numel() > 8 else 0) < 1e-9 * float(
        dec.S[0]
    )
    expected, _ = _svd64(1.5 * (up.double() @ down.double()), 8)
    assert linalg_rel(_reconstruct(dec, 8), expected) <= 1e-6


def test_single_input_and_norms_from_grams():
    gen = torch.Generator().manual_seed(4)
    up, down = torch.randn(40, 6, generator=gen), torch.randn(6, 50, generator=gen)
    delta = ModuleDelta("x", 0, (40, 50), ups=[up], downs=[down], coefs=[0.5], dtype=torch.float32)
    dense = 0.5 * (up.double() @ down.double())
    assert math.isclose(delta.frobenius_norm(), float(dense.norm()), rel_tol=1e-12)
    assert torch.allclose(delta.dense().double(), dense, atol=1e-5)
    pair = _pair(40, 50, 4, 6, seed=9, dtype=torch.float32)
    d = _delta(pair, (1.0, -2.0))
    (ua, da), (ub, db) = pair
    a, b = ua.double() @ da.double(), ub.double() @ db.double()
    inner = d.factor_inner_products()
    assert math.isclose(inner[0][0], float((a * a).sum()), rel_tol=1e-12)
    assert math.isclose(inner[0][1], float((a * b).sum()), rel_tol=1e-9, abs_tol=1e-9)
    x = torch.randn(50, 3, dtype=torch.float64)
    assert torch.allclose(d.matmul(x, dtype=torch.float64), (a - 2 * b) @ x)
    y = torch.randn(40, 3, dtype=torch.float64)
    assert torch.allclose(d.rmatmul(y, dtype=torch.float64), (a - 2 * b).T @ y)


def test_dense_svd_path():
    gen = torch.Generator().manual_seed(1)
    matrix = torch.randn(60, 70, generator=gen)
    delta = ModuleDelta("x", 0, (60, 70), dense=matrix, dtype=torch.float32)
    dec = linalg.dense_svd(delta, 5)
    expected, _ = _svd64(matrix.double(), 5)
    assert linalg_rel(_reconstruct(dec, 5), expected) <= 1e-5
    assert dec.S.numel() == 60


def test_randomized_svd_error_and_determinism():
    pair = _pair(300, 400, 16, 16, seed=7, decay=0.6, dtype=torch.float32)
    delta = _delta(pair)
    expected, s = _svd64(_dense(pair), 4)
    first = linalg.randomized_svd(delta, 4, oversample=8, niter=2, seed=1)
    second = linalg.randomized_svd(_delta(pair), 4, oversample=8, niter=2, seed=1)
    assert not first.exact
    assert torch.equal(first.U, second.U) and torch.equal(first.Vh, second.Vh)
    assert linalg_rel(_reconstruct(first, 4), expected) < 1e-3  # decaying spectrum: close
    # q ≥ r_a + r_b: the random range finder captures the whole (rank-32) operator → exact
    full = linalg.randomized_svd(delta, 4, oversample=40, niter=1, seed=3)
    assert linalg_rel(_reconstruct(full, 4), expected) <= 1e-5
    # the dense path goes through torch.svd_lowrank, also seeded
    dense_delta = ModuleDelta("x", 0, delta.shape, dense=_dense(pair).float(), dtype=torch.float32)
    one = linalg.randomized_svd(dense_delta, 4, oversample=8, niter=2, seed=5)
    two = linalg.randomized_svd(dense_delta, 4, oversample=8, niter=2, seed=5)
    assert torch.equal(one.U, two.U)
    assert linalg_rel(_reconstruct(one, 4), expected) < 1e-3


def test_residual_norm_matches_dense():
    pair = _pair(120, 90, 8, 8, seed=11, dtype=torch.float32)
    delta = _delta(pair)
    dec = linalg.randomized_svd(delta, 3, oversample=2, niter=0, seed=0)
    up = dec.U[:, :3] * dec.S[:3].float().sqrt()
    down = dec.S[:3].float().sqrt()[:, None] * dec.Vh[:3]
    reference = _dense(pair)
    expected = float((reference - up.double() @ down.double()).norm())
    assert math.isclose(
        linalg.residual_norm(delta, up, down, float(reference.norm()) ** 2), expected, rel_tol=1e-6
    )


# --- the rank policy (kohya resize_lora semantics) ------------------------------------------------


S = [10.0, 5.0, 2.0, 1.0, 0.5, 0.1]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RankPolicy("fixed", rank=4), 4),
        (RankPolicy("fixed", rank=10), 6),  # never more than the spectrum has
        (RankPolicy("fixed", rank=0), 6),  # no truncation
        (RankPolicy("energy", rank=0, energy=0.99), 3),  # 100+25+4 = 129 of 130.26 = 0.9903
        (RankPolicy("energy", rank=0, energy=0.95), 2),  # 125/130.26 = 0.9596
        (RankPolicy("energy", rank=1, energy=0.99), 1),  # capped by --rank
        (RankPolicy("sv_ratio", rank=0, sv_ratio=4), 2),  # keep s > 2.5
        (RankPolicy("sv_ratio", rank=0, sv_ratio=100), 5),  # 0.1 is not > 0.1
        (RankPolicy("sv_cumulative", rank=0, sv_cumulative=0.9), 3),  # 17/18.6 = 0.914
        (RankPolicy("sv_cumulative", rank=0, sv_cumulative=0.8), 2),  # 15/18.6 = 0.806
    ],
)
def test_rank_policy(policy, expected):
    assert policy.choose(S) == expected


def test_rank_policy_uses_exact_total_energy_and_edge_cases():
    # a partial spectrum (randomized): energy counts against the exact ‖ΔW‖², so k is larger
    assert RankPolicy("energy", rank=0, energy=0.9).choose([3.0, 1.0], total_energy=100.0) == 2
    assert RankPolicy("energy", rank=0, energy=0.99).choose([1.0, 1.0, 1.0]) == 3
    assert RankPolicy("fixed", rank=4).choose([]) == 1
    assert RankPolicy("energy").choose([0.0, 0.0]) == 1
    assert RankPolicy("fixed", rank=0).choose([1.0, 1e-9, 0.0]) == 1  # numerically zero values dropped
    assert RankPolicy("fixed", rank=4).cap(32) == 4 and RankPolicy("energy", rank=0).cap(32) == 32
    with pytest.raises(UserError):
        RankPolicy("energy", energy=1.5)
    with pytest.raises(UserError):
        RankPolicy("bogus")
    with pytest.raises(UserError):
        RankPolicy("sv_ratio", sv_ratio=0.5)


def test_scratch_buffers_are_reused_and_give_the_same_bits():
    """Stacks built in reused buffers (the engine's way) give exactly what fresh buffers give."""
    from difflora_gui.merge.api import ScratchBuffers

    scratch = ScratchBuffers(keep=2)
    pairs = [_pair(96, 80, 8, 8, seed=s) for s in range(3)]
    fresh = [linalg.factored_svd(_delta(p), 4) for p in pairs]
    seen = set()
    for pair, expected in zip(pairs, fresh, strict=True):
        delta = _delta(pair)
        delta._scratch = scratch
        got = linalg.factored_svd(delta, 4)
        seen.update(id(t) for t in (delta._tall(torch.float64, "up"), delta._tall(torch.float64, "down")))
        delta.release()
        assert torch.equal(got.U, expected.U) and torch.equal(got.Vh, expected.Vh)
        assert torch.equal(got.S, expected.S)
    assert len(seen) == 2  # one buffer per stack shape, handed from module to module
    assert scratch.take((96, 16), torch.float64).shape == (96, 16)
