# Helpers for kernel-lab scenarios; each scenario starts with `. /lab/lib.sh`.
#
# A scenario runs under busybox sh in the guest, as root, with tracefs at $T. It prints
# exactly one result line through `pass` or `fail`, and defines `cleanup` (run on every exit,
# also after `fail`) to remove whatever it created, even when rprobe itself misbehaved.
#
# Set by /init: LAB_SCENARIO (this scenario's name), LAB_KERNEL (uname -r), T (tracefs root),
# RPROBE_LAB_BREAK (names of scenarios to break on purpose; see `broken`).

: "${T:=/sys/kernel/tracing}"
: "${LAB_SCENARIO:=unknown}"

# The file every open-a-known-file scenario opens; the initramfs holds it.
LAB_MARKER_FILE=/etc/lab-marker-file
# A path that does not exist, for ENOENT.
LAB_MISSING_FILE=/etc/lab-missing-file
# Opens its argument once and prints fd=N or errno=N; its comm (lab_open) tells its events
# apart from everything else the guest opens.
LAB_OPEN=/lab/fixtures/lab_open

cleanup() { :; }
trap 'cleanup' EXIT

# Squeezes text onto one line of at most 300 characters, for a result line.
oneline() {
    printf '%s' "$*" | tr '\n\t' '  ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-300
}

pass() {
    echo "RPROBE-LAB-RESULT $LAB_SCENARIO PASS"
    exit 0
}

# fail "expected X, saw Y": the reason goes on the result line, so keep it to one line that
# says what was expected and what was seen.
fail() {
    echo "RPROBE-LAB-RESULT $LAB_SCENARIO FAIL $(oneline "$*")"
    exit 1
}

# True when RPROBE_LAB_BREAK (comma or space separated) names this scenario: the scenario then
# expects something it cannot see, to show how a failure is reported.
broken() {
    case ",$(echo "${RPROBE_LAB_BREAK:-}" | tr ' ' ',')," in
        *",$LAB_SCENARIO,"*) return 0 ;;
    esac
    return 1
}

# RPROBE_LAB_BREAK=hang:NAME makes scenario NAME hang, to show that the in-guest time limit
# stops it and the other scenarios still run; panic:NAME crashes the guest kernel in scenario
# NAME, to show how the host reports a guest that died.
case ",$(echo "${RPROBE_LAB_BREAK:-}" | tr ' ' ','),," in
    *",hang:$LAB_SCENARIO,"*)
        echo "lab: RPROBE_LAB_BREAK asks $LAB_SCENARIO to hang"
        sleep 100000
        ;;
    *",panic:$LAB_SCENARIO,"*)
        echo "lab: RPROBE_LAB_BREAK asks $LAB_SCENARIO to crash the kernel"
        echo c > /proc/sysrq-trigger
        ;;
esac

# run CMD ARGS...: runs a command, logs it and its output to the console log, and leaves its
# exit status in RC, its stdout in OUT and its stderr in ERR. Never exits.
run() {
    echo "+ $*"
    "$@" > /tmp/lab-run.out 2> /tmp/lab-run.err
    RC=$?
    OUT="$(cat /tmp/lab-run.out)"
    ERR="$(cat /tmp/lab-run.err)"
    [ -n "$OUT" ] && echo "$OUT" | sed 's/^/  stdout: /'
    [ -n "$ERR" ] && echo "$ERR" | sed 's/^/  stderr: /'
    echo "  exit status $RC"
    return 0
}

# must_succeed WHAT: fails the scenario unless the last `run` exited 0.
must_succeed() {
    [ "$RC" -eq 0 ] && return 0
    if [ "$RC" -eq 127 ]; then
        fail "expected '$*' to succeed, saw exit 127 (command not found)"
    fi
    fail "expected '$*' to exit 0, saw exit $RC: $(echo "$ERR" | head -n 3)"
}

# has_event GROUP/EVENT: true when kprobe_events defines that event.
has_event() {
    grep -q "^[pr][0-9]*:$1 " "$T/kprobe_events"
}

# Writes a raw probe definition (for fixtures and cleanup that must not depend on rprobe).
# Prints the kernel's error_log on failure. Returns the write's status.
raw_kprobe() {
    echo "+ raw kprobe_events <- $1"
    if ! echo "$1" >> "$T/kprobe_events"; then
        tail -n 3 "$T/error_log" | sed 's/^/  error_log: /'
        return 1
    fi
}

# Removes GROUP/EVENT from kprobe_events if it is there, disabling it everywhere first.
raw_kprobe_del() {
    has_event "$1" || return 0
    for enable in "$T/events/$1/enable" "$T"/instances/*/events/"$1"/enable; do
        [ -f "$enable" ] && echo 0 > "$enable"
    done
    echo "-:$1" >> "$T/kprobe_events"
}

# Removes a private ftrace instance if it is there.
instance_del() {
    [ -d "$T/instances/$1" ] || return 0
    echo 0 > "$T/instances/$1/events/enable" 2>/dev/null
    rmdir "$T/instances/$1"
}

# Stops and removes every rprobe_<pid> instance (what a broken `rprobe ftrace` could leave).
rprobe_instances_del() {
    for inst in "$T"/instances/rprobe_*; do
        [ -d "$inst" ] || continue
        echo 0 > "$inst/tracing_on"
        echo nop > "$inst/current_tracer"
        rmdir "$inst"
    done
}

# Removes every rprobe_<pid> session probe from kprobe_events (what a broken `rprobe trace`
# or `rprobe stat` could leave).
rprobe_kprobes_del() {
    grep -q '^[pr][0-9]*:rprobe_' "$T/kprobe_events" 2>/dev/null || return 0
    grep '^[pr][0-9]*:rprobe_' "$T/kprobe_events" | while read -r l; do
        ev="${l%% *}"
        echo "-:${ev#*:}" >> "$T/kprobe_events"
    done
}

# event_args FILE EVENT COMM: the fetched arguments of each EVENT line that COMM produced in
# trace file FILE, one per line ("dfd=-100 filename=\"/etc/x\""), without the
# "(func+0x0/0x170)" location. A line whose task shows as "<...>" counts too: the trace
# prints that when the pid's comm is missing from saved_cmdlines, which happens under load.
event_args() {
    grep -E "(^| )($3|<\.\.\.>)-[0-9]+ .* $2: " "$1" | sed 's/^.* '"$2"': ([^)]*) *//'
}
