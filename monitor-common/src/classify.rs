//! TCP flag classes, the unit the per-packet counters are kept in.

/// TCP header flag bits (RFC 9293 section 3.1, plus ECE/CWR from RFC 3168).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

labelled_enum! {
    /// What a TCP segment does, judged from its flags and payload length.
    ///
    /// Every segment falls in exactly one class, in this order of precedence:
    /// a segment that is both a FIN and carries data counts as `Fin`, a RST
    /// with ACK counts as `Rst`.
    pub enum FlagClass: u32 {
        /// SYN without ACK: a connection attempt.
        Syn = 0 => "syn",
        /// SYN with ACK: the server's answer.
        SynAck = 1 => "syn_ack",
        /// Pure ACK: ACK set, no SYN/FIN/RST, no payload.
        Ack = 2 => "ack",
        /// FIN set (with or without ACK or payload).
        Fin = 3 => "fin",
        /// RST set (with or without ACK).
        Rst = 4 => "rst",
        /// ACK with payload, no SYN/FIN/RST: ordinary data.
        Data = 5 => "data",
        /// Combinations no conforming stack sends: SYN with FIN or RST, or
        /// neither SYN, FIN, RST nor ACK (a "null" segment).
        Invalid = 6 => "invalid",
    }
}

/// Classifies a segment by its flags byte and TCP payload length.
#[inline(always)]
pub const fn classify(flags: u8, payload_len: u32) -> FlagClass {
    use tcp_flags::{ACK, FIN, RST, SYN};
    if flags & SYN != 0 {
        if flags & (FIN | RST) != 0 {
            FlagClass::Invalid
        } else if flags & ACK != 0 {
            FlagClass::SynAck
        } else {
            FlagClass::Syn
        }
    } else if flags & RST != 0 {
        FlagClass::Rst
    } else if flags & FIN != 0 {
        FlagClass::Fin
    } else if flags & ACK != 0 {
        if payload_len == 0 {
            FlagClass::Ack
        } else {
            FlagClass::Data
        }
    } else {
        FlagClass::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_flags::*;
    use super::*;

    #[test]
    fn handshake_segments() {
        assert_eq!(classify(SYN, 0), FlagClass::Syn);
        assert_eq!(classify(SYN | ECE | CWR, 0), FlagClass::Syn);
        assert_eq!(classify(SYN | ACK, 0), FlagClass::SynAck);
        assert_eq!(classify(ACK, 0), FlagClass::Ack);
        // TCP Fast Open: SYN carrying data is still a SYN.
        assert_eq!(classify(SYN, 100), FlagClass::Syn);
    }

    #[test]
    fn data_and_termination() {
        assert_eq!(classify(ACK | PSH, 1), FlagClass::Data);
        assert_eq!(classify(ACK | PSH, 0), FlagClass::Ack);
        assert_eq!(classify(FIN | ACK, 0), FlagClass::Fin);
        assert_eq!(classify(FIN | ACK | PSH, 10), FlagClass::Fin);
        assert_eq!(classify(RST, 0), FlagClass::Rst);
        assert_eq!(classify(RST | ACK, 0), FlagClass::Rst);
        assert_eq!(classify(RST | FIN | ACK, 0), FlagClass::Rst);
    }

    #[test]
    fn invalid_combinations() {
        assert_eq!(classify(SYN | FIN, 0), FlagClass::Invalid);
        assert_eq!(classify(SYN | RST, 0), FlagClass::Invalid);
        assert_eq!(classify(0, 0), FlagClass::Invalid);
        assert_eq!(classify(PSH | URG, 0), FlagClass::Invalid);
    }

    #[test]
    fn every_flag_byte_has_exactly_one_class() {
        for flags in 0..=u8::MAX {
            for len in [0, 1] {
                let class = classify(flags, len);
                assert!(FlagClass::ALL.contains(&class));
            }
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in FlagClass::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
            for b in &FlagClass::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
