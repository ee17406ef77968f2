#!/usr/bin/env bash
# `make mutants`: do the tests catch defects? Two mutation runs, one after the other, then both
# summaries together:
#   1. cargo-mutants on the core's pure decision code (the scope is .cargo/mutants.toml), judged
#      by the in-file unit tests (`cargo test --lib`, no Redis);
#   2. tools/mutants/lua.py on rust/rdb/lua/*.lua, judged by the tests that run the script files
#      on a real Redis (tests/test_lua_scripts.py, tests/test_lua_leases.py).
#
#   tools/mutants/run.sh [--strict] [--rust-only | --lua-only] [-- LUA_PY_ARGS...]
#
# Survivors are reported, not fatal: --strict (or STRICT=1) makes them fail the run. A harness
# error always fails it: a baseline that does not build or pass, a usage error, a Lua run that
# neither passed nor failed a test.
#
# Environment:
#   BIN                 the virtualenv's bin (default .venv/bin); its python runs the Lua tests
#   MUTANTS_OUT         where cargo-mutants writes mutants.out/ (default target/mutants)
#   MUTANTS_TARGET_DIR  cargo's target dir for the mutated builds (default target/mutants-build),
#                       kept between runs: the tree is copied to a new temporary dir each run,
#                       and only ferroq itself is then rebuilt, not its dependencies
#   MUTANTS_JOBS        compile jobs (default 1: builds share the machine; each mutant rebuilds
#                       one crate, which gains little from more)
#   CARGO_MUTANTS_ARGS  more arguments for cargo mutants, split on spaces: `-F Quarantine` to
#                       run only the mutants whose name matches, `--iterate` to skip those
#                       caught last time (the loop while adding tests)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
BIN=${BIN:-.venv/bin}
OUT=${MUTANTS_OUT:-target/mutants}
JOBS=${MUTANTS_JOBS:-1}
CARGO_MUTANTS_VERSION=27.1.0 # .cargo/mutants.toml uses keys of this release
export CARGO_TARGET_DIR=${MUTANTS_TARGET_DIR:-$PWD/target/mutants-build}

strict=${STRICT:-0} rust=1 lua=1
while (($#)); do
    case $1 in
        --strict) strict=1 ;;
        --rust-only) lua=0 ;;
        --lua-only) rust=0 ;;
        --) shift; break ;;
        *) echo "run.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

# Everything runs at the lowest priority: a run takes many minutes and must not starve an
# editor, a build or a test run beside it.
low() { nice -n 19 "$@"; }

rust_rc=0 lua_rc=0 rust_secs=0 lua_secs=0
rust_summary="" lua_summary=""

if ((rust)); then
    if ! cargo mutants --version >/dev/null 2>&1; then
        echo "== installing cargo-mutants $CARGO_MUTANTS_VERSION (once; a few minutes)"
        low cargo install --locked -j "$JOBS" cargo-mutants --version "$CARGO_MUTANTS_VERSION" || exit 2
    fi
    echo "== part 1: cargo-mutants ($(cargo mutants --version)), scope in .cargo/mutants.toml"
    start=$SECONDS
    # shellcheck disable=SC2086 # CARGO_MUTANTS_ARGS is a list of words on purpose
    low cargo mutants --jobserver-tasks "$JOBS" --output "$OUT" ${CARGO_MUTANTS_ARGS:-}
    rust_rc=$?
    rust_secs=$((SECONDS - start))
    dir=$OUT/mutants.out
    count() { if [[ -s $dir/$1 ]]; then wc -l <"$dir/$1"; else echo 0; fi; }
    rust_summary="Rust mutants: $(count caught.txt) caught, $(count missed.txt) missed, \
$(count timeout.txt) timed out, $(count unviable.txt) unviable; ${rust_secs} s \
(cargo-mutants exit $rust_rc; details in $dir)"
    if [[ -s $dir/missed.txt ]]; then
        rust_summary+=$'\nMissed (no unit test failed):\n'$(sed 's/^/  /' "$dir/missed.txt")
    fi
    if [[ -s $dir/timeout.txt ]]; then
        rust_summary+=$'\nTimed out (likely a hang the mutant caused: a catch, but look at it):\n'$(sed 's/^/  /' "$dir/timeout.txt")
    fi
fi

if ((lua)); then
    echo
    echo "== part 2: Lua scripts (tools/mutants/lua.py)"
    start=$SECONDS
    log=$(mktemp)
    # tee: the table streams as it runs; the log keeps the closing summary for the end.
    lua_args=("$@")
    ((strict)) && lua_args+=(--strict)
    low "$BIN/python" tools/mutants/lua.py "${lua_args[@]}" | tee "$log"
    lua_rc=${PIPESTATUS[0]}
    lua_secs=$((SECONDS - start))
    lua_summary=$(sed -n '/^Lua mutants:/,$p' "$log")
    rm -f "$log"
    [[ -n $lua_summary ]] || lua_summary="Lua harness: no summary (exit $lua_rc)"
fi

echo
echo "================ mutation testing: summary ================"
((rust)) && printf '%s\n\n' "$rust_summary"
((lua)) && printf '%s\n\n' "$lua_summary"
echo "total: $((rust_secs + lua_secs)) s"

# cargo-mutants: 0 all caught, 2 missed, 3 timed out; anything else means the run failed.
# lua.py: 0 done, 1 survivors under --strict, 2 a harness error.
case $rust_rc in 0 | 2 | 3) ;; *) echo "mutants: cargo-mutants failed (exit $rust_rc)" >&2; exit 2 ;; esac
case $lua_rc in 0 | 1) ;; *) echo "mutants: the Lua harness failed (exit $lua_rc)" >&2; exit 2 ;; esac
if ((strict)) && { [[ -s ${dir:-/nonexistent}/missed.txt ]] || ((lua_rc == 1)); }; then
    echo "mutants: --strict: some mutants survived" >&2
    exit 1
fi
exit 0
