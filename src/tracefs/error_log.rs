//! The tracefs `error_log` file (Linux 5.2+): the kernel's reason for a rejected command.
//!
//! Written by `tracing_log_err()` and shown by `tracing_err_log_seq_show()` in
//! `kernel/trace/trace.c`. Each entry is three lines: a header `[SECONDS.MICROS] LOC: error:
//! MESSAGE`, the command after the fixed prefix `"  Command: "`, and a caret line whose `^` sits
//! at `strlen("  Command: ") + pos`. LOC is `trace_uprobe`, `trace_kprobe`, `trace_fprobe`,
//! `event filter parse error`, ... The kernel keeps the newest 16 entries per instance, so a
//! caller that wants "the entry for my write" reads the log before and after and diffs
//! ([`find_new_entry`]); `echo > error_log` clears it, which rprobe never does.
//!
//! Real entries from Linux 6.18 (`p:` lines written to `uprobe_events`, a bad event filter):
//!
//! ```text
//! [  430.860770] trace_uprobe: error: Invalid register name
//!   Command: p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32
//!                                                       ^
//! [  444.635913] event filter parse error: error: Invalid value (did you forget quotes)?
//!   Command: bogus >>
//!                    ^
//! ```

/// The fixed text before the command on an entry's second line.
const COMMAND_PREFIX: &str = "  Command: ";

/// One entry of `error_log`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorLogEntry {
    /// The timestamp as printed, without brackets: `"430.860770"`.
    pub timestamp: String,
    /// Who logged it: `"trace_uprobe"`, `"trace_kprobe"`, `"event filter parse error"`.
    pub source: String,
    /// The message from the kernel's error table: `"Invalid register name"`.
    pub message: String,
    /// The command as the kernel saw it (its argv joined by single spaces).
    pub command: String,
    /// Byte column in `command` of the part the kernel complained about (0 if the entry had
    /// no caret line).
    pub caret: usize,
}

impl ErrorLogEntry {
    /// The command indented by two spaces and a caret line under the bad part, as two lines.
    pub fn caret_lines(&self) -> String {
        // The caret is a byte offset; count the characters before it so the `^` lines up on a
        // terminal even when a path holds multibyte characters. For errors about the whole
        // command the kernel puts it one past the end, so it may exceed the command's length.
        let inside = self.caret.min(self.command.len());
        let width = match self.command.get(..inside) {
            Some(prefix) => prefix.chars().count(),
            None => inside,
        } + (self.caret - inside);
        format!("  {}\n  {}^", self.command, " ".repeat(width))
    }

    /// The three-line form: `error: MESSAGE`, the command, and the caret line.
    pub fn render_caret(&self) -> String {
        format!("error: {}\n{}", self.message, self.caret_lines())
    }
}

/// Parse the whole of `error_log`, oldest entry first.
///
/// Lines that fit no entry are skipped, so a log cut short or holding an unknown kind of line
/// still yields every entry that can be read. An entry cut before its command line has an
/// empty command; one cut before its caret line has caret 0.
pub fn parse_error_log(text: &str) -> Vec<ErrorLogEntry> {
    let mut entries: Vec<ErrorLogEntry> = Vec::new();
    // Which line of the current entry comes next: 1 = command, 2 = caret, 0 = none open.
    let mut expect = 0;
    for line in text.lines() {
        if let Some(entry) = parse_header(line) {
            entries.push(entry);
            expect = 1;
            continue;
        }
        let Some(last) = entries.last_mut() else {
            continue;
        };
        match expect {
            1 => {
                if let Some(command) = line.strip_prefix(COMMAND_PREFIX) {
                    last.command = command.to_owned();
                    expect = 2;
                } else {
                    expect = 0;
                }
            }
            2 => {
                if let Some(caret) = parse_caret(line) {
                    last.caret = caret;
                }
                expect = 0;
            }
            _ => {}
        }
    }
    entries
}

// [  430.860770] trace_uprobe: error: Invalid register name
fn parse_header(line: &str) -> Option<ErrorLogEntry> {
    let rest = line.strip_prefix('[')?;
    let (timestamp, rest) = rest.split_once("] ")?;
    let timestamp = timestamp.trim();
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let (source, message) = rest.split_once(": error: ")?;
    Some(ErrorLogEntry {
        timestamp: timestamp.to_owned(),
        source: source.to_owned(),
        message: message.trim_end().to_owned(),
        command: String::new(),
        caret: 0,
    })
}

//                                                       ^
fn parse_caret(line: &str) -> Option<usize> {
    let column = line.find('^')?;
    if line.get(..column)?.bytes().any(|b| b != b' ') {
        return None;
    }
    Some(column.saturating_sub(COMMAND_PREFIX.len()))
}

/// The entry the kernel logged for `command`: the newest entry of `after` that is not in
/// `before` and whose command is `command` (compared with runs of whitespace collapsed, as the
/// kernel joins argv with single spaces).
///
/// Matching on the command, not just taking the newest new entry, keeps a concurrent tool's
/// error from being reported as ours.
pub fn find_new_entry(
    before: &[ErrorLogEntry],
    after: &[ErrorLogEntry],
    command: &str,
) -> Option<ErrorLogEntry> {
    let wanted = normalize(command);
    after
        .iter()
        .rev()
        .filter(|e| !before.contains(e))
        .find(|e| normalize(&e.command) == wanted)
        .cloned()
}

fn normalize(command: &str) -> String {
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Copied from /sys/kernel/tracing/error_log on Linux 6.18 after writing bad uprobe lines
    /// and a bad filter (the probe_pa_o0 entries came from another tool at the same time).
    const REAL_LOG: &str = "\
[  430.860770] trace_uprobe: error: Invalid register name
  Command: p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32
                                                      ^
[  430.860821] trace_uprobe: error: Unknown type is specified
  Command: p:rptest_4209/bad2 /usr/bin/true:0x23d0 a=%di:u33
                                                         ^
[  430.860836] trace_uprobe: error: String accepts only memory argument
  Command: p:rptest_4209/bad3 /usr/bin/true:0x23d0 a=%di:string
                                                         ^
[  430.860848] trace_uprobe: error: $arg* can be used only on function entry or exit
  Command: p:rptest_4209/bad4 /usr/bin/true:0x23d0 a=$arg1
                                                     ^
[  430.860859] trace_uprobe: error: Failed to find the given file
  Command: p:rptest_4209/bad5 /nonexistent/file:0x23d0
                              ^
[  430.860871] trace_uprobe: error: Array number is too big
  Command: p:rptest_4209/bad6 /usr/bin/true:0x23d0 a=%di:x8[100]
                                                            ^
[  437.341964] trace_uprobe: error: Unknown type is specified
  Command: p:probe_pa_o0/work /tmp/fx/pa_o0:0x1149 %di:symstr
                                                       ^
[  444.608175] trace_uprobe: error: Argument type or name is different from existing probe
  Command: p:rptest_4209/ev /usr/bin/true:0x23d0 b=%di:u64
                                                           ^
[  444.635913] event filter parse error: error: Invalid value (did you forget quotes)?
  Command: bogus >>
                   ^
[  444.691435] trace_uprobe: error: Group name is too long
  Command: p:rptest_4209_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/x /usr/bin/true:0x23d0
             ^
";

    /// The text under the caret, as a check that the column is right.
    fn at_caret(e: &ErrorLogEntry) -> &str {
        e.command.get(e.caret..).unwrap_or("<caret out of range>")
    }

    #[test]
    fn parses_every_real_entry() {
        let entries = parse_error_log(REAL_LOG);
        assert_eq!(entries.len(), 10);
        let first = &entries[0];
        assert_eq!(first.timestamp, "430.860770");
        assert_eq!(first.source, "trace_uprobe");
        assert_eq!(first.message, "Invalid register name");
        assert_eq!(
            first.command,
            "p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32"
        );
        assert_eq!(first.caret, 43);
        assert_eq!(at_caret(first), "%rdi):u32");
        assert_eq!(at_caret(&entries[1]), "u33");
        assert_eq!(at_caret(&entries[2]), "string");
        assert_eq!(
            entries[3].message,
            "$arg* can be used only on function entry or exit"
        );
        assert_eq!(at_caret(&entries[3]), "$arg1");
        assert_eq!(at_caret(&entries[4]), "/nonexistent/file:0x23d0");
        assert_eq!(at_caret(&entries[5]), "100]");
        // "different from existing probe" points one past the end of the command.
        assert_eq!(entries[7].caret, entries[7].command.len() + 1);
        assert!(entries[7]
            .caret_lines()
            .ends_with(&format!("{}^", " ".repeat(50))));
        assert_eq!(entries[8].source, "event filter parse error");
        assert_eq!(entries[8].message, "Invalid value (did you forget quotes)?");
        assert_eq!(entries[8].command, "bogus >>");
        assert_eq!(entries[8].caret, 8);
        assert_eq!(entries[9].message, "Group name is too long");
        assert_eq!(entries[9].caret, 2);
    }

    #[test]
    fn empty_log_has_no_entries() {
        assert!(parse_error_log("").is_empty());
        assert!(parse_error_log("\n\n").is_empty());
    }

    #[test]
    fn cut_short_at_each_line_keeps_what_was_read() {
        let one = "[  430.860770] trace_uprobe: error: Invalid register name\n  Command: p:g/e /x:0x1 %rdi\n                   ^\n";
        let full = parse_error_log(one);
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].caret, 8);
        for cut in 0..one.len() {
            let entries = parse_error_log(&one[..cut]);
            assert!(entries.len() <= 1, "cut at {cut}");
            if let Some(e) = entries.first() {
                assert!(full[0].command.starts_with(&e.command), "cut at {cut}");
                assert!(e.caret <= full[0].caret, "cut at {cut}");
            }
        }
        // Header only: empty command, caret 0.
        let header_only = parse_error_log("[  1.000000] trace_kprobe: error: Oops\n");
        assert_eq!(header_only[0].command, "");
        assert_eq!(header_only[0].caret, 0);
    }

    #[test]
    fn unknown_lines_are_skipped() {
        let text = "garbage\n[not a stamp] x: error: y\n[  1.5] trace_fprobe: error: New message\n  Command: f:g/e sym\n  ^\nmore garbage\n";
        let entries = parse_error_log(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].source, "trace_fprobe");
        assert_eq!(entries[0].message, "New message");
        assert_eq!(entries[0].caret, 0);
    }

    #[test]
    fn new_entry_is_matched_by_command_not_position() {
        let all = parse_error_log(REAL_LOG);
        let before = &all[..6];
        // A new entry for our command, then one from another tool logged just after it.
        let ours = "p:rptest_4209/ev   /usr/bin/true:0x23d0 b=%di:u64";
        let found = find_new_entry(before, &all, ours).expect("our entry");
        assert_eq!(
            found.message,
            "Argument type or name is different from existing probe"
        );
        // An old entry with the same command is not new.
        let old = "p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32";
        assert_eq!(find_new_entry(before, &all, old), None);
        // Nothing logged for a command: None, not someone else's entry.
        assert_eq!(find_new_entry(before, &all, "-:rptest_4209/nothere"), None);
    }

    #[test]
    fn caret_form_lines_up_under_the_bad_part() {
        let e = &parse_error_log(REAL_LOG)[0];
        assert_eq!(
            e.render_caret(),
            "error: Invalid register name\n\
             \x20 p:rptest_4209/bad1 /usr/bin/true:0x23d0 +0(%rdi):u32\n\
             \x20                                            ^"
        );
        let odd = ErrorLogEntry {
            caret: 1000,
            ..e.clone()
        };
        assert!(odd.caret_lines().ends_with('^'));
    }

    proptest! {
        #[test]
        fn never_panics(text in "(\\PC|\n|\\[|\\]|\\^| |:){0,300}") {
            for e in parse_error_log(&text) {
                let _ = e.render_caret();
            }
        }

        #[test]
        fn never_panics_on_mutated_real_log(cut in 0usize..2000, junk in "\\PC{0,8}") {
            let mut text = REAL_LOG.to_owned();
            let at = cut.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &junk);
            }
            let entries = parse_error_log(&text);
            prop_assert!(entries.len() <= 11);
        }
    }
}
