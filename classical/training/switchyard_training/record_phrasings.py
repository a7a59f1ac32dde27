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
    "score",
    "churn score for {who}",
    "what is the churn score of {who}",
    "give me the score for {who}",
    "run the scorer on {who}",
    "evaluate {who} with the churn scorer",
    "what score does {who} get",
    "score {who} for churn",
    # probability / likelihood / odds / chance / percentage
    "what's the churn probability for {who}?",
    "probability that {who} leaves",
    "churn probability please",
    "compute the cancellation probability of {who}",
    "what is the probability {who} cancels their plan",
    "how likely is {who} to churn",
    "how likely is it that {who} cancels",
    "how likely is {who} to cancel their plan",
    "calculate churn likelihood for {who}",
    "likelihood of {who} switching providers",
    "what's the likelihood {who} leaves",
    "what are the odds {who} cancels their plan",
    "odds of churn for {who}",
    "what are the odds that {who} leaves",
    "odds {who} drops the plan",
    "chance of churn for {who}?",
    "what's the chance {who} churns",
    "what is the chance {who} cancels their plan",
    "how probable is it that {who} drops our service",
    "what percentage chance is there that {who} leaves",
    "churn percentage for {who}",
    # risk as a number
    "give me the churn risk of {who}",
    "rate the churn risk of {who}",
    "risk score for {who}",
    "retention risk score for {who}",
    "retention score for {who}",
    "what is the retention risk score of {who}",
    "churn risk percentage for {who}",
    "how high is the churn risk for {who}",
    "what's the risk {who} leaves us",
    "estimate the attrition risk for {who}",
    "what is the attrition risk of {who}",
    "how risky is {who}, as a number",
    "what level of churn risk is {who}",
    "is {who} high or low churn risk",
    # predict / model / number
    "predict churn for {who}",
    "predict",
    "predict whether {who} will cancel their plan",
    "run a prediction on {who}",
    "get a churn prediction for {who}",
    "what's the prediction for {who}",
    "run the churn model on {who}",
    "does the model think {who} will leave",
    "what does the model say about {who}, yes or no",
    "what does the model predict for {who}",
    "need the churn number for {who}",
    "is {who} going to churn? just the number",
    "just the number for {who}",
    "give me a number for {who}",
    "will {who} churn? give me a probability",
    "assess the likelihood of {who} leaving, just the score",
    "forecast whether {who} leaves",
    # classify / flag / check / yes-no
    "classify {who} as churn or not",
    "flag {who} if they are a churn risk",
    "quick churn check on {who}",
    "check whether {who} is likely to churn",
    "check {who} for churn",
    "churn?",
    "will they churn?",
    "is {who} a churner",
    "is {who} going to leave, yes or no",
    "will {who} cancel their plan",
    "is {who} at risk of churning",
    "is {who} likely to leave",
]

EXPLAIN_TEMPLATES = [
    # why
    "why is {who} likely to leave?",
    "why might {who} churn",
    "why would {who} cancel their service",
    "why would {who} cancel their plan",
    "why does the model think {who} will leave",
    "why the high churn risk for {who}?",
    "why?",
    "why is the score so high for {who}",
    "why is {who} at risk",
    "why is {who} a churn risk",
    "why did {who} get this score",
    # explain / reasons / factors / drivers / makes
    "explain the churn risk of {who}",
    "explain why {who} is at risk",
    "explain this prediction",
    "can you explain the score for {who}",
    "explain what drives the churn risk of {who}",
    "what is driving {who} to leave",
    "what drives the churn risk of {who}",
    "what are the main risk factors for {who}",
    "which factors explain the churn score of {who}",
    "what factors make {who} likely to cancel their plan",
    "what are the drivers behind {who}'s churn risk",
    "walk me through the reasons {who} might leave",
    "what are the reasons {who} could cancel",
    "give me the reasons behind the churn risk of {who}",
    "what's behind {who}'s risk of cancelling",
    "what's behind the churn risk of {who}",
    "what makes {who} a churn risk",
    "what makes {who} likely to leave",
    "what makes the churn score of {who} so high",
    "what makes {who} risky",
    "describe what puts {who} at risk of leaving",
    "what puts {who} at risk of churning",
    "is there a reason {who} wants to quit",
    "help me understand why {who} could churn",
    "help me understand the churn risk of {who}",
    "i want to understand why {who} might leave",
    "i'd like to understand what is going on with {who}",
    "can you break down why {who} is at risk",
    "interpret the churn result for {who}",
    "interpret the score of {who}",
    "justify the churn prediction for {who}",
    "break down the churn risk of {who}",
    # what to do / keep / retain / save / prevent
    "what should we do to keep {who}",
    "what can we do so {who} stays",
    "what can we do?",
    "what should we do about {who}",
    "what do we do about the churn risk of {who}",
    "how can we retain {who}?",
    "how do we retain {who}",
    "give me advice on retaining {who}",
    "how do we prevent {who} from churning",
    "how can we stop {who} from cancelling their plan",
    "what steps reduce the chance {who} leaves",
    "what steps should we take with {who}",
    "what actions would reduce {who}'s churn risk",
    "what actions should we take to keep {who}",
    "what is the best way to save {who}",
    "how do we save {who}",
    "any ideas to keep {who} from switching providers",
    "what would make {who} more loyal",
    "how do we keep {who} on board",
    "how do we lower the churn risk of {who}",
    # advise / recommend / suggest / offer / plan / strategy
    "advise me on {who}",
    "what would you advise for {who}",
    "any advice for keeping {who}",
    "please advise on the churn risk of {who}",
    "advice on how to handle {who}",
    "recommend an action for {who}",
    "what do you recommend we offer {who}",
    "recommend a retention offer for {who}",
    "suggest a retention plan for {who}",
    "suggest how to win back {who}",
    "suggest next steps for {who}",
    "what offer would stop {who} from cancelling",
    "what offer should we make {who}",
    "should we offer {who} a discount? explain",
    "what changes to the plan would keep {who}",
    "how should the retention team approach {who}",
    "what should i tell {who} to keep them",
    "what should i say to {who} on the retention call",
    "talk me through {who}'s churn risk and what to do about it",
    "draft a retention strategy for {who}",
    "what retention strategy fits {who}",
    "plan a retention strategy for {who}",
    "write a retention plan for {who}",
    # explain cues after openers that also ask for numbers ("give me", "tell me", "show me", "what is")
    "give me the reasons why {who} might leave",
    "give me an explanation of {who}'s score",
    "give me retention advice for {who}",
    "give me a justification for the score of {who}",
    "tell me the reasons behind {who}'s churn risk",
    "tell me how to keep {who}",
    "tell me what to do about {who}",
    "show me what drives {who}'s risk",
    "show me why {who} might cancel",
    "what is the reason {who} might cancel",
    "what is the best retention action for {who}",
    "what are the reasons for the churn score of {who}",
    "list the reasons {who} could churn",
    "justify why {who} is flagged",
    "justify the score you gave {who}",
    "can you justify the risk level of {who}",
    "what is causing {who}'s churn risk",
    "what caused the high score for {who}",
    "how do we cut the churn risk of {who}",
    "how can we reduce the chance {who} leaves",
    "what would bring down {who}'s churn risk",
]

# Openers ask for a number or for reasons/actions; topics name the quantity and are shared by both labels, so
# the model learns that the opener, not words such as "chance" or "risk", decides. Every opener combines with
# every topic; held-out openers are held out with all their combinations.
SCORE_OPENERS = [
    "what is",
    "what's",
    "give me",
    "tell me",
    "estimate",
    "compute",
    "calculate",
    "predict",
    "show me",
    "get me",
    "rate",
    "how high is",
    "quantify",
    "report",
    "look up",
    "forecast",
    "i need",
    "just give me",
    "score",
    "what number do you put on",
    "put a number on",
    "assess",
    "measure",
    "return",
    "can you calculate",
    "please estimate",
    "what do you get for",
    "how big is",
]

EXPLAIN_OPENERS = [
    "explain",
    "explain why we see",
    "what drives",
    "what explains",
    "what is behind",
    "break down the reasons for",
    "help me understand",
    "i want to understand",
    "help me make sense of",
    "break down",
    "give me a breakdown of",
    "what can we do about",
    "how do we reduce",
    "how can we lower",
    "what steps reduce",
    "recommend actions to reduce",
    "suggest ways to lower",
    "advise on",
    "what should we do about",
    "interpret",
    "justify",
    "walk me through the causes of",
    "what factors drive",
    "give me the reasons for",
    "how do we bring down",
    "what would lower",
    "what offer would reduce",
    "what causes",
    "tell me why we see",
    "what actions cut",
    "why is there",
    "how should we respond to",
]

TOPICS = [
    "the chance {who} leaves",
    "{who}'s churn risk",
    "the churn probability of {who}",
    "the odds that {who} cancels",
    "the risk that {who} churns",
    "the likelihood of {who} leaving",
    "the churn score of {who}",
    "{who}'s risk of cancelling their plan",
]


def compose(openers: list[str]) -> list[str]:
    """Every opener with every topic, as templates."""
    return [f"{opener} {topic}" for opener in openers for topic in TOPICS]


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


# An independent evaluation set: whole requests written in one sitting, after the templates above and without
# looking at model output on them, in the voices of agents, analysts and managers (some with typos). They are never
# trained on; metrics.json reports routing accuracy on them separately from the held-out templates.
INDEPENDENT_SCORE = [
    "can u run the churn numbers on this one",
    "I just need to know if this account is a flight risk, yes/no is fine",
    "what would the model give this guy",
    "pls score",
    "risk level?",
    "how risky is this customer on a scale of 0 to 1",
    "give me this subscriber's propensity to cancel",
    "is this one likely to churn in your opinion, number please",
    "churn propensity for the attached",
    "quick number on this account's likelihood of leaving",
    "what are the chances we lose this customer",
    "rate this record",
    "evaluate churn likelihood",
    "compute a risk estimate for the record below",
    "How likely is it this customer walks away next quarter?",
    "tell me the probability this person terminates their contract",
    "put a probability on this customer cancelling",
    "is the attached customer going to leave us?",
    "churn likelihood score for the account attached",
    "run the model on the record",
    "what's the predicted churn",
    "assess this customer for churn risk",
    "give me a churn estimate",
    "percent chance of churn?",
    "do we expect this customer to churn",
    "model output for this customer please",
    "how big is the risk of losing them",
    "odds this one cancels",
    "predict whether the customer leaves",
    "what does the scorer say",
]

INDEPENDENT_EXPLAIN = [
    "why does the model flag this account",
    "what's going on with this customer, why would they leave",
    "help me figure out what to offer this customer so they stay",
    "walk me through what is making this one risky",
    "I'm calling this customer tomorrow, what should I say to keep them?",
    "what is the story behind this customer's churn risk",
    "which parts of the record push the risk up",
    "can you tell me the reasons this customer might cancel",
    "what would you do to save this account",
    "how can I convince this customer to stay",
    "any tips for retaining this one",
    "explain to me why this subscriber is at risk",
    "what levers do we have to keep this customer",
    "why is this customer unhappy, and what can we do",
    "what retention offer makes sense here",
    "give me talking points for a retention call with this customer",
    "what should the account manager do about this customer",
    "break it down for me: why is the risk high",
    "how do I stop this customer from switching to a competitor",
    "what's the explanation for this prediction",
    "what makes this customer want to leave",
    "suggest ways to win this customer back",
    "reasons for the churn risk?",
    "what could reduce the chance they cancel",
    "recommend next steps for this at-risk customer",
    "what plan change would keep them",
    "describe the drivers of this customer's churn",
    "why?? this customer has been with us for years",
    "advise the retention team on this account",
    "what's behind this score",
]

# A second independent set, written in session 2 before the corpus was widened and before any model output on it
# was seen. The first set's misses had been read while the corpus was being designed (session 1), so it is no
# longer independent of the corpus; this one is. Never trained on; reported separately in metrics.json.
INDEPENDENT_V2_SCORE = [
    "how likely is this subscriber to cancel within the year",
    "give me a yes or no: is this one leaving",
    "number only, churn probability",
    "what's the risk score here",
    "is this a high risk account",
    "estimate their probability of leaving",
    "can you score this customer for me",
    "what probability does the model assign to this customer leaving",
    "churn risk for the attached account, as a percentage",
    "are they likely to cancel",
    "what is the predicted probability of attrition",
    "quickly rate how likely this customer is to go",
    "score the customer in the attachment",
    "likelihood this account closes?",
    "would you say this customer will churn? give me the model's number",
    "what's this customer's attrition probability",
    "run churn scoring",
    "how much risk of cancellation does this account carry",
    "probability of churn next month for this client",
    "what's the risk this user drops us",
    "compute churn risk",
    "is this customer going to cancel? just tell me the probability",
    "prob of leaving?",
    "churn or no churn for this one",
    "how likely are we to lose this account",
    "grade this customer's churn risk",
    "what is the chance this household cancels service",
    "give me a churn risk estimate for this client",
    "assess cancellation likelihood",
    "model score for the attached customer",
]

INDEPENDENT_V2_EXPLAIN = [
    "why is this account considered high risk",
    "what is pushing this customer toward cancelling",
    "explain the main reasons behind this score",
    "which factors matter most for this customer's risk",
    "what should we offer to keep this subscriber",
    "how would you approach keeping this customer",
    "what can the retention team do here",
    "why would this household want to leave us",
    "give me the top reasons this account might cancel",
    "what's driving the risk on this one",
    "explain this customer's risk in plain words",
    "what would convince this subscriber to stay",
    "help me understand this score",
    "what is it about this account that makes it risky",
    "what changes could lower this customer's risk",
    "recommend a retention approach for this account",
    "why the churn flag on this customer",
    "how do we keep this one from leaving",
    "what are the warning signs in this record",
    "explain the prediction and suggest an action",
    "what should I propose on the call to keep them",
    "what's the reasoning behind the churn risk",
    "how can we make this customer happier so they stay",
    "which details of this account drive the prediction",
    "give me a retention plan for this one",
    "what went wrong with this customer",
    "what incentives might keep this customer",
    "why is the model worried about this account",
    "what's your read on why they'd churn, and what to do",
    "outline steps to retain this subscriber",
]
