//! Private tracefs instances: `instances/NAME/`, each with its own ring buffer, tracer,
//! filters, event enables and `error_log`.
//!
//! `mkdir instances/NAME` makes one and `rmdir` removes it (`Documentation/trace/ftrace.rst`,
//! "Instances"); the kernel fills the directory itself. An instance is where rprobe changes
//! `current_tracer`, `tracing_on` or ftrace filters, so the global state other tools rely on
//! is never touched. The probe events defined at the top level show up under every
//! instance's `events/` too.
//!
//! [`Instance`] does not remove the directory when dropped: removal can fail (EBUSY while a
//! `trace_pipe` is open), and a failure must be reported, which `Drop` cannot do. The owner
//! calls [`Tracefs::remove_instance`] (or keeps a guard of its own that does).

use std::path::{Path, PathBuf};

use super::{validate_name, Tracefs, TracefsError};

/// A private tracefs instance created by [`Tracefs::create_instance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    name: String,
    root: PathBuf,
}

impl Instance {
    /// The instance's name (the directory under `instances/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance directory, e.g. `/sys/kernel/tracing/instances/rprobe_1234`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A [`Tracefs`] rooted at the instance, so event enables, filters and control files are
    /// set in the instance instead of globally.
    pub fn tracefs(&self) -> Tracefs {
        Tracefs::at(self.root.clone())
    }
}

impl Tracefs {
    /// Create `instances/NAME`. Fails if it already exists (it may belong to another tool).
    pub fn create_instance(&self, name: &str) -> Result<Instance, TracefsError> {
        validate_name("instance name", name)?;
        let root = self.root.join("instances").join(name);
        std::fs::create_dir(&root).map_err(|source| TracefsError::CreateInstance {
            path: root.clone(),
            source,
        })?;
        Ok(Instance {
            name: name.to_owned(),
            root,
        })
    }

    /// Remove `instances/NAME` (rmdir; the kernel frees its buffers).
    pub fn remove_instance(&self, name: &str) -> Result<(), TracefsError> {
        validate_name("instance name", name)?;
        let path = self.root.join("instances").join(name);
        std::fs::remove_dir(&path).map_err(|source| TracefsError::RemoveInstance { path, source })
    }

    /// Whether `instances/NAME` exists.
    pub fn instance_exists(&self, name: &str) -> bool {
        validate_name("instance name", name).is_ok()
            && self.root.join("instances").join(name).is_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::fake;

    #[test]
    fn create_use_and_remove() {
        let (dir, tracefs) = fake::tree();
        let instance = tracefs.create_instance("rptest_inst").expect("mkdir");
        assert_eq!(instance.name(), "rptest_inst");
        assert_eq!(instance.root(), dir.path().join("instances/rptest_inst"));
        assert_eq!(instance.tracefs().root(), instance.root());
        assert!(tracefs.instance_exists("rptest_inst"));
        drop(instance);
        assert!(
            tracefs.instance_exists("rptest_inst"),
            "Drop must not remove"
        );
        let err = tracefs.create_instance("rptest_inst").expect_err("exists");
        assert!(
            matches!(err, TracefsError::CreateInstance { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("exists"), "{err}");
        tracefs.remove_instance("rptest_inst").expect("rmdir");
        assert!(!tracefs.instance_exists("rptest_inst"));
        let err = tracefs.remove_instance("rptest_inst").expect_err("gone");
        assert!(
            matches!(err, TracefsError::RemoveInstance { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn instance_names_are_names() {
        let (_dir, tracefs) = fake::tree();
        for bad in ["", "..", "a/b", "x y"] {
            assert!(matches!(
                tracefs.create_instance(bad),
                Err(TracefsError::BadInput { .. })
            ));
            assert!(tracefs.remove_instance(bad).is_err());
        }
    }
}
