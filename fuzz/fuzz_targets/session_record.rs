//! Session records as a store hands them back: a sealed envelope under a key ring, and
//! the JSON inside. A store dump or a corrupted record must never panic the gateway.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::crypto::KeyRing;
use tokengate::session::Session;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::new(&[[1u8; 32]]).expect("ring");
    let _ = ring.is_stale(data);
    if let Ok(plain) = ring.open(data, &[0u8; 32]) {
        let _ = serde_json::from_slice::<Session>(&plain);
    }
    if let Ok(record) = serde_json::from_slice::<Session>(data) {
        let _ = record.end(3600, 86_400);
        let _ = record.refresh_due(None);
        // What goes in comes back out.
        let sealed = ring.seal(data, &[0u8; 32]);
        assert_eq!(ring.open(&sealed, &[0u8; 32]).as_deref(), Ok(data));
    }
});
