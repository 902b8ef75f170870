#!/usr/bin/env bash
# Run every test of the project and end with one plain line:
#   N passed, N failed
# summed over all suites. pytest suites (app tests, each Molecule scenario's
# testinfra verify) count their test cases from JUnit XML; every other step
# (setup, lint, syntax check, a Molecule run's create/converge/idempotence)
# counts as one passed or one failed. Exit status is non-zero if anything
# failed. Works on a fresh Debian 12 machine: installs what it needs.
#
# After the set-up, the suites run side by side (2 cores go further that way: a
# Molecule scenario spends most of its time waiting on systemd, apt and
# HTTP): the static checks, lint, syntax and app tests in one lane, the app tests
# on Debian 13's Python 3.13 and Redis 8.0 (app-trixie: a throw-away trixie
# container, scripts/test-app-release.sh) in a lane of its own, and each
# Molecule scenario in a lane of its own (own podman instance under
# .work/podman-<scenario>, own network, own Molecule ephemeral directory;
# their starts are GP_STAGGER seconds apart). Each suite's wall time is
# printed against its budget (BUDGET below, also in README.md).
#
# Usage: scripts/test-all.sh [app] [app-trixie] [static] [lint] [syntax] [molecule[=SCENARIO,...]]
#   (no argument: everything)
set -uo pipefail

# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

RESULTS="${GP_RESULTS_DIR:-$GP_WORK/results}"
export GP_RESULTS_DIR="$RESULTS"
# Lanes run in background subshells: every count and timing goes to a file.
RECORDS="$RESULTS/records.tsv"
TIMES="$RESULTS/times.tsv"
GP_STAGGER="${GP_STAGGER:-25}"

# CPU priority (nice) per lane: the run is CPU-bound on 2 cores and ends when its longest
# lane does, so the longest scenarios (sentinel, then shared-cache) get the larger share and
# the lanes with slack (default, app-trixie) a smaller one; the checks lane (app tests, whose
# start-up waits suffer most from a loaded machine) stays at 0. GP_MOLECULE_NICE overrides
# every Molecule and app-trixie lane.
declare -A LANE_NICE=(
  [molecule-sentinel]=0 [molecule-shared-cache]=2 [molecule-default]=5 [app-trixie]=7
)
lane_nice() { echo "${GP_MOLECULE_NICE:-${LANE_NICE[$1]:-5}}"; }

# Wall-time budget per suite in seconds on 2 shared cores, cold (README.md, "Test time").
# Over budget is reported, not failed: timings are not assertions.
declare -A BUDGET=(
  [setup]=420 [static]=120 [lint]=300 [syntax]=60 [app]=420 [app-trixie]=900
  [molecule-default]=660 [molecule-sentinel]=780 [molecule-shared-cache]=720
  [total]=1500
)

finish() {
  local rc=$?
  trap - EXIT
  # A lane still running (interrupted run) is stopped with its children.
  local pid
  for pid in $(jobs -p); do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null; done
  echo
  echo "==== wall time per suite (budget) ===="
  local name secs budget note
  while IFS=$'\t' read -r name secs; do
    budget="${BUDGET[$name]:-}"
    note=""
    [[ -n "$budget" ]] && ((secs > budget)) && note="  OVER BUDGET"
    printf '  %-24s %5s s  (budget %s s)%s\n' "$name" "$secs" "${budget:-?}" "$note"
  done < <(cat "$TIMES" 2>/dev/null)
  echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "==== summary ===="
  local p=0 f=0 np nf line
  while IFS=$'\t' read -r np nf line; do
    p=$((p + np)); f=$((f + nf))
    echo "  $line"
  done < <(cat "$RECORDS" 2>/dev/null)
  echo "${p} passed, ${f} failed"
  if ((f > 0)); then exit 1; fi
  exit "$rc"
}
trap finish EXIT

record() {  # record NAME PASSED FAILED [NOTE]
  printf '%s\t%s\t%s\n' "$2" "$3" "$(printf '%-34s %4s passed %4s failed  %s' "$1" "$2" "$3" "${4:-}")" >>"$RECORDS"
}

timed() {  # timed SUITE CMD...: run CMD, append SUITE's wall time to $TIMES
  local name="$1" t0=$SECONDS rc
  shift
  "$@"
  rc=$?
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >>"$TIMES"
  return "$rc"
}

# step NAME TIMEOUT CMD...: one check, counted as 1 passed or 1 failed.
step() {
  local name="$1" limit="$2" t0=$SECONDS rc
  shift 2
  local log="$RESULTS/$name.log"
  gp_log "== $name"
  timeout --kill-after=30 "$limit" "$@" >"$log" 2>&1
  rc=$?
  if ((rc == 0)); then
    record "$name" 1 0 "$((SECONDS - t0)) s"
  else
    echo "---- $name failed (rc=$rc), last lines of $log:"
    grep -v '^WARNING: Location' "$log" | tail -40
    record "$name" 0 1 "$((SECONDS - t0)) s, rc=$rc"
  fi
  return "$rc"
}

# junit_counts FILE: prints "passed failed skipped" from a JUnit XML report.
junit_counts() {
  python3 - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
t = f = s = 0
for su in suites:
    t += int(su.get("tests", 0))
    f += int(su.get("failures", 0)) + int(su.get("errors", 0))
    s += int(su.get("skipped", 0))
print(t - f - s, f, s)
PY
}

# suite NAME JUNIT TIMEOUT CMD...: a pytest run counted per test case.
suite() {
  local name="$1" junit="$2" limit="$3" t0=$SECONDS rc p f s
  shift 3
  local log="$RESULTS/$name.log"
  rm -f "$junit"
  gp_log "== $name"
  timeout --kill-after=30 "$limit" "$@" >"$log" 2>&1
  rc=$?
  if [[ -s "$junit" ]] && read -r p f s < <(junit_counts "$junit"); then
    if ((rc != 0 && f == 0)); then f=1; fi  # crashed outside any test case
    if ((p + f == 0)); then f=1; fi          # ran no test: that is a failure
    record "$name" "$p" "$f" "$((SECONDS - t0)) s, $s skipped"
  else
    record "$name" 0 1 "$((SECONDS - t0)) s, no report, rc=$rc"
  fi
  if ((rc != 0 || f > 0)); then
    echo "---- $name failed (rc=$rc), last lines of $log:"
    grep -v '^WARNING: Location' "$log" | tail -60
  fi
  return 0
}

run_setup() {  # run_setup SUITE...: install only what the chosen suites need
  local w app=0 tools=0 image=0
  for w in "$@"; do
    case "$w" in
      app|static) app=1 ;;
      lint|syntax) tools=1 ;;
      # The trixie base image (the app's tests on its Python 3.13).
      app-trixie) image=1 ;;
      # Molecule default builds its tiny ONNX model with the app venv (prepare.yml).
      molecule*) tools=1; image=1; app=1 ;;
    esac
  done
  # The app venv (PyPI) and the test hosts (Debian mirror, tools venv) side by side;
  # gp_apt_install serialises their apt-get calls.
  local pid=""
  if ((app)); then step setup-app-venv 900 "$GP_ROOT/scripts/setup-app-venv.sh" & pid=$!; fi
  if ((image)); then
    step setup-test-hosts 1200 "$GP_ROOT/scripts/setup-test-hosts.sh"
  elif ((tools)); then
    step setup-tools 900 "$GP_ROOT/scripts/setup-test-hosts.sh" --no-image
  fi
  [[ -z "$pid" ]] || wait "$pid"
  return 0
}

# The app's Redis test files run a second time against Valkey (issue 24): the cache
# facade, Sentinel and TLS, and check-redis, with Debian's valkey-server
# (setup-app-venv.sh installs it; bookworm-backports on Debian 12) in place of
# redis-server (app/tests/support/redis_server.py, GUARD_TEST_REDIS_SERVER).
VALKEY_TESTS=(
  cache/test_redis_server_support.py cache/test_facade_redis.py cache/test_sentinel.py
  cache/test_tls.py cli/test_check_redis.py cli/test_check_redis_sentinel.py
  cli/test_check_redis_tls.py
)

run_app() {
  suite app-tests "$RESULTS/app-tests.xml" 1500 \
    "$GP_ROOT/.venv/bin/python" -m pytest "$GP_ROOT/app/tests" -q -p no:cacheprovider \
    --junitxml="$RESULTS/app-tests.xml"
  suite app-tests-valkey "$RESULTS/app-tests-valkey.xml" 900 \
    env GUARD_TEST_REDIS_SERVER=/usr/bin/valkey-server \
    "$GP_ROOT/.venv/bin/python" -m pytest "${VALKEY_TESTS[@]/#/$GP_ROOT/app/tests/}" -q \
    -p no:cacheprovider --junitxml="$RESULTS/app-tests-valkey.xml"
}

# The same app tests on Debian 13's Python 3.13 and redis-server 8.0, in a throw-away
# trixie container of a podman instance of its own (.work/podman-app-trixie, the base
# image read from .work/podman's storage), host network: nothing to set up but the
# container. Its lane runs beside the checks and the Molecule scenarios.
run_app_release() (  # run_app_release RELEASE
  local release="$1"
  export GP_IMAGE_STORE="$GP_WORK/podman/storage"
  export GP_PODMAN_DIR="$GP_WORK/podman-app-$release"
  suite "app-tests-$release" "$RESULTS/app-tests-$release.xml" 1500 \
    nice -n "$(lane_nice "app-$release")" "$GP_ROOT/scripts/test-app-release.sh" "$release"
)

# The app's static checks (issue 21): ruff's rule set and formatting, and mypy --strict
# (settings in app/pyproject.toml); each a step that fails CI.
run_static() {
  local venv="$GP_ROOT/.venv/bin"
  step ruff-check 120 "$venv/ruff" check "$GP_ROOT/app"
  step ruff-format 120 "$venv/ruff" format --check "$GP_ROOT/app"
  step mypy-strict 600 bash -c 'cd "$1/app" && "$2/mypy" src' _ "$GP_ROOT" "$venv"
}

run_lint() {
  gp_tools_env
  cd "$GP_ROOT" || return 1
  step yamllint 300 yamllint --strict .
  # ansible-lint and the role tests wait on nothing timed: below the longest scenarios.
  step ansible-lint 600 nice -n 5 ansible-lint --offline --profile production
  # Role checks without hosts (tests/ansible): the ACL allow-list, the secret
  # character set and quoting (read back by throw-away redis-server and
  # Sentinel processes), redis-config-check, the app's locks, TLS files read by a
  # throw-away primary, replica and Sentinel, the firewall rules checked by nft in
  # throw-away network namespaces.
  gp_apt_install redis-server openssl nftables
  suite role-tests "$RESULTS/role-tests.xml" 1500 \
    nice -n 5 "$GP_TOOLS/bin/python" -m pytest "$GP_ROOT/tests/ansible" -q -p no:cacheprovider \
    --junitxml="$RESULTS/role-tests.xml"
  # The alert and recording rules (monitoring/): valid, and each alert fires on its
  # synthetic series and stays silent on the healthy one. promtool: setup-promtool.sh.
  step promtool-check-rules 120 bash -c 'promtool check rules monitoring/prometheus/rules/*.yml'
  step promtool-test-rules 300 bash -c 'promtool test rules monitoring/prometheus/tests/*.yml'
}

run_syntax() {
  gp_tools_env
  cd "$GP_ROOT" || return 1
  local inv name
  for inv in inventories/*/; do
    name="$(basename "$inv")"
    step "syntax-check-$name" 300 ansible-playbook -i "$inv" site.yml --syntax-check
  done
}

molecule_step() {  # molecule_step SCENARIO: `molecule test`, counted as one step
  local name="$1" t0=$SECONDS rc failed
  local log="$RESULTS/molecule-$name.log"
  gp_log "== molecule-$name"
  # Priority per lane (LANE_NICE): the longest scenarios level with the checks lane,
  # whose app tests' own timing (workers, watchdog pings) suffers most from a loaded
  # machine; the shorter ones below. Its time
  # limit is the same generous one as before the lanes: a loaded machine (other
  # jobs on the same 2 cores) stretches every scenario.
  nice -n "$(lane_nice "molecule-$name")" timeout --kill-after=30 3000 molecule --env-file "$GP_PODMAN_DIR/molecule-env.yml" \
    test -s "$name" >"$log" 2>&1
  rc=$?
  # Molecule's DETAILS list names each action that failed ("<scenario> > verify: Executed: Failed").
  failed="$(grep -oE '> [a-z_]+: Executed: Failed' "$log" | awk '{print $2}' | sort -u | tr -d ':' | xargs)"
  if ((rc == 0)) || [[ "$failed" == verify && -s "$RESULTS/molecule-$name.xml" ]]; then
    record "molecule-$name" 1 0 "$((SECONDS - t0)) s${failed:+, verify failed (counted below)}"
  else
    echo "---- molecule-$name failed (rc=$rc${failed:+, failed: $failed}), last lines of $log:"
    grep -v '^WARNING: Location' "$log" | tail -40
    record "molecule-$name" 0 1 "$((SECONDS - t0)) s, rc=$rc"
  fi
}

# molecule_scenario NAME INDEX: one scenario in a podman instance of its own
# (.work/podman-NAME, the base image read from .work/podman's storage), its own
# Molecule ephemeral directory, and its network gp-NAME-$GP_NETWORK_TAG on a bridge
# and subnet of its own (instances do not see each other's networks).
molecule_scenario() (
  local name="$1" idx="$2" p f s
  export GP_IMAGE_STORE="$GP_WORK/podman/storage"
  export GP_PODMAN_DIR="$GP_WORK/podman-$name"
  export MOLECULE_EPHEMERAL_DIRECTORY="$GP_WORK/molecule/$name"
  gp_tools_env
  cd "$GP_ROOT" || exit 1
  mkdir -p "$MOLECULE_EPHEMERAL_DIRECTORY"
  # Molecule would read the repository's .env.yml (the shared instance): this lane's own.
  printf -- '---\nCONTAINERS_CONF: "%s"\nCONTAINERS_STORAGE_CONF: "%s"\nGP_NETWORK_TAG: "%s"\n' \
    "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF" "$GP_NETWORK_TAG" >"$GP_PODMAN_DIR/molecule-env.yml"
  # Podman names a new network's bridge podmanN and takes subnet 10.89.(N-1).0/24 by
  # default, skipping those of its own instance's networks and the live ones: two
  # instances creating networks at the same time would both take podman1. Placeholder
  # network files (a network has no interface until a container uses it; these never
  # are) give scenario INDEX bridges and subnets from podman$((5 * (INDEX - 1) + 1)) on.
  # (podman 4.3 has no --interface-name.)
  local k
  for ((k = 1; k <= 5 * (idx - 1); k++)); do
    printf '{"name": "gp-reserved-%s", "id": "%s", "driver": "bridge", "network_interface": "podman%s", "created": "2026-01-01T00:00:00Z", "subnets": [{"subnet": "10.89.%s.0/24", "gateway": "10.89.%s.1"}], "ipv6_enabled": false, "internal": false, "dns_enabled": false, "ipam_options": {"driver": "host-local"}}\n' \
      "$k" "$(printf 'gp-reserved-%s' "$k" | sha256sum | cut -d' ' -f1)" "$k" "$((k - 1))" "$((k - 1))" \
      >"$GP_PODMAN_DIR/networks/gp-reserved-$k.json"
  done
  rm -f "$RESULTS/molecule-$name.xml"
  # create, converge, idempotence, destroy: one step; verify: per test case. A run whose
  # only failed action is verify counts its failures once, in the verify line.
  molecule_step "$name"
  if [[ -s "$RESULTS/molecule-$name.xml" ]]; then
    read -r p f s < <(junit_counts "$RESULTS/molecule-$name.xml")
    record "molecule-$name-verify" "$p" "$f" "$s skipped"
  elif ! grep -q 'verify.*Executed: Successful' "$RESULTS/molecule-$name.log"; then
    record "molecule-$name-verify" 0 1 "verify did not run"
  fi
  return 0
)

# run_molecule [SCENARIO,...]: the scenarios side by side, started GP_STAGGER s apart
# (their create and first apt runs are the heaviest part).
run_molecule() {
  local only="${1:-}" dir name idx pids=() order=()
  # The longest scenario first; any other scenario after these.
  for dir in sentinel shared-cache default "$GP_ROOT"/molecule/*/; do
    name="$(basename "$dir")"
    [[ " ${order[*]} " == *" $name "* ]] || order+=("$name")
  done
  for name in "${order[@]}"; do
    dir="$GP_ROOT/molecule/$name"
    [[ -f "$dir/molecule.yml" ]] || continue
    # A subnet index per scenario: its place in the alphabetical list.
    idx="$(find "$GP_ROOT/molecule" -mindepth 2 -maxdepth 2 -name molecule.yml | sort | grep -n "/$name/molecule.yml" | cut -d: -f1)"
    if [[ -n "$only" && ",$only," != *",$name,"* ]]; then continue; fi
    ((${#pids[@]} == 0)) || sleep "$GP_STAGGER"
    timed "molecule-$name" molecule_scenario "$name" "$idx" &
    pids+=($!)
  done
  ((${#pids[@]} == 0)) || wait "${pids[@]}"
}

# The lane of the host-less checks: static, lint, syntax, then the app tests.
run_checks() {
  local w
  for w in static lint syntax app; do
    [[ " $* " == *" $w "* ]] || continue
    case "$w" in
      app) timed app run_app ;;
      static) timed static run_static ;;
      lint) timed lint run_lint ;;
      syntax) timed syntax run_syntax ;;
    esac
  done
}

main() {
  mkdir -p "$RESULTS"
  rm -f "$RECORDS" "$TIMES"
  local want=("$@") t0=$SECONDS w checks=() mol="" pids=()
  ((${#want[@]})) || want=(static app app-trixie lint syntax molecule)
  timed setup run_setup "${want[@]}"
  for w in "${want[@]}"; do
    case "$w" in
      app|static|lint|syntax) checks+=("$w") ;;
      app-trixie) set -m; timed app-trixie run_app_release trixie & pids+=($!); set +m ;;
      molecule) mol="all" ;;
      molecule=*) mol="${w#molecule=}" ;;
      *) echo "unknown suite: $w" >&2; record "usage" 0 1 "unknown suite $w" ;;
    esac
  done
  if [[ -n "$mol" ]]; then
    # Each lane is a process group of its own, so an interrupted run can stop it whole.
    set -m
    if [[ "$mol" == all ]]; then run_molecule & else run_molecule "$mol" & fi
    pids+=($!)
    set +m
  fi
  ((${#checks[@]} == 0)) || run_checks "${checks[@]}"
  ((${#pids[@]} == 0)) || wait "${pids[@]}"
  printf '%s\t%s\n' total "$((SECONDS - t0))" >>"$TIMES"
  gp_log "all done in $((SECONDS - t0)) s"
}

main "$@"
