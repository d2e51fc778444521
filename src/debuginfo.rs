//! The vocabulary BTF and DWARF share: C types as a probe needs them, and the queries
//! `probes` asks of either, so a field chain such as `file->f_path.dentry` is walked by one
//! piece of code whichever debuginfo answered.
//!
//! Types are addressed by an opaque [`TypeId`] that only the source that gave it understands.
//! [`TypeSource::peel`] skips typedefs and qualifiers (`const`, `volatile`, `restrict`, BTF
//! type tags) and returns what is left as a [`CType`].

/// An opaque handle on a type inside one [`TypeSource`] (a BTF type id, a DWARF DIE offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u64);

/// A type with typedefs and qualifiers peeled off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CType {
    /// `void` (also what an unknown or unsupported type resolves to).
    Void,
    /// An integer, `char` or `_Bool`.
    Int {
        /// Size in bytes.
        size: u32,
        /// Signed.
        signed: bool,
        /// A character type (`char`, `signed char`, `unsigned char`).
        is_char: bool,
    },
    /// An enum (its size and whether it has negative values).
    Enum {
        /// Size in bytes.
        size: u32,
        /// Signed.
        signed: bool,
    },
    /// A floating-point type.
    Float {
        /// Size in bytes.
        size: u32,
    },
    /// A pointer to `target`.
    Pointer {
        /// What it points to (not peeled).
        target: TypeId,
    },
    /// An array of `count` elements (`None`: flexible or unknown).
    Array {
        /// Element type (not peeled).
        elem: TypeId,
        /// Number of elements.
        count: Option<u64>,
    },
    /// A struct (`is_union == false`) or union.
    Struct {
        /// Tag name, empty for anonymous ones.
        name: String,
        /// Size in bytes.
        size: u32,
        /// Union rather than struct.
        is_union: bool,
    },
    /// A function type.
    Function,
}

/// A struct or union member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Name, empty for an anonymous struct or union member.
    pub name: String,
    /// Type (not peeled).
    pub ty: TypeId,
    /// Offset from the start of the containing struct, in bits.
    pub bit_offset: u64,
    /// Width in bits for a bitfield, `None` otherwise.
    pub bitfield_size: Option<u32>,
}

/// A named function parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Name (may be empty when the source does not know it).
    pub name: String,
    /// Type (not peeled).
    pub ty: TypeId,
}

/// A function's prototype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncProto {
    /// Parameters in order.
    pub params: Vec<Param>,
    /// Return type; `None` for `void`.
    pub ret: Option<TypeId>,
}

/// Answers from a debuginfo source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DebugInfoError {
    /// No function of that name.
    #[error("no function '{0}' in the debuginfo")]
    NoFunction(String),
    /// A type id that does not exist or could not be read.
    #[error("bad type reference {0:?}")]
    BadType(TypeId),
    /// The data is corrupt or truncated.
    #[error("corrupt debuginfo: {0}")]
    Corrupt(String),
}

/// What `probes` asks of BTF or DWARF.
pub trait TypeSource {
    /// The prototype of function `name`.
    fn function(&self, name: &str) -> Result<FuncProto, DebugInfoError>;
    /// `ty` with typedefs and qualifiers skipped.
    fn peel(&self, ty: TypeId) -> Result<CType, DebugInfoError>;
    /// Size of `ty` in bytes (pointers are 8 on x86_64).
    fn size_of(&self, ty: TypeId) -> Result<u64, DebugInfoError>;
    /// Members of the struct or union `ty` (after peeling), in declaration order, anonymous
    /// members included as they are (the walker searches them).
    fn members(&self, ty: TypeId) -> Result<Vec<Member>, DebugInfoError>;
    /// A C spelling of `ty` for messages and `rprobe vars` (`struct file *`, `size_t`).
    fn type_name(&self, ty: TypeId) -> String;
}

/// Where a variable lives at a given address, in DWARF register numbers (x86_64: 0 %ax,
/// 1 %dx, 2 %cx, 3 %bx, 4 %si, 5 %di, 6 %bp, 7 %sp, 8–15 %r8–%r15).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// In a register (`DW_OP_regN`).
    Reg(u16),
    /// In memory at register + offset (`DW_OP_bregN`, or `DW_OP_fbreg` with the frame base
    /// resolved to a register, e.g. the CFA as `%sp + 8` at function entry on x86_64).
    Mem {
        /// DWARF register number.
        reg: u16,
        /// Byte offset.
        offset: i64,
    },
    /// In memory at a link-time address (`DW_OP_addr`): a global or static.
    Addr(u64),
    /// A constant value (`DW_AT_const_value`).
    Const(i64),
    /// No location at this address (optimized out here).
    OptimizedOut,
    /// A location rprobe cannot express as a fetch arg (pieces, `DW_OP_stack_value`,
    /// `DW_OP_entry_value`, arithmetic), with the operation named.
    Unsupported(String),
}

/// A parameter or local variable visible at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Name.
    pub name: String,
    /// Type (not peeled).
    pub ty: TypeId,
    /// Where it is at the address asked about.
    pub location: Location,
    /// A formal parameter (else a local).
    pub is_param: bool,
    /// When it cannot be read at the address asked about: the address ranges `[begin, end)`
    /// of the function where its location list gives a readable location (empty otherwise).
    pub live: Vec<(u64, u64)>,
}
