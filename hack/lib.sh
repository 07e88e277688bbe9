# lib.sh: shell helpers shared by the hack/ scripts (source it).

# wait_gone stops the process whose PID is in pidfile and waits (30s at most)
# for it to exit, then removes pidfile.
wait_gone() {
  local pidfile="$1"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
