#!/usr/bin/env bash
# fmtrain's benchmark on a machine with a GPU, as one prepared command: checks that Python has
# TensorFlow (installing carried wheels when it has not), then runs benchmarks/bench_gpu.py, which
# times bench.py's rows in float32 and bf16 mixed precision and the CNN, ViT and text configs end
# to end, and prints one markdown table on stdout (progress on stderr), all in under 8 minutes.
#
#   benchmarks/gpu.sh                  # on the GPU machine
#   benchmarks/gpu.sh --cpu-check      # the same pipeline on the CPU at tiny sizes (not a measurement)
#   benchmarks/gpu.sh --help           # bench_gpu.py's options (--only, --quick, --budget ...)
#
# Environment:
#   FMTRAIN_PYTHON  the Python to use (default python3)
#   FMTRAIN_WHEELS  a folder of wheels to install when that Python lacks fmtrain's dependencies
#                   (default .whl); installed with pip --no-index into FMTRAIN_SITE (default
#                   /tmp/fmtrain-site), which goes on PYTHONPATH with this checkout: fmtrain itself
#                   runs from the checkout, with nothing to build
#   FMTRAIN_GPU_SECONDS  the whole command's time limit (default 450)
#
# Exit status: 0 every row ran; 1 the table has failed or timed-out rows; 2 bad usage;
# 3 this machine cannot run it (no TensorFlow, a dependency missing, or no GPU): one line says what.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PY=${FMTRAIN_PYTHON:-python3}
WHEELS=${FMTRAIN_WHEELS:-.whl}
SITE=${FMTRAIN_SITE:-/tmp/fmtrain-site}
LIMIT=${FMTRAIN_GPU_SECONDS:-450}
# fmtrain's dependencies as import names (pyproject.toml's [project] dependencies).
MODULES="tensorflow keras pydantic typer rich yaml sklearn matplotlib jinja2 numpy"

say() { echo "gpu.sh: $*" >&2; }

if ! command -v "$PY" >/dev/null 2>&1; then
    say "no Python at '$PY': set FMTRAIN_PYTHON to a Python 3.10+ with TensorFlow"; exit 3
fi
case "${1:-}" in -h|--help) exec "$PY" benchmarks/bench_gpu.py --help ;; esac

missing() {  # the modules of $MODULES this Python cannot find, without importing them (fast)
    "$PY" -c 'import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' $MODULES
}

lacking=$(missing) || { say "$PY does not run: set FMTRAIN_PYTHON to a Python 3.10+ with TensorFlow"; exit 3; }
where="$PY ($(command -v "$PY"), Python $("$PY" -c 'import platform; print(platform.python_version())'))"
if [ -n "$lacking" ]; then
    wheels=()
    [ -d "$WHEELS" ] && mapfile -t wheels < <(find "$WHEELS" -maxdepth 1 -name '*.whl' | sort)
    tf_wheel=$(printf '%s\n' "${wheels[@]}" | grep -Ei '/tensorflow(_cpu)?-[0-9]' || true)
    if [[ " $lacking " == *" tensorflow "* && -z "$tf_wheel" ]]; then
        say "$where cannot import: ${lacking// /, }; and $WHEELS/ holds no tensorflow wheel." \
            "Carry TensorFlow and those packages as wheels in FMTRAIN_WHEELS (default .whl/)," \
            "or set FMTRAIN_PYTHON to a Python that has them. Nothing was run."
        exit 3
    fi
    if [ ${#wheels[@]} -eq 0 ]; then
        say "$where cannot import: ${lacking// /, }; and $WHEELS/ holds no wheels. Carry them there. Nothing was run."
        exit 3
    fi
    say "installing ${#wheels[@]} wheels from $WHEELS/ into $SITE (missing: $lacking)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${wheels[@]}" >&2 || { say "pip could not install the wheels in $WHEELS/ (above). Nothing was run."; exit 3; }
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    lacking=$(missing)
    if [ -n "$lacking" ]; then
        say "after installing $WHEELS/, $where still cannot import: ${lacking// /, }. Carry their wheels. Nothing was run."
        exit 3
    fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# What is left of the limit goes to bench_gpu.py, which shares it out between its steps and prints
# the table at the end; `timeout` is the backstop (an interrupt: bench_gpu.py prints what it has).
budget=$(( LIMIT - SECONDS - 30 ))
if [ "$budget" -lt 60 ]; then
    say "FMTRAIN_GPU_SECONDS=$LIMIT leaves the steps ${budget} s (30 s are kept back); they need at least 60. Nothing was run."
    exit 3
fi
timeout --signal=INT --kill-after=15 $(( budget + 20 )) "$PY" benchmarks/bench_gpu.py --budget "$budget" "$@"
