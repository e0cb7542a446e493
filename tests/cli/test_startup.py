"""``systolic conv2d`` starts without importing what only other subcommands need."""

import json
import subprocess
import sys

HEAVY = ("matplotlib", "onnx", "torch", "amaranth.back", "systolic.flow", "sw_driver.network",
         "sw_driver.cli.synth", "sw_driver.cli.resnet")

PROBE = """
import contextlib, io, json, sys
from sw_driver.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["conv2d", "--help"])
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_conv2d_help_imports_only_what_conv2d_needs():
    # A fresh interpreter: this one has imported everything the other tests needed.
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True)
    probe = json.loads(done.stdout)
    assert probe["code"] == 0
    loaded = [name for name in probe["modules"]
              if any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY)]
    assert loaded == []
    assert "sw_driver.cli.layer" in probe["modules"]
