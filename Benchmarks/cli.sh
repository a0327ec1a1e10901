#!/usr/bin/env bash
# The CLI and daemon next to the tools a user would pick instead, in one run:
#   - latency of the submitting command: job start -- true, tsp true, nq true (hyperfine medians)
#   - 1,000 `true` jobs submitted by a shell loop and waited for: job, task-spooler, nq, GNU parallel
#   - the daemon's memory (RSS) with 10,000 finished jobs kept, and `job get` then (one job, all)
# Builds job and jobd as one would install them: release mode, the Swift runtime linked
# statically, and no $ORIGIN run path (nothing to find there; without it the loader tries ~24
# fewer paths at every start). Installs the
# peers (Debian packages) when missing. Prints a Markdown table.
#   Benchmarks/cli.sh [JOBS=1000] [KEPT=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-1000}
kept=${2:-10000}
need=()
for tool in tsp nq parallel hyperfine; do command -v $tool >/dev/null || need+=($tool); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=(); for t in "${need[@]}"; do case $t in tsp) pkgs+=(task-spooler);; *) pkgs+=($t);; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
fi
swift build -c release --static-swift-stdlib --disable-local-rpath --product job --scratch-path .build-static >&2
swift build -c release --static-swift-stdlib --disable-local-rpath --product jobd --scratch-path .build-static >&2
job=$PWD/.build-static/release/job
work=$(mktemp -d)
# tsp writes each job's output to a file in $TMPDIR: in the work directory, so that it goes with it
export TS_SOCKET=$work/ts.sock NQDIR=$work/nq TS_MAXFINISHED=100000 TS_SLOTS=1 TMPDIR=$work/tmp
mkdir -p "$NQDIR" "$TMPDIR"
cleanup() { "$job" --home "$work/job" daemon stop >/dev/null 2>&1 || true; tsp -K >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

median() { hyperfine -N --warmup 20 --runs "${2:-300}" --export-json "$work/h.json" "$1" >/dev/null 2>&1
  python3 -c "import json;print('%.2f' % (json.load(open('$work/h.json'))['results'][0]['median']*1000))"; }
seconds() { local start end; start=$(date +%s.%N); eval "$1" >/dev/null 2>&1; end=$(date +%s.%N); python3 -c "print('%.2f' % ($end-$start))"; }

"$job" --home "$work/job" get >/dev/null          # the daemon is up before timing
tsp true >/dev/null; tsp -w >/dev/null
floor=$(median "$job --help")
j=$(median "$job --home $work/job start -- true")
t=$(median "tsp true")
n=$(median "nq true")
"$job" --home "$work/job" daemon stop >/dev/null; rm -rf "$work/job"; "$job" --home "$work/job" get >/dev/null
tsp -K >/dev/null 2>&1 || true; rm -rf "$NQDIR"; mkdir -p "$NQDIR"

je=$(seconds "for i in \$(seq $jobs); do $job --home $work/job start -- true; done; $job --home $work/job wait")
te=$(seconds "for i in \$(seq $jobs); do tsp true; done; tsp -w")
ne=$(seconds "for i in \$(seq $jobs); do nq true; done; nq -w")
pe=$(seconds "seq $jobs | parallel -j8 true")

"$job" --home "$work/job" daemon stop >/dev/null; rm -rf "$work/job"
seq "$kept" | xargs -P 8 -I{} "$job" --home "$work/job" start -- true >/dev/null
"$job" --home "$work/job" wait >/dev/null
pid=$(python3 -c "import json,subprocess;print(json.loads(subprocess.check_output(['$job','--home','$work/job','daemon','status','-o','json']))['pid'])")
rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status)
g1=$(median "$job --home $work/job get 5")
ga=$(median "$job --home $work/job get" 30)

r() { python3 -c "print('%.2f' % ($1/$2))"; }
echo "| benchmark | job | peer | ratio (job / peer) | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| submit one job (median latency) | ${j} ms | tsp ${t} ms | $(r $j $t)× | ≤ 3 ms |"
echo "| submit one job (median latency) | ${j} ms | nq ${n} ms | $(r $j $n)× | |"
echo "| $jobs \`true\` jobs, shell loop + wait | ${je} s | task-spooler ${te} s | $(r $je $te)× | ≤ 3× |"
echo "| $jobs \`true\` jobs, shell loop + wait | ${je} s | nq ${ne} s | $(r $je $ne)× | |"
echo "| $jobs \`true\` jobs | ${je} s | GNU parallel -j8 ${pe} s | $(r $je $pe)× | |"
echo "| daemon RSS with $kept finished jobs | ${rss} MB | | | ≤ 60 MB |"
echo "| \`job get 5\` with $kept jobs kept (median) | ${g1} ms | | | |"
echo "| \`job get\` listing $kept jobs (median) | ${ga} ms | | | |"
echo
echo "The floor: \`job --help\` (start-up, no request) takes ${floor} ms. $(nproc) cores; $(date -u +%FT%TZ)."
