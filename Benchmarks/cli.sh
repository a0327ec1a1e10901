#!/usr/bin/env bash
# The CLI and daemon next to the tools a user would pick instead, in one run:
#   - latency of the submitting command: job start -- true, tsp true, nq true (hyperfine medians)
#   - 1,000 `true` jobs submitted by a shell loop and waited for: job, task-spooler, nq, GNU parallel
#   - the daemon's memory (RSS) with 10,000 finished jobs kept, and `job get` then (one job, all)
#   - `seq N | job foreach -- /bin/true` against xargs -P2 (the floor), GNU parallel, task-spooler
#     (two slots) and nq loops, at 1,000 and 10,000 inputs, the tools taking turns, three rounds
#     (one at 10,000); and jobd's RSS after a foreach of FOREACH_RSS (100,000) children
# Builds job and jobd as one would install them: release mode, the Swift runtime linked
# statically, and no $ORIGIN run path (nothing to find there; without it the loader tries ~24
# fewer paths at every start). Installs the
# peers (Debian packages) when missing. Prints a Markdown table.
#   Benchmarks/cli.sh [JOBS=1000] [KEPT=10000] [FOREACH_RSS=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-1000}
kept=${2:-10000}
foreach_rss=${3:-100000}
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
# The same, given up after $2 seconds (nq makes each job wait for every earlier one: at 10,000
# that takes hours): prints the bound, marked with '>'.
bounded() { local took; took=$(seconds "timeout $2 bash -c '$1'"); python3 -c "print('>%d' % $2 if $took >= $2 - 0.05 else '$took')"; }

"$job" --home "$work/job" get >/dev/null          # the daemon is up before timing
tsp true >/dev/null; tsp -w >/dev/null
floor=$(median "$job --help")
j=$(median "$job --home $work/job start -- true")
t=$(median "tsp true")
nqt=$(median "nq true")   # not $n: the foreach loops below count with it
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

# foreach and its peers, taking turns; medians of the rounds.
"$job" --home "$work/job" daemon stop >/dev/null; rm -rf "$work/job"; "$job" --home "$work/job" get >/dev/null
tsp -K >/dev/null 2>&1 || true; rm -rf "$NQDIR"; mkdir -p "$NQDIR"; tsp -S 2 >/dev/null 2>&1 || true
med() { python3 -c "import statistics,sys;print('%.2f' % statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
declare -A took
for n in 1000 10000; do
  rounds=3; [ $n -gt 1000 ] && rounds=1
  for round in $(seq $rounds); do
    took[job$n]+=" $(seconds "seq $n | $job --home $work/job foreach -- /bin/true")"
    took[xargs$n]+=" $(seconds "seq $n | xargs -P2 -n1 /bin/true")"
    took[parallel$n]+=" $(seconds "seq $n | parallel /bin/true")"
    took[tsp$n]+=" $(bounded "for i in \$(seq $n); do tsp /bin/true; done; tsp -w" 300)"
    took[nq$n]+=" $(bounded "for i in \$(seq $n); do nq /bin/true; done; nq -w" 120)"
    tsp -K >/dev/null 2>&1 || true; tsp -S 2 >/dev/null 2>&1 || true
    pkill -x nq >/dev/null 2>&1 || true; rm -rf "$NQDIR"; mkdir -p "$NQDIR"
  done
done
for key in "${!took[@]}"; do
  case "${took[$key]}" in *'>'*) took[$key]=$(echo ${took[$key]} | tr ' ' '\n' | grep '>' | head -1);; *) took[$key]=$(med ${took[$key]});; esac
done
"$job" --home "$work/job" daemon stop >/dev/null; rm -rf "$work/job"
seq "$foreach_rss" | "$job" --home "$work/job" foreach --as-job -- /bin/true >/dev/null
fstart=$(date +%s.%N)
"$job" --home "$work/job" wait >/dev/null
fend=$(date +%s.%N)
fpid=$(python3 -c "import json,subprocess;print(json.loads(subprocess.check_output(['$job','--home','$work/job','daemon','status','-o','json']))['pid'])")
frss_end=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$fpid/status)
# The finished family leaves memory once its ends are committed (within the 100 ms flush).
sleep 1
frss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$fpid/status)
fhwm=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$fpid/status)

# What each tool took, for the record (and to tell a tool that failed from a slow one).
for key in "${!took[@]}"; do echo "took[$key] = ${took[$key]}" >&2; done
r() { case "$2" in '') echo '?';; '>'*) python3 -c "print('<%.2f' % ($1/${2#>}))";; *) python3 -c "print('%.2f' % ($1/$2))";; esac; }
echo "| benchmark | job | peer | ratio (job / peer) | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| submit one job (median latency) | ${j} ms | tsp ${t} ms | $(r $j $t)× | ≤ 3 ms |"
echo "| submit one job (median latency) | ${j} ms | nq ${nqt} ms | $(r $j $nqt)× | |"
echo "| $jobs \`true\` jobs, shell loop + wait | ${je} s | task-spooler ${te} s | $(r $je $te)× | ≤ 3× |"
echo "| $jobs \`true\` jobs, shell loop + wait | ${je} s | nq ${ne} s | $(r $je $ne)× | |"
echo "| $jobs \`true\` jobs | ${je} s | GNU parallel -j8 ${pe} s | $(r $je $pe)× | |"
echo "| daemon RSS with $kept finished jobs | ${rss} MB | | | ≤ 60 MB |"
echo "| \`job get 5\` with $kept jobs kept (median) | ${g1} ms | | | |"
echo "| \`job get\` listing $kept jobs (median) | ${ga} ms | | | |"
for n in 1000 10000; do
  echo "| \`seq $n \| job foreach -- /bin/true\` | ${took[job$n]} s | xargs -P2 ${took[xargs$n]} s (the floor) | $(r ${took[job$n]} ${took[xargs$n]})× | $([ $n = 1000 ] && echo '≤ 1.2×') |"
  for peer in parallel tsp nq; do
    echo "| the same | ${took[job$n]} s | $peer ${took[$peer$n]} s | $(r ${took[job$n]} ${took[$peer$n]})× | < 1× |"
  done
done
echo "| 10,000 inputs against 1,000 | ${took[job10000]} s | ${took[job1000]} s | $(r ${took[job10000]} ${took[job1000]})× | ≤ 11× |"
echo "| per foreach child against one tsp submission | $(python3 -c "print('%.2f' % (${took[job1000]}*1000/1000))") ms | $(python3 -c "print('%.2f' % (${took[tsp1000]}*1000/1000))") ms | $(r ${took[job1000]} ${took[tsp1000]})× | < 1× |"
echo "| jobd RSS after a foreach of $foreach_rss children, 1 s after its end (at its end; peak) | ${frss} MB (${frss_end} MB; ${fhwm} MB) | | | ≤ 60 MB |"
echo
echo "A foreach of $foreach_rss children ran to its end in $(python3 -c "print('%.1f' % ($fend-$fstart))") s after it was submitted."
echo
echo "The floor: \`job --help\` (start-up, no request) takes ${floor} ms. $(nproc) cores; $(date -u +%FT%TZ)."
