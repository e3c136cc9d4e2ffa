# shellcheck shell=bash
# Sourced by .ci/run: `ensure_deno <version>` makes `deno` on PATH that exact version. A deno
# already installed at another version is not used (the checks, the lock file and the Dockerfile
# are for the pinned one): the pinned one is installed with npm and put first on PATH. Fails,
# saying why, when `deno` still is not that version afterwards. tests/deploy_files_test.ts runs it
# with stand-ins for deno and npm.

deno_version() {
  { deno --version 2>/dev/null || true; } | sed -n 's/^deno \([0-9][0-9.]*\).*/\1/p' | head -n 1
}

ensure_deno() {
  local want="$1" have
  have="$(deno_version)"
  if [ "$have" = "$want" ]; then
    echo "deno ${want} at $(command -v deno)"
    return 0
  fi
  if [ -n "$have" ]; then
    echo "deno ${have} at $(command -v deno) is not the pinned ${want}: installing deno@${want}"
  else
    echo "no deno on PATH: installing deno@${want}"
  fi
  npm install -g "deno@${want}" || {
    echo "ERROR: npm install -g deno@${want} failed" >&2
    return 1
  }
  PATH="$(npm prefix -g)/bin:${PATH}"
  export PATH
  hash -r
  have="$(deno_version)"
  if [ "$have" != "$want" ]; then
    echo "ERROR: deno on PATH is ${have:-missing} ($(command -v deno || echo 'not found')), not" \
      "the pinned ${want}, even after installing it; remove the other deno or fix PATH" >&2
    return 1
  fi
  echo "deno ${want} at $(command -v deno)"
}
