//! Functions by name: every concrete instance (a `DW_TAG_subprogram` with code) and every
//! inlined instance (`DW_TAG_inlined_subroutine` whose abstract origin has the name), with
//! the address perf probes for each.
//!
//! Entry pc, as elfutils' `dwarf_entrypc` and perf's `die_entrypc`: `DW_AT_entry_pc` (an
//! address, or in DWARF 5 possibly a constant offset from `DW_AT_low_pc`), else
//! `DW_AT_low_pc`, else the start of the first `DW_AT_ranges` entry.
//!
//! Prologue end, as perf's `die_skip_prologue` (`dwarf-aux.c`): take the unit's line rows in
//! address order, find the first row at the entry pc; if that row has `prologue_end` it is
//! the answer, otherwise the next row is (gcc writes one row for the opening line and the
//! next for the first statement). A row at or past `DW_AT_high_pc` falls back to the row
//! before it; a function without `DW_AT_high_pc` (only `DW_AT_ranges`) gets none. perf only
//! moves a probe there for uprobes with C variables in a unit that is not optimised, which it
//! decides as `die_is_optimized_target` does: some variable's `DW_AT_location` is a location
//! list ([`FuncInstance::optimized`]).

use gimli::constants as dw;

use super::die::Die;
use super::error::DwarfError;
use super::index::Instance;
use super::Dwarf;

/// One place a function's code lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncInstance {
    /// The function's name (`DW_AT_name`, possibly through its abstract origin).
    pub name: String,
    /// `.debug_info` offset of the instance's DIE.
    pub die: u64,
    /// `.debug_info` offset of the concrete subprogram the code runs in: the instance itself,
    /// or for an inlined one the function it was inlined into (its frame base applies).
    pub frame_die: u64,
    /// Link-time address of the first instruction.
    pub entry_pc: u64,
    /// Address ranges `[begin, end)` of the instance's code.
    pub ranges: Vec<(u64, u64)>,
    /// An inlined instance (`DW_TAG_inlined_subroutine`).
    pub inlined: bool,
    /// For an inlined instance: the `.debug_info` offset of the function instance whose DIE
    /// encloses it (the function it was inlined into, itself maybe inlined).
    pub caller: Option<u64>,
    /// Declaring source file (full path as recorded).
    pub decl_file: Option<String>,
    /// Declaring line (`DW_AT_decl_line`), the base of `FUNC:RLN`.
    pub decl_line: Option<u64>,
    /// For an inlined instance: the file and line of the call.
    pub call_site: Option<(String, u64)>,
    /// For a concrete instance: the address after the prologue, by perf's rule.
    pub prologue_end: Option<u64>,
    /// The unit looks optimised to perf (it has location lists).
    pub optimized: bool,
}

impl FuncInstance {
    /// Whether `pc` is in the instance's code.
    pub fn contains(&self, pc: u64) -> bool {
        self.ranges.iter().any(|(b, e)| (*b..*e).contains(&pc))
    }
}

impl<'a> Dwarf<'a> {
    /// Every concrete and inlined instance of function `name`, in `.debug_info` order.
    /// Empty when there is none.
    pub fn functions(&self, name: &str) -> Result<Vec<FuncInstance>, DwarfError> {
        let index = self.index()?;
        let Some(insts) = index.by_name.get(name) else {
            return Ok(Vec::new());
        };
        insts.iter().map(|i| self.instance(name, i)).collect()
    }

    /// Names of all functions with at least one instance, sorted (for glob matching).
    pub fn function_names(&self) -> Result<Vec<&str>, DwarfError> {
        let mut names: Vec<&str> = self.index()?.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        Ok(names)
    }

    /// Units whose functions are missing from the index because they could not be read.
    pub fn index_errors(&self) -> Result<&[DwarfError], DwarfError> {
        Ok(&self.index()?.errors)
    }

    /// The declaration line of `f`, the base that `FUNC:RLN` is relative to.
    pub fn function_line(&self, f: &FuncInstance) -> Option<u64> {
        f.decl_line
    }

    pub(crate) fn instance(&self, name: &str, inst: &Instance) -> Result<FuncInstance, DwarfError> {
        let die = self.die_at(inst.die)?;
        let ranges = self.ranges_of(&die)?;
        let low = self.addr_attr(&die, dw::DW_AT_low_pc);
        let entry_pc = match die.attr(dw::DW_AT_entry_pc) {
            Some(gimli::AttributeValue::Udata(off)) => low.map(|l| l.wrapping_add(off)),
            Some(_) => self.addr_attr(&die, dw::DW_AT_entry_pc),
            None => None,
        }
        .or(low)
        .or_else(|| ranges.first().map(|r| r.0))
        .unwrap_or(0);
        let (decl_file, decl_line) = self.decl_of(&die);
        let call_site = if inst.inlined {
            let file = die
                .udata(dw::DW_AT_call_file)
                .and_then(|f| self.file_name(die.unit, f));
            file.zip(die.udata(dw::DW_AT_call_line))
        } else {
            None
        };
        let prologue_end = if inst.inlined {
            None
        } else {
            let high = match die.attr(dw::DW_AT_high_pc) {
                Some(gimli::AttributeValue::Udata(len)) => low.map(|l| l.wrapping_add(len)),
                Some(_) => self.addr_attr(&die, dw::DW_AT_high_pc),
                None => None,
            };
            high.and_then(|h| self.prologue_end(die.unit, entry_pc, h))
        };
        Ok(FuncInstance {
            name: name.to_string(),
            die: inst.die,
            frame_die: inst.frame_die,
            entry_pc,
            ranges,
            inlined: inst.inlined,
            caller: inst.caller,
            decl_file,
            decl_line,
            call_site,
            prologue_end,
            optimized: self.unit_optimized(die.unit),
        })
    }

    /// `DW_AT_decl_file` (as a path) and `DW_AT_decl_line` of `die` or its origin.
    fn decl_of(&self, die: &Die<'a>) -> (Option<String>, Option<u64>) {
        let line = self
            .integrate(die, dw::DW_AT_decl_line)
            .and_then(|d| d.udata(dw::DW_AT_decl_line));
        let file = self.integrate(die, dw::DW_AT_decl_file).and_then(|d| {
            let index = d.udata(dw::DW_AT_decl_file)?;
            self.file_name(d.unit, index)
        });
        (file, line)
    }

    pub(crate) fn file_name(&self, unit: usize, index: u64) -> Option<String> {
        self.unit_lines(unit).ok()?.file(index).map(str::to_string)
    }

    /// perf's post-prologue address for a function at `[entry, high)` in unit `unit`.
    fn prologue_end(&self, unit: usize, entry: u64, high: u64) -> Option<u64> {
        let lines = self.unit_lines(unit).ok()?;
        let mut rows: Vec<_> = lines.rows.iter().filter(|r| !r.end_sequence).collect();
        rows.sort_by_key(|r| r.addr);
        let i = rows.iter().position(|r| r.addr == entry)?;
        let first = rows.get(i)?;
        if first.prologue_end {
            return Some(first.addr);
        }
        match rows.get(i + 1) {
            Some(next) if next.addr < high => Some(next.addr),
            _ => Some(first.addr),
        }
    }

    /// perf's `die_is_optimized_target`: a parameter or variable of the unit has a location
    /// list. Read once per unit.
    pub(crate) fn unit_optimized(&self, idx: usize) -> bool {
        let Some(slot) = self.units.get(idx) else {
            return false;
        };
        *slot
            .optimized
            .get_or_init(|| self.scan_optimized(idx).unwrap_or(false))
    }

    fn scan_optimized(&self, idx: usize) -> Result<bool, gimli::Error> {
        let Ok(unit) = self.unit(idx) else {
            return Ok(false);
        };
        let mut raw = unit.entries_raw(None)?;
        while !raw.is_empty() {
            let Some(abbrev) = raw.read_abbreviation()? else {
                continue;
            };
            let tag = abbrev.tag();
            if tag != dw::DW_TAG_formal_parameter && tag != dw::DW_TAG_variable {
                raw.skip_attributes(abbrev.attributes())?;
                continue;
            }
            for spec in abbrev.attributes() {
                let attr = raw.read_attribute(*spec)?;
                if attr.name() == dw::DW_AT_location
                    && matches!(
                        attr.value(),
                        gimli::AttributeValue::LocationListsRef(_)
                            | gimli::AttributeValue::DebugLocListsIndex(_)
                    )
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}
