# A kprobe with register and string fetch args made by `rprobe add`, enabled in a private
# instance, records the file name cat opens; `rprobe del` removes it.
. /lab/lib.sh

EVENT=probe/do_sys_openat2
cleanup() {
    instance_del lab
    raw_kprobe_del "$EVENT"
}

expected="dfd=-100 filename=\"$LAB_MARKER_FILE\""
broken && expected="dfd=-100 filename=\"$LAB_MARKER_FILE.broken\""

spec='do_sys_openat2 dfd=%di:s32 filename=+0(%si):string'
run rprobe add "$spec"
must_succeed "rprobe add '$spec'"
has_event "$EVENT" ||
    fail "expected kprobe_events to define $EVENT after add, saw: $(cat "$T/kprobe_events")"

mkdir "$T/instances/lab" || fail "expected to create instance lab, saw mkdir fail"
echo 1 > "$T/instances/lab/events/$EVENT/enable" ||
    fail "expected to enable $EVENT in instance lab, saw the write fail"
cat "$LAB_MARKER_FILE" > /dev/null
echo 0 > "$T/instances/lab/events/$EVENT/enable"

# busybox may run cat as a NOEXEC applet: a forked shell that keeps the comm "sh".
seen="$(event_args "$T/instances/lab/trace" do_sys_openat2 '(cat|sh)' | grep -F "$LAB_MARKER_FILE")"
echo "$seen" | grep -qxF "$expected" || {
    grep " do_sys_openat2: " "$T/instances/lab/trace" | tail -n 20 | sed 's/^/  trace: /'
    fail "expected an event from cat with $expected, saw: ${seen:-no do_sys_openat2 event from cat}"
}
if grep -q ' do_sys_openat2: ' "$T/trace"; then
    fail "expected 'rprobe add' to leave the event disabled outside instance lab, saw events in the top-level trace"
fi

instance_del lab
run rprobe del 'probe:do_sys_openat2'
must_succeed "rprobe del 'probe:do_sys_openat2'"
has_event "$EVENT" &&
    fail "expected $EVENT gone after 'rprobe del', saw: $(grep "$EVENT" "$T/kprobe_events")"
pass
