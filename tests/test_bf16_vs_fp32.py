"""benchmarks/bf16_vs_fp32.py: paired differences computed by hand, on made-up suite results."""

import pytest

from benchmarks.bf16_vs_fp32 import compare, markdown

FP32 = {"base_lrelu": {0: 40.0, 1: 41.0, 2: 40.5}, "gelu_full": {0: 39.0, 1: 40.5, 2: 39.5, 3: 30.0}}
BF16 = {"base_lrelu": {0: 40.2, 1: 41.1, 2: 40.9}, "gelu_full": {0: 39.1, 1: 40.8, 2: 39.6}}


def test_paired_shift_and_change_of_the_comparison():
    base, gelu = compare(FP32, BF16)
    assert base["variant"] == "base_lrelu" and "change" not in base
    assert base["bf16_minus_fp32"] == pytest.approx((0.2 + 0.1 + 0.4) / 3)
    assert gelu["pairs"] == 3 and gelu["fp32_mean"] == pytest.approx(39.666667)  # seed 3 has no bf16 partner
    assert gelu["vs_ref_fp32"] == pytest.approx((-1.0 - 0.5 - 1.0) / 3)
    assert gelu["vs_ref_bf16"] == pytest.approx((-1.1 - 0.3 - 1.3) / 3)
    # seed by seed: (-1.1 + 1.0), (-0.3 + 0.5), (-1.3 + 1.0) = -0.1, 0.2, -0.3
    assert gelu["change"] == pytest.approx(-0.2 / 3) and gelu["change_low"] < 0 < gelu["change_high"]
    text = markdown([base, gelu], {"base_lrelu": {0: 10.0}}, {"base_lrelu": {0: 5.0}})
    assert "| gelu_full | 3 |" in text and "(2.00x;" in text
