#!/usr/bin/env bash
# Coverage-guided fuzzing of the input parsers with AFL++ (cargo-afl, stable
# Rust). The targets live in fuzz/ (a package of its own), their corpora in
# fuzz/corpus/<target>/, AFL's output in fuzz/out/ (not committed).
#
#   scripts/fuzz.sh smoke                    build, run every target FUZZ_SECONDS (20) s
#                                            from its corpus; fail on any crash or hang (CI)
#   scripts/fuzz.sh run TARGET [SECONDS]     one long run (default 3600 s), resumed if
#   scripts/fuzz.sh run TARGET --execs N     fuzz/out/TARGET exists (--execs: N executions,
#                                            at most FUZZ_MAX_SECONDS=3600); prints fuzzer_stats
#   scripts/fuzz.sh cmin TARGET              keep in fuzz/corpus/TARGET its seeds and the
#                                            afl-cmin of them plus the run's queue
#   scripts/fuzz.sh list                     the targets
#
# Installs what it needs on a fresh Debian machine (root): a C toolchain and
# make (apt), cargo-afl from crates.io, which builds its bundled AFL++.
# Everything runs under `nice -n 19`, one fuzzer at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

TARGETS=(frame_decoder http_request gzip_body config_loader ws_frame)
CARGO_AFL_VERSION=0.18.2
FUZZ_DIR=fuzz
OUT_DIR="$FUZZ_DIR/out"
# One execution takes well under a millisecond; a generous limit keeps a
# loaded machine from reporting slow runs as hangs.
TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-5000}

# A shared or CI machine: no CPU frequency tuning, no core_pattern changes,
# no pinning to a core other processes may be using, no curses UI.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1
# A crashing input aborts at once instead of symbolising a backtrace.
export RUST_BACKTRACE=0

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

ensure_afl() {
  ensure_build_tools
  command -v make >/dev/null 2>&1 || apt_install make
  if ! cargo afl --version >/dev/null 2>&1; then
    # Installing cargo-afl also builds the AFL++ it bundles (afl-fuzz, afl-cmin).
    cargo install --locked cargo-afl --version "$CARGO_AFL_VERSION"
  fi
  local out
  if ! out=$(cargo afl config --build 2>&1); then
    # Refused when AFL++ is already built for this toolchain: nothing to do.
    grep -q "already built" <<<"$out" || { echo "$out" >&2; exit 1; }
  fi
}

build_targets() {
  (cd "$FUZZ_DIR" && nice -n 19 cargo afl build --release --locked)
}

check_target() {
  local t
  for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
  echo "unknown target '$1' (targets: ${TARGETS[*]})" >&2
  exit 2
}

stat_of() { # stat_of DIR KEY -> value from AFL's fuzzer_stats
  sed -n "s/^$2 *: *//p" "$1/default/fuzzer_stats"
}

# Files AFL saved in crashes/ or hangs/ (each has a README.txt besides them).
findings() {
  find "$1/default/crashes" "$1/default/hangs" -type f ! -name README.txt 2>/dev/null || true
}

report() { # report TARGET DIR: one summary line; fails on crashes or hangs
  local t=$1 dir=$2 found
  printf '%s: execs_done=%s execs_per_sec=%s run_time=%ss corpus_count=%s edges=%s/%s saved_crashes=%s saved_hangs=%s\n' \
    "$t" "$(stat_of "$dir" execs_done)" "$(stat_of "$dir" execs_per_sec)" \
    "$(stat_of "$dir" run_time)" "$(stat_of "$dir" corpus_count)" \
    "$(stat_of "$dir" edges_found)" "$(stat_of "$dir" total_edges)" \
    "$(stat_of "$dir" saved_crashes)" "$(stat_of "$dir" saved_hangs)"
  found=$(findings "$dir")
  if [ -n "$found" ]; then
    echo "$t: AFL saved crashing or hanging inputs (reproduce: $FUZZ_DIR/target/release/$t < FILE):" >&2
    echo "$found" >&2
    return 1
  fi
}

fuzz() { # fuzz TARGET OUTDIR AFL-ARGS...
  local t=$1 dir=$2
  shift 2
  nice -n 19 cargo afl fuzz -i "$FUZZ_DIR/corpus/$t" -o "$dir" "$@" -- "$FUZZ_DIR/target/release/$t" \
    >"$dir.log" 2>&1 || {
    echo "$t: afl-fuzz failed; the end of $dir.log:" >&2
    tail -30 "$dir.log" >&2
    return 1
  }
}

cmd=${1:-}
case "$cmd" in
  list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
  smoke)
    ensure_afl
    build_targets
    seconds=${FUZZ_SECONDS:-20}
    failed=0
    for t in "${TARGETS[@]}"; do
      dir="$OUT_DIR/smoke-$t"
      rm -rf "$dir" "$dir.log"
      mkdir -p "$OUT_DIR"
      fuzz "$t" "$dir" -V "$seconds" -t "$TIMEOUT_MS" || { failed=1; continue; }
      report "$t" "$dir" || failed=1
    done
    [ "$failed" -eq 0 ] && echo "fuzz smoke: ${#TARGETS[@]} targets, ${seconds} s each, no crash or hang"
    exit "$failed"
    ;;
  run)
    [ $# -ge 2 ] || usage
    t=$2
    check_target "$t"
    limit=(-V 3600)
    if [ "${3:-}" = "--execs" ]; then
      [ -n "${4:-}" ] || usage
      # At most an hour all the same (FUZZ_MAX_SECONDS), whichever ends first.
      limit=(-E "$4" -V "${FUZZ_MAX_SECONDS:-3600}")
    elif [ -n "${3:-}" ]; then
      limit=(-V "$3")
    fi
    ensure_afl
    build_targets
    mkdir -p "$OUT_DIR"
    # AFL_AUTORESUME: a second run resumes the first one's queue (and counts).
    AFL_AUTORESUME=1 fuzz "$t" "$OUT_DIR/$t" "${limit[@]}" -t "$TIMEOUT_MS"
    report "$t" "$OUT_DIR/$t"
    ;;
  cmin)
    [ $# -ge 2 ] || usage
    t=$2
    check_target "$t"
    ensure_afl
    build_targets
    queue="$OUT_DIR/$t/default/queue"
    [ -d "$queue" ] || { echo "no queue at $queue: run 'scripts/fuzz.sh run $t' first" >&2; exit 1; }
    all=$(mktemp -d) min=$(mktemp -d)
    trap 'rm -rf "$all" "$min"' EXIT
    # Entries kept by an earlier cmin (qNNNNN) count as queue entries again.
    for f in "$FUZZ_DIR/corpus/$t"/*; do
      case "$(basename "$f")" in
        q[0-9][0-9][0-9][0-9][0-9]) cp "$f" "$all/id:prev-$(basename "$f")" ;;
        *) cp "$f" "$all"/ ;;
      esac
    done
    # The queue's "orig:" entries are copies of the corpus files; entries over
    # FUZZ_CMIN_MAX_BYTES (4096) are left out to keep the committed corpus small.
    find "$queue" -maxdepth 1 -type f -name 'id:*' ! -name '*orig:*' \
      -size -"$((${FUZZ_CMIN_MAX_BYTES:-4096} + 1))"c -exec cp {} "$all"/ \;
    rmdir "$min"
    # The shell version of afl-cmin: AFL++'s Python one finds no coverage in
    # these persistent-mode Rust targets (0 tuples) and would empty the corpus.
    cmin=$(find "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs" -name afl-cmin.bash \
      -path "*rustc-$(rustc -V | cut -d' ' -f2)-*" | head -1)
    [ -x "$cmin" ] || { echo "afl-cmin.bash not found under the cargo-afl data directory" >&2; exit 1; }
    nice -n 19 "$cmin" -i "$all" -o "$min" -t "$TIMEOUT_MS" -- "$FUZZ_DIR/target/release/$t" \
      >"$OUT_DIR/cmin-$t.log" 2>&1 || { tail -c 2000 "$OUT_DIR/cmin-$t.log" >&2; exit 1; }
    n=$(find "$min" -type f | wc -l)
    [ "$n" -gt 0 ] || { echo "afl-cmin kept no file; corpus left as it was" >&2; exit 1; }
    # Hand-written seeds (every name but qNNNNN) stay, whatever afl-cmin
    # thought of them: they document what the target is meant to see. The
    # kept queue entries get short portable names instead of AFL's
    # "id:...,src:..." with colons and commas.
    find "$FUZZ_DIR/corpus/$t" -type f -name 'q[0-9][0-9][0-9][0-9][0-9]' -delete
    i=0
    for f in "$min"/*; do
      case "$(basename "$f")" in
        id:*) i=$((i + 1)) && cp "$f" "$FUZZ_DIR/corpus/$t/$(printf 'q%05d' "$i")" ;;
      esac
    done
    echo "$t: corpus minimised to $(find "$FUZZ_DIR/corpus/$t" -type f | wc -l) files," \
      "$(du -sh --apparent-size "$FUZZ_DIR/corpus/$t" | cut -f1)"
    ;;
  *)
    usage
    ;;
esac
