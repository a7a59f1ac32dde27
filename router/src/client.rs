//! `switchyard route` and `switchyard explain`: a small client of a running gateway.

use switchyard_proto::v1 as pb;
use switchyard_proto::v1::router_client::RouterClient;

use crate::cli::ClientArgs;

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--features` is not a flat JSON object, or `--api-key` cannot be sent.
    #[error("{0}")]
    Features(String),
    /// No connection to the gateway.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The gateway answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
}

/// Sends `Route` and prints the answer.
pub async fn route(args: ClientArgs) -> Result<(), ClientError> {
    let mut client = connect(&args.addr).await?;
    let response = client.route(request(&args)?).await?.into_inner();
    println!("request_id: {}", response.request_id);
    if let Some(decision) = &response.decision {
        print_decision(decision);
    }
    if let Some(p) = &response.prediction {
        println!(
            "prediction: {} {} score {:.4} -> {} (threshold {:.2})",
            p.model, p.version, p.score, p.label, p.threshold
        );
    }
    if let Some(g) = &response.generation {
        println!(
            "generation: {} / {} ({}; {} in, {} out)\n{}",
            g.backend, g.model, g.finish_reason, g.input_tokens, g.output_tokens, g.text
        );
    }
    if let Some(e) = &response.explanation {
        let retry = if e.retry_verdict.is_empty() {
            String::new()
        } else {
            format!(", retry {}", e.retry_verdict)
        };
        println!(
            "explanation: {} (band {}; first answer {}{retry}; must name one of {})",
            e.source,
            e.band,
            e.first_verdict,
            e.top_fields.join(", ")
        );
    }
    if let Some(r) = &response.rejection {
        println!("rejected: {}", r.reason);
    }
    Ok(())
}

/// Sends `Explain` and prints the decision.
pub async fn explain(args: ClientArgs) -> Result<(), ClientError> {
    let mut client = connect(&args.addr).await?;
    let decision = client.explain(request(&args)?).await?.into_inner();
    print_decision(&decision);
    Ok(())
}

async fn connect(addr: &str) -> Result<RouterClient<tonic::transport::Channel>, ClientError> {
    RouterClient::connect(addr.to_owned())
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })
}

/// The request, with `authorization: Bearer <key>` when an API key is given.
fn request(args: &ClientArgs) -> Result<tonic::Request<pb::RouteRequest>, ClientError> {
    let features = match &args.features {
        None => None,
        Some(json) => {
            let object = serde_json::from_str(json).map_err(|e| ClientError::Features(format!("--features: {e}")))?;
            Some(
                switchyard_proto::record::from_json(object)
                    .map_err(|e| ClientError::Features(format!("--features: {e}")))?,
            )
        }
    };
    let mut request = tonic::Request::new(pb::RouteRequest {
        text: args.text.clone(),
        features,
        tenant: args.tenant.clone(),
        force_target: args.force_target.clone(),
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        ..Default::default()
    });
    if let Some(key) = &args.api_key {
        let value = format!("Bearer {}", key.expose())
            .parse()
            .map_err(|_| ClientError::Features("--api-key holds characters a header cannot carry".to_owned()))?;
        request.metadata_mut().insert(crate::auth::AUTHORIZATION, value);
    }
    Ok(request)
}

fn print_decision(d: &pb::RoutingDecision) {
    let kind = pb::TargetKind::try_from(d.target_kind)
        .map(|k| k.as_str_name())
        .unwrap_or("?");
    let classifier = d
        .classifier
        .as_ref()
        .map(|c| format!("{} {}", c.name, c.version))
        .unwrap_or_default();
    println!(
        "label: {} (group {}, confidence {:.3}) by {classifier}",
        d.label, d.label_group, d.confidence
    );
    for l in &d.top_labels {
        println!("  {:<28} {:<18} {:.3}", l.label, l.group, l.probability);
    }
    println!("margin: {:.3} (top two labels)", d.margin);
    println!("policy {}:", d.policy_version);
    for e in &d.evaluations {
        let verdict = if e.matched { "MATCH" } else { "no   " };
        println!("  {verdict} {:<24} [{}] {}", e.rule, e.scope, e.detail);
    }
    if d.evaluations.is_empty() {
        println!("  (no rule evaluated)");
    }
    if let Some(split) = &d.split {
        let arms: Vec<String> = split
            .arms
            .iter()
            .map(|a| format!("{} {}%", a.target, a.weight))
            .collect();
        println!(
            "split: by {} bucket {}/10000 over [{}] -> {}",
            split.sticky_by,
            split.bucket,
            arms.join(", "),
            split.chosen
        );
    }
    if let Some(shadow) = &d.shadow {
        let verdict = if shadow.mirrored { "mirrored" } else { "not mirrored" };
        println!(
            "shadow: {} at {}%: bucket {}/10000 -> {verdict}",
            shadow.target, shadow.percent, shadow.bucket
        );
    }
    println!("target: {} ({kind})", d.target);
    println!("reason: {}", d.reason);
}
