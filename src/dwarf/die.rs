//! Reading single DIEs by their `.debug_info` offset, and the attribute helpers every query
//! shares: references made global, strings, and attributes "integrated" through
//! `DW_AT_abstract_origin` / `DW_AT_specification` as elfutils' `dwarf_attr_integrate` does.

use gimli::{AttributeValue, DwAt, DwTag, UnitOffset};

use super::error::DwarfError;
use super::reader::Bytes;
use super::Dwarf;

/// A DIE as gimli reads it.
pub(crate) type Entry<'a> = gimli::DebuggingInformationEntry<Bytes<'a>>;

/// A DIE and where it is: the unit index and its global `.debug_info` offset.
#[derive(Debug, Clone)]
pub(crate) struct Die<'a> {
    pub(crate) unit: usize,
    pub(crate) off: u64,
    pub(crate) entry: Entry<'a>,
}

/// How many `DW_AT_abstract_origin`/`DW_AT_specification` hops are followed (real chains are
/// 1 or 2 long: a concrete instance, its abstract instance, its declaration).
const MAX_HOPS: usize = 8;

impl<'a> Die<'a> {
    pub(crate) fn tag(&self) -> DwTag {
        self.entry.tag()
    }

    pub(crate) fn attr(&self, at: DwAt) -> Option<AttributeValue<Bytes<'a>>> {
        self.entry.attr_value(at)
    }

    pub(crate) fn udata(&self, at: DwAt) -> Option<u64> {
        self.entry.attr(at).and_then(|a| a.udata_value())
    }

    pub(crate) fn flag(&self, at: DwAt) -> bool {
        matches!(self.attr(at), Some(AttributeValue::Flag(true)))
    }

    /// Error for a failure reading `what` in this DIE.
    pub(crate) fn error(&self, dw: &Dwarf<'_>, what: &'static str, e: gimli::Error) -> DwarfError {
        DwarfError::Die {
            unit: dw.units.get(self.unit).map_or(0, |u| u.offset),
            die: self.off,
            what,
            source: e,
        }
    }
}

impl<'a> Dwarf<'a> {
    /// The DIE at `.debug_info` offset `off`.
    pub(crate) fn die_at(&self, off: u64) -> Result<Die<'a>, DwarfError> {
        let idx = self.unit_of(off).ok_or(DwarfError::NoDie(off))?;
        let unit = self.unit(idx)?;
        let base = self.units.get(idx).map_or(0, |u| u.offset);
        let rel = usize::try_from(off - base).map_err(|_| DwarfError::NoDie(off))?;
        let entry = unit
            .entry(UnitOffset(rel))
            .map_err(|source| DwarfError::Die {
                unit: base,
                die: off,
                what: "the DIE",
                source,
            })?;
        if entry.is_null() {
            return Err(DwarfError::NoDie(off));
        }
        Ok(Die {
            unit: idx,
            off,
            entry,
        })
    }

    /// Global offset of a unit-relative offset in unit `unit`.
    pub(crate) fn global(&self, unit: usize, off: UnitOffset<usize>) -> u64 {
        self.units
            .get(unit)
            .map_or(0, |u| u.offset.saturating_add(off.0 as u64))
    }

    /// The DIE that a reference attribute `at` of `die` points to, as a global offset.
    /// References into `.debug_types` or a supplementary file give `None`.
    pub(crate) fn ref_attr(&self, die: &Die<'a>, at: DwAt) -> Option<u64> {
        match die.attr(at)? {
            AttributeValue::UnitRef(o) => Some(self.global(die.unit, o)),
            AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
            _ => None,
        }
    }

    /// A string attribute of `die` (`DW_FORM_string`, `strp`, `strx`, `line_strp`).
    pub(crate) fn str_attr(&self, die: &Die<'a>, at: DwAt) -> Option<String> {
        let value = die.attr(at)?;
        let unit = self.unit(die.unit).ok()?;
        let s = self.dwarf.attr_string(unit, value).ok()?;
        gimli::Reader::to_string_lossy(&s)
            .ok()
            .map(|s| s.into_owned())
    }

    /// `die`, or the first DIE along its `DW_AT_abstract_origin`/`DW_AT_specification`
    /// chain that has attribute `at`.
    pub(crate) fn integrate(&self, die: &Die<'a>, at: DwAt) -> Option<Die<'a>> {
        if die.entry.has_attr(at) {
            return Some(die.clone());
        }
        let mut cur = die.clone();
        for _ in 0..MAX_HOPS {
            let next = self
                .ref_attr(&cur, gimli::DW_AT_abstract_origin)
                .or_else(|| self.ref_attr(&cur, gimli::DW_AT_specification))?;
            cur = self.die_at(next).ok()?;
            if cur.entry.has_attr(at) {
                return Some(cur);
            }
        }
        None
    }

    /// `DW_AT_name` of `die` or of its origin.
    pub(crate) fn name_of(&self, die: &Die<'a>) -> Option<String> {
        let owner = self.integrate(die, gimli::DW_AT_name)?;
        self.str_attr(&owner, gimli::DW_AT_name)
    }

    /// `DW_AT_type` of `die` or of its origin, as a global offset.
    pub(crate) fn type_of(&self, die: &Die<'a>) -> Option<u64> {
        let owner = self.integrate(die, gimli::DW_AT_type)?;
        self.ref_attr(&owner, gimli::DW_AT_type)
    }

    /// The direct children of `die`, in order.
    pub(crate) fn children(&self, die: &Die<'a>) -> Result<Vec<Die<'a>>, DwarfError> {
        if !die.entry.has_children() {
            return Ok(Vec::new());
        }
        let unit = self.unit(die.unit)?;
        let base = self.units.get(die.unit).map_or(0, |u| u.offset);
        let rel =
            UnitOffset(usize::try_from(die.off - base).map_err(|_| DwarfError::NoDie(die.off))?);
        let err = |e| die.error(self, "children", e);
        let mut tree = unit.entries_tree(Some(rel)).map_err(err)?;
        let root = tree.root().map_err(err)?;
        let mut iter = root.children();
        let mut out = Vec::new();
        while let Some(child) = iter.next().map_err(err)? {
            let entry = child.entry().clone();
            out.push(Die {
                unit: die.unit,
                off: self.global(die.unit, entry.offset()),
                entry,
            });
        }
        Ok(out)
    }

    /// The address ranges `[begin, end)` of `die` (`DW_AT_low_pc`/`high_pc` or
    /// `DW_AT_ranges`), empty ranges dropped.
    pub(crate) fn ranges_of(&self, die: &Die<'a>) -> Result<Vec<(u64, u64)>, DwarfError> {
        let unit = self.unit(die.unit)?;
        let err = |e| die.error(self, "DW_AT_ranges", e);
        let mut iter = self.dwarf.die_ranges(unit, &die.entry).map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = iter.next().map_err(err)? {
            if r.begin < r.end {
                out.push((r.begin, r.end));
            }
            if out.len() > 100_000 {
                break;
            }
        }
        Ok(out)
    }

    /// An address attribute (`DW_FORM_addr` or `addrx`).
    pub(crate) fn addr_attr(&self, die: &Die<'a>, at: DwAt) -> Option<u64> {
        let value = die.attr(at)?;
        let unit = self.unit(die.unit).ok()?;
        self.dwarf.attr_address(unit, value).ok().flatten()
    }
}
