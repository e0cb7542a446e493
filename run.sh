#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11 and a C/C++ compiler):
#   ./run.sh demo   set up, then run a ResNet-50 block through the simulated accelerator
#   ./run.sh test   set up, then run the default test suite
#   ./run.sh slow   set up, then run the long tests (full-size layers, place and route)
#   ./run.sh formal set up, then run the deep SymbiYosys proofs (docs/verification.md)
set -euo pipefail
cd "$(dirname "$0")"

setup() {
    if [ ! -x .venv/bin/python ]; then
        "${PYTHON:-python3}" -m venv .venv
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${1:-test}]"
}

command="${1:-}"
shift || true
case "$command" in
    demo)
        setup
        .venv/bin/systolic resnet --model resnet50 --layers conv3_1 --array 16x16 \
            --precision 8 --backend verilator --report out/resnet50-conv3_1 "$@"
        ;;
    test)
        setup
        OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest -n 2 "$@"
        ;;
    slow)
        setup test,pnr
        OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest -n 2 -m slow "$@"
        ;;
    formal)
        setup test
        OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest -m formal tests/formal "$@"
        ;;
    *)
        echo "usage: ./run.sh demo|test|slow|formal [extra arguments]" >&2
        exit 2
        ;;
esac
