# Sourced by the benchmarks that run DuckDB: `duckdb_python VERSION` prints the Python of a
# virtual environment of its own (under $SHH_TOOLS_DIR) with DuckDB at exactly that version,
# creating it on first use.
duckdb_python() {
  local tools=${SHH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/shh-test-tools}
  local venv=$tools/duckdb-$1
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import duckdb" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "duckdb==$1" >&2
  fi
  printf '%s\n' "$venv/bin/python"
}
