#!/usr/bin/env bash
# Validates OCSF events against the OCSF schema with maintained tools from
# PyPI, not keyward's code: ocsf-json-schema (each OCSF release's schema as
# JSON Schema) and jsonschema. Both are installed, pinned, into a venv under
# the cargo target folder on first use.
#
# Usage: validate.sh EVENTS.ndjson VERSION...   (prints a JSON summary; exit 1 if any event is invalid)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../../target}"
venv="$target/ocsf-venv"
python="${PYTHON:-python3}"

mkdir -p "$target"
# Tests run in parallel: one installs, the others wait.
exec 9>"$target/.ocsf-venv.lock"
flock 9
if ! "$venv/bin/python" -c "import ocsf_json_schema, jsonschema" 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ocsf-json-schema==1.2.0" "jsonschema==4.26.0"
fi
flock -u 9

exec "$venv/bin/python" "$here/validate.py" "$@"
