//! tracefs (placeholder until written)
