//! Kernel feature probe (IORING_REGISTER_PROBE), for the doctor and for refusing to start
//! on kernels that lack the ops the workers depend on.

use io_uring::{opcode, IoUring, Probe};

/// Opcodes the workers use, by the names liburing gives them.
pub const REQUIRED: &[(&str, u8)] = &[
    ("IORING_OP_ACCEPT", opcode::AcceptMulti::CODE),
    ("IORING_OP_RECV", opcode::RecvMulti::CODE),
    ("IORING_OP_SEND", opcode::Send::CODE),
    ("IORING_OP_READ", opcode::Read::CODE),
    ("IORING_OP_TIMEOUT", opcode::Timeout::CODE),
    ("IORING_OP_ASYNC_CANCEL", opcode::AsyncCancel::CODE),
];

/// What the running kernel offers.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub setup: bool,
    pub opcodes: Vec<(&'static str, bool)>,
    pub error: Option<String>,
}

impl ProbeReport {
    /// A one-line reason the engine cannot run here, if any.
    pub fn unusable(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(format!("io_uring unavailable: {e}"));
        }
        let missing: Vec<&str> = self
            .opcodes
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| *n)
            .collect();
        (!missing.is_empty())
            .then(|| format!("io_uring lacks required opcodes: {}", missing.join(", ")))
    }
}

/// Creates a throwaway ring and asks the kernel which opcodes it supports.
pub fn probe() -> ProbeReport {
    let ring = match IoUring::new(2) {
        Ok(r) => r,
        Err(e) => {
            return ProbeReport {
                setup: false,
                opcodes: REQUIRED.iter().map(|(n, _)| (*n, false)).collect(),
                error: Some(e.to_string()),
            }
        }
    };
    let mut p = Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut p) {
        return ProbeReport {
            setup: true,
            opcodes: REQUIRED.iter().map(|(n, _)| (*n, false)).collect(),
            error: Some(format!("probe: {e}")),
        };
    }
    ProbeReport {
        setup: true,
        opcodes: REQUIRED
            .iter()
            .map(|(n, code)| (*n, p.is_supported(*code)))
            .collect(),
        error: None,
    }
}
