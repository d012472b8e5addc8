//! Reassembles the first handshake message of one TCP direction from its
//! TLS records. RFC 8446 5.1 lets a handshake message span any number of
//! records (a post-quantum ClientHello often does), and lets one record
//! carry several messages (a TLS 1.2 server flight often does).

use monitor_common::tls::{
    Alert, HANDSHAKE_HEADER_LEN, RECORD_HEADER_LEN, RecordHeader, TlsError, content_type,
};

/// Largest handshake message extracted, header included. Hellos are a few
/// KiB even with post-quantum key shares; past this the stream is not a
/// hello worth holding on to, and the bound caps what a peer can make the
/// daemon buffer.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// What the stream holds so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extract {
    /// The first handshake message, whole.
    Complete {
        msg_type: u8,
        /// The message body, without its four-byte header.
        body: Vec<u8>,
        /// Records the message was spread over (at least one).
        records_used: usize,
        /// Stream bytes up to the end of the last of those records (which
        /// may hold the start of the next message too).
        bytes_used: usize,
    },
    /// More bytes are needed.
    NeedMore {
        /// A lower bound on the stream length the message needs: exact when
        /// the rest of it comes in the record being read. `None` while not
        /// even the next record header or the message length is known.
        total_needed: Option<usize>,
    },
}

/// Extracts the first handshake message from `stream`, the bytes of one
/// direction starting at a record boundary.
///
/// Errors: `NotHandshake` when a record before the message is complete is
/// not a handshake record (an alert, say: see [`read_alert`]);
/// `BadLength` for an empty or oversized record, or a message longer than
/// [`MAX_MESSAGE_LEN`].
pub fn first_handshake_message(stream: &[u8]) -> Result<Extract, TlsError> {
    let mut msg: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut records_used = 0;
    loop {
        let rest = stream.get(offset..).unwrap_or_default();
        if rest.len() < RECORD_HEADER_LEN {
            let total_needed =
                message_len(&msg).map(|total| offset + RECORD_HEADER_LEN + (total - msg.len()));
            return Ok(Extract::NeedMore { total_needed });
        }
        let header = RecordHeader::parse(rest)?;
        if header.content_type != content_type::HANDSHAKE {
            return Err(TlsError::NotHandshake);
        }
        // Empty handshake fragments are forbidden (RFC 8446 5.1), and
        // accepting them would let a peer stall reassembly for free.
        if header.length == 0 {
            return Err(TlsError::BadLength);
        }
        let record_end = offset + header.total_len();
        let fragment = stream
            .get(offset + RECORD_HEADER_LEN..record_end.min(stream.len()))
            .unwrap_or_default();
        let before = msg.len();
        append(&mut msg, fragment)?;

        if stream.len() < record_end {
            // Where the message would end if this record completes.
            let through_record = before + usize::from(header.length);
            let total_needed = match message_len(&msg) {
                Some(total) if total > through_record => {
                    record_end + RECORD_HEADER_LEN + (total - through_record)
                }
                _ => record_end,
            };
            return Ok(Extract::NeedMore {
                total_needed: Some(total_needed),
            });
        }
        records_used += 1;
        offset = record_end;
        if message_len(&msg) == Some(msg.len()) {
            let msg_type = msg.first().copied().unwrap_or_default();
            msg.drain(..HANDSHAKE_HEADER_LEN);
            return Ok(Extract::Complete {
                msg_type,
                body: msg,
                records_used,
                bytes_used: offset,
            });
        }
    }
}

/// Length of the whole message (header included) once its header is in.
fn message_len(msg: &[u8]) -> Option<usize> {
    let [_, a, b, c] = *msg.first_chunk::<HANDSHAKE_HEADER_LEN>()?;
    let body = u32::from_be_bytes([0, a, b, c]);
    Some(HANDSHAKE_HEADER_LEN + usize::try_from(body).ok()?)
}

/// Appends the part of `fragment` that belongs to the message: bytes past
/// its end are the next message's.
fn append(msg: &mut Vec<u8>, fragment: &[u8]) -> Result<(), TlsError> {
    msg.extend_from_slice(fragment);
    if let Some(total) = message_len(msg) {
        if total > MAX_MESSAGE_LEN {
            return Err(TlsError::BadLength);
        }
        msg.truncate(total);
    }
    Ok(())
}

/// Reads the plaintext alert record at the start of `stream` (a server
/// refusing a ClientHello answers with one). `NotAlert` for other record
/// types, `Truncated` while incomplete, `BadLength` for an encrypted one.
pub fn read_alert(stream: &[u8]) -> Result<Alert, TlsError> {
    Alert::parse_record(stream)
}
