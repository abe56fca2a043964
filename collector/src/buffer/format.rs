//! On-disk format of the buffer: segment file names and headers, record
//! frames, and ack-log entries. Pure byte layout, no I/O.
//!
//! A segment file is a 32-byte header followed by record frames:
//!
//! ```text
//! header: magic "QLQNBUF1" | version u32 | reserved u32 | first_id u64 | crc32c(previous 24 bytes) u32 | reserved u32
//! frame:  crc32c(rest of the frame) u32 | len u32 | append_ms u64 | payload (len bytes)
//! ```
//!
//! All integers are little-endian. Record ids are not stored per frame: the
//! n-th frame of a segment has id `first_id + n`, which keeps frames small and
//! makes ids contiguous by construction. The checksum covers the length and
//! the timestamp too, so a zero-filled region left by a crash (length 0,
//! checksum 0) is never mistaken for an empty record.

use std::path::{Path, PathBuf};

/// Size of the segment header in bytes.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 32;
/// Size of a frame header (checksum, length, append time) in bytes.
pub(crate) const FRAME_HEADER_LEN: usize = 16;
/// Size of one ack-log entry in bytes.
pub(crate) const ACK_ENTRY_LEN: usize = 16;

const SEGMENT_MAGIC: &[u8; 8] = b"QLQNBUF1";
const SEGMENT_VERSION: u32 = 1;
const ACK_TAG: u32 = u32::from_le_bytes(*b"QACK");
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_NAME_DIGITS: usize = 20;

/// Name of the append-only file that records the ack point.
pub(crate) const ACK_LOG_NAME: &str = "ack.log";
/// Temporary name used while compacting the ack log (atomic rename).
pub(crate) const ACK_LOG_TMP_NAME: &str = "ack.log.tmp";
/// Lock file that keeps two processes from sharing one buffer directory.
pub(crate) const LOCK_NAME: &str = "LOCK";

/// File name of the segment whose first record has `first_id`; zero-padded so
/// that a directory listing sorts in id order.
pub(crate) fn segment_file_name(first_id: u64) -> String {
    format!(
        "{first_id:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

pub(crate) fn segment_path(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(segment_file_name(first_id))
}

/// The first id encoded in a segment file name, or `None` when the name is
/// not one of ours.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn encode_segment_header(first_id: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_id.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header and returns the first id it declares.
pub(crate) fn decode_segment_header(h: &[u8]) -> Result<u64, String> {
    if h.len() < SEGMENT_HEADER_LEN as usize {
        return Err(format!(
            "header is {} bytes, expected {SEGMENT_HEADER_LEN}",
            h.len()
        ));
    }
    if &h[0..8] != SEGMENT_MAGIC {
        return Err("not a qalqan buffer segment (bad magic)".to_owned());
    }
    let stored_crc = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
    if crc32c::crc32c(&h[0..24]) != stored_crc {
        return Err("segment header checksum mismatch".to_owned());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != SEGMENT_VERSION {
        return Err(format!(
            "segment format version {version} is not supported (expected {SEGMENT_VERSION})"
        ));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(id))
}

/// Bytes a record of `payload_len` bytes takes on disk.
pub(crate) fn frame_len(payload_len: usize) -> u64 {
    (FRAME_HEADER_LEN + payload_len) as u64
}

/// Appends one frame to `out`. The caller guarantees `payload.len()` fits in
/// a `u32` (appends larger than a segment are refused before encoding).
pub(crate) fn encode_frame(out: &mut Vec<u8>, payload: &[u8], append_ms: u64) {
    let start = out.len();
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&append_ms.to_le_bytes());
    out.extend_from_slice(payload);
    // One checksum call over a contiguous range: length, time, payload.
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at the start of a slice hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A whole, checksum-valid record; `len` is the number of bytes it spans.
    Record {
        payload: &'a [u8],
        append_ms: u64,
        len: usize,
    },
    /// The slice ends before the frame does; `needed` is the frame's total
    /// length when the header is readable, else the header length.
    Incomplete { needed: usize },
    /// The header or the checksum is wrong: a torn write or corruption.
    Corrupt { reason: String },
}

/// Decodes the frame at the start of `bytes`. `max_payload` bounds the length
/// field so a corrupt length is reported as corruption instead of as a
/// request to read gigabytes.
pub(crate) fn decode_frame(bytes: &[u8], max_payload: u64) -> Frame<'_> {
    if bytes.len() < FRAME_HEADER_LEN {
        return Frame::Incomplete {
            needed: FRAME_HEADER_LEN,
        };
    }
    let crc = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&bytes[8..16]);
    let append_ms = u64::from_le_bytes(ms);
    if u64::from(len) > max_payload {
        return Frame::Corrupt {
            reason: format!("record length {len} exceeds the limit {max_payload}"),
        };
    }
    let total = FRAME_HEADER_LEN + len as usize;
    if bytes.len() < total {
        return Frame::Incomplete { needed: total };
    }
    if crc32c::crc32c(&bytes[4..total]) != crc {
        return Frame::Corrupt {
            reason: "record checksum mismatch".to_owned(),
        };
    }
    Frame::Record {
        payload: &bytes[FRAME_HEADER_LEN..total],
        append_ms,
        len: total,
    }
}

pub(crate) fn encode_ack_entry(acked: u64) -> [u8; ACK_ENTRY_LEN] {
    let mut e = [0u8; ACK_ENTRY_LEN];
    e[0..8].copy_from_slice(&acked.to_le_bytes());
    let crc = crc32c::crc32c(&e[0..8]);
    e[8..12].copy_from_slice(&crc.to_le_bytes());
    e[12..16].copy_from_slice(&ACK_TAG.to_le_bytes());
    e
}

/// The ack point stored in one entry, or `None` when the entry is torn or
/// corrupt.
pub(crate) fn decode_ack_entry(e: &[u8]) -> Option<u64> {
    if e.len() < ACK_ENTRY_LEN {
        return None;
    }
    let crc = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
    let tag = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
    if tag != ACK_TAG || crc32c::crc32c(&e[0..8]) != crc {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&e[0..8]);
    Some(u64::from_le_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_in_id_order() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
        for bad in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.log",
            "ack.log",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let h = encode_segment_header(77);
        assert_eq!(decode_segment_header(&h), Ok(77));
        let mut bad = h;
        bad[17] ^= 1;
        assert!(decode_segment_header(&bad)
            .unwrap_err()
            .contains("checksum"));
        let mut foreign = h;
        foreign[0] = b'X';
        assert!(decode_segment_header(&foreign)
            .unwrap_err()
            .contains("magic"));
        assert!(decode_segment_header(&h[..10]).is_err());
    }

    #[test]
    fn frames_round_trip_and_detect_torn_and_corrupt_bytes() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, b"hello", 1234);
        encode_frame(&mut buf, b"", 5);
        let Frame::Record {
            payload,
            append_ms,
            len,
        } = decode_frame(&buf, 1 << 20)
        else {
            panic!("first frame should decode");
        };
        assert_eq!((payload, append_ms, len), (&b"hello"[..], 1234, 21));
        assert_eq!(
            decode_frame(&buf[21..], 1 << 20),
            Frame::Record {
                payload: b"",
                append_ms: 5,
                len: 16
            }
        );
        assert_eq!(
            decode_frame(&buf[..20], 1 << 20),
            Frame::Incomplete { needed: 21 }
        );
        assert_eq!(
            decode_frame(&buf[..3], 1 << 20),
            Frame::Incomplete { needed: 16 }
        );
        let mut flipped = buf.clone();
        flipped[18] ^= 0x40;
        assert!(matches!(
            decode_frame(&flipped, 1 << 20),
            Frame::Corrupt { .. }
        ));
        // A zero-filled region (what a crash can leave) is corruption, not an
        // empty record.
        assert!(matches!(
            decode_frame(&[0u8; 64], 1 << 20),
            Frame::Corrupt { .. }
        ));
        assert!(matches!(decode_frame(&buf, 3), Frame::Corrupt { .. }));
    }

    #[test]
    fn ack_entries_round_trip_and_reject_damage() {
        let e = encode_ack_entry(987_654);
        assert_eq!(decode_ack_entry(&e), Some(987_654));
        let mut bad = e;
        bad[2] ^= 1;
        assert_eq!(decode_ack_entry(&bad), None);
        assert_eq!(decode_ack_entry(&e[..15]), None);
        assert_eq!(decode_ack_entry(&[0u8; 16]), None);
    }
}
