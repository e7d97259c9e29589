#!/bin/sh
# Opsets 18-23 (issue 14): every case of tests/opset/opset_cases.py run by Kiln (`kiln run`) and
# by ONNX Runtime (tests/opset/ort_opset.js), judged by the case's `expect`:
#   match               both run and agree (opset_cases.py compare: <= 1e-4 relative, exact for
#                       integers and bools)
#   kiln_error SUBSTR   Kiln refuses with a message containing SUBSTR (ONNX Runtime's verdict is
#                       printed beside it)
#   both_error          both refuse (the model is invalid at its opset)
# A crash or a time-out of either side fails the case whatever it expects. Every case runs; a
# failing one prints both sides' messages, and the script exits 1 at the end if any failed.
#
#   sh tests/opset/opset_test.sh KILN_BINARY [CASE_PATTERN]
# CASE_PATTERN (a grep -E pattern) runs only the matching cases. Needs python3-numpy,
# python3-onnx and .deps/npm (onnxruntime-node, scripts/setup.sh).
set -u
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: sh opset_test.sh KILN_BINARY [CASE_PATTERN]" >&2
  exit 2
fi
kiln=$1
pattern=${2:-.}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
limit=${KILN_OPSET_TIMEOUT:-60}

if [ ! -x "$kiln" ]; then
  echo "opset: $kiln is not an executable"
  exit 1
fi
# ONNX Runtime must load, or every case would read as "ONNX Runtime refuses".
if ! node -e "require('$here/../models/ort_npy.js')" >"$tmp/ort_check.log" 2>&1; then
  sed -n '1,5p' "$tmp/ort_check.log"
  echo "opset: cannot load onnxruntime-node through tests/models/ort_npy.js (see scripts/setup.sh)"
  exit 1
fi
if ! /usr/bin/python3 "$here/opset_cases.py" gen "$tmp/cases" >"$tmp/gen.log" 2>&1; then
  cat "$tmp/gen.log"
  echo "opset: generating the cases failed"
  exit 1
fi

# Prints the first lines of a log file, indented.
show() {
  sed -n '1,6s/^/      /p' "$1"
}

# A crash or time-out: exit status 124 (timeout) or above 128 (a signal).
abnormal() {
  [ "$1" -eq 124 ] || [ "$1" -gt 128 ]
}

pass=0
fail=0
failed=""
for dir in "$tmp"/cases/*/; do
  name=$(basename "$dir")
  echo "$name" | grep -Eq -- "$pattern" || continue
  expect=$(head -n 1 "$dir/expect")
  kind=${expect%% *}
  substr=""
  [ "$kind" = "$expect" ] || substr=${expect#* }

  set --
  for f in "$dir"in/*.npy; do
    [ -e "$f" ] || continue
    set -- "$@" -i "$(basename "$f" .npy)=$f"
  done
  timeout "$limit" "$kiln" run "$dir/model.onnx" "$@" -o "$dir/kiln" >"$dir/kiln.log" 2>&1
  krc=$?
  timeout "$limit" node "$here/ort_opset.js" "$dir/model.onnx" "$dir/in" "$dir/ort" \
    >"$dir/ort.log" 2>&1
  orc=$?
  ort_says="ONNX Runtime runs it"
  [ $orc -eq 0 ] || ort_says="ONNX Runtime refuses: $(grep -m1 'error' "$dir/ort.log" | cut -c1-160)"

  verdict=FAIL
  why=""
  if abnormal $krc; then
    why="Kiln crashed or timed out (exit $krc)"
  elif abnormal $orc; then
    why="ONNX Runtime crashed or timed out (exit $orc)"
  else
    case $kind in
      match)
        if [ $krc -ne 0 ]; then
          why="Kiln failed (exit $krc)"
        elif [ $orc -ne 0 ]; then
          why="$ort_says"
        elif /usr/bin/python3 "$here/opset_cases.py" compare "$dir/kiln" "$dir/ort" \
            >"$dir/compare.log" 2>&1; then
          verdict=ok
        else
          why="outputs differ"
        fi
        ;;
      kiln_error)
        if [ $krc -eq 0 ]; then
          why="Kiln ran it; expected an error containing '$substr'"
        elif grep -qF -- "$substr" "$dir/kiln.log"; then
          verdict=ok
          why="Kiln refuses as expected; $ort_says"
        else
          why="Kiln refused, but without '$substr'"
        fi
        ;;
      both_error)
        if [ $krc -eq 0 ]; then
          why="Kiln ran it; expected both to refuse"
        elif [ $orc -eq 0 ]; then
          why="ONNX Runtime ran it; expected both to refuse"
        else
          verdict=ok
          why="both refuse"
        fi
        ;;
      *)
        why="unknown expectation '$expect'"
        ;;
    esac
  fi

  if [ $verdict = ok ]; then
    pass=$((pass + 1))
    printf '%-4s %-44s %s %s\n' ok "$name" "$kind" "${why:+($why)}"
  else
    fail=$((fail + 1))
    failed="$failed $name"
    printf '%-4s %-44s %s: %s\n' FAIL "$name" "$kind" "$why"
    [ -f "$dir/compare.log" ] && show "$dir/compare.log"
    echo "    kiln:"
    show "$dir/kiln.log"
    echo "    onnxruntime:"
    show "$dir/ort.log"
  fi
done

total=$((pass + fail))
echo "opset: $pass of $total cases pass"
if [ $total -eq 0 ]; then
  echo "opset: no case matches '$pattern'"
  exit 1
fi
if [ $fail -ne 0 ]; then
  echo "opset: failed:$failed"
  exit 1
fi
exit 0
