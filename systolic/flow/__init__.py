"""Tool flows around the gateware: synthesis and place and route with Yosys / nextpnr.

:mod:`.toolchain` finds the tools (one locator for every flow), :mod:`.synthesis` runs them.
"""
