#!/usr/bin/env bash
# Run every test of the project and end with one plain line:
#   N passed, N failed
# summed over all suites. pytest suites (app tests, each Molecule scenario's
# testinfra verify) count their test cases from JUnit XML; every other step
# (setup, lint, syntax check, a Molecule run's create/converge/idempotence)
# counts as one passed or one failed. Exit status is non-zero if anything
# failed. Works on a fresh Debian 12 machine: installs what it needs.
#
# Usage: scripts/test-all.sh [app] [lint] [syntax] [molecule[=SCENARIO,...]]
#   (no argument: everything)
set -uo pipefail

# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

RESULTS="${GP_RESULTS_DIR:-$GP_WORK/results}"
export GP_RESULTS_DIR="$RESULTS"
PASSED=0
FAILED=0
SUMMARY=()

finish() {
  local rc=$?
  echo
  echo "==== summary ===="
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  echo "${PASSED} passed, ${FAILED} failed"
  if ((FAILED > 0)); then exit 1; fi
  exit "$rc"
}
trap finish EXIT

record() {  # record NAME PASSED FAILED [NOTE]
  PASSED=$((PASSED + $2))
  FAILED=$((FAILED + $3))
  SUMMARY+=("$(printf '%-34s %4s passed %4s failed  %s' "$1" "$2" "$3" "${4:-}")")
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
      app) app=1 ;;
      lint|syntax) tools=1 ;;
      molecule*) tools=1; image=1 ;;
    esac
  done
  ((app)) && step setup-app-venv 900 "$GP_ROOT/scripts/setup-app-venv.sh"
  if ((image)); then
    step setup-test-hosts 1200 "$GP_ROOT/scripts/setup-test-hosts.sh"
  elif ((tools)); then
    step setup-tools 900 "$GP_ROOT/scripts/setup-test-hosts.sh" --no-image
  fi
  return 0
}

run_app() {
  suite app-tests "$RESULTS/app-tests.xml" 1500 \
    "$GP_ROOT/.venv/bin/python" -m pytest "$GP_ROOT/app/tests" -q -p no:cacheprovider \
    --junitxml="$RESULTS/app-tests.xml"
}

run_lint() {
  gp_tools_env
  cd "$GP_ROOT" || return 1
  step yamllint 300 yamllint --strict .
  step ansible-lint 600 ansible-lint --offline --profile production
  # Role checks without hosts (tests/ansible): the ACL allow-list, the secret
  # character set and quoting (read back by throw-away redis-server and
  # Sentinel processes), redis-config-check, the app's locks, TLS files read by a
  # throw-away primary, replica and Sentinel, the firewall rules checked by nft in
  # throw-away network namespaces.
  gp_apt_install redis-server openssl nftables
  suite role-tests "$RESULTS/role-tests.xml" 300 \
    "$GP_TOOLS/bin/python" -m pytest "$GP_ROOT/tests/ansible" -q -p no:cacheprovider \
    --junitxml="$RESULTS/role-tests.xml"
  # The alert and recording rules (monitoring/): valid, and each alert fires on its
  # synthetic series and stays silent on the healthy one. promtool: setup-promtool.sh.
  step promtool-check-rules 120 promtool check rules monitoring/prometheus/rules/guard-proxy.rules.yml
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
  timeout --kill-after=30 1500 "$GP_ROOT/scripts/molecule.sh" test -s "$name" >"$log" 2>&1
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

run_molecule() {
  local only="${1:-}" dir name p f s
  gp_tools_env
  for dir in "$GP_ROOT"/molecule/*/; do
    name="$(basename "$dir")"
    [[ -f "$dir/molecule.yml" ]] || continue
    if [[ -n "$only" && ",$only," != *",$name,"* ]]; then continue; fi
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
  done
}

main() {
  mkdir -p "$RESULTS"
  local want=("$@") t0=$SECONDS
  ((${#want[@]})) || want=(app lint syntax molecule)
  run_setup "${want[@]}"
  local w
  for w in "${want[@]}"; do
    case "$w" in
      app) run_app ;;
      lint) run_lint ;;
      syntax) run_syntax ;;
      molecule) run_molecule ;;
      molecule=*) run_molecule "${w#molecule=}" ;;
      *) echo "unknown suite: $w" >&2; record "usage" 0 1 "unknown suite $w" ;;
    esac
  done
  gp_log "all done in $((SECONDS - t0)) s"
}

main "$@"
