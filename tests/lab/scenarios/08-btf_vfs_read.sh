# A kernel probe with a struct field chain resolved from the guest kernel's own BTF
# (/sys/kernel/btf/vmlinux): `vfs_read file->f_path.dentry->d_name.name:string` records the
# names of files read, here the marker file read by dd (busybox cat uses sendfile, not read).
. /lab/lib.sh

EVENT=probe/vfs_read
cleanup() {
    instance_del lab
    raw_kprobe_del "$EVENT"
}

expected='name="lab-marker-file"'
broken && expected='name="lab-marker-file.broken"'

spec='vfs_read file->f_path.dentry->d_name.name:string'
run rprobe add "$spec"
must_succeed "rprobe add '$spec'"
line="$(grep "^p[0-9]*:$EVENT " "$T/kprobe_events")"
echo "$line" | grep -q ' name=+0(+[0-9]*(+[0-9]*(%di))):string$' ||
    fail "expected a name=+0(+A(+B(%di))):string argument from BTF, saw: ${line:-no $EVENT}"

mkdir "$T/instances/lab" || fail "expected to create instance lab, saw mkdir fail"
echo 1 > "$T/instances/lab/events/$EVENT/enable" || fail "expected to enable $EVENT in instance lab"
run dd if="$LAB_MARKER_FILE" of=/dev/null bs=64 count=1
echo 0 > "$T/instances/lab/events/$EVENT/enable"
# busybox may run dd as a NOEXEC applet that keeps the comm "sh".
seen="$(event_args "$T/instances/lab/trace" vfs_read '(dd|sh)' | sort -u)"
echo "$seen" | grep -qx "$expected" || {
    grep " vfs_read: " "$T/instances/lab/trace" | tail -n 20 | sed 's/^/  trace: /'
    fail "expected a vfs_read event from dd with $expected, saw: ${seen:-no vfs_read event from dd}"
}
instance_del lab
run rprobe del 'probe:vfs_read'
must_succeed "rprobe del 'probe:vfs_read'"
pass
