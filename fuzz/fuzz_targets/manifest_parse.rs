//! Fuzz `Manifest::from_json` (and the embedded config of a manifest that
//! parses): a clean `Err` or a valid manifest, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use snn_formats::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz/manifest.json");
    if let Ok(m) = Manifest::from_json(path, text) {
        let _ = m.model(path);
    }
});
