use monitor_common::record::ConnState;

use super::filter::*;
use crate::records::hub::WatchItem;

fn item(port: u16, client: &str, state: Option<&'static str>, sni: &[&str]) -> WatchItem {
    WatchItem {
        json: String::new(),
        line: String::new(),
        server_port: port,
        client_ip: client.parse().unwrap(),
        conn_state: state,
        sni: sni.iter().map(|s| s.to_string()).collect(),
    }
}

fn filter(request: WatchRequest) -> WatchFilter {
    WatchFilter::parse(&request).unwrap()
}

fn error(request: WatchRequest) -> String {
    WatchFilter::parse(&request).unwrap_err().to_string()
}

fn states(given: &[&str]) -> WatchRequest {
    WatchRequest {
        state: given.iter().map(|s| s.to_string()).collect(),
        ..WatchRequest::default()
    }
}

fn sni(pattern: &str) -> WatchRequest {
    WatchRequest {
        sni: Some(pattern.to_string()),
        ..WatchRequest::default()
    }
}

#[test]
fn no_filter_matches_every_record() {
    let all = filter(WatchRequest::default());
    assert!(all.matches(&item(443, "198.18.0.1", Some("SF"), &[])));
    assert!(all.matches(&item(1, "2001:2::1", None, &["a.test"])));
}

#[test]
fn port_is_the_server_port() {
    let f = filter(WatchRequest {
        port: Some(8080),
        ..WatchRequest::default()
    });
    assert!(f.matches(&item(8080, "198.18.0.1", Some("S1"), &[])));
    assert!(!f.matches(&item(8081, "198.18.0.1", Some("S1"), &[])));
    assert_eq!(
        error(WatchRequest {
            port: Some(0),
            ..WatchRequest::default()
        }),
        "--port 0: a server port is 1 to 65535"
    );
}

#[test]
fn states_ignore_case_and_may_be_repeated_or_comma_separated() {
    let f = filter(states(&["s1", "rej, RstOS0"]));
    for yes in ["S1", "REJ", "RSTOS0"] {
        assert!(f.matches(&item(80, "198.18.0.1", Some(yes), &[])), "{yes}");
    }
    for no in ["S0", "SF", "RSTO", "RSTR"] {
        assert!(!f.matches(&item(80, "198.18.0.1", Some(no), &[])), "{no}");
    }
    // A record without a state: a state filter leaves it out.
    assert!(!f.matches(&item(80, "198.18.0.1", None, &[])));
    // Every state the records have parses, and the same twice is once.
    for state in ConnState::ALL.map(ConnState::name) {
        let f = filter(states(&[state, &state.to_lowercase()]));
        assert!(f.matches(&item(80, "198.18.0.1", Some(state), &[])));
    }
}

#[test]
fn unknown_or_empty_states_are_refused() {
    assert_eq!(
        error(states(&["S1", "S2"])),
        "--state \"S2\": unknown connection state \
         (use S0, S1, SF, REJ, RSTO, RSTR or RSTOS0)"
    );
    // Zeek has it; the records never do.
    assert_eq!(
        error(states(&["oth"])),
        "--state \"oth\": unknown connection state \
         (use S0, S1, SF, REJ, RSTO, RSTR or RSTOS0)"
    );
    assert_eq!(
        error(states(&["S1,"])),
        "--state \"S1,\": an empty connection state"
    );
    assert_eq!(
        error(states(&[""])),
        "--state \"\": an empty connection state"
    );
}

#[test]
fn sni_exact_ignores_ascii_case() {
    let f = filter(sni("www.Example.test"));
    assert!(f.matches(&item(443, "198.18.0.1", Some("S1"), &["WWW.example.TEST"])));
    assert!(!f.matches(&item(443, "198.18.0.1", Some("S1"), &["example.test"])));
    assert!(!f.matches(&item(
        443,
        "198.18.0.1",
        Some("S1"),
        &["a.www.example.test"]
    )));
    // No SNI at all: no match.
    assert!(!f.matches(&item(443, "198.18.0.1", Some("S1"), &[])));
    // Any of the flow's SNIs will do (a HelloRetryRequest gives two hellos).
    assert!(f.matches(&item(
        443,
        "198.18.0.1",
        Some("S1"),
        &["other.test", "www.example.test"]
    )));
}

#[test]
fn sni_wildcard_is_a_suffix_of_at_least_one_label() {
    let f = filter(sni("*.example.test"));
    for yes in ["a.example.test", "a.b.example.test", "A.EXAMPLE.test"] {
        assert!(f.matches(&item(443, "198.18.0.1", None, &[yes])), "{yes}");
    }
    for no in ["example.test", "aexample.test", "example.test.evil", "é"] {
        assert!(!f.matches(&item(443, "198.18.0.1", None, &[no])), "{no}");
    }
}

#[test]
fn malformed_sni_patterns_are_refused() {
    for bad in [
        "",
        "*",
        "*.",
        "*example.test",
        "a.*.test",
        "www.exa*.test",
        "*.*.test",
        ".example.test",
        "*..example.test",
        "www example.test",
    ] {
        assert_eq!(
            error(sni(bad)),
            format!(
                "--sni {bad:?}: expected a host name (www.example.com) or a leading wildcard \
                 (*.example.com)"
            )
        );
    }
}

#[test]
fn client_is_a_prefix_or_an_address() {
    let client = |c: &str| WatchRequest {
        client: Some(c.to_string()),
        ..WatchRequest::default()
    };
    let f = filter(client("198.18.4.0/24"));
    assert!(f.matches(&item(80, "198.18.4.200", Some("S1"), &[])));
    assert!(f.matches(&item(80, "::ffff:198.18.4.200", Some("S1"), &[])));
    assert!(!f.matches(&item(80, "198.18.5.1", Some("S1"), &[])));
    let f = filter(client("2001:2::7"));
    assert!(f.matches(&item(80, "2001:2::7", Some("S1"), &[])));
    assert!(!f.matches(&item(80, "2001:2::8", Some("S1"), &[])));
    assert_eq!(
        error(client("198.18.4.1/24")),
        "--client: 198.18.4.1/24 has host bits set; the prefix is 198.18.4.0/24"
    );
    assert_eq!(
        error(client("nope")),
        "--client: \"nope\" is not an IP address or prefix (expected e.g. 198.18.0.0/24 or \
         2001:2::/48)"
    );
}

#[test]
fn every_filter_given_must_match() {
    let f = filter(WatchRequest {
        port: Some(443),
        state: vec!["SF".into()],
        sni: Some("*.example.test".into()),
        client: Some("198.18.0.0/16".into()),
        json: true,
    });
    assert!(f.matches(&item(443, "198.18.9.9", Some("SF"), &["a.example.test"])));
    assert!(!f.matches(&item(80, "198.18.9.9", Some("SF"), &["a.example.test"])));
    assert!(!f.matches(&item(443, "198.18.9.9", Some("S1"), &["a.example.test"])));
    assert!(!f.matches(&item(443, "198.18.9.9", Some("SF"), &["a.other.test"])));
    assert!(!f.matches(&item(443, "198.20.9.9", Some("SF"), &["a.example.test"])));
}

#[test]
fn the_request_travels_as_the_control_socket_expects() {
    use crate::mitigation::control::Request;
    let request = Request::Watch(WatchRequest {
        port: Some(8080),
        state: vec!["S1,SF".into()],
        sni: None,
        client: Some("198.18.0.0/16".into()),
        json: true,
    });
    let text = serde_json::to_string(&request).unwrap();
    assert_eq!(
        text,
        r#"{"op":"watch","port":8080,"state":["S1,SF"],"client":"198.18.0.0/16","json":true}"#
    );
    assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
    // Every filter may be left out.
    assert_eq!(
        serde_json::from_str::<Request>(r#"{"op":"watch"}"#).unwrap(),
        Request::Watch(WatchRequest::default())
    );
}
