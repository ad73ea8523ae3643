//! LAN advertisement codec: arbitrary text never panics, yields at most `MAX_TAGS`
//! tags, and whatever it yields re-encodes to text that decodes to the same tags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_net::lan;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tags = lan::decode(text);
    assert!(tags.len() <= lan::MAX_TAGS);
    if !tags.is_empty() {
        let hex: Vec<String> = tags
            .iter()
            .map(|t| t.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let again = format!("{}{}", lan::PREFIX, hex.join("."));
        assert_eq!(lan::decode(&again), tags);
    }
});
