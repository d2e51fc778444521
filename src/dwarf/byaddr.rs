//! Functions found by address: the fast path for a kernel vmlinux, whose `.debug_info` is
//! far too big (160 MB in Debian's 6.1 cloud kernel, about 2,800 units) to index by name for
//! one probe.
//!
//! The caller knows the function's address from the ELF symbol table. `.debug_aranges` (one
//! table of `[begin, end) → unit` for the whole file, 160 KB in that vmlinux) names the unit
//! whose code holds it; only that unit is walked ([`Dwarf::unit_index`]). Without
//! `.debug_aranges` the units' own root ranges are read instead (every unit's root DIE,
//! still no walk of their children). perf instead walks the top-level DIEs of every unit
//! (`dwarf_getfuncs` in a `dwarf_nextcu` loop, as kernels have no `.debug_pubnames`), which
//! is most of its 0.75 s per spec on that vmlinux.

use super::error::DwarfError;
use super::lines::path_matches;
use super::{Dwarf, FuncInstance};

/// `v` without repeats, each address where it first appears: perf reports line rows (in
/// address order) before the call sites it finds afterwards.
fn first_of_each(v: Vec<u64>) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|a| seen.insert(*a)).collect()
}

/// `[begin, end)` address ranges and the unit index holding each, sorted by `begin`.
pub(crate) type UnitRanges = Vec<(u64, u64, usize)>;

impl<'a> Dwarf<'a> {
    /// Indexes of the units whose code covers `addr` (usually one), from `.debug_aranges`
    /// or, without it, the units' root ranges.
    pub fn units_at(&self, addr: u64) -> Vec<usize> {
        let ranges = self.unit_ranges.get_or_init(|| self.read_unit_ranges());
        let end = ranges.partition_point(|(b, _, _)| *b <= addr);
        let mut out: Vec<usize> = ranges[..end]
            .iter()
            .filter(|(_, e, _)| addr < *e)
            .map(|(_, _, u)| *u)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn read_unit_ranges(&self) -> UnitRanges {
        let mut out = self.aranges().unwrap_or_default();
        if out.is_empty() {
            for idx in 0..self.units.len() {
                let Ok(unit) = self.unit(idx) else { continue };
                let Ok(mut iter) = self.dwarf.unit_ranges(unit) else {
                    continue;
                };
                while let Ok(Some(r)) = iter.next() {
                    if r.begin < r.end && out.len() < 10_000_000 {
                        out.push((r.begin, r.end, idx));
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// `.debug_aranges` as unit ranges; empty when the section is missing.
    fn aranges(&self) -> Result<UnitRanges, gimli::Error> {
        let mut out = Vec::new();
        let mut headers = self.dwarf.debug_aranges.headers();
        while let Some(header) = headers.next()? {
            let Some(unit) = self.unit_of(header.debug_info_offset().0 as u64) else {
                continue;
            };
            let mut entries = header.entries();
            while let Some(e) = entries.next()? {
                let r = e.range();
                if r.begin < r.end {
                    out.push((r.begin, r.end, unit));
                }
            }
        }
        Ok(out)
    }

    /// The instances of function `name` in the units whose code covers `addr`: the concrete
    /// one at `addr` among them, and inlined copies in those units. Walks only those units;
    /// falls back to the whole-file name index when they hold none of that name (a name
    /// reached only through another unit).
    pub fn functions_at(&self, name: &str, addr: u64) -> Result<Vec<FuncInstance>, DwarfError> {
        let mut out = Vec::new();
        for idx in self.units_at(addr) {
            let index = self.unit_index(idx)?;
            if let Some(insts) = index.get(name) {
                for i in insts {
                    out.push(self.instance(name, i)?);
                }
            }
        }
        if out.iter().any(|f| !f.inlined && f.entry_pc == addr) {
            return Ok(out);
        }
        self.functions(name)
    }
}

impl<'a> Dwarf<'a> {
    /// Every function instance (concrete or inlined) whose code holds `pc`, innermost first
    /// (by the size of the range holding `pc`): perf's "best scope" for a line probe.
    pub fn instances_at(&self, pc: u64) -> Vec<FuncInstance> {
        let mut out: Vec<(u64, FuncInstance)> = Vec::new();
        for idx in self.units_at(pc) {
            let Ok(index) = self.unit_index(idx) else {
                continue;
            };
            for (name, insts) in index {
                for i in insts {
                    // Ranges first: a whole instance (declaration, prologue from the line
                    // table) only for those holding `pc`.
                    let holds = self
                        .die_at(i.die)
                        .ok()
                        .and_then(|d| self.ranges_of(&d).ok());
                    if !holds.is_some_and(|r| r.iter().any(|(b, e)| (*b..*e).contains(&pc))) {
                        continue;
                    }
                    let Ok(f) = self.instance(name, i) else {
                        continue;
                    };
                    if let Some((b, e)) = f.ranges.iter().find(|(b, e)| (*b..*e).contains(&pc)) {
                        out.push((e - b, f));
                    }
                }
            }
        }
        out.sort_by_key(|(size, f)| (*size, f.die));
        out.into_iter().map(|(_, f)| f).collect()
    }

    /// Addresses of the statement rows for source line `line` of the file `f` is declared
    /// in, in `f`'s unit, sorted and deduplicated (perf's `FUNC:RLN` walks that unit's line
    /// table the same way).
    pub fn function_lines(&self, f: &FuncInstance, line: u64) -> Vec<u64> {
        let (Some(file), Some(idx)) = (&f.decl_file, self.unit_of(f.die)) else {
            return Vec::new();
        };
        let Ok(lines) = self.unit_lines(idx) else {
            return Vec::new();
        };
        // As perf's die_walk_lines over the unit: every statement row, and the call sites of
        // inlined functions on that line.
        let mut out: Vec<u64> = lines
            .rows
            .iter()
            .filter(|r| r.line == line && r.is_stmt && !r.end_sequence)
            .filter(|r| lines.file(r.file) == Some(file.as_str()))
            .map(|r| r.addr)
            .collect();
        out.sort_unstable();
        let mut sites = self.call_sites(idx, &|p| p == file, line);
        sites.sort_unstable();
        out.extend(sites);
        first_of_each(out)
    }

    /// Entry addresses of the functions inlined in unit `idx` by a call on `line` of a file
    /// `in_file` accepts: perf's line walk (`die_walk_lines`) reports each as a row of
    /// its call line.
    pub(crate) fn call_sites(
        &self,
        idx: usize,
        in_file: &dyn Fn(&str) -> bool,
        line: u64,
    ) -> Vec<u64> {
        let Ok(index) = self.unit_index(idx) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, insts) in index {
            for i in insts.iter().filter(|i| i.inlined) {
                let Ok(f) = self.instance(name, i) else {
                    continue;
                };
                if f.call_site
                    .as_ref()
                    .is_some_and(|(cf, cl)| *cl == line && in_file(cf))
                {
                    out.push(f.entry_pc);
                }
            }
        }
        out
    }
}

impl<'a> Dwarf<'a> {
    /// The source line the line table gives for `addr` read backwards, as elfutils'
    /// `dwarf_getsrc_die` does for perf: the first row at exactly `addr` (in program order),
    /// else the first row at the nearest address below it. `(file path, line)`.
    pub fn line_at(&self, addr: u64) -> Option<(String, u64)> {
        let mut best: Option<(u64, &str, u64)> = None;
        for idx in self.units_at(addr) {
            let Ok(lines) = self.unit_lines(idx) else {
                continue;
            };
            for r in lines
                .rows
                .iter()
                .filter(|r| !r.end_sequence && r.addr <= addr)
            {
                if best.is_none_or(|(a, _, _)| r.addr > a) {
                    if let Some(f) = lines.file(r.file) {
                        best = Some((r.addr, f, r.line));
                    }
                }
            }
        }
        best.map(|(_, f, l)| (f.to_string(), l))
    }
}

impl<'a> Dwarf<'a> {
    /// The name binutils' `addr2line -f` gives an instance: `DW_AT_linkage_name` (or
    /// `DW_AT_MIPS_linkage_name`) of the DIE or its origin when there is one, as for
    /// glibc's hidden aliases (`__GI___clock_gettime` for `__clock_gettime`), else its name.
    pub fn addr2line_name(&self, f: &FuncInstance) -> String {
        let Ok(die) = self.die_at(f.die) else {
            return f.name.clone();
        };
        [gimli::DW_AT_linkage_name, gimli::DW_AT_MIPS_linkage_name]
            .iter()
            .find_map(|&at| {
                let owner = self.integrate(&die, at)?;
                self.str_attr(&owner, at)
            })
            .unwrap_or_else(|| f.name.clone())
    }
}

impl<'a> Dwarf<'a> {
    /// Addresses where perf's lazy line walk (`;PATTERN`) probes lines `wanted` of `f`'s
    /// file: statement rows inside `f` (not inside code inlined into it, unless the row is
    /// the call's own line), `f`'s declaration line at its entry, and the call sites of
    /// functions inlined into `f`; sorted and deduplicated.
    pub fn lazy_lines(&self, f: &FuncInstance, wanted: &[u64]) -> Vec<u64> {
        let (Some(file), Some(idx)) = (&f.decl_file, self.unit_of(f.die)) else {
            return Vec::new();
        };
        let Ok(lines) = self.unit_lines(idx) else {
            return Vec::new();
        };
        let mut out: Vec<u64> = Vec::new();
        for r in &lines.rows {
            if !wanted.contains(&r.line) || !r.is_stmt || r.end_sequence || !f.contains(r.addr) {
                continue;
            }
            if lines.file(r.file) != Some(file.as_str()) {
                continue;
            }
            let inner = self
                .instances_at(r.addr)
                .into_iter()
                .find(|i| i.inlined && i.die != f.die);
            let keep = match inner {
                None => true,
                Some(i) => {
                    i.call_site
                        .as_ref()
                        .is_some_and(|(cf, cl)| cf == file && *cl == r.line)
                        || (i.decl_line == f.decl_line && i.decl_file == f.decl_file)
                }
            };
            if keep {
                out.push(r.addr);
            }
        }
        out.sort_unstable();
        if f.decl_line.is_some_and(|l| wanted.contains(&l)) {
            out.push(f.entry_pc);
        }
        if let Ok(index) = self.unit_index(idx) {
            for (name, insts) in index {
                for i in insts
                    .iter()
                    .filter(|i| i.inlined && i.frame_die == f.frame_die)
                {
                    let Ok(inl) = self.instance(name, i) else {
                        continue;
                    };
                    let on_line = inl
                        .call_site
                        .as_ref()
                        .is_some_and(|(cf, cl)| cf == file && wanted.contains(cl));
                    if on_line && f.contains(inl.entry_pc) {
                        out.push(inl.entry_pc);
                    }
                }
            }
        }
        first_of_each(out)
    }
}

impl<'a> Dwarf<'a> {
    /// The full path the DWARF records for the source file ending in `suffix`.
    pub fn source_path(&self, suffix: &str) -> Option<String> {
        (0..self.units.len()).find_map(|idx| {
            let lines = self.unit_lines(idx).ok()?;
            lines
                .files
                .iter()
                .flatten()
                .find(|p| path_matches(p, suffix))
                .cloned()
        })
    }

    /// perf's lazy walk of whole units (`FILE;PATTERN`): in every unit with a file ending in
    /// `suffix`, its statement rows on lines `wanted` (address order), then in DIE order
    /// each function's declaration line at its entry and each inlined call's call line and
    /// declaration line at its entry. `(address, line)`, each address once.
    pub fn unit_lazy_lines(&self, suffix: &str, wanted: &[u64]) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for idx in 0..self.units.len() {
            let Ok(lines) = self.unit_lines(idx) else {
                continue;
            };
            let in_file = |i: u64| lines.file(i).is_some_and(|p| path_matches(p, suffix));
            if !lines
                .files
                .iter()
                .flatten()
                .any(|p| path_matches(p, suffix))
            {
                continue;
            }
            let mut rows: Vec<(u64, u64)> = lines
                .rows
                .iter()
                .filter(|r| r.is_stmt && !r.end_sequence && wanted.contains(&r.line))
                .filter(|r| in_file(r.file))
                .map(|r| (r.addr, r.line))
                .collect();
            rows.sort_unstable();
            out.extend(rows);
            let Ok(index) = self.unit_index(idx) else {
                continue;
            };
            let mut funcs: Vec<(u64, u64, u64)> = Vec::new();
            let file_ok =
                |p: &Option<String>| p.as_deref().is_some_and(|p| path_matches(p, suffix));
            for (name, insts) in index {
                for i in insts {
                    let Ok(f) = self.instance(name, i) else {
                        continue;
                    };
                    if let Some((cf, cl)) = &f.call_site {
                        if path_matches(cf, suffix) && wanted.contains(cl) {
                            funcs.push((f.die, f.entry_pc, *cl));
                        }
                    }
                    if let Some(l) = f.decl_line.filter(|l| wanted.contains(l)) {
                        if file_ok(&f.decl_file) {
                            funcs.push((f.die, f.entry_pc, l));
                        }
                    }
                }
            }
            funcs.sort_by_key(|(die, _, _)| *die);
            out.extend(funcs.into_iter().map(|(_, a, l)| (a, l)));
        }
        let mut seen = std::collections::HashSet::new();
        out.into_iter().filter(|(a, _)| seen.insert(*a)).collect()
    }
}
