//! The signaling decoder: every `/rtc` text frame from a client is parsed as a
//! `ClientMessage`. Any input must parse or be refused, never panic, and what parses must
//! encode again and parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rounds_proto::ClientMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = serde_json::from_slice::<ClientMessage>(data) {
        let again = serde_json::to_string(&message).expect("a parsed message encodes");
        let back: ClientMessage = serde_json::from_str(&again).expect("and parses again");
        assert_eq!(
            serde_json::to_string(&back).expect("encodes"),
            again,
            "round trip changed the message"
        );
    }
});
