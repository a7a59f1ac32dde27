//! `switchyard-evals`: `models` (the classifier and scorer through the production runtime, with a report) and
//! `gate` (the same numbers against `evals/gates.toml`; non-zero exit with a table of failed gates).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use classical::{Int8Products, OnnxRuntime};
use switchyard_evals::datasets::{Datasets, file_sha256};
use switchyard_evals::models::{ModelFiles, ModelsReport};
use switchyard_evals::{EvalError, cascade, e2e, gates, html, models, report, whatif};

/// Switchyard's evals.
#[derive(Debug, Parser)]
#[command(name = "switchyard-evals", version)]
struct Cli {
    /// The repository root (datasets, models and gates are found from it).
    #[arg(long, default_value = ".", global = true)]
    root: PathBuf,
    /// The request classifier to evaluate (default: the shipped one).
    #[arg(
        long,
        global = true,
        default_value = "classical/models/request-classifier/1.1.0/model.onnx"
    )]
    classifier: PathBuf,
    /// The gateway config: its `[models.cascade]` is the cascade `models` and `gate` measure, its backends and
    /// prices are the what-if's.
    #[arg(long, global = true, default_value = "deploy/config/switchyard.toml")]
    config: PathBuf,
    /// The churn scorer to evaluate (default: the shipped one).
    #[arg(
        long,
        global = true,
        default_value = "classical/models/churn-scorer/1.0.0/model.onnx"
    )]
    scorer: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs both models on their datasets; writes `models.json` and `models.md` into `--out`.
    Models {
        /// Where the report goes.
        #[arg(long, default_value = "evals/reports")]
        out: PathBuf,
    },
    /// Replays the labelled request set through two policy files offline; writes `whatif.md` and `whatif.json`.
    Whatif {
        /// The policy in force.
        #[arg(long)]
        baseline: PathBuf,
        /// The edited policy.
        #[arg(long)]
        candidate: PathBuf,
        /// Price per million prompt tokens for every backend, instead of the config's.
        #[arg(long)]
        input_price: Option<f64>,
        /// Price per million output tokens for every backend, instead of the config's.
        #[arg(long)]
        output_price: Option<f64>,
        /// Test customers sent without text.
        #[arg(long, default_value_t = 200)]
        record_only: usize,
        /// Where the report goes.
        #[arg(long, default_value = "evals/reports")]
        out: PathBuf,
    },
    /// Replays the labelled requests through a running gateway over gRPC; writes `e2e.md` and `e2e.json`.
    E2e {
        /// The gateway, `HOST:PORT`.
        #[arg(long)]
        addr: String,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Replay this many requests, spread over the whole set (default: all 5,907).
        #[arg(long)]
        limit: Option<usize>,
        /// `max_tokens` sent with each request, and the ceiling answers are checked against.
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// Each call's deadline, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        /// Where the report goes.
        #[arg(long, default_value = "evals/reports")]
        out: PathBuf,
    },
    /// Hybrid explanations through a running gateway, held to their scores (Telco test customers on both sides
    /// of the threshold, questions presuming the opposite or not, some streamed); writes `faithfulness.md` and
    /// `faithfulness.json` and checks the `[faithfulness]` gates.
    Faithfulness {
        /// The gateway, `HOST:PORT`.
        #[arg(long)]
        addr: String,
        /// Customers asked about.
        #[arg(long, default_value_t = 200)]
        records: usize,
        /// Every n-th case is streamed (0: none).
        #[arg(long, default_value_t = 5)]
        stream_every: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// The LLM model's name, for the report.
        #[arg(long, default_value = "smollm2")]
        model: String,
        /// Report file names: `<name>.md` and `<name>.json`.
        #[arg(long, default_value = "faithfulness")]
        name: String,
        /// The gates file.
        #[arg(long, default_value = "evals/gates.toml")]
        gates: PathBuf,
        /// Where the report goes.
        #[arg(long, default_value = "evals/reports")]
        out: PathBuf,
    },
    /// Runs both classifier tiers on every labelled request, chooses the cascade's bars by cross-validation and
    /// checks the served path; writes `cascade.md` and `cascade.json`.
    Cascade {
        /// The encoder (the cascade's second tier).
        #[arg(long, default_value = "classical/models/request-encoder/1.0.0/model.onnx")]
        encoder: PathBuf,
        /// Most requests that may escalate, in percent.
        #[arg(long, default_value_t = 20.0)]
        target_escalation: f64,
        /// Where the report goes.
        #[arg(long, default_value = "evals/reports")]
        out: PathBuf,
    },
    /// Runs both models and checks every gate; exits 1 when any fails.
    Gate {
        /// The gates file.
        #[arg(long, default_value = "evals/gates.toml")]
        gates: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("switchyard-evals: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, EvalError> {
    let files = ModelFiles {
        classifier: cli.root.join(&cli.classifier),
        scorer: cli.root.join(&cli.scorer),
    };
    let datasets = Datasets::open(&cli.root)?;
    let runtime = OnnxRuntime::from_env()?;
    if let Command::Whatif {
        baseline,
        candidate,
        input_price,
        output_price,
        record_only,
        out,
    } = &cli.command
    {
        let config = switchyard::config::Config::load(&cli.root.join(&cli.config))
            .map_err(|e| EvalError::Config(e.to_string()))?;
        let mut prices = config.prices.clone();
        for price in prices.values_mut() {
            price.input_per_mtok = input_price.unwrap_or(price.input_per_mtok);
            price.output_per_mtok = output_price.unwrap_or(price.output_per_mtok);
        }
        let mut classifier =
            classical::CascadeClassifier::load(&runtime, &files.classifier, config.models.pool.cascade.as_ref())?;
        let scorer = classical::ChurnScorer::load(&runtime, &files.scorer)?;
        let schema = &scorer.info().schema;
        let (baseline, candidate) = (cli.root.join(baseline), cli.root.join(candidate));
        let labels = classifier.linear().info().clone();
        let old = whatif::load_policy(&baseline, &config, &labels)?;
        let new = whatif::load_policy(&candidate, &config, &labels)?;
        let requests = switchyard_evals::requests::request_set(&datasets, schema, *record_only)?;
        let compared = whatif::compare(
            &mut classifier,
            schema,
            (&baseline, &old),
            (&candidate, &new),
            &prices,
            &requests,
        )?;
        let dir = cli.root.join(out);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::io(&dir, &e))?;
        let json = serde_json::to_string_pretty(&compared).map_err(|e| EvalError::Config(e.to_string()))?;
        let (json_path, md_path) = (dir.join("whatif.json"), dir.join("whatif.md"));
        std::fs::write(&json_path, json + "\n").map_err(|e| EvalError::io(&json_path, &e))?;
        std::fs::write(&md_path, whatif::markdown(&compared, &requests)).map_err(|e| EvalError::io(&md_path, &e))?;
        println!(
            "{} of {} requests change route; wrote {} and {}",
            compared.changed.len(),
            compared.requests,
            json_path.display(),
            md_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Faithfulness {
        addr,
        records: count,
        stream_every,
        concurrency,
        model,
        name,
        gates: gates_path,
        out,
    } = &cli.command
    {
        let config = switchyard::config::Config::load(&cli.root.join(&cli.config))
            .map_err(|e| EvalError::Config(e.to_string()))?;
        let explanations = switchyard_evals::faithfulness::policy_explanations(&config)?;
        let mut scorer = classical::ChurnScorer::load(&runtime, &files.scorer)?;
        let test = datasets.telco_test(&scorer.info().schema)?;
        let records: Vec<_> = test.into_iter().map(|r| r.record).collect();
        let scores = records
            .iter()
            .map(|r| scorer.score(r).map(|s| s.probability))
            .collect::<Result<Vec<f32>, _>>()?;
        let threshold = scorer.info().decision_threshold;
        let cases = switchyard_evals::faithfulness::cases(
            &records,
            &scores,
            (threshold, explanations.elevated_from),
            *count,
            *stream_every,
        );
        let options = switchyard_evals::faithfulness::Options {
            addr: addr.clone(),
            concurrency: *concurrency,
            timeout: std::time::Duration::from_secs(120),
            temperature: 0.0,
        };
        let runtime = tokio::runtime::Runtime::new().map_err(|e| EvalError::io(std::path::Path::new("tokio"), &e))?;
        let answers = runtime.block_on(switchyard_evals::faithfulness::run(
            &cases,
            &explanations,
            &options,
            progress_bar,
        ))?;
        eprintln!();
        let report = switchyard_evals::faithfulness::summarise(&answers, addr, model);
        let dir = cli.root.join(out);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::io(&dir, &e))?;
        let json = serde_json::json!({ "summary": report, "answers": answers });
        let (json_path, md_path) = (dir.join(format!("{name}.json")), dir.join(format!("{name}.md")));
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        std::fs::write(&json_path, text).map_err(|e| EvalError::io(&json_path, &e))?;
        let md = switchyard_evals::faithfulness::markdown(&report, &answers);
        std::fs::write(&md_path, &md).map_err(|e| EvalError::io(&md_path, &e))?;
        print!("{md}");
        let limits: std::collections::BTreeMap<String, f64> = gates::load(&cli.root.join(gates_path))?
            .into_iter()
            .filter(|(gate, _)| gate.starts_with("faithfulness."))
            .collect();
        let verdicts = gates::check(&limits, &switchyard_evals::faithfulness::measurements(&report))?;
        print!("\n{}", gates::table(&verdicts));
        return Ok(if verdicts.iter().all(|v| v.passed) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if let Command::E2e {
        addr,
        concurrency,
        limit,
        max_tokens,
        timeout_secs,
        out,
    } = &cli.command
    {
        let scorer = classical::ChurnScorer::load(&runtime, &files.scorer)?;
        let all = switchyard_evals::requests::request_set(&datasets, &scorer.info().schema, 200)?;
        let requests = switchyard_evals::requests::spread(&all, *limit);
        let config = switchyard::config::Config::load(&cli.root.join(&cli.config))
            .map_err(|e| EvalError::Config(e.to_string()))?;
        let options = e2e::Options {
            addr: addr.clone(),
            concurrency: *concurrency,
            max_tokens: *max_tokens,
            timeout: std::time::Duration::from_secs(*timeout_secs),
            explanations: switchyard_evals::faithfulness::policy_explanations(&config)?,
        };
        let runtime = tokio::runtime::Runtime::new().map_err(|e| EvalError::io(std::path::Path::new("tokio"), &e))?;
        let outcomes = runtime.block_on(e2e::run(&requests, &options, progress_bar))?;
        eprintln!();
        let summary = e2e::summarise(&outcomes, &options);
        let dir = cli.root.join(out);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::io(&dir, &e))?;
        let json = serde_json::json!({ "summary": summary, "outcomes": outcomes });
        let (json_path, md_path) = (dir.join("e2e.json"), dir.join("e2e.md"));
        let text = serde_json::to_string_pretty(&json).map_err(|e| EvalError::Config(e.to_string()))?;
        std::fs::write(&json_path, text + "\n").map_err(|e| EvalError::io(&json_path, &e))?;
        std::fs::write(&md_path, e2e::markdown(&summary)).map_err(|e| EvalError::io(&md_path, &e))?;
        print!("{}", e2e::markdown(&summary));
        println!("\nwrote {} and {}", json_path.display(), md_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Cascade {
        encoder,
        target_escalation,
        out,
    } = &cli.command
    {
        let encoder_path = cli.root.join(encoder);
        let prepared = prepare_cascade(&runtime, &files, &datasets, &encoder_path, Int8Products::Exact)?;
        let search = cascade::choose_bars(&prepared, *target_escalation);
        let bars = search.chosen;
        let config = classical::CascadeConfig {
            encoder: encoder_path.clone(),
            bars,
        };
        let mut served = classical::CascadeClassifier::load(&runtime, &files.classifier, Some(&config))?;
        let mut report = cascade::report(&prepared, bars, &mut served, Some(search))?;
        let native = prepare_native(&runtime, &files, &datasets, &encoder_path)?;
        report.kernels = Some(cascade::compare_kernels(&prepared, native.as_ref(), bars));
        let command = format!("switchyard-evals cascade --target-escalation {target_escalation}");
        let dir = cli.root.join(out);
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::io(&dir, &e))?;
        let json = serde_json::to_string_pretty(&report).map_err(|e| EvalError::Config(e.to_string()))?;
        let (json_path, md_path) = (dir.join("cascade.json"), dir.join("cascade.md"));
        std::fs::write(&json_path, json + "\n").map_err(|e| EvalError::io(&json_path, &e))?;
        let text = cascade::markdown(&report, &command);
        std::fs::write(&md_path, &text).map_err(|e| EvalError::io(&md_path, &e))?;
        print!("{text}");
        return Ok(ExitCode::from(u8::from(report.served_disagreements > 0)));
    }
    let mut evaluated = models::evaluate(&runtime, &files, &datasets)?;
    let config =
        switchyard::config::Config::load(&cli.root.join(&cli.config)).map_err(|e| EvalError::Config(e.to_string()))?;
    if let Some(cascade) = &config.models.pool.cascade {
        let prepared = prepare_cascade(&runtime, &files, &datasets, &cascade.encoder, Int8Products::Exact)?;
        let mut served = classical::CascadeClassifier::load(&runtime, &files.classifier, Some(cascade))?;
        let mut report = cascade::report(&prepared, cascade.bars, &mut served, None)?;
        // The gate judges what is served on this machine; the models report also measures the CPU's own kernel.
        if let Command::Models { .. } = cli.command {
            let native = prepare_native(&runtime, &files, &datasets, &cascade.encoder)?;
            report.kernels = Some(cascade::compare_kernels(&prepared, native.as_ref(), cascade.bars));
        }
        evaluated.cascade = Some(report);
    }
    match cli.command {
        Command::Whatif { .. } | Command::E2e { .. } | Command::Cascade { .. } | Command::Faithfulness { .. } => {
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { out } => {
            write_report(
                &cli.root.join(out),
                &evaluated,
                &provenance(&cli.root, &files, &datasets)?,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate { gates: path } => {
            // `[faithfulness]` is measured through a running gateway (`faithfulness`, evals/tests/faithfulness.rs).
            let limits = gates::load(&cli.root.join(path))?
                .into_iter()
                .filter(|(gate, _)| !gate.starts_with("faithfulness."))
                .collect();
            let verdicts = gates::check(&limits, &report::measurements(&evaluated))?;
            // The cascade's numbers are this machine's kernels' (the encoder is int8): name the machine.
            println!("measured on: {}\n", classical::kernels::machine_summary());
            print!("{}", gates::table(&verdicts));
            let failed: Vec<&str> = verdicts.iter().filter(|v| !v.passed).map(|v| v.gate.as_str()).collect();
            if failed.is_empty() {
                println!("all {} gates pass", verdicts.len());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("failed: {}", failed.join(", "));
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// Both classifier tiers (the linear model of `files`, the encoder at `encoder` with `products`) over every labelled
/// request.
fn prepare_cascade(
    runtime: &OnnxRuntime,
    files: &ModelFiles,
    datasets: &Datasets,
    encoder: &std::path::Path,
    products: Int8Products,
) -> Result<cascade::Prepared, EvalError> {
    let mut linear = classical::RequestClassifier::load(runtime, &files.classifier)?;
    let mut encoder = classical::RequestEncoder::load_with(runtime, encoder, products)?;
    cascade::prepare(
        &mut linear,
        &mut encoder,
        &datasets.clinc150_val()?,
        &datasets.record_phrasings()?,
    )
}

/// The same with this CPU's own int8 kernel, where it is not the served (exact) one.
fn prepare_native(
    runtime: &OnnxRuntime,
    files: &ModelFiles,
    datasets: &Datasets,
    encoder: &std::path::Path,
) -> Result<Option<cascade::Prepared>, EvalError> {
    if !classical::InstructionSets::detect().u8s8_saturates() {
        return Ok(None);
    }
    prepare_cascade(runtime, files, datasets, encoder, Int8Products::Native).map(Some)
}

/// A one-line progress bar on stderr.
fn progress_bar(done: usize, total: usize) {
    let width = 40;
    let filled = done * width / total.max(1);
    eprint!(
        "\r[{}{}] {done}/{total}",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
}

/// What the report was made from: model and dataset sha256s, the commit, the date.
fn provenance(
    root: &std::path::Path,
    files: &ModelFiles,
    datasets: &Datasets,
) -> Result<Vec<(String, String)>, EvalError> {
    let mut out = vec![
        (
            "classifier".to_owned(),
            format!(
                "{} sha256 {}",
                files.classifier.display(),
                file_sha256(&files.classifier)?
            ),
        ),
        (
            "scorer".to_owned(),
            format!("{} sha256 {}", files.scorer.display(), file_sha256(&files.scorer)?),
        ),
    ];
    for name in ["clinc150-val", "telco-test"] {
        let entry = datasets.entry(name)?;
        out.push((
            format!("dataset {name}"),
            format!(
                "{} ({}, {} rows, {}) sha256 {}",
                entry.path.display(),
                entry.split,
                entry.rows,
                entry.licence,
                entry.sha256
            ),
        ));
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // Every number below was computed on this machine's kernels (int8 and float): name it.
    out.push(("machine".to_owned(), classical::kernels::machine_summary()));
    out.push((
        "commit".to_owned(),
        git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    ));
    out.push((
        "date".to_owned(),
        git(&["log", "-1", "--format=%cI"]).map_or("unknown".into(), |d| format!("{d} (commit date)")),
    ));
    Ok(out)
}

fn write_report(
    dir: &std::path::Path,
    evaluated: &ModelsReport,
    provenance: &[(String, String)],
) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, &e))?;
    let json = serde_json::json!({
        "provenance": provenance.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "measurements": report::measurements(evaluated),
        "report": evaluated,
    });
    let json_path = dir.join("models.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| EvalError::Io {
        path: json_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&json_path, text + "\n").map_err(|e| EvalError::io(&json_path, &e))?;
    let md_path = dir.join("models.md");
    std::fs::write(&md_path, report::markdown(evaluated, provenance)).map_err(|e| EvalError::io(&md_path, &e))?;
    // The what-if and end-to-end runs of the same directory, when there are any, join the page.
    let whatif: Option<whatif::WhatIf> = std::fs::read_to_string(dir.join("whatif.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let e2e: Option<e2e::E2eReport> = std::fs::read_to_string(dir.join("e2e.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|json| serde_json::from_value(json["summary"].clone()).ok());
    let html_path = dir.join("report.html");
    let page = html::page(evaluated, provenance, whatif.as_ref(), e2e.as_ref());
    std::fs::write(&html_path, page).map_err(|e| EvalError::io(&html_path, &e))?;
    println!(
        "wrote {}, {} and {}",
        json_path.display(),
        md_path.display(),
        html_path.display()
    );
    Ok(())
}
