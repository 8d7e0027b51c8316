# shellcheck shell=bash
# Helpers the suite's runners source (not a command):
#
#   pool_start N         at most N jobs at once (N not a positive whole
#                        number: 1)
#   pool_add CMD ARGS... start CMD in the background, first waiting for a
#                        running job to end when N are running
#   pool_wait            wait for every job started
#
#   seconds_option DEFAULT ARGS...
#                        the value of the only option ARGS may hold,
#                        --seconds S (or --seconds=S), into $seconds
#                        (DEFAULT without it); anything else, or S not a
#                        whole number, prints a usage line and exits 2
#
# A job's exit status is not the pool's business: each job records its own
# result (the runners write a line or a .failed file per job).

pool_start() {
  _pool_size=$1
  case "$_pool_size" in '' | *[!0-9]* | 0) _pool_size=1 ;; esac
  _pool_running=0
}

pool_add() {
  if [ "$_pool_running" -ge "$_pool_size" ]; then
    wait -n || true
    _pool_running=$((_pool_running - 1))
  fi
  "$@" &
  _pool_running=$((_pool_running + 1))
}

pool_wait() {
  wait || true
  _pool_running=0
}

seconds_option() {
  seconds=$1
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --seconds) [ $# -ge 2 ] || set -- "$1" ""; seconds=$2; shift 2 ;;
      --seconds=*) seconds=${1#--seconds=}; shift ;;
      *) echo "usage: $0 [--seconds S]" >&2; exit 2 ;;
    esac
  done
  case "$seconds" in
    '' | *[!0-9]*) echo "$(basename "$0"): --seconds takes a whole number, got '$seconds'" >&2; exit 2 ;;
  esac
}
