"""Static timing over nextpnr's SDF: hand-made delay files with known worst paths."""

import pytest

from systolic.flow.timing import format_paths, parse_sdf, worst_paths

# Two registers a_0 and a_1 (bits of a) feed b through a LUT; a_1 also feeds c directly.
# Worst into b: 0.5 (clock to out) + 1.0 + 0.3 (LUT) + 0.7 + 0.1 (setup) = 2.6 ns.
SDF = """(DELAYFILE
  (SDFVERSION "3.0") (DIVIDER /) (TIMESCALE 1ps)
  (CELL (CELLTYPE "top") (INSTANCE )
    (DELAY (ABSOLUTE
      (INTERCONNECT a_TRELLIS_FF_Q/Q lut/A (900:950:1000) (900:950:1000))
      (INTERCONNECT a_TRELLIS_FF_Q_1/Q lut/B (400:400:400) (400:400:400))
      (INTERCONNECT lut/Z b_TRELLIS_FF_Q/DI (700:700:700) (700:700:700))
      (INTERCONNECT a_TRELLIS_FF_Q_1/Q c_TRELLIS_FF_Q/DI (200:200:200) (200:200:200)))))
  (CELL (CELLTYPE "TRELLIS_FF") (INSTANCE a_TRELLIS_FF_Q)
    (DELAY (ABSOLUTE (IOPATH CLK Q (500:500:500) (500:500:500)))))
  (CELL (CELLTYPE "TRELLIS_FF") (INSTANCE a_TRELLIS_FF_Q_1)
    (DELAY (ABSOLUTE (IOPATH CLK Q (450:450:450) (450:450:450)))))
  (CELL (CELLTYPE "TRELLIS_COMB") (INSTANCE lut)
    (DELAY (ABSOLUTE (IOPATH A Z (300:300:300) (300:300:300))
                     (IOPATH B Z (300:300:300) (300:300:300)))))
  (CELL (CELLTYPE "TRELLIS_FF") (INSTANCE b_TRELLIS_FF_Q)
    (TIMINGCHECK (SETUPHOLD (posedge DI) (posedge CLK) (100:100:100) (0:0:0))))
  (CELL (CELLTYPE "TRELLIS_FF") (INSTANCE c_TRELLIS_FF_Q)
    (TIMINGCHECK (SETUPHOLD (posedge DI) (posedge CLK) (50:50:50) (0:0:0))))
)"""


def test_worst_path_adds_clock_to_out_routing_logic_and_setup():
    paths = worst_paths(SDF)
    worst = paths[0]
    assert worst.delay_ns == pytest.approx(0.5 + 1.0 + 0.3 + 0.7 + 0.1)
    assert worst.pins == ("a_TRELLIS_FF_Q.Q", "lut.A", "lut.Z", "b_TRELLIS_FF_Q.DI")
    assert worst.source == "a_TRELLIS_FF_Q" and worst.sink == "b_TRELLIS_FF_Q.DI"
    assert worst.fmax_mhz == pytest.approx(1000 / 2.6)


def test_one_path_per_register_group_worst_first():
    # a_1 -> lut -> b is a path of the same groups (a -> b) as the worst: left out.
    paths = worst_paths(SDF)
    assert [(p.source, p.sink) for p in paths] == [
        ("a_TRELLIS_FF_Q", "b_TRELLIS_FF_Q.DI"), ("a_TRELLIS_FF_Q_1", "c_TRELLIS_FF_Q.DI")]
    assert paths[1].delay_ns == pytest.approx(0.45 + 0.2 + 0.05)
    assert len(worst_paths(SDF, count=1)) == 1
    assert "2.60 ns" in format_paths(paths).splitlines()[0]


def test_parse_sdf_reads_launches_edges_and_setups_in_ns():
    edges, launches, setups = parse_sdf(SDF)
    assert launches[("a_TRELLIS_FF_Q", "Q")] == pytest.approx(0.5)
    assert (("a_TRELLIS_FF_Q", "Q"), pytest.approx(1.0)) in edges[("lut", "A")]
    assert setups[("b_TRELLIS_FF_Q", "DI")] == pytest.approx(0.1)


def test_a_combinational_loop_is_cut_not_followed_forever():
    looped = SDF.replace("(INTERCONNECT lut/Z b_TRELLIS_FF_Q/DI",
                         "(INTERCONNECT lut/Z lut/B (100:100:100) (100:100:100))\n"
                         "      (INTERCONNECT lut/Z b_TRELLIS_FF_Q/DI")
    assert worst_paths(looped)[0].delay_ns == pytest.approx(2.6)


@pytest.mark.parametrize("text", ["", "(CELL)", "(DELAYFILE (SDFVERSION"])
def test_not_an_sdf_file_is_refused(text):
    with pytest.raises(ValueError, match="not an SDF file"):
        worst_paths(text)
