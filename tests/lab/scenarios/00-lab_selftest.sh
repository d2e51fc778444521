# The lab itself, without rprobe: a raw kprobe written to kprobe_events and enabled in a
# private instance sees the lab_open fixture open the marker file. When this passes and an
# rprobe scenario fails, the fault is rprobe's, not the guest's.
. /lab/lib.sh

cleanup() {
    instance_del labself
    raw_kprobe_del labself/openat
}

expected="filename=\"$LAB_MARKER_FILE\""
broken && expected="filename=\"$LAB_MARKER_FILE.broken\""

raw_kprobe 'p:labself/openat do_sys_openat2 filename=+0(%si):string' ||
    fail "expected the kernel to accept a raw do_sys_openat2 kprobe, saw: $(tail -n 2 "$T/error_log")"
mkdir "$T/instances/labself" || fail "expected to create instance labself, saw mkdir fail"
echo 1 > "$T/instances/labself/events/labself/openat/enable"
run "$LAB_OPEN" "$LAB_MARKER_FILE"
echo 0 > "$T/instances/labself/events/labself/openat/enable"
seen="$(event_args "$T/instances/labself/trace" openat lab_open)"
echo "$seen" | grep -qxF "$expected" ||
    fail "expected a labself:openat event with $expected from lab_open, saw: ${seen:-no such event}"
pass
