"""Phrasings of requests about an attached customer record, for the classifier's record labels.

Each template is one way of asking; `{who}` becomes a reference to the customer, built from a real Telco row
(`describe`). Evaluation holds out whole templates, so its score measures generalisation to unseen phrasings.
"""

from __future__ import annotations

import random

import pandas as pd

SCORE_LABEL = "churn_score"
EXPLAIN_LABEL = "churn_explain"

# Templates come in small families sharing a cue (score, odds, predict...; why, advise, retain...), several per
# family, so holding out one template still leaves its cue in training: the held-out score then measures
# generalisation to new wordings, not to cue words the corpus never had.
SCORE_TEMPLATES = [
    # score
    "score {who}",
    "score this record",
    "score the attached record",
    "churn score for {who}",
    "what is the churn score of {who}",
    "give me the score for {who}",
    "score",
    "run the scorer on {who}",
    "evaluate {who} with the churn scorer",
    # probability / likelihood / odds / chance
    "what's the churn probability for {who}?",
    "probability that {who} leaves",
    "churn probability please",
    "compute the cancellation probability of {who}",
    "how likely is {who} to churn",
    "how likely is it that {who} cancels",
    "calculate churn likelihood for {who}",
    "likelihood of {who} switching providers",
    "what are the odds {who} cancels their plan",
    "odds of churn for {who}",
    "chance of churn for {who}?",
    "what's the chance {who} churns",
    "how probable is it that {who} drops our service",
    # risk as a number
    "give me the churn risk of {who}",
    "rate the churn risk of {who}",
    "risk score for {who}",
    "retention risk score for {who}",
    "churn risk percentage for {who}",
    "how high is the churn risk for {who}",
    "what's the risk {who} leaves us",
    "estimate the attrition risk for {who}",
    "what is the attrition risk of {who}",
    # predict / model / number
    "predict churn for {who}",
    "predict",
    "run a prediction on {who}",
    "get a churn prediction for {who}",
    "run the churn model on {who}",
    "does the model think {who} will leave",
    "what does the model say about {who}, yes or no",
    "need the churn number for {who}",
    "is {who} going to churn? just the number",
    "just the number for {who}",
    "will {who} churn? give me a probability",
    "assess the likelihood of {who} leaving, just the score",
    # classify / flag / check
    "classify {who} as churn or not",
    "flag {who} if they are a churn risk",
    "quick churn check on {who}",
    "check whether {who} is likely to churn",
    "churn?",
    "will they churn?",
    "is {who} a churner",
]

EXPLAIN_TEMPLATES = [
    # why
    "why is {who} likely to leave?",
    "why might {who} churn",
    "why would {who} cancel their service",
    "why does the model think {who} will leave",
    "why the high churn risk for {who}?",
    "why?",
    "why is the score so high for {who}",
    # explain / reasons / factors / drivers
    "explain the churn risk of {who}",
    "explain why {who} is at risk",
    "explain this prediction",
    "can you explain the score for {who}",
    "what is driving {who} to leave",
    "what are the main risk factors for {who}",
    "which factors explain the churn score of {who}",
    "what are the drivers behind {who}'s churn risk",
    "walk me through the reasons {who} might leave",
    "what's behind {who}'s risk of cancelling",
    "what makes {who} a churn risk",
    "describe what puts {who} at risk of leaving",
    "is there a reason {who} wants to quit",
    "help me understand why {who} could churn",
    "interpret the churn result for {who}",
    "justify the churn prediction for {who}",
    # what to do / keep / retain / save / prevent
    "what should we do to keep {who}",
    "what can we do so {who} stays",
    "what can we do?",
    "what should we do about {who}",
    "how can we retain {who}?",
    "give me advice on retaining {who}",
    "how do we prevent {who} from churning",
    "what steps reduce the chance {who} leaves",
    "what actions would reduce {who}'s churn risk",
    "what is the best way to save {who}",
    "any ideas to keep {who} from switching providers",
    "what would make {who} more loyal",
    "how do we keep {who} on board",
    # advise / recommend / suggest / offer / plan
    "advise me on {who}",
    "what would you advise for {who}",
    "any advice for keeping {who}",
    "recommend an action for {who}",
    "what do you recommend we offer {who}",
    "suggest a retention plan for {who}",
    "suggest how to win back {who}",
    "what offer would stop {who} from cancelling",
    "should we offer {who} a discount? explain",
    "what changes to the plan would keep {who}",
    "how should the retention team approach {who}",
    "what should i tell {who} to keep them",
    "talk me through {who}'s churn risk and what to do about it",
    "draft a retention strategy for {who}",
]

WHO_PLAIN = [
    "this customer",
    "the customer",
    "this account",
    "this subscriber",
    "this client",
    "the attached customer",
    "this user",
    "them",
    "this person",
    "the record",
]


def describe(row: pd.Series, rng: random.Random) -> str:
    """A reference to the customer built from a real Telco row: an id, or a short description of the account."""
    options = [
        f"customer {row['customerid']}",
        f"account {row['customerid']}",
        f"the {row['contract'].lower()} customer",
        f"the customer with {row['tenure']} months of tenure",
        f"the {row['internetservice'].lower()} customer paying {row['monthlycharges']} a month",
        f"this {row['contract'].lower()} subscriber on {row['paymentmethod'].lower()}",
        f"the {'senior' if row['seniorcitizen'] == '1' else 'non-senior'} customer {row['customerid']}",
    ]
    return rng.choice(options)


def split_templates(templates: list[str], rng: random.Random, held_out_share: float) -> tuple[list[str], list[str]]:
    """Shuffle, then hold out whole templates for evaluation."""
    shuffled = templates[:]
    rng.shuffle(shuffled)
    cut = int(round(len(shuffled) * held_out_share))
    return shuffled[cut:], shuffled[:cut]


def generate(templates: list[str], rows: pd.DataFrame, count: int, rng: random.Random) -> list[str]:
    """`count` texts: each a template filled with a plain reference or one built from a random row."""
    texts = []
    for i in range(count):
        template = templates[i % len(templates)]
        if rng.random() < 0.5:
            who = rng.choice(WHO_PLAIN)
        else:
            who = describe(rows.iloc[rng.randrange(len(rows))], rng)
        text = template.format(who=who)
        texts.append(text.capitalize() if rng.random() < 0.3 else text)
    return texts
