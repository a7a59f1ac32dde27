#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn influence(feature: &str, delta: f32) -> Influence {
    Influence {
        feature: feature.into(),
        delta,
    }
}

fn names() -> FieldNames {
    [
        ("contract", vec!["contract"]),
        ("tenure", vec!["tenure", "months with"]),
        ("monthlycharges", vec!["monthly charges", "monthly bill"]),
        ("internetservice", vec!["internet service", "internet"]),
        ("paymentmethod", vec!["payment method"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect()
}

fn record() -> BTreeMap<String, FeatureValue> {
    [
        ("contract", FeatureValue::Text("Month-to-month".into())),
        ("tenure", FeatureValue::Number(3.0)),
        ("internetservice", FeatureValue::Text("Fiber optic".into())),
        ("paymentmethod", FeatureValue::Text("Electronic check".into())),
        ("monthlycharges", FeatureValue::Number(95.5)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn grounds(score: f32) -> Grounds {
    let influences = [
        influence("contract", 0.21),
        influence("tenure", 0.12),
        influence("internetservice", 0.08),
        influence("paymentmethod", 0.03),
    ];
    Grounds::new((score, 0.3, 0.5), &influences, 3, Some(&record()), &names())
}

#[test]
fn bands_split_at_the_threshold_and_its_fraction() {
    assert_eq!(Band::of(0.05, 0.3, 0.5), Band::Low);
    assert_eq!(Band::of(0.15, 0.3, 0.5), Band::Elevated);
    assert_eq!(Band::of(0.29, 0.3, 0.5), Band::Elevated);
    assert_eq!(Band::of(0.30, 0.3, 0.5), Band::High);
}

#[test]
fn direction_claims_are_held_to_the_band() {
    let low = grounds(0.09);
    let high = grounds(0.62);
    let elevated = grounds(0.22);
    let cases = [
        (
            &low,
            "This customer is likely to leave because of the contract.",
            Verdict::ContradictsBand,
        ),
        (
            &low,
            "They are at high risk: a month-to-month contract.",
            Verdict::ContradictsBand,
        ),
        (
            &low,
            "The customer is unlikely to leave: their contract keeps them.",
            Verdict::Faithful,
        ),
        (
            &low,
            "The contract makes them not very likely to churn.",
            Verdict::Faithful,
        ),
        (
            &low,
            "Their risk is low, mostly thanks to the contract.",
            Verdict::Faithful,
        ),
        (&low, "The contract means they are not at risk.", Verdict::Faithful),
        (
            &low,
            "Why will they leave? They will not: the contract holds them.",
            Verdict::Faithful,
        ),
        (&high, "A safe option: a longer contract.", Verdict::Faithful),
        (&high, "This customer is safe: the contract.", Verdict::ContradictsBand),
        (
            &high,
            "Their churn risk is low despite the contract.",
            Verdict::ContradictsBand,
        ),
        (
            &high,
            "A month-to-month contract makes them highly likely to leave.",
            Verdict::Faithful,
        ),
        (
            &high,
            "The contract puts them at risk; they are not safe.",
            Verdict::Faithful,
        ),
        (
            &high,
            "They are unlikely to leave given their tenure.",
            Verdict::ContradictsBand,
        ),
        (
            &elevated,
            "Their tenure puts them at some risk, but they are unlikely to leave.",
            Verdict::Faithful,
        ),
        (
            &elevated,
            "They are likely to leave because of the contract.",
            Verdict::ContradictsBand,
        ),
        (
            &elevated,
            "They are low risk thanks to the contract.",
            Verdict::ContradictsBand,
        ),
    ];
    for (grounds, text, verdict) in cases {
        assert_eq!(grounds.check(text), verdict, "{:?}: {text}", grounds.band);
    }
}

#[test]
fn stated_probabilities_must_be_the_score_or_the_threshold() {
    let low = grounds(0.13);
    let cases = [
        (
            "The probability of leaving is 0.13, low given the contract.",
            Verdict::Faithful,
        ),
        (
            "Their risk of leaving is as low as 0.13%, thanks to the contract.",
            Verdict::MisstatesProbability,
        ),
        (
            "There is a 13% chance they leave; the contract helps.",
            Verdict::Faithful,
        ),
        (
            "There is a 40% chance they leave; the contract helps.",
            Verdict::MisstatesProbability,
        ),
        (
            "The model flags customers at 0.30; the contract keeps this one below.",
            Verdict::Faithful,
        ),
        (
            "Offer a 10% discount on the contract to lower the risk by 10%.",
            Verdict::Faithful,
        ),
        (
            "Their tenure is 3 months and the contract is month-to-month.",
            Verdict::Faithful,
        ),
    ];
    for (text, verdict) in cases {
        assert_eq!(low.check(text), verdict, "{text}");
    }
}

#[test]
fn a_top_field_is_named_by_its_names_or_its_value() {
    let g = grounds(0.62);
    assert_eq!(
        g.check("The month-to-month plan drives it."),
        Verdict::Faithful,
        "the value names the field"
    );
    assert_eq!(g.check("Fiber optic customers leave more often."), Verdict::Faithful);
    assert_eq!(
        g.check("They have only been 3 months with us."),
        Verdict::Faithful,
        "a configured name"
    );
    assert_eq!(
        g.check("Their payment method is electronic check."),
        Verdict::NoTopField,
        "4th strongest"
    );
    assert_eq!(g.check("Offer them a discount."), Verdict::NoTopField);
    let ties = Grounds::new(
        (0.1, 0.3, 0.5),
        &[
            influence("contract", -0.05),
            influence("tenure", -0.03),
            influence("internetservice", -0.03),
            influence("paymentmethod", -0.03),
            influence("monthlycharges", 0.0),
        ],
        3,
        Some(&record()),
        &names(),
    );
    let fields: Vec<&str> = ties.top_fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        fields,
        ["contract", "tenure", "internetservice", "paymentmethod"],
        "ties with the third are top fields too; a field that moved nothing is not"
    );
    let typical = Grounds::new((0.1, 0.3, 0.5), &[influence("contract", 0.0)], 3, None, &names());
    assert!(
        typical.names_top_field("Nothing stands out."),
        "no field moved the score: nothing to name"
    );
}

#[test]
fn the_template_states_the_band_and_the_fields_and_passes_its_own_check() {
    for score in [0.05, 0.2, 0.3, 0.9] {
        let g = grounds(score);
        let text = g.template();
        assert_eq!(g.check(&text), Verdict::Faithful, "{text}");
        assert!(text.contains(&format!("{score:.2}")), "{text}");
    }
    let text = grounds(0.62).template();
    assert!(
        text.contains("the contract (Month-to-month) raises it by 0.21"),
        "{text}"
    );
    assert!(
        text.contains("high: the model flags customers at 0.30 or above"),
        "{text}"
    );
}

#[test]
fn a_stream_is_released_a_checked_sentence_at_a_time() {
    let mut gate = SentenceGate::new(grounds(0.09), PromptText::default());
    assert_eq!(gate.push("The risk is low (0.09"), GateStep::Release(String::new()));
    assert_eq!(
        gate.push(").\nThe contract"),
        GateStep::Release("The risk is low (0.09).\n".into())
    );
    assert_eq!(gate.push(" keeps them"), GateStep::Release(String::new()));
    assert_eq!(gate.finish(), Ok("The contract keeps them".into()));

    let mut gate = SentenceGate::new(grounds(0.09), PromptText::default());
    assert_eq!(
        gate.push("The contract matters. They are likely"),
        GateStep::Release("The contract matters.".into())
    );
    assert_eq!(gate.push(" to leave. Offer"), GateStep::Fail(Verdict::ContradictsBand));

    let mut gate = SentenceGate::new(grounds(0.09), PromptText::default());
    assert_eq!(
        gate.push("Offer a discount. "),
        GateStep::Release("Offer a discount.".into())
    );
    assert_eq!(
        gate.finish(),
        Err(Verdict::NoTopField),
        "the whole text names no top field"
    );
}

#[test]
fn a_sentence_copied_from_the_prompt_is_an_echo_but_the_opening_it_quotes_is_not() {
    let prompt = PromptText::new(
        "Question about a customer: Why will this customer leave?\nIn two sentences, explain the risk with the main \
         factors, then suggest one retention action.\nYour answer must begin: \"The risk of leaving is high, mainly \
         because of the contract (Month-to-month)\".",
    );
    let g = grounds(0.62);
    let echo = "In two sentences, explain the risk with the main factors. The contract matters.";
    assert_eq!(g.check_answer(echo, &prompt), Verdict::EchoesPrompt);
    let opening = "The risk of leaving is high, mainly because of the contract (Month-to-month). Offer a discount.";
    assert_eq!(
        g.check_answer(opening, &prompt),
        Verdict::Faithful,
        "the quoted opening is what was asked for"
    );
    assert_eq!(
        g.check_answer("Why will this customer leave? The contract.", &prompt),
        Verdict::Faithful,
        "short"
    );
    assert_eq!(
        g.check(echo),
        Verdict::Faithful,
        "without the prompt there is nothing to echo"
    );
    let retry = PromptText::new(
        "Main factors: contract (Month-to-month) raises it.\nBegin your answer with exactly this sentence: \"The \
         churn model rates this customer's risk of leaving as high (0.62).\" Then suggest one retention action.",
    );
    // Cut off by the token limit right after the quote: the sentence outside it is the prompt's.
    let copied = "Begin your answer with exactly this sentence: \"The churn model rates it as high (0.62).\" Then";
    assert_eq!(
        g.check_answer(copied, &retry),
        Verdict::EchoesPrompt,
        "quoted parts aside, a copy"
    );
}
