"""``systolic gemm``: one random tile through the bare array, with the shared hardware arguments."""

from sw_driver.cli import main


def test_gemm_checks_a_random_tile_against_numpy(capsys):
    assert main(["gemm", "--array", "2x3", "-m", "4", "--weight-bits", "4", "--act-bits", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("GEMM (4 x 2) @ (2 x 3) on a 2x3 array, int4 weights, "
                                   "int4 activations")
    assert "check against numpy: PASS" in out
    assert "MACs:        24" in out
