//! Size bounds of the protocol, named where the `.proto` comments refer to them.
//!
//! Servers configure tonic's `max_decoding_message_size` from these, and
//! [`decode_bounded`] applies the same rule to bytes decoded by hand (files, tests,
//! fuzzing), so a malformed or oversized message is an error and never a panic.

use prost::Message;

/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 4 * 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest encoded client request (a key, a value and headers).
pub const MAX_CLIENT_MESSAGE_BYTES: usize = MAX_VALUE_BYTES + 64 * 1024;
/// Most operations in one client `BatchRequest`.
pub const MAX_BATCH_OPS: usize = 1024;
/// Largest client `BatchResponse` a client should expect: the Rust client caps each
/// batch so that its worst-case reply (every read and failed compare-and-swap
/// returning a value of MAX_VALUE_BYTES) stays under this, and decodes up to it.
pub const MAX_BATCH_REPLY_BYTES: usize = 256 * 1024 * 1024;
/// Largest `data` of one log entry: a value, a key and the command's framing.
pub const MAX_ENTRY_BYTES: usize = MAX_VALUE_BYTES + 8 * 1024;
/// Most entries in one AppendEntries.
pub const MAX_ENTRIES_PER_APPEND: usize = 8192;
/// Largest encoded peer message (one append batch, or a vote).
pub const MAX_PEER_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Largest `data` of one snapshot chunk.
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Most node ids in a membership or in one admin request.
pub const MAX_MEMBERS: usize = 64;
/// Longest member address (`host:port`), in bytes.
pub const MAX_ADDRESS_BYTES: usize = 256;
/// Largest `limit` of a scan, and the one used when a request says 0.
pub const MAX_SCAN_LIMIT: u32 = 10_000;
pub const DEFAULT_SCAN_LIMIT: u32 = 1_000;
/// A scan reply is cut (with `more` set) once its items reach this many bytes.
pub const MAX_SCAN_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// Why bytes could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is longer than the bound for this kind of message.
    TooLarge { len: usize, max: usize },
    /// The bytes are not a valid encoding of the message.
    Malformed(prost::DecodeError),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max} bytes")
            }
            DecodeError::Malformed(e) => write!(f, "malformed message: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes `bytes` as `M`, refusing input longer than `max` bytes before parsing it.
pub fn decode_bounded<M: Message + Default>(bytes: &[u8], max: usize) -> Result<M, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    M::decode(bytes).map_err(DecodeError::Malformed)
}
