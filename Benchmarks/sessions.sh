#!/usr/bin/env bash
# A small command (`true`) run in a session against a fresh job each time, side by side in
# one run: locally, and on a loopback sshd host (scripts/ssh-hosts) through its ControlMaster.
#   - job invoke --session S -c true           (the session's shell, already running)
#   - job invoke --computer localhost -c true  (a fresh job: supervisor, /bin/sh -c true)
#   - job invoke --session R -c true           (a remote session, through the master)
#   - job invoke --computer h1 -c true         (a fresh remote job through the same master)
# Each waits for its command and removes its job, as a user running one command would. Builds
# job and jobd as one would install them (release, static Swift runtime). Needs root (the
# sshd). Prints a Markdown table.
#   Benchmarks/sessions.sh [ROUNDS=40]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-40}
[ -x /usr/sbin/sshd ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >&2; }
swift build -c release --static-swift-stdlib --disable-local-rpath --product job --scratch-path .build-static >&2
swift build -c release --static-swift-stdlib --disable-local-rpath --product jobd --scratch-path .build-static >&2
job=$PWD/.build-static/release/job
work=$(mktemp -d /tmp/job-bench-XXXXXX)
chmod 755 "$work"
cleanup() {
  "$job" --home "$work/job" session remove '*' >/dev/null 2>&1 || true
  "$job" --home "$work/job" daemon stop >/dev/null 2>&1 || true
  scripts/ssh-hosts down "$work/hosts" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/ssh-hosts up "$work/hosts" h1 >&2
export JOB_SSH_CONFIG=$work/hosts/ssh_config
j() { "$job" --home "$work/job" "$@"; }
j session new --name here >/dev/null
j session new --name there --computer h1 >/dev/null
# Warm: the master is up, and each form has run once.
for f in "--session here" "--computer localhost" "--session there" "--computer h1"; do j invoke $f -c true >/dev/null; done

time_us() {  # time_us NAME ARGS...: one `job invoke ARGS`, its microseconds appended to $work/NAME
  local name=$1 start end; shift
  start=$(date +%s%N)
  if ! j invoke "$@" >/dev/null 2>"$work/stderr"; then echo "benchmark failed: $*" >&2; cat "$work/stderr" >&2; exit 1; fi
  end=$(date +%s%N)
  echo $(( (end - start) / 1000 )) >>"$work/$name"
}
median() { sort -n "$work/$1" | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'; }
for r in $(seq "$rounds"); do
  # Which goes first alternates: this machine's speed drifts within a minute.
  if [ $((r % 2)) = 0 ]; then
    time_us local-session --session here -c true; time_us local-job --computer localhost -c true
    time_us remote-session --session there -c true; time_us remote-job --computer h1 -c true
  else
    time_us local-job --computer localhost -c true; time_us local-session --session here -c true
    time_us remote-job --computer h1 -c true; time_us remote-session --session there -c true
  fi
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ls=$(median local-session); lj=$(median local-job); rs=$(median remote-session); rj=$(median remote-job)
echo "| \`true\`, waited for ($rounds rounds, medians) | in a session | a fresh job | ratio (session / job) | target |"
echo "| --- | --- | --- | --- | --- |"
echo "| locally | $ls ms | $lj ms | $(ratio "$ls" "$lj")× | < 1× |"
echo "| on h1, through its master | $rs ms | $rj ms | $(ratio "$rs" "$rj")× | < 1× |"
