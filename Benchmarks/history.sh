#!/usr/bin/env bash
# What a long history costs: `job start`, `job get ID`, `job get` (all of it), jobd's memory
# (RSS) and its cold start, side by side with 0, 10,000 and 100,000 finished jobs kept. Each
# kept job is what `job start` leaves (a parent and its child, Completed, some with output
# recorded), written straight into the database a real daemon made, for speed of setting up.
# Builds as Benchmarks/cli.sh does (release, static Swift runtime). Prints a Markdown table.
#   Benchmarks/history.sh [COUNTS="0 10000 100000"]
set -euo pipefail
cd "$(dirname "$0")/.."
counts=${1:-"0 10000 100000"}
command -v hyperfine >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >&2; }
swift build -c release --static-swift-stdlib --disable-local-rpath --product job --scratch-path .build-static >&2
swift build -c release --static-swift-stdlib --disable-local-rpath --product jobd --scratch-path .build-static >&2
job=$PWD/.build-static/release/job
jobd=$PWD/.build-static/release/jobd
work=$(mktemp -d)
cleanup() { for h in "$work"/h*; do "$job" --home "$h" daemon stop >/dev/null 2>&1 || true; done; rm -rf "$work"; }
trap cleanup EXIT

# N finished `job start` jobs: parents 1, 3, 5, … and their children.
fill() { python3 - "$1" "$2" <<'PY'
import sqlite3, sys, uuid
path, n = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
rows = []
t = 1764633600.0
for i in range(n):
    parent, child = 2 * i + 1, 2 * i + 2
    begin, end = t + i, t + i + 0.5
    for id, name, pid in ((parent, "Job%d" % parent, None), (child, "Job%d" % child, parent)):
        rows.append((id, str(uuid.uuid4()), name, "BackgroundJob", "Completed", "localhost", "make test %d" % i, pid,
                     begin, end, 0, None, 0, 0 if pid is None else i % 3, 0, "/bin/sh", "/home/ana"))
db.executemany("INSERT INTO job (id, instanceId, name, type, state, location, command, parentId, beginTime, endTime,"
               " exitCode, reason, received, recorded, stopRequested, program, workingDirectory)"
               " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'job'", (2 * n,))
if db.execute("SELECT changes()").fetchone()[0] == 0:
    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('job', ?)", (2 * n,))
db.commit()
PY
}

# The daemon's cold start: exec to the first answer on its socket, median of 10 (ms).
cold() { python3 - "$jobd" "$1" <<'PY'
import os, signal, socket, statistics, subprocess, sys, time
jobd, home = sys.argv[1], sys.argv[2]
times = []
for _ in range(10):
    start = time.monotonic()
    p = subprocess.Popen([jobd, "--home", home], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(home + "/jobd.sock")
            break
        except OSError:
            time.sleep(0.0005)
        finally:
            s.close()
    times.append((time.monotonic() - start) * 1000)
    p.send_signal(signal.SIGTERM)
    p.wait()
print("%.0f" % statistics.median(times))
PY
}

rss() { local pid; pid=$("$job" --home "$1" daemon status -o json | python3 -c "import json,sys;print(json.load(sys.stdin)['pid'])")
  awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status; }

# Several runs of hyperfine, each taking every home in turn: the homes are measured side by
# side, so that what the machine does meanwhile falls on all of them alike.
side_by_side() { # NAME RUNS COMMAND-WITH-HOME... ; prints "home median_ms" lines, median of the rounds
  local runs=$1; shift
  for round in 1 2 3; do
    local cmds=(); for n in $counts; do cmds+=("${1//HOME/$work/h$n}"); done
    hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/r$round.json" "${cmds[@]}" >/dev/null 2>&1
  done
  python3 - "$work" $counts <<'PY'
import json, statistics, sys
work, counts = sys.argv[1], sys.argv[2:]
rounds = [json.load(open("%s/r%d.json" % (work, r)))["results"] for r in (1, 2, 3)]
for i, n in enumerate(counts):
    print(n, "%.2f" % (statistics.median(r[i]["median"] for r in rounds) * 1000))
PY
}

declare -A cold_ms start_ms get_ms all_ms rss_mb
for n in $counts; do
  home=$work/h$n
  "$job" --home "$home" get >/dev/null       # a daemon makes the home and its database
  "$job" --home "$home" daemon stop >/dev/null
  fill "$home/jobs.sqlite" "$n"
  cold_ms[$n]=$(cold "$home")
  "$job" --home "$home" get 1 >/dev/null 2>&1 || true
  "$job" --home "$home" start -- true >/dev/null   # job 1 exists in every home
done
while read -r n v; do start_ms[$n]=$v; done < <(side_by_side 100 "$job --home HOME start -- true")
while read -r n v; do get_ms[$n]=$v; done < <(side_by_side 100 "$job --home HOME get 1")
while read -r n v; do all_ms[$n]=$v; done < <(side_by_side 3 "$job --home HOME get")
for n in $counts; do rss_mb[$n]=$(rss "$work/h$n"); done

echo "| finished jobs kept | job start | job get ID | job get (all) | jobd RSS after get | jobd cold start |"
echo "| --- | --- | --- | --- | --- | --- |"
for n in $counts; do
  printf '| %s | %s ms | %s ms | %s ms | %s MB | %s ms |\n' "$n" "${start_ms[$n]}" "${get_ms[$n]}" "${all_ms[$n]}" "${rss_mb[$n]}" "${cold_ms[$n]}"
done
