# `rprobe stat` on a kernel probe with both engines: counting do_sys_openat2 by dfd and
# filename (a user pointer read with :string, which the BPF engine reads as user memory as
# the kernel's fetch does) gives `cat`'s one open of the marker file with dfd -100; the
# latency of vfs_read (kprobe and kretprobe) pairs dd's reads; kprobe_events is clean after.
. /lab/lib.sh

cleanup() {
    rprobe_kprobes_del
    rprobe_instances_del
}

want="$LAB_MARKER_FILE"
broken && want="$LAB_MARKER_FILE.broken"
spec='do_sys_openat2 dfd=%di:s32 filename=+0(%si):string'

for engine in user bpf; do
    flag=
    [ "$engine" = bpf ] && flag=--bpf
    run rprobe stat $flag "$spec" --count dfd,filename -- cat "$LAB_MARKER_FILE"
    must_succeed "rprobe stat $flag '$spec' --count dfd,filename -- cat"
    echo "$OUT" | grep -q "^ *1  -100 *$want\$" || {
        echo "$OUT" | sed 's/^/  stat: /'
        fail "expected ($engine) one open of $want with dfd -100, saw: $(echo "$OUT" | grep -c .) lines"
    }
    grep -q 'rprobe_' "$T/kprobe_events" && fail "expected kprobe_events clean after stat ($engine), saw: $(cat "$T/kprobe_events")"

    run rprobe stat $flag --latency vfs_read -- dd if="$LAB_MARKER_FILE" of=/dev/null bs=64 count=1
    must_succeed "rprobe stat $flag --latency vfs_read -- dd"
    echo "$OUT" | grep -q 'usecs *: count' || fail "expected ($engine) a usecs histogram of vfs_read, saw: $(oneline "$OUT")"
    grep -q 'rprobe_' "$T/kprobe_events" && fail "expected kprobe_events clean after --latency ($engine), saw: $(cat "$T/kprobe_events")"
done
pass
