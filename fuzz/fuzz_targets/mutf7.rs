//! Folder names as servers send them (modified UTF-7, RFC 3501 5.1.3): any input decodes or
//! is refused, and whatever decodes encodes back to a name that decodes to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::imap::mutf7::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(text) = decode(wire) {
        let again = encode(&text);
        assert_eq!(decode(&again).as_deref(), Ok(text.as_str()), "{wire:?} -> {again:?}");
    }
    // Every string has an encoding, and it decodes back.
    assert_eq!(decode(&encode(wire)).as_deref(), Ok(wire));
});
