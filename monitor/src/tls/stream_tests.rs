//! Reassembly of the first handshake message from record bytes.

use monitor_common::tls::builder::{self, ClientHelloBuilder, ServerHelloBuilder};
use monitor_common::tls::samples::{self, bytes};
use monitor_common::tls::{Alert, TlsError, content_type};

use super::stream::{Extract, MAX_MESSAGE_LEN, first_handshake_message, read_alert};

fn complete(stream: &[u8]) -> (u8, Vec<u8>, usize, usize) {
    match first_handshake_message(stream) {
        Ok(Extract::Complete {
            msg_type,
            body,
            records_used,
            bytes_used,
        }) => (msg_type, body, records_used, bytes_used),
        other => panic!("expected a complete message, got {other:?}"),
    }
}

fn need_more(stream: &[u8]) -> Option<usize> {
    match first_handshake_message(stream) {
        Ok(Extract::NeedMore { total_needed }) => total_needed,
        other => panic!("expected NeedMore at {} bytes, got {other:?}", stream.len()),
    }
}

fn pq_hello() -> ClientHelloBuilder {
    ClientHelloBuilder::new()
        .ciphers(&[0x1301, 0x1302, 0x1303])
        .sni("pq.example")
        .alpn(&["h2"])
        .supported_versions(&[0x0304])
        .supported_groups(&[0x11ec, 0x001d])
        .key_shares(&[(0x11ec, 1216), (0x001d, 32)])
}

/// Every proper prefix needs more, with a bound that is a real lower bound
/// and grows past what is there; the whole stream completes.
fn check_every_prefix(stream: &[u8], message_end: usize) {
    for n in 0..message_end {
        if let Some(t) = need_more(&stream[..n]) {
            assert!(
                n < t && t <= message_end,
                "{n} bytes: bound {t}, end {message_end}"
            );
        } else {
            // Unknown only before the first record header is in (records
            // here are long enough to carry the message header).
            assert!(n < 5, "{n} bytes: no bound");
        }
    }
}

#[test]
fn one_record_with_more_records_after_it() {
    let rec = bytes(samples::OPENSSL13_CLIENT_HELLO);
    let mut stream = rec.clone();
    stream.extend_from_slice(&[20, 3, 3, 0, 1, 1]); // ChangeCipherSpec
    let (msg_type, body, records, used) = complete(&stream);
    assert_eq!((msg_type, records, used), (1, 1, rec.len()));
    assert_eq!(body, rec[9..]);
    for n in 0..rec.len() {
        let expected = if n < 5 { None } else { Some(rec.len()) };
        assert_eq!(need_more(&rec[..n]), expected, "{n} bytes");
    }
}

#[test]
fn post_quantum_hello_split_over_records() {
    let message = pq_hello().message();
    for fragment in [1, 2, 3, 5, 1000, 1400] {
        let stream = builder::records(content_type::HANDSHAKE, &message, fragment);
        let (msg_type, body, records, used) = complete(&stream);
        assert_eq!(msg_type, 1);
        assert_eq!(body, message[4..], "fragment {fragment}");
        assert_eq!(records, message.len().div_ceil(fragment));
        assert_eq!(used, stream.len());
        if fragment >= 1000 {
            check_every_prefix(&stream, stream.len());
        }
    }
}

#[test]
fn bound_is_exact_when_the_rest_is_in_one_record() {
    let message = pq_hello().message();
    let stream = builder::records(content_type::HANDSHAKE, &message, 1000);
    // First record complete, second header not yet there: the rest of the
    // message plus one record header.
    assert_eq!(need_more(&stream[..1005]), Some(stream.len()));
    assert_eq!(need_more(&stream[..1007]), Some(stream.len()));
}

#[test]
fn tls12_server_flight_message_by_message() {
    let flight = bytes(samples::OPENSSL12_SERVER_FLIGHT);
    let mut rest = &flight[..];
    let mut types = Vec::new();
    while !rest.is_empty() {
        let (msg_type, _, records, used) = complete(rest);
        assert_eq!(records, 1);
        types.push(msg_type);
        rest = &rest[used..];
    }
    assert_eq!(types, [2, 11, 12, 14]);
}

#[test]
fn first_of_several_messages_in_one_record() {
    let sh = ServerHelloBuilder::new().message();
    let cert = builder::handshake(11, &[0; 40]);
    let stream = builder::records(content_type::HANDSHAKE, &[sh.clone(), cert].concat(), 4096);
    let (msg_type, body, records, used) = complete(&stream);
    assert_eq!((msg_type, records, used), (2, 1, stream.len()));
    assert_eq!(body, sh[4..]);
}

#[test]
fn real_hello_retry_request_stream() {
    let rec = bytes(samples::OPENSSL_HRR_RETRY);
    let (msg_type, _, records, _) = complete(&rec);
    assert_eq!((msg_type, records), (2, 1));
}

#[test]
fn errors() {
    let alert = [21, 3, 3, 0, 2, 2, 70];
    assert_eq!(first_handshake_message(&alert), Err(TlsError::NotHandshake));
    assert_eq!(
        read_alert(&alert),
        Ok(Alert {
            level: 2,
            description: 70
        })
    );
    assert_eq!(read_alert(&alert[..4]), Err(TlsError::Truncated));
    assert_eq!(
        first_handshake_message(b"GET / HTTP/1.1\r\n"),
        Err(TlsError::NotHandshake)
    );
    // Another record type inside a fragmented message (RFC 8446 5.1).
    let message = ClientHelloBuilder::new().message();
    let first = builder::records(content_type::HANDSHAKE, &message[..10], 10);
    let ccs = [20, 3, 3, 0, 1, 1];
    assert_eq!(
        first_handshake_message(&[first, ccs.to_vec()].concat()),
        Err(TlsError::NotHandshake)
    );
    assert_eq!(
        first_handshake_message(&[22, 3, 1, 0, 0]),
        Err(TlsError::BadLength)
    );
    assert_eq!(
        first_handshake_message(&[22, 3, 1, 0x48, 0x01]),
        Err(TlsError::BadLength)
    );
    assert_eq!(need_more(&[]), None);
}

#[test]
fn message_size_cap() {
    // Refused as soon as the header announces too much, before the data.
    let header = [1, 0, 0x40, 0x00]; // 16384-byte body: 16388 with the header
    let stream = builder::records(content_type::HANDSHAKE, &header, 100);
    assert_eq!(first_handshake_message(&stream), Err(TlsError::BadLength));
    // Exactly at the cap, over two records.
    let body = vec![7u8; MAX_MESSAGE_LEN - 4];
    let message = builder::handshake(1, &body);
    let stream = builder::records(content_type::HANDSHAKE, &message, 10_000);
    let (_, got, records, _) = complete(&stream);
    assert_eq!((got.len(), records), (body.len(), 2));
}
