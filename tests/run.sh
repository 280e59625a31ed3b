#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing, then runs
# `cargo test --all-features` with any arguments given (e.g. `tests/run.sh --test browser`).
#
# Each need is one line in NEEDS: "<file that proves it is installed> <Debian package>".
# Add a line for a new tool.
set -euo pipefail
cd "$(dirname "$0")/.."

NEEDS=(
  "/usr/bin/chromium chromium"
  "/usr/bin/chromedriver chromium-driver"
  "/usr/bin/redis-server redis-server"
)

missing=()
for need in "${NEEDS[@]}"; do
  read -r path package <<<"$need"
  [[ -e "$path" ]] || missing+=("$package")
done

if ((${#missing[@]})); then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  else
    echo "tests/run.sh: the tests need these Debian packages: ${missing[*]}" >&2
    echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  for need in "${NEEDS[@]}"; do
    read -r path package <<<"$need"
    if [[ ! -e "$path" ]]; then
      echo "tests/run.sh: $package was installed but $path is still missing" >&2
      exit 1
    fi
  done
fi

exec cargo test --all-features "$@"
