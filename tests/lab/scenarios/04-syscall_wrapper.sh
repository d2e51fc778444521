# A kprobe on the x86_64 syscall wrapper reads the user-space file name through the saved
# pt_regs (+104 is regs->si, the second syscall argument) with ustring.
. /lab/lib.sh

EVENT=probe/__x64_sys_openat
cleanup() {
    instance_del lab
    raw_kprobe_del "$EVENT"
}

expected="name=\"$LAB_MARKER_FILE\""
broken && expected="name=\"$LAB_MARKER_FILE.broken\""

spec='__x64_sys_openat name=+0(+104(%di)):ustring'
run rprobe add "$spec"
must_succeed "rprobe add '$spec'"
has_event "$EVENT" ||
    fail "expected kprobe_events to define $EVENT after add, saw: $(cat "$T/kprobe_events")"

mkdir "$T/instances/lab" || fail "expected to create instance lab, saw mkdir fail"
echo 1 > "$T/instances/lab/events/$EVENT/enable" ||
    fail "expected to enable $EVENT in instance lab, saw the write fail"
run "$LAB_OPEN" "$LAB_MARKER_FILE"
echo 0 > "$T/instances/lab/events/$EVENT/enable"

seen="$(event_args "$T/instances/lab/trace" __x64_sys_openat lab_open)"
echo "$seen" | grep -qxF "$expected" ||
    fail "expected an event from lab_open with $expected, saw: ${seen:-no __x64_sys_openat event from lab_open}"

instance_del lab
run rprobe del 'probe:__x64_sys_openat'
must_succeed "rprobe del 'probe:__x64_sys_openat'"
has_event "$EVENT" &&
    fail "expected $EVENT gone after 'rprobe del', saw: $(grep "$EVENT" "$T/kprobe_events")"
pass
