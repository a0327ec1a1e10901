#!/usr/bin/env bash
# Fan-out to many computers, next to the tools a user would pick instead, in one run: `true`
# on N loopback sshd hosts (scripts/ssh-hosts, each its own sshd, port and host key), cold
# (no connection up) and warm (masters up):
#   - job invoke --computer h1,…,hN -c true          (waits, like the others)
#   - pdsh -R ssh, clush, and a plain bash `ssh … &` loop (cold), the same loop through
#     ControlPersist masters (warm: the floor for any tool that runs ssh per command)
# Builds job and jobd in release mode with the Swift runtime linked statically. Installs the
# peers (Debian packages) when missing. Needs root (the sshd's). Prints a Markdown table.
#   Benchmarks/remote.sh [HOSTS=32] [RUNS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-32}
runs=${2:-10}
need=()
command -v pdsh >/dev/null || need+=(pdsh)
command -v clush >/dev/null || need+=(clustershell)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
swift build -c release --static-swift-stdlib --product job --scratch-path .build-static >&2
swift build -c release --static-swift-stdlib --product jobd --scratch-path .build-static >&2
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

median() { hyperfine -N --runs "$runs" ${2:+--prepare "$2"} --export-json "$work/h.json" "$1" >/dev/null 2>&1 ||
    { echo "benchmark failed: $1" >&2; hyperfine -N --runs 1 --show-output ${2:+--prepare "$2"} "$1" >&2; exit 1; }
  python3 -c "import json;print('%.1f' % (json.load(open('$work/h.json'))['results'][0]['median']*1000))"; }

export JOB_SSH_CONFIG=$cfg
"$job" --home "$work/job" get >/dev/null   # the daemon is up before timing
# Cold: every master gone (SIGTERM: ssh removes its socket), so each run connects afresh.
drop_masters="pkill -TERM -f $work/[j]ob/ssh/"
# hyperfine -N runs commands without a shell: wrap loops in bash.
cat >"$work/loop" <<EOF
#!/usr/bin/env bash
for h in ${hosts[*]}; do ssh -F $cfg "\$@" \$h true & done; wait
EOF
chmod +x "$work/loop"
cold_job=$(median "$job --home $work/job invoke --computer $list -c true" "bash -c '$drop_masters; sleep 0.2; true'")
warm_job=$(median "$job --home $work/job invoke --computer $list -c true")
pdsh_cold=$(PDSH_SSH_ARGS_APPEND="-F $cfg" median "pdsh -R ssh -f $n -l jobtest -w $list true")
clush_cold=$(median "clush -f $n -l jobtest -o '-F $cfg' -w $list true")
loop_cold=$(median "$work/loop")
persist="-o ControlMaster=auto -o ControlPath=$work/cm-%n -o ControlPersist=600"
"$work/loop" $persist   # masters up
loop_warm=$(median "$work/loop $persist")

r() { python3 -c "print('%.2f' % ($1/$2))"; }
echo "| $n hosts, \`true\` | job | peer | ratio (job / peer) | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| cold (no connection up) | ${cold_job} ms | pdsh -R ssh ${pdsh_cold} ms | $(r $cold_job $pdsh_cold)× | ≤ 1.0× |"
echo "| cold | ${cold_job} ms | clush ${clush_cold} ms | $(r $cold_job $clush_cold)× | |"
echo "| cold | ${cold_job} ms | bash \`ssh … &\` loop ${loop_cold} ms | $(r $cold_job $loop_cold)× | |"
echo "| warm (masters up) | ${warm_job} ms | bash loop with ControlPersist ${loop_warm} ms | $(r $warm_job $loop_warm)× | ≤ 1.2× |"
