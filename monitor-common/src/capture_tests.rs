//! Hello and alert recognition, the walk over records before a hello,
//! and the continuation table's index.

use super::*;

#[test]
fn recognises_hello_and_alert_records() {
    assert_eq!(
        payload_start([22, 3, 1, 0x02, 0x00, 1]),
        PayloadStart::Hello { total_len: 517 }
    );
    assert_eq!(
        payload_start([22, 3, 3, 0x00, 0x7a, 2]),
        PayloadStart::Hello { total_len: 127 }
    );
    assert_eq!(payload_start([21, 3, 3, 0, 2, 2]), PayloadStart::Alert);
    // Finished/Certificate handshake records, app data, HTTP.
    assert_eq!(payload_start([22, 3, 3, 0, 40, 20]), PayloadStart::Other);
    assert_eq!(payload_start([23, 3, 3, 0, 40, 0]), PayloadStart::Other);
    assert_eq!(payload_start(*b"GET / "), PayloadStart::Other);
}

#[test]
fn hello_capture_is_capped() {
    assert_eq!(
        payload_start([22, 3, 1, 0xff, 0xff, 1]),
        PayloadStart::Hello {
            total_len: MAX_HELLO_BYTES
        }
    );
}

#[test]
fn continuation_index_stays_in_the_table() {
    for seq in [0, 1, u32::MAX, 0x8000_0000] {
        assert!(continuation_index(seq, 443, 40000) < CONT_TABLE_SIZE);
    }
    assert_ne!(
        continuation_index(1000, 443, 40000),
        continuation_index(1000, 443, 40001)
    );
}

/// [`locate_record`] on `payload` as one segment, failing if it reads
/// outside the payload or at offset 0 (given as `first`).
fn locate(payload: &[u8]) -> Located {
    let mut first = [0u8; 6];
    first.copy_from_slice(&payload[..6]);
    locate_record(first, payload.len() as u32, |offset| {
        let at = offset as usize;
        assert!(at > 0 && at + 6 <= payload.len(), "read at {at}");
        payload[at..at + 6].try_into().ok()
    })
}

const CCS: [u8; 6] = [20, 3, 3, 0, 1, 1];

/// A handshake record of `len` body bytes whose message type is `msg`.
fn handshake(msg: u8, len: u16) -> std::vec::Vec<u8> {
    let mut record = std::vec![22, 3, 3];
    record.extend_from_slice(&len.to_be_bytes());
    record.push(msg);
    record.resize(5 + usize::from(len), 0xab);
    record
}

fn segment(parts: &[&[u8]]) -> std::vec::Vec<u8> {
    parts.concat()
}

#[test]
fn a_hello_at_the_start_is_found_there() {
    let hello = handshake(1, 300);
    assert_eq!(
        locate(&hello),
        Located::Hello {
            offset: 0,
            total_len: 305
        }
    );
    assert_eq!(locate(&[21, 3, 3, 0, 2, 2, 70]), Located::Alert);
}

#[test]
fn a_client_hello_behind_a_change_cipher_spec_is_found() {
    // What an openssl 3.0 client sent after a HelloRetryRequest: CCS, then
    // the second ClientHello, in one 287-byte segment.
    let hello = handshake(1, 0x114);
    let payload = segment(&[&CCS, &hello]);
    assert_eq!(payload.len(), 287);
    assert_eq!(
        locate(&payload),
        Located::Hello {
            offset: 6,
            total_len: 281
        }
    );
    // The hello's header is all the segment holds of it: still found, the
    // rest follows as continuations.
    assert_eq!(
        locate(&payload[..12]),
        Located::Hello {
            offset: 6,
            total_len: 281
        }
    );
    // Its header cut short: not found (no read past the payload).
    assert_eq!(locate(&payload[..11]), Located::Nothing);
}

#[test]
fn up_to_the_bound_records_are_skipped() {
    let (finished, alert) = (handshake(20, 12), [21, 3, 3, 0, 2, 1, 0]);
    let hello = handshake(2, 90);
    let four = segment(&[&CCS, &alert, &finished, &CCS, &hello]);
    assert_eq!(
        locate(&four),
        Located::Hello {
            offset: 6 + 7 + 17 + 6,
            total_len: 95
        }
    );
    let five = segment(&[&CCS, &CCS, &CCS, &CCS, &CCS, &hello]);
    assert_eq!(locate(&five), Located::TooManyRecords);
    // Five records that end with the segment: nothing more to look for.
    assert_eq!(locate(&five[..30]), Located::Nothing);
}

#[test]
fn application_data_and_other_bytes_end_the_search() {
    let hello = handshake(1, 100);
    let app = [23, 3, 3, 0, 1, 0];
    assert_eq!(locate(&segment(&[&app, &hello])), Located::Nothing);
    assert_eq!(locate(&segment(&[&CCS, &app, &hello])), Located::Nothing);
    assert_eq!(locate(b"GET / HTTP/1.1\r\n"), Located::Nothing);
    // Not version 3.x, or longer than a TLS record may be.
    let mut odd = segment(&[&CCS, &hello]);
    odd[1] = 2;
    assert_eq!(locate(&odd), Located::Nothing);
    let mut huge = std::vec![22, 3, 3, 0x48, 0x01, 20];
    huge.resize(0x4801 + 5, 0);
    huge.extend_from_slice(&hello);
    assert_eq!(locate(&huge), Located::Nothing);
    // A record that goes on past the segment.
    let finished = handshake(20, 100);
    assert_eq!(locate(&finished[..50]), Located::Nothing);
}
