//! Temporary probe sessions: the probes one command (`trace`, `stat`, `record --probe`)
//! creates for itself, in a group of its own, removed when the command ends.
//!
//! Tracefs probes outlive the process that made them (`reference/probe-events.md` §13), so:
//!
//! - a session's probes live in group `rprobe_<pid>` (the rprobe process's pid), and its
//!   private ftrace instance, when it has one, is `instances/rprobe_<pid>`;
//! - [`ProbeSession::add_specs`] resolves specs with the same code as `rprobe add` and adds
//!   all of them or none: on the first refusal the events this call added are deleted again;
//! - [`ProbeSession::close`] (and `Drop`, for early returns and panics) disables each event
//!   and deletes it with `-:GROUP/EVENT` (the per-event form works on every kernel;
//!   `-:GROUP/` needs 5.x). The kernel refuses a delete (EBUSY) while a perf fd is open on the
//!   event, so perf fds must be closed first: drop the recorder before the session;
//! - a session that never got to clean up (SIGKILL, a crash, a power cut) is removed by the
//!   next one: [`sweep_stale`] deletes `rprobe_<pid>` groups in `uprobe_events` and
//!   `kprobe_events`, and `instances/rprobe_<pid>`, whose pid no longer exists. A live pid's
//!   group and any group not named `rprobe_<digits>` are never touched.
//!
//! Signals are not handled here: the command blocks SIGINT/SIGTERM/SIGHUP with
//! `sys::signals::StopSignals`, polls for them next to its data, and returns normally, which
//! runs `close`. A closed output pipe is an `EPIPE` write error that also returns normally.
//!
//! A pid names a process only within its pid namespace: a session made in a container whose
//! pid is not visible here would be taken for dead and swept. rprobe is meant to run in the
//! namespace whose tracefs it uses.

use super::error::SpecError;
use super::resolve::{resolve, ResolveOptions, Target};
use super::spec::ProbeSpec;
use super::ProbeDef;
use crate::tracefs::{Instance, ProbeKind, Tracefs, TracefsError};

/// The group (and instance) name of the session of process `pid`: `rprobe_<pid>`.
pub fn session_name(pid: u32) -> String {
    format!("rprobe_{pid}")
}

/// The pid in a session name (`rprobe_1234` → 1234); None for any other name, including
/// `rprobe_12x`, `rprobe_`, `rprobe_0012` (not how a pid prints) and `rprobe_test_1`.
pub fn parse_session_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("rprobe_")?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// An error from a probe session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A spec could not be resolved (what `rprobe add` refuses).
    #[error("bad probe spec '{spec}': {source}")]
    Spec {
        /// The spec as written.
        spec: String,
        /// Why.
        source: SpecError,
    },
    /// A definition is not in the session's group.
    #[error("probe {event} is not in this session's group {group}; temporary probes live in the session group (name only the event: EVENT=FUNC)")]
    ForeignGroup {
        /// `group:event` of the definition.
        event: String,
        /// The session group.
        group: String,
    },
    /// The kernel refused to add an event; the ones added by the same call were deleted.
    #[error("cannot add {event}: {source}")]
    Add {
        /// `group:event`.
        event: String,
        /// The kernel's refusal.
        source: TracefsError,
    },
    /// Events could not be removed; they are named so the user can `rprobe del` them.
    #[error("could not remove {}: {}", .events.join(", "), .first)]
    Remove {
        /// `group:event` of each event left behind.
        events: Vec<String>,
        /// The first error.
        first: TracefsError,
    },
    /// Reading tracefs failed.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
}

/// A probe event the session created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// Which events file.
    pub kind: ProbeKind,
    /// The session group.
    pub group: String,
    /// The event name.
    pub event: String,
    /// The event's tracefs id (`events/GROUP/EVENT/id`), the `config` of a perf tracepoint.
    pub id: u32,
    /// The definition line written.
    pub line: String,
}

impl SessionEvent {
    /// `group:event`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.group, self.event)
    }
}

/// The probes of one command, removed when it ends.
#[derive(Debug)]
pub struct ProbeSession {
    tracefs: Tracefs,
    group: String,
    events: Vec<SessionEvent>,
    instance: Option<Instance>,
}

impl ProbeSession {
    /// A session for process `pid` (normally `std::process::id()`), with no probes yet.
    ///
    /// Leftovers in the group `rprobe_<pid>` are from a dead process that had this pid (this
    /// one has created nothing yet), so they are deleted first.
    pub fn new(tracefs: &Tracefs, pid: u32) -> Result<ProbeSession, SessionError> {
        let group = session_name(pid);
        for kind in [ProbeKind::Uprobe, ProbeKind::Kprobe] {
            match tracefs.delete_group(kind, &group) {
                Ok(_) | Err(TracefsError::NoProbeEvents { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ProbeSession {
            tracefs: tracefs.clone(),
            group,
            events: Vec::new(),
            instance: None,
        })
    }

    /// The session's private instance `instances/rprobe_<pid>`, made on first use, for
    /// enabling the session's events (or running a tracer) without touching the global
    /// buffer. It is removed before the events are deleted: an event enabled in an instance
    /// cannot be deleted (EBUSY), and removing the instance disables it there.
    pub fn instance(&mut self) -> Result<&Instance, SessionError> {
        let inst = match self.instance.take() {
            Some(i) => i,
            None => self.tracefs.create_instance(&self.group)?,
        };
        Ok(self.instance.insert(inst))
    }

    /// What a command does at its start: [`sweep_stale`] (with `is_alive`, this pid counting
    /// as alive), then [`ProbeSession::new`]. The sweep's report is returned for the caller
    /// to show.
    pub fn start(
        tracefs: &Tracefs,
        pid: u32,
        is_alive: &dyn Fn(u32) -> bool,
    ) -> Result<(ProbeSession, Sweep), SessionError> {
        let sweep = sweep_stale(tracefs, &|p| p == pid || is_alive(p));
        Ok((ProbeSession::new(tracefs, pid)?, sweep))
    }

    /// The session's group, `rprobe_<pid>`.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The events created so far, in order.
    pub fn events(&self) -> &[SessionEvent] {
        &self.events
    }

    /// Resolve `specs` into definitions in the session group, as `rprobe add` resolves them.
    /// A spec that names its own group is refused.
    pub fn resolve_specs(
        &self,
        specs: &[ProbeSpec],
        target: Target<'_>,
        opts: &mut ResolveOptions,
    ) -> Result<Vec<ProbeDef>, SessionError> {
        let mut defs = Vec::new();
        for spec in specs {
            if let Some(g) = &spec.group {
                return Err(SessionError::ForeignGroup {
                    event: format!("{g}:{}", spec.event.as_deref().unwrap_or("...")),
                    group: self.group.clone(),
                });
            }
            let mut spec = spec.clone();
            spec.group = Some(self.group.clone());
            let resolved = resolve(&spec, target, opts).map_err(|source| SessionError::Spec {
                spec: spec.text.clone(),
                source,
            })?;
            defs.extend(resolved);
        }
        Ok(defs)
    }

    /// Resolve and add `specs`, all or none; returns the events this call created.
    pub fn add_specs(
        &mut self,
        specs: &[ProbeSpec],
        target: Target<'_>,
        opts: &mut ResolveOptions,
    ) -> Result<&[SessionEvent], SessionError> {
        let defs = self.resolve_specs(specs, target, opts)?;
        self.add(&defs)
    }

    /// Add resolved definitions, all or none; returns the events this call created.
    pub fn add(&mut self, defs: &[ProbeDef]) -> Result<&[SessionEvent], SessionError> {
        if let Some(d) = defs.iter().find(|d| d.group != self.group) {
            return Err(SessionError::ForeignGroup {
                event: d.name(),
                group: self.group.clone(),
            });
        }
        let start = self.events.len();
        for d in defs {
            let line = d.line();
            let added = self.tracefs.append_probe(d.kind, &line).and_then(|()| {
                self.tracefs.event_id(&d.group, &d.event).inspect_err(|_| {
                    // Defined but unusable: it must not stay behind either.
                    let _ = self.tracefs.delete_probe(d.kind, &d.group, &d.event);
                })
            });
            // A second probe under one name (multi-probe: a USDT note at several sites) joins
            // the event the first made; the event is listed, opened and deleted once.
            let joined = self
                .events
                .iter()
                .any(|e| e.group == d.group && e.event == d.event);
            match added {
                Ok(_) if joined => {}
                Ok(id) => self.events.push(SessionEvent {
                    kind: d.kind,
                    group: d.group.clone(),
                    event: d.event.clone(),
                    id,
                    line,
                }),
                Err(source) => {
                    for e in self.events.drain(start..).rev() {
                        let _ = self.tracefs.delete_probe(e.kind, &e.group, &e.event);
                    }
                    return Err(SessionError::Add {
                        event: d.name(),
                        source,
                    });
                }
            }
        }
        Ok(&self.events[start..])
    }

    /// Disable and delete every event of the session, newest first. Events that could not be
    /// deleted are named in the error (and not retried by `Drop`).
    pub fn close(mut self) -> Result<(), SessionError> {
        self.remove_all()
    }

    fn remove_all(&mut self) -> Result<(), SessionError> {
        let mut left = Vec::new();
        let mut first = None;
        if let Some(inst) = self.instance.take() {
            let t = inst.tracefs();
            for e in &self.events {
                let _ = t.set_enabled(&e.group, &e.event, false);
            }
            if let Err(err) = self.tracefs.remove_instance(inst.name()) {
                left.push(format!("instance {}", inst.name()));
                first = Some(err);
            }
        }
        for e in self.events.drain(..).rev() {
            if let Err(err) = self.tracefs.delete_probe(e.kind, &e.group, &e.event) {
                left.push(e.name());
                first.get_or_insert(err);
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(SessionError::Remove {
                events: left,
                first,
            }),
        }
    }
}

impl Drop for ProbeSession {
    fn drop(&mut self) {
        let _ = self.remove_all();
    }
}

/// What [`sweep_stale`] removed, and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// `(kind, group, events deleted)` per group removed.
    pub groups: Vec<(ProbeKind, String, usize)>,
    /// Instances removed.
    pub instances: Vec<String>,
    /// One line per thing that could not be removed.
    pub failures: Vec<String>,
}

/// Remove the sessions of processes that no longer exist: `rprobe_<pid>` instances first
/// (which disables the events enabled in them), then `rprobe_<pid>` groups in `uprobe_events`
/// and `kprobe_events`. `is_alive(pid)` decides; the caller's own pid counts as alive.
pub fn sweep_stale(tracefs: &Tracefs, is_alive: &dyn Fn(u32) -> bool) -> Sweep {
    let mut sweep = Sweep::default();
    let dead = |name: &str| parse_session_name(name).is_some_and(|pid| !is_alive(pid));
    let instances_dir = tracefs.root().join("instances");
    let mut names: Vec<String> = std::fs::read_dir(&instances_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for name in names.into_iter().filter(|n| dead(n)) {
        match tracefs.remove_instance(&name) {
            Ok(()) => sweep.instances.push(name),
            Err(e) => sweep.failures.push(e.to_string()),
        }
    }
    for kind in [ProbeKind::Uprobe, ProbeKind::Kprobe] {
        let Ok(lines) = tracefs.probe_events(kind) else {
            continue;
        };
        let mut groups: Vec<String> = lines
            .into_iter()
            .map(|l| l.group)
            .filter(|g| dead(g))
            .collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            match tracefs.delete_group(kind, &group) {
                Ok(n) => sweep.groups.push((kind, group, n)),
                Err(e) => sweep.failures.push(format!("{group}: {e}")),
            }
        }
    }
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::fake;

    #[test]
    fn session_names() {
        assert_eq!(session_name(4209), "rprobe_4209");
        assert_eq!(parse_session_name("rprobe_4209"), Some(4209));
        for other in [
            "rprobe_",
            "rprobe_12x",
            "rprobe_0012",
            "rprobe_test_1",
            "probe_rprobe_1",
            "rprobe_99999999999",
            "rprobe_-1",
        ] {
            assert_eq!(parse_session_name(other), None, "{other}");
        }
        assert_eq!(parse_session_name("rprobe_0"), Some(0));
    }

    fn def(group: &str, event: &str, offset: u64) -> ProbeDef {
        ProbeDef {
            kind: ProbeKind::Uprobe,
            retprobe: false,
            group: group.into(),
            event: event.into(),
            place: super::super::Place::User {
                path: "/usr/bin/true".into(),
                offset,
                ref_ctr: None,
            },
            args: Vec::new(),
        }
    }

    #[test]
    fn add_exposes_ids_and_close_deletes_newest_first() {
        let (dir, tracefs) = fake::tree();
        fake::add_event(dir.path(), "rprobe_77", "a");
        fake::add_event(dir.path(), "rprobe_77", "b");
        fake::write(&dir.path().join("events/rprobe_77/b"), "enable", "1\n");
        let mut s = ProbeSession::new(&tracefs, 77).expect("session");
        assert_eq!(s.group(), "rprobe_77");
        let made = s
            .add(&[def("rprobe_77", "a", 0x10), def("rprobe_77", "b", 0x20)])
            .expect("add");
        assert_eq!(made.len(), 2);
        assert_eq!((made[0].id, made[0].name()), (2326, "rprobe_77:a".into()));
        assert_eq!(
            s.events()[1].line,
            "p:rprobe_77/b /usr/bin/true:0x0000000000000020"
        );
        s.close().expect("close");
        let events = fake::read(dir.path(), "uprobe_events");
        assert!(
            events.ends_with("-:rprobe_77/b\n-:rprobe_77/a\n"),
            "{events}"
        );
        assert_eq!(
            fake::read(&dir.path().join("events/rprobe_77/b"), "enable").trim(),
            "0"
        );
    }

    #[test]
    fn a_refusal_removes_what_the_same_call_added() {
        let (dir, tracefs) = fake::tree();
        fake::add_event(dir.path(), "rprobe_5", "a");
        // No events/rprobe_5/b: its id cannot be read, so the second add fails.
        let mut s = ProbeSession::new(&tracefs, 5).expect("session");
        let err = s
            .add(&[def("rprobe_5", "a", 1), def("rprobe_5", "b", 2)])
            .expect_err("b has no id");
        assert!(
            matches!(err, SessionError::Add { ref event, .. } if event == "rprobe_5:b"),
            "{err:?}"
        );
        assert!(s.events().is_empty());
        let events = fake::read(dir.path(), "uprobe_events");
        assert!(events.ends_with("-:rprobe_5/b\n-:rprobe_5/a\n"), "{events}");
        let err = s.add(&[def("probe_true", "a", 1)]).expect_err("foreign");
        assert!(err.to_string().contains("session group"), "{err}");
    }

    #[test]
    fn the_instance_goes_before_the_events() {
        let (dir, tracefs) = fake::tree();
        fake::add_event(dir.path(), "rprobe_9", "a");
        let mut s = ProbeSession::new(&tracefs, 9).expect("session");
        s.add(&[def("rprobe_9", "a", 1)]).expect("add");
        let root = s.instance().expect("instance").root().to_owned();
        assert_eq!(root, dir.path().join("instances/rprobe_9"));
        s.close().expect("close");
        assert!(!tracefs.instance_exists("rprobe_9"));
        assert!(fake::read(dir.path(), "uprobe_events").ends_with("-:rprobe_9/a\n"));
    }

    #[test]
    fn drop_cleans_up_too() {
        let (dir, tracefs) = fake::tree();
        fake::add_event(dir.path(), "rprobe_6", "a");
        {
            let mut s = ProbeSession::new(&tracefs, 6).expect("session");
            s.add(&[def("rprobe_6", "a", 1)]).expect("add");
        }
        assert!(fake::read(dir.path(), "uprobe_events").ends_with("-:rprobe_6/a\n"));
    }

    #[test]
    fn new_removes_leftovers_of_a_dead_process_with_the_same_pid() {
        let (dir, tracefs) = fake::tree();
        fake::write(
            dir.path(),
            "uprobe_events",
            "p:rprobe_8/old /bin/true:0x10\np:rprobe_80/x /bin/true:0x10\n",
        );
        ProbeSession::new(&tracefs, 8).expect("session");
        let text = fake::read(dir.path(), "uprobe_events");
        assert!(
            text.ends_with("p:rprobe_80/x /bin/true:0x10\n-:rprobe_8/old\n"),
            "{text}"
        );
    }

    #[test]
    fn sweep_removes_dead_sessions_only() {
        let (dir, tracefs) = fake::tree();
        fake::write(
            dir.path(),
            "uprobe_events",
            "p:rprobe_100/a /bin/true:0x10\np:rprobe_100/a /bin/true:0x20\nr:rprobe_100/b /bin/true:0x10\n\
             p:rprobe_200/a /bin/true:0x10\np:rprobe_test_100/a /bin/true:0x10\np:probe_true/a /bin/true:0x10\n",
        );
        fake::write(
            dir.path(),
            "kprobe_events",
            "p:rprobe_100/k vfs_read\np:rprobe_300/k vfs_read\n",
        );
        for inst in ["rprobe_100", "rprobe_200", "rprobe_x", "other"] {
            std::fs::create_dir(dir.path().join("instances").join(inst)).expect("mkdir");
        }
        let alive = |pid: u32| pid == 200;
        let (session, sweep) = ProbeSession::start(&tracefs, 400, &alive).expect("start");
        assert_eq!(session.group(), "rprobe_400");
        assert_eq!(sweep.instances, ["rprobe_100"]);
        assert_eq!(
            sweep.groups,
            [
                (ProbeKind::Uprobe, "rprobe_100".into(), 2),
                (ProbeKind::Kprobe, "rprobe_100".into(), 1),
                (ProbeKind::Kprobe, "rprobe_300".into(), 1),
            ]
        );
        assert!(sweep.failures.is_empty(), "{:?}", sweep.failures);
        let up = fake::read(dir.path(), "uprobe_events");
        assert!(
            up.ends_with("p:probe_true/a /bin/true:0x10\n-:rprobe_100/a\n-:rprobe_100/b\n"),
            "{up}"
        );
        let kp = fake::read(dir.path(), "kprobe_events");
        assert!(kp.ends_with("-:rprobe_100/k\n-:rprobe_300/k\n"), "{kp}");
        for kept in ["rprobe_200", "rprobe_x", "other"] {
            assert!(tracefs.instance_exists(kept), "{kept}");
        }
    }
}
