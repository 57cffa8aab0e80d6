# Shared by the engine scripts in servers/ (sourced, not run).

# DRY_RUN=1 prints what would run instead of running it: the engine's environment (HF_*, OMP_*,
# VLLM_*, CUDA_*), an empty field, then the command line; NUL-separated (read it with `| tr '\0' '\n'`).
# tests/unit/test_server_scripts.py compares it with what loadtest's launcher builds.
run() {
  if [ -n "${DRY_RUN:-}" ]; then
    { env -0 | grep -zE '^(HF|OMP|VLLM|CUDA)_' | sort -z || true; printf '\0'; printf '%s\0' "$@"; }
    exit 0
  fi
  exec "$@"
}

# split_args N "$@": the positional arguments (at most N) end at a `--`; what follows goes to the
# engine unchanged. Sets ARGS (the positional ones) and EXTRA (the engine's).
split_args() {
  local max=$1
  shift
  ARGS=()
  while [ $# -gt 0 ] && [ "$1" != -- ] && [ ${#ARGS[@]} -lt "$max" ]; do ARGS+=("$1"); shift; done
  if [ "${1:-}" = -- ]; then shift; fi
  EXTRA=("$@")
}
