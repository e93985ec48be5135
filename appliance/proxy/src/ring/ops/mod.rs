//! Typed ops, one file per opcode. Each builds its SQE from memory it moves into the op's
//! slot (see the module docs of `ring`), so protocol code never handles raw pointers.

pub mod accept;
pub mod cancel;
pub mod connect;
pub mod poll;
pub mod read;
pub mod recv;
pub mod send;
pub mod timeout;
