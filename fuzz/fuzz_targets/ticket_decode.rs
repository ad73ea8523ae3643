//! Ticket codec: arbitrary bytes and strings never panic; whatever parses re-encodes
//! to the same bytes (binary) or the same canonical text (string form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_net::Ticket;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Ticket::from_bytes(data) {
        assert_eq!(t.to_bytes(), data);
        let again: Ticket = t.to_string().parse().expect("display parses");
        assert_eq!(again, t);
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(t) = s.parse::<Ticket>()
    {
        assert_eq!(t.to_string(), s.trim());
    }
});
