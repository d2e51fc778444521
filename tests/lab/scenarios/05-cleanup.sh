# `rprobe del 'probe:*'` removes every probe rprobe added and nothing else: a probe in another
# group, written by someone else, survives.
. /lab/lib.sh

FOREIGN=labforeign/vfs_read
cleanup() {
    raw_kprobe_del probe/do_sys_openat2
    raw_kprobe_del probe/do_sys_openat2__return
    raw_kprobe_del "$FOREIGN"
}

raw_kprobe "p:$FOREIGN vfs_read" ||
    fail "expected the kernel to accept a raw vfs_read kprobe, saw: $(tail -n 2 "$T/error_log")"
for spec in 'do_sys_openat2 dfd=%di:s32' 'do_sys_openat2%return ret=$retval:s64'; do
    run rprobe add "$spec"
    must_succeed "rprobe add '$spec'"
done
has_event probe/do_sys_openat2 && has_event probe/do_sys_openat2__return ||
    fail "expected probe/do_sys_openat2 and probe/do_sys_openat2__return after add, saw: $(cat "$T/kprobe_events")"

run rprobe del 'probe:*'
must_succeed "rprobe del 'probe:*'"
left="$(grep -E '^[pr][0-9]*:(probe|rprobe[^/]*)/' "$T/kprobe_events")"
[ -z "$left" ] || fail "expected no probe/ or rprobe groups in kprobe_events after 'rprobe del probe:*', saw: $left"
[ -d "$T/events/probe" ] && fail "expected events/probe gone after 'rprobe del probe:*', saw it still there"
has_event "$FOREIGN" ||
    fail "expected $FOREIGN (not rprobe's) to survive 'rprobe del probe:*', saw: $(cat "$T/kprobe_events")"
pass
