# A kretprobe made by `rprobe add 'FUNC%return ret=$retval:s64'` records the negative errno
# of an open of a missing file.
. /lab/lib.sh

EVENT=probe/do_sys_openat2__return
cleanup() {
    instance_del lab
    raw_kprobe_del "$EVENT"
}

expected="ret=-2"
broken && expected="ret=-3"

spec='do_sys_openat2%return ret=$retval:s64'
run rprobe add "$spec"
must_succeed "rprobe add '$spec'"
grep -q "^r[0-9]*:$EVENT " "$T/kprobe_events" ||
    fail "expected kprobe_events to define return probe $EVENT after add, saw: $(cat "$T/kprobe_events")"

mkdir "$T/instances/lab" || fail "expected to create instance lab, saw mkdir fail"
echo 1 > "$T/instances/lab/events/$EVENT/enable" ||
    fail "expected to enable $EVENT in instance lab, saw the write fail"
run "$LAB_OPEN" "$LAB_MISSING_FILE"
echo 0 > "$T/instances/lab/events/$EVENT/enable"
[ "$OUT" = "errno=2" ] || fail "expected lab_open of a missing file to print errno=2, saw: $OUT"

# The dynamic loader's own opens come first (some fail with ENOENT too): the file's open is
# lab_open's last.
seen="$(event_args "$T/instances/lab/trace" do_sys_openat2__return lab_open | tail -n 1)"
[ "$seen" = "$expected" ] ||
    fail "expected lab_open's last do_sys_openat2__return event with $expected, saw: ${seen:-no do_sys_openat2__return event from lab_open}"

instance_del lab
run rprobe del 'probe:do_sys_openat2__return'
must_succeed "rprobe del 'probe:do_sys_openat2__return'"
has_event "$EVENT" &&
    fail "expected $EVENT gone after 'rprobe del', saw: $(grep "$EVENT" "$T/kprobe_events")"
pass
