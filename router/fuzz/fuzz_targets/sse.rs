//! Any bytes from a backend, split at any point: the SSE parser yields events or one final error naming the
//! backend, never a panic, and nothing after an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else { return };
    let items = llm::fuzzing::sse(body, usize::from(cut).max(1));
    for (i, item) in items.iter().enumerate() {
        if let Err(error) = item {
            assert!(error.to_string().contains("fuzz"));
            assert_eq!(i, items.len() - 1);
        }
    }
});
