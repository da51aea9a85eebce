#!/usr/bin/env bash
# `make fuzz`: every fuzz target (the proptest runs in crates/*/tests/fuzz.rs) in a release build,
# FUZZ_CASES cases each (default 1,000,000), one after the other. Prints a line as each target
# starts and ends, and writes docs/fuzz.md: per target the cases run and the time, with the
# command that produced it. Every figure in it is what the run printed; none is typed in.
#
# Knobs: FUZZ_CASES (cases per target), FUZZ_CRATES (default "ingest-api events schema-registry"),
# FUZZ_REPORT (where the report goes, default docs/fuzz.md; elsewhere for a trial run).
# PROPTEST_RNG_SEED fixes proptest's seed (random otherwise, so each run explores new inputs).
# A failing target does not stop the others: its shrunk input is in its log, the report marks
# it, and the command exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

export FUZZ_CASES=${FUZZ_CASES:-1000000}
FUZZ_CRATES=${FUZZ_CRATES:-"ingest-api events schema-registry"}
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fitness-fuzz.XXXXXX")
REPORT=${FUZZ_REPORT:-docs/fuzz.md}

command="make fuzz"
[[ $FUZZ_CASES != 1000000 ]] && command="FUZZ_CASES=$FUZZ_CASES $command"
[[ $FUZZ_CRATES != "ingest-api events schema-registry" ]] && command="FUZZ_CRATES=\"$FUZZ_CRATES\" $command"
[[ -n ${PROPTEST_RNG_SEED:-} ]] && command="PROPTEST_RNG_SEED=$PROPTEST_RNG_SEED $command"

packages=()
for c in $FUZZ_CRATES; do packages+=(-p "$c"); done
say "building the fuzz targets (release)"
# One build of all of them, and the binaries run directly: a cargo call per crate would resolve
# features per crate and rebuild (with fat LTO) what the others share.
binaries=$(cargo test --release --locked "${packages[@]}" --test fuzz --no-run --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "fuzz":
        print(m["package_id"].split("#")[0].rstrip("/").rsplit("/", 1)[-1], m["executable"])
')

# One row per target: crate, test, fuzz name, cases, seconds, result.
rows=()
failed=0
started_all=$SECONDS
while read -r c bin; do
    [[ -n $c ]] || continue
    for t in $("$bin" --list 2>/dev/null | sed -n 's/: test$//p'); do
        log="$RUN_DIR/$c.$t.log"
        printf 'fuzz: %-16s %-72s started %s\n' "$c" "$t" "$(date +%H:%M:%S)"
        start=$(date +%s.%N)
        if "$bin" --exact "$t" --nocapture --test-threads 1 </dev/null >"$log" 2>&1; then
            result=ok
        else
            result=FAILED
            failed=1
        fi
        elapsed=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
        # The line testkit::fuzz::run prints: "fuzz <name>: <cases> cases in <seconds> s".
        line=$(grep -m1 -oE 'fuzz [^ ]+: [0-9]+ cases in [0-9.]+ s' "$log" || true)
        if [[ -z $line && $result == ok ]]; then
            # A plain test in the fuzz file (a fixed input or a check of the generators).
            printf 'fuzz: %-16s %-72s check passed in %s s\n' "$c" "$t" "$elapsed"
            continue
        fi
        name=$(sed -E 's/^fuzz ([^ ]+): .*/\1/' <<<"$line")
        cases=$(sed -E 's/.*: ([0-9]+) cases.*/\1/' <<<"$line")
        seconds=$(sed -E 's/.* cases in ([0-9.]+) s.*/\1/' <<<"$line")
        if [[ $result == FAILED ]]; then
            printf 'fuzz: %-16s %-72s FAILED after %s s; log: %s\n' "$c" "$t" "$elapsed" "$log"
            rows+=("$c|$t|${name:--}|-|$elapsed|FAILED")
        else
            printf 'fuzz: %-16s %-72s done: %s cases in %s s\n' "$c" "$t" "$cases" "$elapsed"
            rows+=("$c|$t|$name|$cases|$seconds|ok")
        fi
    done
done <<<"$binaries"

{
    echo "# Fuzzing"
    echo
    echo "Each target asserts that a parser or decoder answers Ok or Err and never panics on its"
    echo "inputs, plus the invariants its test states (errors carry a message, what parses"
    echo "round-trips). Targets are proptest runs on stable Rust in \`crates/*/tests/fuzz.rs\`; \`make"
    echo "test\` runs them with a small case count (\`FUZZ_CASES\`), \`make fuzz\` with many more in a"
    echo "release build. Written by \`deploy/fuzz.sh\`; do not edit by hand."
    echo
    echo "Command: \`$command\` on $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' with uncommitted changes')"
    echo "($(nproc) cores; other work may have shared them). Seconds are the target's own run, excluding"
    echo "the build; the whole run took $((SECONDS - started_all)) s."
    if ((FUZZ_CASES < 1000000)); then
        echo
        echo "This run used $FUZZ_CASES cases per target, fewer than the 1,000,000 of a full \`make fuzz\`."
    fi
    echo
    echo "| target | what it feeds | what it asserts besides no panic |"
    echo "|---|---|---|"
    echo "| command-arbitrary-bytes | \`command::parse\` (the route's entry): arbitrary bytes and strings, truncated commands | a malformed body has a message; an invalid one lists violations with pointers and details |"
    echo "| command-arbitrary-json | \`command::parse\` and \`parse_command\`: arbitrary JSON, mostly objects with the command's own member names and strings | as above; an accepted command becomes a DeviceSynced that encodes and decodes back unchanged |"
    echo "| command-mutated-sync | the standard sync (whole, or cut with every kind of sample) with members replaced by hostile values (extremes, 1e308, -0, \"NaN\", wrong types, 40-deep nesting), removed, duplicated or added; then maybe a duplicate member in the text or nesting up to 20,000 deep | as above |"
    echo "| avro-arbitrary-bytes | a valid 5-byte header, then arbitrary bytes: \`decode_datum\` with the latest and every older writer, and the direct path (\`read_deser\`) | what decodes re-encodes with the generated encoder and reads back to the same bytes |"
    echo "| avro-mutated-events | real events of every version with bytes set, flipped, inserted, removed, truncated, or a varint replaced by an extreme (i64::MIN/MAX, 2^29…) | as above |"
    echo "| schema-id | \`EventDecoder::schema_id\` on arbitrary bytes | Ok exactly when the header is there, with its id |"
    echo "| consistency-token, consistency-token-positions | \`ConsistencyToken::from_str\` on arbitrary text, base64url of anything and of \`v1:p:o\` with extreme parts; every (partition, offset) | what parses is non-negative and round-trips; every non-negative position round-trips, no negative one parses |"
    echo "| schema-arbitrary-text, schema-arbitrary-json, schema-mutated | the registry's \`registry::candidate\`: arbitrary text, arbitrary JSON in Avro's vocabulary, the real schemas mutated (with a referenced schema at times) | an invalid schema has a reason; a valid one's canonical JSON is stable, its canonical form parses back, and the compatibility check answers |"
    echo
    echo "| crate | test | target | cases | seconds | cases/s | result |"
    echo "|---|---|---|---:|---:|---:|---|"
    for row in "${rows[@]}"; do
        IFS='|' read -r c t name cases seconds result <<<"$row"
        rate=$(python3 -c "import sys; c, s = sys.argv[1:]; print(f'{int(c) / float(s):,.0f}' if c.isdigit() and float(s) > 0 else '-')" "$cases" "$seconds")
        shown=$(python3 -c "import sys; c = sys.argv[1]; print(f'{int(c):,}' if c.isdigit() else c)" "$cases")
        echo "| $c | \`$t\` | $name | $shown | $seconds | $rate | $result |"
    done
    echo
    echo "## Findings"
    echo
    echo "What the targets found so far, and what became of it:"
    echo
    echo "- apache-avro 0.22 panics on a schema with an attribute named like a keyword (\`items\`, \`values\`,"
    echo "  \`fields\`) that holds something that is not a schema, e.g. \`{\"type\": \"array\", \"items\": \"int\","
    echo "  \"values\": 5}\`: \`Schema::canonical_form\` always, \`Schema::parse_str\` when a field's default does not"
    echo "  fit such a type. Fixed in the registry (\`registry::parse\` catches the panic and rejects the"
    echo "  schema with a reason; inputs kept in \`a_keyword_attribute_that_is_not_a_schema_is_an_invalid_schema_not_a_panic\`)."
    echo "  A consumer served a schema by another registry: \`events::registry::RegistryClient::schema\` makes"
    echo "  one whose canonical form panics poison; its \`Schema::parse_str\` is not guarded yet."
    echo "- The direct Avro path (\`read_deser\`, taken when the writer's schema is the reader's) does not"
    echo "  check that a \`uuid\` string is a UUID; \`decode_datum\` does. The processor parses both ids itself"
    echo "  and dead-letters such an event either way."
    echo "- A length or count prefix is bounded by apache-avro's \`max_allocation_bytes\` (512 MiB by default):"
    echo "  a few bytes can make the decoder reserve that much (address space: glibc hands out such blocks"
    echo "  untouched, so they cost no memory, but other allocators may differ)."
    echo "- apache-avro's \`canonical_form\` writes a primitive with a logical type as \`{\"type\":\"long\"}\`, not"
    echo "  \`\"long\"\`, so it is stable only from its second round; harmless here (the decoder compares two"
    echo "  forms made the same way; the registry keys schemas by canonical JSON)."
    echo "- The registry's canonical JSON can move a float with a long mantissa by one unit in the last"
    echo "  place when canonicalised again (serde_json parses floats without \`float_roundtrip\`). Left"
    echo "  alone: only a schema text with such a float, sent again in canonical form, gets a new id."
} >"$REPORT"
say "wrote $REPORT"
if [[ $failed -ne 0 ]]; then
    echo "fuzz: a target failed; logs in $RUN_DIR" >&2
    exit 1
fi
rm -rf "$RUN_DIR"
