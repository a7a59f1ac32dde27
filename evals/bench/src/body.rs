//! Request bodies for the benchmark scenarios: the README's example record and questions.

use std::io::Write;

use prost::Message;
use switchyard_proto::v1::RouteRequest;

/// Which path a request takes with the default policy.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Scenario {
    /// A record and no text: classified, then scored.
    Structured,
    /// A question with no record: classified, then answered by the LLM.
    Nl,
    /// A record and a "why" question: scored, then explained by the LLM.
    Hybrid,
}

/// `body` arguments.
#[derive(clap::Args)]
pub struct BodyArgs {
    /// The scenario.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Write the JSON the Python peer takes instead of a gRPC frame.
    #[arg(long)]
    json: bool,
}

/// The README's example customer (a month-to-month fibre customer, two months in).
pub fn record() -> serde_json::Value {
    serde_json::json!({
        "gender": "Female", "seniorcitizen": 0, "partner": "No", "dependents": "No", "tenure": 2,
        "phoneservice": "Yes", "multiplelines": "No", "internetservice": "Fiber optic", "onlinesecurity": "No",
        "onlinebackup": "No", "deviceprotection": "No", "techsupport": "No", "streamingtv": "Yes",
        "streamingmovies": "Yes", "contract": "Month-to-month", "paperlessbilling": "Yes",
        "paymentmethod": "Electronic check", "monthlycharges": 95.5, "totalcharges": 190.1
    })
}

/// The scenario's text and whether it carries the record.
pub fn parts(scenario: Scenario) -> (&'static str, bool) {
    match scenario {
        Scenario::Structured => ("", true),
        Scenario::Nl => ("what is the capital of france?", false),
        Scenario::Hybrid => ("why is this customer likely to leave?", true),
    }
}

/// The scenario's `RouteRequest`.
pub fn request(scenario: Scenario) -> Result<RouteRequest, String> {
    let (text, with_record) = parts(scenario);
    let features = match (with_record, record()) {
        (true, serde_json::Value::Object(object)) => Some(switchyard_proto::record::from_json(object)?),
        _ => None,
    };
    Ok(RouteRequest {
        text: text.to_owned(),
        features,
        temperature: Some(0.0),
        ..RouteRequest::default()
    })
}

pub(crate) fn write(args: &BodyArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let bytes = if args.json {
        let (text, with_record) = parts(args.scenario);
        serde_json::to_vec(&serde_json::json!({
            "text": text,
            "features": if with_record { record() } else { serde_json::Value::Null },
        }))?
    } else {
        let message = request(args.scenario)?.encode_to_vec();
        // gRPC length-prefixed message: not compressed, big-endian length.
        let mut frame = vec![0u8];
        frame.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
        frame.extend_from_slice(&message);
        frame
    };
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}
