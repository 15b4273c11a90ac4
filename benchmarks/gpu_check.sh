#!/usr/bin/env bash
# The unchanged project on a CUDA machine: environment, the test suite, and the decompose and
# CLI benchmarks, each step with its own time limit so one slow step does not hide the others.
#
#   OUT=results/ MODJAX_DATA=/path/to/data bash benchmarks/gpu_check.sh
#
# Logs land in $OUT (default ./gpu_check): env.log, tests.log, bench_m1.log (CLINC-sized M:1
# LSTM-1), bench_lstm4.log (Brown-sized LSTM-4 tagger), bench_cli.log. Needs the project's
# dependencies importable by python3 (PYTHONPATH or an installed checkout) and a jax with CUDA.
set -u
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export MODJAX_JAX_CACHE=${MODJAX_JAX_CACHE:-/tmp/modjax-gpu-jaxcache}
WORKERS=${WORKERS:-12}
step() {  # step NAME SECONDS CMD...: run CMD with a limit, log to $OUT/NAME.log, note rc and time
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s)
    timeout -s INT -k 15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    echo "# rc=$? in $(( $(date +%s) - t0 )) s: $*" | tee -a "$OUT/$name.log"
}
{ nvidia-smi -L; nproc; python3 -c "import jax, flax, optax; print('jax', jax.__version__,
'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"; } > "$OUT/env.log" 2>&1
cat "$OUT/env.log"
step tests ${TESTS_LIMIT:-300} python3 -m pytest -q -n "$WORKERS" -p no:cacheprovider \
    --tb=line -rfE tests
step bench_m1 120 python3 -m benchmarks.decompose --io many_to_one --layers 1 --classes 10 \
    --n_train 15000 --n_test 4500 --modes rolled,unrolled --reps 5
step bench_lstm4 120 python3 -m benchmarks.decompose --reps 3
step bench_cli 200 python3 -m benchmarks.cli --work /tmp/modjax-gpu-benchcli
grep -E 'passed|failed' "$OUT/tests.log" | tail -1
