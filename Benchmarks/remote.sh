#!/usr/bin/env bash
# Fan-out to many computers, next to the tools a user would pick instead, in one run: `true`
# on N loopback sshd hosts (scripts/ssh-hosts, each its own sshd, port and host key), cold
# (no connection up) and warm (masters up):
#   - job invoke --computer h1,…,hN -c true          (waits, like the others)
#   - the same --detached (warm): started on each host detached from the connection, followed
#     to its end, and removed (the hosts' directories are deleted after it returns)
#   - pdsh -R ssh, clush, and a plain bash `ssh … &` loop (cold), the same loop through
#     ControlPersist masters (warm: the floor for any tool that runs ssh per command)
# Builds job and jobd as one would install them: release mode, the Swift runtime linked
# statically, and no $ORIGIN run path (nothing to find there; without it the loader tries ~24
# fewer paths at every start). Installs the
# peers (Debian packages) when missing. Needs root (the sshd's). Prints a Markdown table.
#   Benchmarks/remote.sh [HOSTS=32] [ROUNDS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-32}
runs=${2:-10}
need=()
command -v pdsh >/dev/null || need+=(pdsh)
command -v clush >/dev/null || need+=(clustershell)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
swift build -c release --static-swift-stdlib --disable-local-rpath --product job --scratch-path .build-static >&2
swift build -c release --static-swift-stdlib --disable-local-rpath --product jobd --scratch-path .build-static >&2
job=$PWD/.build-static/release/job
work=$(mktemp -d /tmp/job-bench-XXXXXX)
chmod 755 "$work"   # the hosts' user reads its authorized keys in here
hosts=()
for i in $(seq "$n"); do hosts+=("h$i"); done
cleanup() {
  "$job" --home "$work/job" daemon stop >/dev/null 2>&1 || true
  scripts/ssh-hosts down "$work/hosts" || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/ssh-hosts up "$work/hosts" "${hosts[@]}" >&2
cfg=$work/hosts/ssh_config
list=$(IFS=,; echo "${hosts[*]}")

# This machine's speed drifts by tens of percent within a minute: the commands are timed in
# rounds, one run of each per round, and compared by their medians, so that each ratio
# compares runs made side by side.
time_ms() {  # time_ms NAME COMMAND...: runs it once, appends its milliseconds to $work/NAME
  local name=$1 start end; shift
  start=$(date +%s%N)
  if ! "$@" >/dev/null 2>"$work/stderr"; then
    echo "benchmark failed: $*" >&2; cat "$work/stderr" >&2; exit 1
  fi
  end=$(date +%s%N)
  echo $(( (end - start) / 1000 )) >>"$work/$name"
}
median() { sort -n "$work/$1" | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'; }

export JOB_SSH_CONFIG=$cfg
"$job" --home "$work/job" get >/dev/null   # the daemon is up before timing
# Cold: every master gone (SIGTERM: ssh removes its socket), so each run connects afresh.
drop_masters() { pkill -TERM -f "$work/[j]ob/ssh/" || true; pkill -TERM -f "$work/[c]m-" || true; sleep 0.2; }
loop() { for h in "${hosts[@]}"; do ssh -F "$cfg" "$@" "$h" true & done; wait; }
persist=(-o ControlMaster=auto -o ControlPath="$work/cm-%n" -o ControlPersist=600)
export PDSH_SSH_ARGS_APPEND="-F $cfg"
for round in $(seq "$runs"); do
  drop_masters; time_ms job_cold "$job" --home "$work/job" invoke --computer "$list" -c true
  time_ms pdsh_cold pdsh -R ssh -f "$n" -l jobtest -w "$list" true
  time_ms clush_cold clush -f "$n" -l jobtest -o "-F $cfg" -w "$list" true
  time_ms loop_cold loop
done
loop "${persist[@]}"   # the loop's masters up; job's are up since its last cold run
for round in $(seq "$runs"); do
  time_ms job_warm "$job" --home "$work/job" invoke --computer "$list" -c true
  time_ms job_detached "$job" --home "$work/job" invoke --computer "$list" --detached -c true
  time_ms loop_warm loop "${persist[@]}"
done
cold_job=$(median job_cold); pdsh_cold=$(median pdsh_cold); clush_cold=$(median clush_cold)
loop_cold=$(median loop_cold); warm_job=$(median job_warm); loop_warm=$(median loop_warm)
detached_job=$(median job_detached)

r() { python3 -c "print('%.2f' % ($1/$2))"; }
echo "| $n hosts, \`true\` | job | peer | ratio (job / peer) | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| cold (no connection up) | ${cold_job} ms | pdsh -R ssh ${pdsh_cold} ms | $(r $cold_job $pdsh_cold)× | ≤ 1.0× |"
echo "| cold | ${cold_job} ms | clush ${clush_cold} ms | $(r $cold_job $clush_cold)× | |"
echo "| cold | ${cold_job} ms | bash \`ssh … &\` loop ${loop_cold} ms | $(r $cold_job $loop_cold)× | |"
echo "| warm (masters up) | ${warm_job} ms | bash loop with ControlPersist ${loop_warm} ms | $(r $warm_job $loop_warm)× | ≤ 1.2× |"
echo "| warm, \`--detached\` | ${detached_job} ms | job attached ${warm_job} ms | $(r $detached_job $warm_job)× | ≤ 1.5× |"
echo "| warm, \`--detached\` | ${detached_job} ms | pdsh -R ssh (cold) ${pdsh_cold} ms | $(r $detached_job $pdsh_cold)× | |"
