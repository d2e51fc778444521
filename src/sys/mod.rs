//! The only module with raw syscalls and `unsafe`: every call is wrapped so its error names the call.
