//! Server-sent events of a streamed chat completion → [`StreamEvent`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use crate::wire::Chunk;
use crate::{LlmError, StreamEvent, Usage};

/// Parses an SSE byte stream into stream events. Comments and keep-alives are skipped by the SSE parser;
/// `[DONE]` ends the stream; an `error` chunk becomes an error; transport errors pass through.
pub(crate) fn events<S, B>(
    bytes: S,
    backend: String,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static
where
    S: Stream<Item = Result<B, LlmError>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    let done = Arc::new(AtomicBool::new(false));
    let seen_done = done.clone();
    let ended_backend = backend.clone();
    // A stream that ends without `[DONE]` was cut off (connection closed mid-answer): an error, not an end.
    let cut_off = futures::stream::once(async move {
        if done.load(Ordering::SeqCst) {
            None
        } else {
            Some(Err(LlmError::Protocol {
                backend: ended_backend,
                detail: "stream ended before [DONE]".to_owned(),
            }))
        }
    })
    .filter_map(futures::future::ready);
    bytes
        .eventsource()
        .take_while(move |event| {
            let is_done = matches!(event, Ok(e) if e.data.trim() == "[DONE]");
            if is_done {
                seen_done.store(true, Ordering::SeqCst);
            }
            futures::future::ready(!is_done)
        })
        .flat_map(move |event| {
            let items: Vec<Result<StreamEvent, LlmError>> = match event {
                Ok(event) => parse(&event.data, &backend),
                Err(EventStreamError::Transport(error)) => vec![Err(error)],
                Err(EventStreamError::Utf8(e)) => {
                    vec![Err(LlmError::Protocol {
                        backend: backend.clone(),
                        detail: format!("stream is not UTF-8: {e}"),
                    })]
                }
                Err(EventStreamError::Parser(e)) => {
                    vec![Err(LlmError::Protocol {
                        backend: backend.clone(),
                        detail: format!("bad SSE: {e}"),
                    })]
                }
            };
            futures::stream::iter(items)
        })
        .chain(cut_off)
}

/// A backend's SSE bytes as the caller reads them: [`events`] under [`with_gap_limit`], so a stall times out and
/// the first error is the last item.
pub(crate) fn stream<S, B>(
    bytes: S,
    backend: String,
    gap: Duration,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static
where
    S: Stream<Item = Result<B, LlmError>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    with_gap_limit(events(bytes, backend.clone()), backend, gap)
}

/// Ends `events` with a `Timeout` when no event arrives for `gap` (a backend that stalls mid-answer), and ends
/// it after its first error (nothing after a failure is trusted).
pub(crate) fn with_gap_limit(
    events: impl Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static,
    backend: String,
    gap: Duration,
) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static {
    futures::stream::unfold(Some(Box::pin(events)), move |state| {
        let backend = backend.clone();
        async move {
            let mut events = state?;
            let item = match tokio::time::timeout(gap, events.next()).await {
                Ok(item) => item?,
                Err(_) => Err(LlmError::Timeout { backend, after: gap }),
            };
            let next = item.is_ok().then_some(events);
            Some((item, next))
        }
    })
}

fn parse(data: &str, backend: &str) -> Vec<Result<StreamEvent, LlmError>> {
    let chunk: Chunk = match serde_json::from_str(data) {
        Ok(chunk) => chunk,
        Err(e) => {
            return vec![Err(LlmError::Protocol {
                backend: backend.to_owned(),
                detail: format!("bad stream chunk ({e}): {}", data.chars().take(200).collect::<String>()),
            })];
        }
    };
    if let Some(error) = chunk.error {
        return vec![Err(LlmError::Protocol {
            backend: backend.to_owned(),
            detail: format!("error event: {error}"),
        })];
    }
    let mut events = Vec::new();
    for choice in chunk.choices {
        if let Some(text) = choice.delta.and_then(|d| d.content).filter(|t| !t.is_empty()) {
            events.push(Ok(StreamEvent::Delta(text)));
        }
        if let Some(finish_reason) = choice.finish_reason {
            events.push(Ok(StreamEvent::Finish {
                finish_reason,
                model: chunk.model.clone(),
                id: chunk.id.clone(),
            }));
        }
    }
    if let Some(usage) = chunk.usage {
        events.push(Ok(StreamEvent::Usage(Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        })));
    }
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    async fn collect(body: &'static str) -> Vec<Result<StreamEvent, LlmError>> {
        // Split into small pieces so events straddle chunk boundaries, as on a real connection.
        let pieces: Vec<Result<Vec<u8>, LlmError>> = body.as_bytes().chunks(7).map(|c| Ok(c.to_vec())).collect();
        events(futures::stream::iter(pieces), "local".to_owned())
            .collect()
            .await
    }

    #[tokio::test]
    async fn parses_deltas_finish_usage_and_stops_at_done() {
        let body = ": keep-alive\n\n\
            data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n\
            data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n\
            data: [DONE]\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"after done\"}}]}\n\n";
        let events: Vec<StreamEvent> = collect(body).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Hel".into()),
                StreamEvent::Delta("lo".into()),
                StreamEvent::Finish {
                    finish_reason: "stop".into(),
                    model: Some("m".into()),
                    id: Some("c1".into()),
                },
                StreamEvent::Usage(Usage {
                    input_tokens: 5,
                    output_tokens: 2
                }),
            ]
        );
    }

    #[tokio::test]
    async fn multi_line_data_and_crlf_line_ends_are_one_event() {
        let body = "data: {\"choices\":\r\ndata: [{\"delta\":{\"content\":\"ok\"}}]}\r\n\r\ndata: [DONE]\r\n\r\n";
        let events: Vec<StreamEvent> = collect(body).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(events, vec![StreamEvent::Delta("ok".into())]);
    }

    #[tokio::test]
    async fn a_stream_cut_off_before_done_ends_with_an_error() {
        let events = collect("data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n").await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Ok(StreamEvent::Delta("Hel".into())));
        assert!(
            events[1]
                .as_ref()
                .is_err_and(|e| e.to_string().contains("before [DONE]"))
        );
    }

    #[tokio::test]
    async fn malformed_and_error_chunks_become_protocol_errors_naming_the_backend() {
        let events = collect("data: {not json\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n").await;
        assert_eq!(events.len(), 2);
        for event in events {
            let error = event.expect_err("protocol error");
            assert!(matches!(error, LlmError::Protocol { .. }), "{error:?}");
            assert!(error.to_string().contains("local"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_gap_between_events_times_out_and_an_error_ends_the_stream() {
        let delta = || Ok(StreamEvent::Delta("x".into()));
        let stalled = futures::stream::iter(vec![delta(), delta()]).chain(futures::stream::pending());
        let events: Vec<_> = with_gap_limit(stalled, "local".into(), Duration::from_secs(5))
            .collect()
            .await;
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(matches!(&events[2], Err(LlmError::Timeout { after, .. }) if *after == Duration::from_secs(5)));

        let failing = futures::stream::iter(vec![
            delta(),
            Err(LlmError::TooLarge {
                backend: "local".into(),
                limit: 10,
            }),
            delta(),
        ]);
        let events: Vec<_> = with_gap_limit(failing, "local".into(), Duration::from_secs(5))
            .collect()
            .await;
        assert_eq!(events.len(), 2, "nothing after the first error: {events:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever bytes a backend sends, split however the network splits them, the stream as callers read it
        /// ([`stream`]) ends: every item is an event or an error naming the backend, and nothing follows an error.
        #[test]
        fn any_bytes_in_any_pieces_give_events_or_errors_and_then_stop(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            cut in 1usize..64,
            tail in proptest::sample::select(vec!["", "data: [DONE]\n\n", "data: {\"choices\":[]}\n\n"]),
        ) {
            let mut bytes = body;
            bytes.extend_from_slice(tail.as_bytes());
            let pieces: Vec<Result<Vec<u8>, LlmError>> = bytes.chunks(cut).map(|c| Ok(c.to_vec())).collect();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let gap = Duration::from_secs(60);
            let items: Vec<_> = runtime.block_on(stream(futures::stream::iter(pieces), "fuzz".to_owned(), gap).collect());
            for (i, item) in items.iter().enumerate() {
                if let Err(error) = item {
                    proptest::prop_assert!(error.to_string().contains("fuzz"), "{error}");
                    proptest::prop_assert_eq!(i, items.len() - 1, "an error ends the stream");
                }
            }
        }
    }
}
