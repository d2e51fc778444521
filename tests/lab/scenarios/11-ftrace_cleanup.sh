# `rprobe ftrace` removes its instance and stops its command on SIGTERM, on SIGHUP, and when
# the reader of its output goes away while it has nothing to write.
. /lab/lib.sh

cleanup() {
    [ -n "${RP:-}" ] && kill -9 "$RP" 2>/dev/null
    [ -n "${SLEEPER:-}" ] && kill -9 "$SLEEPER" 2>/dev/null
    rprobe_instances_del
}

want="stopped by SIG"
broken && want="stopped by SIGNOTHING"

# SIGTERM and SIGHUP stop it and remove its instance. (SIGINT is not tried here: a
# non-interactive shell starts background jobs with SIGINT ignored, and an ignored signal
# never reaches rprobe's signalfd; tests/live_session.rs covers it.)
sleep 60 &
SLEEPER=$!
for sig in TERM HUP; do
    rprobe ftrace -T vfs_read -p "$SLEEPER" > /tmp/ftrace-sig.out 2> /tmp/ftrace-sig.err &
    RP=$!
    i=0
    until [ -d "$T/instances/rprobe_$RP" ] && grep -q 'rprobe: tracing' /tmp/ftrace-sig.err; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || fail "expected instance rprobe_$RP within 10 s, saw: $(cat /tmp/ftrace-sig.err)"
        sleep 0.1
    done
    RPID=$RP
    kill -"$sig" "$RP"
    wait "$RP"
    rc=$?
    RP=
    [ "$rc" -eq 0 ] || fail "expected exit 0 after SIG$sig, saw $rc: $(cat /tmp/ftrace-sig.err)"
    [ -d "$T/instances/rprobe_$RPID" ] && fail "expected the instance removed after SIG$sig"
    grep -q "$want$sig" /tmp/ftrace-sig.err ||
        fail "expected '$want$sig' in the summary, saw: $(cat /tmp/ftrace-sig.err)"
done
kill "$SLEEPER"
SLEEPER=

# A reader that goes away stops it too, even while rprobe has nothing more to write (the
# command sleeps after its one read): the command is stopped with SIGTERM and the instance
# removed.
cmd="dd if=$LAB_MARKER_FILE of=/dev/null bs=64 count=1 2>/dev/null; exec sleep 27"
rprobe ftrace -T vfs_read -- sh -c "$cmd" 2> /tmp/ftrace-pipe.err | head -n 1 > /tmp/ftrace-pipe.out
first="$(cat /tmp/ftrace-pipe.out)"
echo "$first" | grep -q ' vfs_read <-' || fail "expected one vfs_read line through head, saw: $first"
[ -z "$(ls "$T/instances")" ] || fail "expected no instance after a closed pipe, saw: $(ls "$T/instances")"
pgrep -f 'sleep 27' > /dev/null && fail "expected the traced command stopped after a closed pipe"
pass
