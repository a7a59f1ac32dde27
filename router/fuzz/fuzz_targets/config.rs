//! Any text as the main config: it loads or is refused naming the file, a key and a reason, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/nonexistent/switchyard.toml");
    if let Err(error) = switchyard::config::Config::parse(path, text) {
        assert!(!error.key.is_empty() && !error.reason.is_empty());
        assert_eq!(error.file, path);
    }
});
