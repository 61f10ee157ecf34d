# Shared by scripts/test and scripts/demo: install what is missing, keep one build cache.

# One cargo target directory outside the clone, so a fresh clone does not rebuild every
# dependency from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tokengate/target}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_npm_deps DIR WHAT — the npm packages of DIR from its lockfile (npm ci), when
# absent or older than the lockfile.
ensure_npm_deps() {
  local dir=$1 what=$2
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing $what's npm packages (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# npm dependencies of the test provider.
ensure_op_deps() { ensure_npm_deps tests/op "the test provider"; }

# The example API's npm packages (`ws`, for its WebSocket feed).
ensure_api_deps() { ensure_npm_deps examples/api "the example API"; }

# The example SPA, built (TypeScript → examples/spa/dist) from its locked dependencies.
build_spa() {
  ensure_npm_deps examples/spa "the example SPA"
  log "building the example SPA"
  (cd examples/spa && npm run --silent build)
}

# apt_install_missing CMD:PACKAGE ... — installs the Debian packages whose command is
# missing, when running as root; otherwise says what to install.
apt_install_missing() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]} — install them (apt-get install ${missing[*]}) or run as root" >&2
    return 1
  fi
  log "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
