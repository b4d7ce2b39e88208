#!/bin/sh
# run.sh --replay|--fuzz DIR/NAME.fuzz: one fuzz test, run by `make check`
# (automake's test driver, from the build directory). NAME.fuzz holds the
# target's extra libFuzzer options; the target is tests/fuzz/fuzz_NAME and
# its seeds are corpus/NAME/ beside this script.
#   --replay  (a build without --enable-fuzzing) run every seed once
#   --fuzz    (a libFuzzer build) fuzz for $FUZZ_SECONDS (20) from the
#             seeds with seed $FUZZ_SEED (1); on a crash, print the
#             reproducer and how to run it again
# Any failure exits 1: libFuzzer's own exit codes (77 for a crash) mean
# something else to automake's driver.
set -u

mode=$1
spec=$2
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$spec" .fuzz)
bin=tests/fuzz/fuzz_$name
seeds=$here/corpus/$name

[ -x "$bin" ] || { echo "run.sh: $bin is not built" >&2; exit 1; }
[ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; exit 1; }

if [ "$mode" = --replay ]; then
	"$bin" "$seeds" || exit 1
	exit 0
fi
[ "$mode" = --fuzz ] || { echo "run.sh: unknown mode $mode" >&2; exit 1; }

# Options from NAME.fuzz (comments dropped); dictionaries live beside it.
opts=$(sed -e 's/#.*//' -e "s|-dict=|-dict=$here/|" "$spec" | tr '\n' ' ')
work=tests/fuzz/work-$name
rm -rf "$work"
mkdir -p "$work/corpus" "$work/crashes"

# New inputs go to the work corpus; the seeds in the source tree stay as
# they are. -timeout: one input may take 5 s before it counts as a hang.
# shellcheck disable=SC2086
"$bin" -seed="${FUZZ_SEED:-1}" -max_total_time="${FUZZ_SECONDS:-20}" \
	-max_len=65536 -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/crashes/" $opts "$work/corpus" "$seeds"
rc=$?
[ $rc -eq 0 ] && exit 0

echo "run.sh: fuzz_$name failed (libFuzzer exit $rc)"
for f in "$work"/crashes/*; do
	[ -f "$f" ] || continue
	echo "reproducer: $PWD/$f ($(wc -c <"$f") bytes)"
	echo "run it again: $PWD/$bin $PWD/$f"
	echo "keep it as a regression: cp $PWD/$f $seeds/"
	od -A d -t x1z "$f" | head -n 64
done
exit 1
