//! The `traceparent` header of W3C Trace Context (level 1): `00-<trace id>-<parent id>-<flags>`,
//! 32, 16 and 2 lowercase hex digits.
//!
//! The rule for what comes in: a value that is not exactly that is *ignored*, never refused
//! (the specification: a receiver that cannot parse it starts a new trace). So parsing
//! answers why a value is invalid, and every caller treats an invalid value as an absent
//! one. A trace or parent id of all zeros is invalid, and so is uppercase hex. A version
//! above `00` (but not `ff`) is read as far as version `00` goes, as the specification
//! asks of a level 1 reader, provided what follows the flags is a `-`; what we send is
//! always version `00`.

use std::fmt;

/// The header that carries a [`TraceParent`], on HTTP requests and on bus messages.
pub const TRACEPARENT: &str = "traceparent";
/// The vendor-specific companion of `traceparent`, honoured on HTTP requests.
pub const TRACESTATE: &str = "tracestate";

/// The length of a version `00` value.
const LENGTH: usize = 55;
/// The one flag level 1 defines: the caller may have recorded its span.
const SAMPLED: u8 = 0x01;

/// A place in a trace: the trace and the span to continue it from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// Why a `traceparent` value was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTraceParent {
    #[error("not `version-trace_id-parent_id-flags` of 2, 32, 16 and 2 characters")]
    Shape,
    #[error("the version is not two lowercase hex digits other than ff")]
    Version,
    #[error("the trace id is not 32 lowercase hex digits, not all zero")]
    TraceId,
    #[error("the parent id is not 16 lowercase hex digits, not all zero")]
    ParentId,
    #[error("the flags are not two lowercase hex digits")]
    Flags,
}

impl TraceParent {
    /// `None` when either id is zero (an invalid context).
    pub fn new(trace_id: u128, parent_id: u64, flags: u8) -> Option<Self> {
        (trace_id != 0 && parent_id != 0).then_some(Self { trace_id, parent_id, flags })
    }

    /// Reads a header value; see the module documentation for what is accepted.
    pub fn parse(value: &str) -> Result<Self, InvalidTraceParent> {
        let bytes = value.as_bytes();
        let version = bytes.get(..2).ok_or(InvalidTraceParent::Shape)?;
        let version = hex(version).ok_or(InvalidTraceParent::Version)?;
        let shaped = match version {
            0xff => return Err(InvalidTraceParent::Version),
            0 => bytes.len() == LENGTH,
            // A later version may append fields, after a dash.
            _ => bytes.len() == LENGTH || bytes.get(LENGTH) == Some(&b'-'),
        };
        if !shaped || [2, 35, 52].iter().any(|&at| bytes[at] != b'-') {
            return Err(InvalidTraceParent::Shape);
        }
        let trace_id =
            hex(&bytes[3..35]).filter(|id| *id != 0).ok_or(InvalidTraceParent::TraceId)?;
        let parent_id = hex(&bytes[36..52])
            .and_then(|id| u64::try_from(id).ok())
            .filter(|id| *id != 0)
            .ok_or(InvalidTraceParent::ParentId)?;
        let flags = hex(&bytes[53..55])
            .and_then(|flags| u8::try_from(flags).ok())
            .ok_or(InvalidTraceParent::Flags)?;
        Ok(Self { trace_id, parent_id, flags })
    }

    /// A new trace, where there is nothing to continue (no subscriber records spans).
    pub fn mint(sampled: bool) -> Self {
        Self {
            trace_id: fastrand::u128(1..),
            parent_id: fastrand::u64(1..),
            flags: if sampled { SAMPLED } else { 0 },
        }
    }

    /// The same trace continued from a new span of ours (with only the flags we know).
    #[must_use]
    pub fn child(self) -> Self {
        Self { parent_id: fastrand::u64(1..), flags: self.flags & SAMPLED, ..self }
    }

    pub fn trace_id(self) -> u128 {
        self.trace_id
    }

    pub fn parent_id(self) -> u64 {
        self.parent_id
    }

    pub fn flags(self) -> u8 {
        self.flags
    }

    pub fn is_sampled(self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lowercase hex digits, as logs and trace viewers show it.
    pub fn trace_id_hex(self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// The header value, version `00`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.parent_id, self.flags)
    }
}

/// Lowercase hex digits (at most 32) as a number; `None` for anything else.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |value, digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(nibble))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    fn parse(value: &str) -> Result<TraceParent, InvalidTraceParent> {
        TraceParent::parse(value)
    }

    #[test]
    fn a_valid_value_reads_and_writes_back_the_same() {
        let value = format!("00-{TRACE}-{PARENT}-01");
        let parsed = parse(&value).expect("valid");
        assert_eq!(parsed.trace_id_hex(), TRACE);
        assert_eq!(parsed.parent_id(), 0x00f0_67aa_0ba9_02b7);
        assert!(parsed.is_sampled());
        assert_eq!(parsed.to_string(), value);
        let unsampled = parse(&format!("00-{TRACE}-{PARENT}-00")).expect("valid");
        assert!(!unsampled.is_sampled());
        // Flags level 1 does not define are read (and not passed on by a child).
        let other_flags = parse(&format!("00-{TRACE}-{PARENT}-09")).expect("valid");
        assert_eq!(other_flags.flags(), 0x09);
        assert_eq!(other_flags.child().flags(), 0x01);
    }

    #[test]
    fn the_version_must_be_known_or_later_and_never_ff() {
        assert_eq!(parse(&format!("ff-{TRACE}-{PARENT}-01")), Err(InvalidTraceParent::Version));
        assert_eq!(parse(&format!("0g-{TRACE}-{PARENT}-01")), Err(InvalidTraceParent::Version));
        assert_eq!(parse(&format!("0A-{TRACE}-{PARENT}-01")), Err(InvalidTraceParent::Version));
        // Version 00 has exactly four fields.
        assert_eq!(parse(&format!("00-{TRACE}-{PARENT}-01-x")), Err(InvalidTraceParent::Shape));
        // A later version is read as far as 00 goes, whatever it appends after a dash.
        let later = parse(&format!("cc-{TRACE}-{PARENT}-01-what-the-future-holds"));
        assert_eq!(later.map(TraceParent::trace_id_hex), Ok(TRACE.to_owned()));
        assert_eq!(parse(&format!("cc-{TRACE}-{PARENT}-01")).map(|p| p.flags()), Ok(1));
        assert_eq!(parse(&format!("cc-{TRACE}-{PARENT}-01x")), Err(InvalidTraceParent::Shape));
    }

    #[test]
    fn ids_of_all_zeros_are_invalid() {
        let zeros = "0".repeat(32);
        assert_eq!(parse(&format!("00-{zeros}-{PARENT}-01")), Err(InvalidTraceParent::TraceId));
        assert_eq!(
            parse(&format!("00-{TRACE}-0000000000000000-01")),
            Err(InvalidTraceParent::ParentId)
        );
        assert_eq!(TraceParent::new(0, 1, 1), None);
        assert_eq!(TraceParent::new(1, 0, 1), None);
    }

    #[test]
    fn fields_of_the_wrong_length_are_invalid() {
        for value in [
            String::new(),
            "0".to_owned(),
            format!("00-{TRACE}a-{PARENT}-01"),
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            format!("00-{TRACE}-{PARENT}a-01"),
            format!("00-{TRACE}-{}-01", &PARENT[1..]),
            format!("00-{TRACE}-{PARENT}-1"),
            format!("00-{TRACE}-{PARENT}-001"),
            format!("00_{TRACE}-{PARENT}-01"),
            format!("000-{TRACE}-{PARENT}-1"),
        ] {
            assert_eq!(parse(&value), Err(InvalidTraceParent::Shape), "{value:?}");
        }
        assert!(parse(&format!(" 00-{TRACE}-{PARENT}-01")).is_err());
    }

    #[test]
    fn uppercase_hex_is_invalid() {
        let upper = TRACE.to_uppercase();
        assert_eq!(parse(&format!("00-{upper}-{PARENT}-01")), Err(InvalidTraceParent::TraceId));
        let upper = PARENT.to_uppercase();
        assert_eq!(parse(&format!("00-{TRACE}-{upper}-01")), Err(InvalidTraceParent::ParentId));
        assert_eq!(parse(&format!("00-{TRACE}-{PARENT}-0A")), Err(InvalidTraceParent::Flags));
        assert_eq!(parse(&format!("00-{TRACE}-{PARENT}-zz")), Err(InvalidTraceParent::Flags));
    }

    #[test]
    fn a_minted_or_child_context_is_valid_and_keeps_its_trace() {
        let minted = TraceParent::mint(false);
        assert_eq!(parse(&minted.to_string()), Ok(minted));
        assert!(!minted.is_sampled());
        let child = minted.child();
        assert_eq!(child.trace_id(), minted.trace_id());
        assert_ne!(child.parent_id(), 0);
        assert!(TraceParent::mint(true).is_sampled());
    }
}
