"""A whole network as one program: the compiler's layout and refusals, and runs on the RTL
(Amaranth's simulator) checked against the host reference."""

import numpy as np
import pytest

from sw_driver import Device
from sw_driver.models.graph import Graph
from sw_driver.models.resnet import SyntheticBuilder
from sw_driver.network import reference_outputs, synthetic_inputs
from sw_driver.network_program import CompileError, compile_network
from sw_driver.network_run import fitted_config, run_network_program

DEVICE = Device(rows=4, cols=4, bus_bytes=4, backend="pysim")


def tiny_resnet(size=8, seed=0):
    """Stem (conv + 2x2 max pool), one residual block, a 1x1 head, global pool, fc."""
    b = SyntheticBuilder(seed, 8, 8)
    b.add_input("input", (3, size, size))
    x = b.conv("conv1", "input", 8, 3, 1, 1)
    x = b.maxpool("pool1", x, 2, 2, 0)
    y = b.conv("block.a", x, 8, 3, 1, 1)
    y = b.conv("block.b", y, 8, 3, 1, 1, relu=False)
    y = b.add("block.add", y, x)
    y = b.conv("head", y, 12, 1, 1, 0)
    y = b.global_avgpool("gap", y)
    b.linear("fc", y, 10)
    return Graph(name="tiny", inputs={"input": (3, size, size)}, nodes=b.nodes)


@pytest.fixture(scope="module")
def graph():
    return tiny_resnet()


def test_every_conv_and_fc_is_one_step_with_its_add_and_pool(graph):
    program = compile_network(graph, DEVICE.config)
    assert [step.names for step in program.steps] == [
        ["conv1", "pool1"], ["block.a"], ["block.b", "block.add"], ["head", "gap"], ["fc"]]
    assert [step.lowering for step in program.steps][1:] == ["window", "window", "window", "gemm"]
    # Only the graph input is filled by the host; the add's skip is pool1's output.
    assert list(program.inputs) == ["input"]
    assert program.steps[2].skip == "pool1"


def test_kept_outputs_never_share_words_and_reused_ones_only_when_dead(graph):
    kept = compile_network(graph, DEVICE.config)
    spans = sorted((step.output_addr, step.output_addr + step.output_words)
                   for step in kept.steps)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    reused = compile_network(graph, DEVICE.config, keep_outputs=False)
    assert reused.memory_plan.peak_words < kept.memory_plan.peak_words
    by_name = {step.output: step for step in reused.steps}
    for a in reused.memory_plan.tensors:
        for b in reused.memory_plan.tensors:
            if a.name < b.name and a.overlaps_in_time(b):
                sa, sb = by_name[a.name], by_name[b.name]
                assert (sa.output_addr + sa.output_words <= sb.output_addr
                        or sb.output_addr + sb.output_words <= sa.output_addr)
    # The program sits after everything else and ends the memory it needs.
    assert reused.program_addr == reused.activation_base + reused.memory_plan.peak_words
    assert reused.words_needed == reused.program_addr + reused.paged.words_in_memory


def test_a_host_only_node_is_refused_by_name():
    b = SyntheticBuilder(0, 8, 8)
    b.add_input("input", (4, 8, 8))
    x = b.conv("conv", "input", 4, 3, 1, 1)
    b.maxpool("pool_a", x, 2, 2, 0)
    b.maxpool("pool_b", "pool_a", 2, 2, 0)     # a pool after a pool: no conv store path
    graph = Graph(name="pools", inputs={"input": (4, 8, 8)}, nodes=b.nodes)
    with pytest.raises(CompileError, match=r"^pool_b \(maxpool\): runs on the host"):
        compile_network(graph, DEVICE.config)


def test_a_chain_on_a_non_square_array_is_refused_by_name(graph):
    with pytest.raises(CompileError, match=r"^block\.a: reads pool1's output from device "
                                           r"memory, which needs a square array"):
        compile_network(graph, Device(rows=4, cols=8, backend="pysim").config)


def test_an_internal_input_zero_point_is_refused_by_name(graph):
    nodes = list(graph)
    nodes[2].input_zero_point, saved = 3, nodes[2].input_zero_point
    try:
        with pytest.raises(CompileError, match=r"^block\.a: input zero point 3 is not 0"):
            compile_network(graph, DEVICE.config)
    finally:
        nodes[2].input_zero_point = saved


def test_a_program_larger_than_the_memory_names_what_it_needs(graph):
    program = compile_network(graph, DEVICE.config)
    small = DEVICE.config.replace(memory_words=1024)
    with pytest.raises(CompileError, match=rf"needs {program.words_needed:,} words of main "
                                           rf"memory .* the device has 1,024$"):
        program.check_fits(small)
    assert fitted_config(small, 3000).memory_words == 4096
    assert fitted_config(DEVICE.config, 3000) is DEVICE.config


def test_whole_network_on_the_rtl_is_bit_exact_layer_by_layer(graph):
    inputs = synthetic_inputs(graph, batch=1, seed=3)
    run, summary = run_network_program(graph, DEVICE, inputs=inputs)
    assert [r.name for r in run.records] == [node.name for node in graph]
    assert {r.check for r in run.records} == {"pass"}
    expected = reference_outputs(graph, inputs, names=["fc"])["fc"]
    np.testing.assert_array_equal(run.output, expected)
    steps = [r for r in run.records if r.cycles is not None]
    assert [r.name for r in steps] == ["conv1", "block.a", "block.b", "head", "fc"]
    # Per-layer figures are differences of snapshots: they add up to the run's (the last
    # snapshot comes just before DONE).
    assert 0 < summary["cycles"] - sum(r.cycles for r in steps) < 50
    assert sum(r.bytes_moved for r in steps) <= summary["read_bytes"] + summary["write_bytes"]
    assert summary["device_programs"] == 1 and summary["fetches"] == 0
    assert {r.lowering for r in run.records if r.kind in ("maxpool", "add", "avgpool")} == \
        {"fused"}


def test_paged_batched_program_without_kept_outputs_is_bit_exact(graph):
    # A 64-instruction ring: the run is fetched page by page; outputs share regions.
    device = DEVICE.replace(command_depth=64)
    inputs = synthetic_inputs(graph, batch=2, seed=5)
    run, summary = run_network_program(graph, device, inputs=inputs, check=False)
    expected = reference_outputs(graph, inputs, names=["fc"])["fc"]
    np.testing.assert_array_equal(run.output, expected)
    assert summary["fetches"] > 10 and not summary["activations_kept"]
    assert {r.check for r in run.records} == {"skipped"}
    assert summary["cycles_per_image"] == summary["cycles"] / 2
