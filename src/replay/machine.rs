//! Threads, their names and their address-space maps, replayed from COMM, FORK, MMAP and
//! MMAP2 records the way perf 6.1 does (`util/machine.c`, `util/thread.c`, `util/maps.c`), so
//! that each sample gets the comm and the maps perf would give it.
//!
//! - A thread first seen in a sample is named `:TID` until a COMM names it; tid 0 is
//!   `swapper` (perf's idle thread).
//! - Threads of one process share one map set (created with the group leader); FORK of a new
//!   process copies the parent's maps, FORK of a thread shares them, and the child takes the
//!   parent's comm if the parent had one. A FORK for a tid that exists replaces that thread.
//! - A new map removes what it overlaps of older maps (`maps__fixup_overlappings`), keeping
//!   the parts outside it.
//! - Kernel maps (pid −1: `[kernel.kallsyms]_text` and modules) are machine-wide.

use super::dso::{Dso, DsoKind};
use super::hash::FxHashMap;
use super::symbols::SymbolMap;
use crate::perf::reader::records::Mmap;
use std::collections::{BTreeMap, HashMap};

/// One mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Map {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// File offset of `start`.
    pub pgoff: u64,
    /// Index into [`Machine::dsos`].
    pub dso: u32,
    /// Addresses in this map are not file-relative (anonymous memory, JIT).
    pub identity: bool,
}

impl Map {
    /// perf's `map__map_ip`: the DSO-relative address of `ip`.
    pub fn map_ip(&self, ip: u64) -> u64 {
        if self.identity {
            ip
        } else {
            ip.wrapping_sub(self.start).wrapping_add(self.pgoff)
        }
    }
}

/// A set of non-overlapping maps.
#[derive(Debug, Clone, Default)]
pub struct Maps {
    by_start: BTreeMap<u64, Map>,
    /// Bumped by every insert, so text derived from the maps can be cached per generation.
    gen: u64,
}

impl Maps {
    /// Remove every map (a new generation).
    pub fn clear(&mut self) {
        self.by_start.clear();
        self.gen += 1;
    }

    /// Insert `m`, cutting what it overlaps out of older maps.
    pub fn insert(&mut self, m: Map) {
        if m.end <= m.start {
            return;
        }
        self.gen += 1;
        let overlapping: Vec<u64> = self
            .by_start
            .range(..m.end)
            .rev()
            .take_while(|(_, o)| o.end > m.start)
            .map(|(s, _)| *s)
            .collect();
        for s in overlapping {
            let Some(old) = self.by_start.remove(&s) else {
                continue;
            };
            if old.start < m.start {
                self.by_start.insert(
                    old.start,
                    Map {
                        end: m.start,
                        ..old
                    },
                );
            }
            if old.end > m.end {
                let pgoff = if old.identity {
                    old.pgoff
                } else {
                    old.pgoff.wrapping_add(m.end - old.start)
                };
                self.by_start.insert(
                    m.end,
                    Map {
                        start: m.end,
                        pgoff,
                        ..old
                    },
                );
            }
        }
        self.by_start.insert(m.start, m);
    }

    /// The map holding `addr`.
    pub fn find(&self, addr: u64) -> Option<&Map> {
        let (_, m) = self.by_start.range(..=addr).next_back()?;
        (addr < m.end).then_some(m)
    }

    /// How many inserts changed these maps (text resolved through them stays valid while
    /// this is the same).
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// The maps, by start address.
    pub fn iter(&self) -> impl Iterator<Item = &Map> {
        self.by_start.values()
    }

    /// Number of maps.
    pub fn len(&self) -> usize {
        self.by_start.len()
    }

    /// No maps.
    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }
}

/// One thread.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Process id (−1 when unknown).
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// Its current name.
    pub comm: Box<str>,
    /// Whether a COMM (or a fork from a named parent) set the name.
    pub comm_set: bool,
    /// Index of its map set in [`Machine::maps`].
    pub maps: usize,
}

/// Everything replay knows about the recorded machine.
#[derive(Debug, Default)]
pub struct Machine {
    /// Threads by tid (looked up once per sample: Fx, not SipHash).
    pub threads: FxHashMap<i32, Thread>,
    /// Map sets; threads of a process share one.
    pub maps: Vec<Maps>,
    /// Kernel maps.
    pub kernel: Maps,
    /// DSOs, indexed by [`Map::dso`].
    pub dsos: Vec<Dso>,
    dso_by_name: HashMap<Box<str>, u32>,
    /// Build ids from the BUILD_ID feature, by file name.
    pub build_ids: HashMap<String, Vec<u8>>,
    /// Kernel symbol relocation: added to a kernel address before the symbol lookup (the
    /// kallsyms `_text` minus the file's kernel map `pgoff`, perf's `kallsyms__delta`).
    pub kernel_delta: u64,
    /// `_text` of the kernel symbols in use (sets [`Machine::kernel_delta`] at the kernel
    /// map's MMAP).
    kernel_text: Option<u64>,
    /// The kernel MMAPs applied so far, to apply again when symbols come after them.
    kernel_log: Vec<KernelMmap>,
}

/// A kernel (pid −1) MMAP as it was applied.
#[derive(Debug, Clone)]
struct KernelMmap {
    start: u64,
    len: u64,
    pgoff: u64,
    name: String,
}

/// The name of the kernel DSO.
pub const KERNEL_DSO: &str = "[kernel.kallsyms]";

impl Machine {
    /// An empty machine with perf's idle thread (tid 0, `swapper`).
    pub fn new() -> Machine {
        let mut m = Machine::default();
        let maps = m.new_maps();
        m.threads.insert(
            0,
            Thread {
                pid: 0,
                tid: 0,
                comm: "swapper".into(),
                comm_set: true,
                maps,
            },
        );
        m
    }

    fn new_maps(&mut self) -> usize {
        self.maps.push(Maps::default());
        self.maps.len() - 1
    }

    /// The DSO called `name`, created on first use.
    pub fn dso(&mut self, name: &str, kind: DsoKind) -> u32 {
        if let Some(&i) = self.dso_by_name.get(name) {
            return i;
        }
        let id = self.build_ids.get(name).cloned();
        self.dsos.push(Dso::new(name, kind, id));
        let i = (self.dsos.len() - 1) as u32;
        self.dso_by_name.insert(name.into(), i);
        i
    }

    /// Add a DSO that already has its symbols (the kernel's).
    pub fn add_dso(&mut self, dso: Dso) -> u32 {
        let name = dso.name.clone();
        self.dsos.push(dso);
        let i = (self.dsos.len() - 1) as u32;
        self.dso_by_name.insert(name, i);
        i
    }

    /// perf's `machine__findnew_thread`: the thread `tid`, created (named `:TID`) when new.
    pub fn findnew(&mut self, pid: i32, tid: i32) -> &mut Thread {
        // The common case first: a known thread whose pid is known.
        if self
            .threads
            .get(&tid)
            .is_some_and(|t| t.pid != -1 || pid == -1)
        {
            return self.threads.get_mut(&tid).expect("present");
        }
        if !self.threads.contains_key(&tid) {
            let maps = if pid == tid || pid == -1 {
                self.new_maps()
            } else {
                self.findnew(pid, pid).maps
            };
            self.threads.insert(
                tid,
                Thread {
                    pid,
                    tid,
                    comm: format!(":{tid}").into(),
                    comm_set: false,
                    maps,
                },
            );
        } else if pid != -1 && self.threads.get(&tid).is_some_and(|t| t.pid == -1) {
            // machine__update_thread_pid: join the leader's maps.
            let maps = if pid == tid {
                self.threads.get(&tid).map_or(0, |t| t.maps)
            } else {
                self.findnew(pid, pid).maps
            };
            if let Some(t) = self.threads.get_mut(&tid) {
                t.pid = pid;
                t.maps = maps;
            }
        }
        self.threads.get_mut(&tid).expect("inserted above")
    }

    /// A COMM record.
    pub fn comm(&mut self, pid: i32, tid: i32, comm: &[u8]) {
        let t = self.findnew(pid, tid);
        t.comm = String::from_utf8_lossy(comm).into();
        t.comm_set = true;
    }

    /// A FORK record.
    pub fn fork(&mut self, pid: i32, tid: i32, ppid: i32, ptid: i32) {
        if self.threads.get(&ptid).is_some_and(|p| p.pid != ppid) {
            self.threads.remove(&ptid);
        }
        self.findnew(ppid, ptid);
        if tid != 0 {
            self.threads.remove(&tid);
        }
        let child_maps = self.findnew(pid, tid).maps;
        let Some(parent) = self.threads.get(&ptid).cloned() else {
            return;
        };
        if let Some(child) = self.threads.get_mut(&tid) {
            if parent.comm_set {
                child.comm = parent.comm.clone();
                child.comm_set = true;
            }
        }
        if pid != ppid && child_maps != parent.maps {
            let copy = self.maps.get(parent.maps).cloned().unwrap_or_default();
            if let Some(m) = self.maps.get_mut(child_maps) {
                // A generation this index never had: caches keyed by (index, generation)
                // must not take the copy for what the maps held before.
                let gen = m.gen.max(copy.gen) + 1;
                *m = copy;
                m.gen = gen;
            }
        }
    }

    /// The kernel's symbols, when the file maps the kernel (perf prints kernel addresses as
    /// hex without a kernel map).
    pub fn kernel_symbols(&self) -> Option<&super::symbols::SymbolMap> {
        let &i = self.dso_by_name.get(KERNEL_DSO)?;
        self.kernel.by_start.values().find(|m| m.dso == i)?;
        self.dsos.get(i as usize)?.loaded_symbols()
    }

    /// perf's `machine__kernel_ip`: at or above the start of the kernel map (2^63 without one).
    pub fn is_kernel_ip(&self, ip: u64) -> bool {
        let start = self
            .dso_by_name
            .get(KERNEL_DSO)
            .and_then(|&i| self.kernel.by_start.values().find(|m| m.dso == i))
            .map_or(1 << 63, |m| m.start);
        ip >= start
    }

    /// Use `symbols` (kallsyms whose `_text` is at `text`) for the kernel. The kernel maps
    /// recorded before are applied again, so they span the symbols as if these had been
    /// there from the start: replay can begin while kallsyms is still being parsed.
    pub fn set_kernel_symbols(&mut self, symbols: SymbolMap, text: Option<u64>) {
        self.kernel_text = text;
        match self.dso_by_name.get(KERNEL_DSO) {
            Some(&i) => self.dsos[i as usize].set_symbols(symbols),
            None => {
                self.add_dso(Dso::with_symbols(KERNEL_DSO, DsoKind::Kernel, symbols));
            }
        }
        if self.kernel_log.is_empty() {
            return;
        }
        self.kernel.clear();
        self.kernel_delta = 0;
        for k in std::mem::take(&mut self.kernel_log) {
            self.kernel_mmap(k);
        }
    }

    /// A kernel or module MMAP.
    fn kernel_mmap(&mut self, k: KernelMmap) {
        let is_kernel = k.name.starts_with(KERNEL_DSO);
        if is_kernel {
            if let Some(text) = self.kernel_text {
                self.kernel_delta = text.wrapping_sub(k.pgoff);
            }
        }
        let dso = if is_kernel {
            self.dso(KERNEL_DSO, DsoKind::Kernel)
        } else {
            let module = k.name.rsplit('/').next().unwrap_or(&k.name);
            let module = module.split('.').next().unwrap_or(module).replace('-', "_");
            self.dso(&format!("[{module}]"), DsoKind::Kernel)
        };
        // perf's map__fixup_start/end once kallsyms is loaded: the kernel map spans the
        // symbols (init text included), not just the recorded length.
        let (mut start, mut end) = (k.start, k.start.saturating_add(k.len));
        if let Some(syms) = self.dsos.get(dso as usize).and_then(Dso::loaded_symbols) {
            if let (Some(first), Some(last)) = (syms.symbols().first(), syms.symbols().last()) {
                start = first.start.wrapping_sub(self.kernel_delta);
                end = last.end.wrapping_sub(self.kernel_delta);
            }
        }
        self.kernel.insert(Map {
            start,
            end,
            pgoff: start,
            dso,
            identity: true,
        });
        self.kernel_log.push(k);
    }

    /// An MMAP or MMAP2 of a process (pid ≥ 0) or of the kernel (pid −1).
    pub fn mmap(&mut self, m: &Mmap<'_>) {
        let Mmap {
            pid,
            tid,
            addr: start,
            len,
            pgoff,
            filename,
            ..
        } = *m;
        let exec = m.prot & 4 != 0;
        let name = String::from_utf8_lossy(filename);
        if pid == -1 {
            self.kernel_mmap(KernelMmap {
                start,
                len,
                pgoff,
                name: name.into_owned(),
            });
            return;
        }
        let anon =
            name == "//anon" || name.starts_with("/dev/zero") || name.starts_with("/anon_hugepage");
        let no_dso = name.starts_with("[stack") || name.starts_with("/SYSV") || name == "[heap]";
        let (dso, identity) = if anon || no_dso {
            let shown = if exec {
                format!("/tmp/perf-{pid}.map")
            } else {
                name.to_string()
            };
            (self.dso(&shown, DsoKind::Anon), true)
        } else if name == "[vdso]" {
            (self.dso("[vdso]", DsoKind::Vdso), false)
        } else {
            (self.dso(&name, DsoKind::User), false)
        };
        let maps = self.findnew(pid, tid).maps;
        if let Some(m) = self.maps.get_mut(maps) {
            m.insert(Map {
                start,
                end: start.saturating_add(len),
                pgoff,
                dso,
                identity,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(start: u64, end: u64, pgoff: u64) -> Map {
        Map {
            start,
            end,
            pgoff,
            dso: 0,
            identity: false,
        }
    }

    #[test]
    fn overlapping_maps_are_cut() {
        let mut m = Maps::default();
        m.insert(map(0x1000, 0x5000, 0));
        m.insert(map(0x2000, 0x3000, 0x100));
        assert_eq!(m.len(), 3);
        assert_eq!(m.find(0x1fff).unwrap().end, 0x2000);
        assert_eq!(m.find(0x2800).unwrap().pgoff, 0x100);
        let tail = m.find(0x4000).unwrap();
        assert_eq!((tail.start, tail.pgoff), (0x3000, 0x2000));
        assert_eq!(tail.map_ip(0x3010), 0x2010);
        assert!(m.find(0x5000).is_none());
        m.insert(map(0x0, 0x6000, 0));
        assert_eq!(m.len(), 1);
    }

    fn mm(pid: i32, addr: u64, len: u64, pgoff: u64, filename: &[u8]) -> Mmap<'_> {
        Mmap {
            pid,
            tid: pid.max(0),
            addr,
            len,
            pgoff,
            prot: 5,
            filename,
            build_id: None,
        }
    }

    #[test]
    fn threads_comms_and_forks() {
        let mut m = Machine::new();
        assert_eq!(&*m.findnew(0, 0).comm, "swapper");
        assert_eq!(&*m.findnew(10, 11).comm, ":11");
        assert_eq!(&*m.threads[&10].comm, ":10");
        assert_eq!(m.threads[&10].maps, m.threads[&11].maps);
        m.comm(10, 10, b"bash");
        m.mmap(&mm(10, 0x1000, 0x1000, 0, b"/bin/bash"));
        // A new process inherits comm and a copy of the maps.
        m.fork(20, 20, 10, 10);
        assert_eq!(&*m.threads[&20].comm, "bash");
        let (p, c) = (m.threads[&10].maps, m.threads[&20].maps);
        assert_ne!(p, c);
        assert!(m.maps[c].find(0x1800).is_some());
        // A thread shares them.
        m.fork(20, 21, 20, 20);
        assert_eq!(m.threads[&21].maps, c);
        m.comm(20, 20, b"ls");
        assert_eq!(&*m.threads[&21].comm, "bash");
        m.mmap(&mm(
            -1,
            0xffffffff81000000,
            0x1000000,
            0xffffffff81000000,
            b"[kernel.kallsyms]_text",
        ));
        let k = m.kernel.find(0xffffffff81000010).unwrap();
        assert_eq!(&*m.dsos[k.dso as usize].name, KERNEL_DSO);
        m.mmap(&mm(30, 0x7000, 0x1000, 0, b"//anon"));
        let a = *m.maps[m.threads[&30].maps].find(0x7000).unwrap();
        assert!(a.identity);
        assert_eq!(&*m.dsos[a.dso as usize].name, "/tmp/perf-30.map");
    }

    #[test]
    fn kernel_symbols_after_the_maps_give_the_maps_they_give_before() {
        // kallsyms 0x1000 above the file's _text (a relocated kernel), init text past the
        // recorded length, and a module that cuts the stretched kernel map.
        let kallsyms = "ffffffff82000000 T _text\nffffffff82000100 T start_kernel\n\
                        ffffffff83800000 T init_thing\nffffffffc0001000 t ext4_fn\t[ext4]\n";
        let maps = [
            mm(
                -1,
                0xffffffff81000000,
                0x1000000,
                0xffffffff81000000,
                b"[kernel.kallsyms]_text",
            ),
            mm(-1, 0xffffffffbf000000, 0x4000, 0, b"/lib/modules/ext4.ko"),
        ];
        let symbols = || {
            let k = super::super::symbols::Kallsyms::parse(kallsyms.as_bytes());
            let text = k.text;
            (k.into_map(), text)
        };
        let mut before = Machine::new();
        let (map, text) = symbols();
        before.set_kernel_symbols(map, text);
        let mut after = Machine::new();
        for m in &maps {
            before.mmap(m);
            after.mmap(m);
        }
        // Unfixed: the kernel map is the recorded length, relocated by nothing.
        assert!(after.kernel.find(0xffffffff82800000).is_none());
        assert_eq!(after.kernel_delta, 0);
        let gen = after.kernel.generation();
        let (map, text) = symbols();
        after.set_kernel_symbols(map, text);
        let list = |m: &Machine| m.kernel.iter().copied().collect::<Vec<Map>>();
        assert_eq!(list(&after), list(&before));
        assert_eq!(after.kernel_delta, before.kernel_delta);
        assert_eq!(before.kernel_delta, 0x1000000);
        assert!(after.kernel.generation() > gen);
        assert!(after.kernel.find(0xffffffff82800000).is_some());
        let k = after.dso_by_name[KERNEL_DSO] as usize;
        assert_eq!(
            after.dsos.iter().filter(|d| &*d.name == KERNEL_DSO).count(),
            1
        );
        assert_eq!(after.dsos[k].loaded_symbols().map(SymbolMap::len), Some(4));
    }
}
