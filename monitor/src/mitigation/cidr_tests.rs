use super::*;

#[test]
fn parses_prefixes_and_hosts() {
    let c: Cidr = "198.18.0.0/24".parse().unwrap();
    assert_eq!(c.to_string(), "198.18.0.0/24");
    let host: Cidr = "198.18.0.7".parse().unwrap();
    assert_eq!(host.to_string(), "198.18.0.7/32");
    let v6: Cidr = "2001:2::/48".parse().unwrap();
    assert_eq!(
        (v6.prefix_len(), v6.to_string().as_str()),
        (48, "2001:2::/48")
    );
    let v6host: Cidr = "2001:2::9".parse().unwrap();
    assert_eq!(v6host.prefix_len(), 128);
}

#[test]
fn rejects_what_is_not_a_prefix() {
    for bad in [
        "",
        "nope",
        "198.18.0.0/",
        "198.18.0.0/x",
        "198.18.0/24",
        "198.18.0.0/-1",
        "/24",
    ] {
        assert!(
            matches!(bad.parse::<Cidr>(), Err(CidrError::Syntax(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        "198.18.0.0/33".parse::<Cidr>(),
        Err(CidrError::Length {
            len: 33,
            family: "IPv4",
            max: 32
        })
    );
    assert!(matches!(
        "2001:2::/129".parse::<Cidr>(),
        Err(CidrError::Length { .. })
    ));
}

#[test]
fn host_bits_name_the_prefix_meant() {
    let err = "198.18.0.5/24".parse::<Cidr>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "198.18.0.5/24 has host bits set; the prefix is 198.18.0.0/24"
    );
}

#[test]
fn policy_keys_round_trip_and_map_ipv4() {
    let c: Cidr = "198.18.1.0/24".parse().unwrap();
    let key = c.policy_key();
    assert_eq!(key.prefix_len, 120);
    assert_eq!(key.addr[10..], [0xff, 0xff, 198, 18, 1, 0]);
    assert_eq!(Cidr::from_policy_key(&key), Some(c));
    let v6: Cidr = "2001:2:0:1::/64".parse().unwrap();
    assert_eq!(Cidr::from_policy_key(&v6.policy_key()), Some(v6));
}

#[test]
fn overlap_is_containment_either_way() {
    let p = |s: &str| s.parse::<Cidr>().unwrap();
    assert!(p("198.18.0.0/16").overlaps(&p("198.18.5.0/24")));
    assert!(p("198.18.5.0/24").overlaps(&p("198.18.0.0/16")));
    assert!(p("198.18.5.7").overlaps(&p("198.18.5.7/32")));
    assert!(!p("198.18.5.0/24").overlaps(&p("198.18.6.0/24")));
    // Families never overlap, even ::/0 and an IPv4 prefix.
    assert!(!p("0.0.0.0/0").overlaps(&p("2001:2::/48")));
    assert!(p("0.0.0.0/0").is_everything());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    for bad in [
        "",
        "0",
        "0s",
        "-5s",
        "10x",
        "1.5h",
        "m",
        "400d",
        "99999999999999999999d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_secs(42)), "42s");
    assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
}

#[test]
fn ipv6_prefixes_may_not_cover_the_mapped_ipv4_range() {
    assert!(matches!(
        "::/8".parse::<Cidr>(),
        Err(CidrError::CoversIpv4(_))
    ));
    let mapped: Cidr = "::ffff:198.18.0.0/120".parse().unwrap();
    assert_eq!(mapped.to_string(), "198.18.0.0/24");
}

#[test]
fn contains_addresses_of_the_prefix_only() {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let net: Cidr = "198.18.4.0/24".parse().unwrap();
    assert!(net.contains(ip("198.18.4.0")));
    assert!(net.contains(ip("198.18.4.255")));
    assert!(!net.contains(ip("198.18.5.0")));
    assert!(!net.contains(ip("198.18.3.255")));
    // An IPv4-mapped IPv6 address is its IPv4 address.
    assert!(net.contains(ip("::ffff:198.18.4.9")));
    assert!(!net.contains(ip("2001:2::1")));
    let everything: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(everything.contains(ip("203.0.113.1")));
    assert!(!everything.contains(ip("2001:2::1")));
    let v6: Cidr = "2001:2::/48".parse().unwrap();
    assert!(v6.contains(ip("2001:2:0:ffff::1")));
    assert!(!v6.contains(ip("2001:3::1")));
    assert!(!v6.contains(ip("198.18.4.9")));
    let host: Cidr = "198.18.4.7".parse().unwrap();
    assert!(host.contains(ip("198.18.4.7")));
    assert!(!host.contains(ip("198.18.4.8")));
}
