# Bad specs fail with an error message and exit status, without a panic and without changing
# kprobe_events: an unknown function, a register name the kernel does not know (tracefs says
# %di, not %rdi), and a function kprobes refuse (on the kprobe blacklist).
. /lab/lib.sh

cleanup() {
    for ev in $(grep -oE '^[pr][0-9]*:probe/[^ ]+' "$T/kprobe_events" | cut -d: -f2); do
        raw_kprobe_del "$ev"
    done
}

# kprobe_int3_handler is on the blacklist of both kernels, yet listed in
# available_filter_functions: only the kprobe layer refuses it.
blacklisted=kprobe_int3_handler
bl=/sys/kernel/debug/kprobes/blacklist
if [ -r "$bl" ] && ! grep -qw kprobe_int3_handler "$bl"; then
    blacklisted="$(awk 'NR == 1 { print $2 }' "$bl")"
fi

for spec in no_such_function_xyz 'do_sys_openat2 x=%rdi' "$blacklisted"; do
    before="$(cat "$T/kprobe_events")"
    run rprobe add "$spec"
    after="$(cat "$T/kprobe_events")"
    first="$(echo "$ERR" | head -n 1)"
    if [ "$RC" -eq 0 ]; then
        fail "expected 'rprobe add $spec' to fail, saw exit 0"
    elif [ "$RC" -eq 127 ]; then
        fail "expected 'rprobe add $spec' to fail with an error, saw exit 127 (command not found)"
    elif [ "$RC" -ge 101 ] || echo "$ERR" | grep -q 'panicked'; then
        fail "expected 'rprobe add $spec' to fail with an error, saw a crash (exit $RC): $first"
    elif [ -z "$first" ]; then
        fail "expected 'rprobe add $spec' to print an error on stderr, saw exit $RC and no message"
    elif [ "$before" != "$after" ]; then
        fail "expected kprobe_events unchanged after 'rprobe add $spec', saw: $after"
    fi
done
pass
