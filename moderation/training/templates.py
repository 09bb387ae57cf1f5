"""Hand-written training templates for what the public sources barely show.

The sources hold almost no short first-person self-harm statements (the one self-harm source labels
whole Reddit histories per user), few plain threats aimed at "you", and few friendly or neutral sentences
about identity groups, negations or counter-speech. These templates fill those gaps with labels that are
true by construction. They are training data only (split "train", never validation or test), and the
behavioural suite that measures these capabilities (moderation/behavioural.py) uses other sentence
frames and other words: tests/test_behavioural.py checks that no suite case shares a five-word run with
any text generated here. Identity group names are shared between the two (there are only so many
groups); the frames around them are not.

Every template names the categories it speaks to; the rest stay unknown (masked in the loss).
"""

from __future__ import annotations

import random
import string

from moderation.training.data import Example

SOURCE = "training_templates"
LICENSE = "CC0 1.0 (written for this project)"

GROUPS = ("Muslims", "Jews", "Christians", "Black people", "Asian people", "immigrants", "refugees", "women",
          "gay men", "lesbians", "trans people", "disabled people", "Mexicans", "Arabs", "Hindus")
GROUP_SINGULAR = ("Muslim", "Jewish", "Black", "Asian", "gay", "trans", "disabled", "Latina", "Arab", "Hindu")

FAMILIES: dict[str, tuple[dict[str, float], list[str], dict[str, tuple[str, ...]]]] = {
    # name: (labels, frames, slots)
    "self_harm_first_person": (
        {"self_harm": 1.0, "toxic": 0.0, "hate": 0.0, "spam": 0.0, "misleading": 0.0},
        ["I {want} {end}.", "I {want} {end}, nothing will ever get better.", "Honestly I {want} {end} tonight.",
         "I've been {hurting} {when}.", "I keep {hurting}, nobody knows.",
         "I {took} {pills} and now I wait.", "Everyone would be better off if I {end2}.",
         "I wrote my goodbye letter, I plan to {end3} this weekend.", "There is no reason for me to {live} anymore."],
        {"want": ("want to", "have decided to", "really want to", "plan to"),
         "end": ("kill myself", "end it all", "stop living", "take my own life"),
         "hurting": ("burning myself", "hurting myself on purpose", "scratching my skin until it bleeds"),
         "when": ("every night", "for weeks now", "since Friday"),
         "took": ("swallowed", "have taken"), "pills": ("a whole bottle of pills", "every pill in the cabinet"),
         "end2": ("was dead", "just disappeared for good", "killed myself"),
         "end3": ("end my life", "kill myself", "jump off the bridge"), "live": ("live", "stay alive", "keep going")},
    ),
    "self_harm_talk_about": (
        {"self_harm": 0.0, "toxic": 0.0, "hate": 0.0, "violence": 0.0, "spam": 0.0},
        ["My {who} told me {they} {thinks}. How can I help?", "What should I say to a {who} who {thinks2}?",
         "The {report} says {stat} last year.", "{Novel} deals with a character who {thinks2}.",
         "If someone you know {thinks2}, call a crisis line and stay with them.",
         "Our {report} looks at how schools can prevent {topic}."],
        {"who": ("friend", "brother", "sister", "student", "coworker", "cousin"), "they": ("they", "she", "he"),
         "thinks": ("has been thinking about suicide", "self-harms", "wants to end their life"),
         "thinks2": ("talks about suicide", "is self-harming", "feels suicidal"),
         "report": ("new report", "health survey", "study", "article"),
         "stat": ("suicide rates among teenagers rose", "self-harm admissions fell", "crisis calls doubled"),
         "Novel": ("The novel", "This film", "The play"), "topic": ("self-harm", "youth suicide")},
    ),
    "threat_direct": (
        {"violence": 1.0, "toxic": 1.0, "self_harm": 0.0, "spam": 0.0, "misleading": 0.0},
        ["I {will} {hurt} you.", "I have your address and I {will} {hurt} you.", "{Watch}, I {will} {hurt} you.",
         "Say that again and I {will} {hurt} you.", "I'm coming to your {place} to {hurt} you.",
         "You'd better {hide}, because I {will} {hurt} you and your family."],
        {"will": ("swear I will", "promise I'll", "am going to"),
         "hurt": ("stab", "shoot", "beat", "break your legs and then hurt", "strangle"),
         "place": ("house", "office", "school"), "Watch": ("Watch your back", "Sleep with one eye open"),
         "hide": ("hide", "move", "run")},
    ),
    # Threats that never name the act: the sources have almost none, and 0.4.x passes 0 of the suite's 16.
    # Each comes with look-alikes that are not threats (the same "I know where" and "it would be a pity"
    # openings in everyday use), so that the model learns the menace, not the opening.
    "threat_veiled": (
        {"violence": 1.0, "self_harm": 0.0, "spam": 0.0, "misleading": 0.0, "sexual": 0.0},
        ["{Pity} if your {thing} got {damaged} one of these nights.", "We have been watching your {place}. {Closing}.",
         "I know what time you {routine}. Think about that.", "Accidents happen to people who {offend}.",
         "Your {relative} {moves} alone on {day}, right?", "Keep {offending} and see what happens to your {thing}.",
         "Remember that I know where your {relative} {stays}.", "Enjoy {time} while you still can.",
         "One of these days you will turn around and I will be standing there.",
         "People like you have a habit of {vanishing}."],
        {"Pity": ("It'd be a real pity", "Such a pity", "It would be unfortunate"),
         "thing": ("car", "shop", "dog", "front window", "garage"),
         "damaged": ("smashed up", "set alight", "wrecked", "poisoned"),
         "place": ("house", "kids' school", "office", "flat"),
         "Closing": ("Be seeing you", "We will pay a visit", "Not long now"),
         "routine": ("leave the gym", "lock up the shop", "get off the night bus"),
         "offend": ("run their mouths", "cross me", "snitch", "ask too many questions"),
         "relative": ("wife", "son", "daughter", "mum", "husband"),
         "moves": ("walks home", "jogs", "cycles back"), "day": ("Tuesdays", "weekday nights", "Fridays"),
         "offending": ("talking", "posting about me", "calling the police"),
         "stays": ("works", "parks", "sleeps"), "time": ("the weekend", "your last few days", "the summer"),
         "vanishing": ("disappearing", "going missing", "not coming home")},
    ),
    # A second set of veiled threats with other menaces (fire, falls, brakes, insurance, a list, a countdown):
    # 0.5.1 still passes 2 of the suite's 16 after training on the ten frames above, which it learned as
    # phrases. Same labels; look-alikes for each opening below.
    "threat_veiled_more": (
        {"violence": 1.0, "self_harm": 0.0, "spam": 0.0, "misleading": 0.0, "sexual": 0.0},
        ["Your {thing} looks very flammable. Just saying.", "Funny how fast a {place} can go up in flames.",
         "You should get your brakes checked. {Soon}", "I hope you have good life insurance, {insult_name}.",
         "Count your days, {insult_name}.", "Tick tock. Your time is {running}.", "Your name is on my list now.",
         "It's a long way down from your {high}. Think about it.", "Sweet dreams. Try not to wake up screaming.",
         "I've paid someone to {deal} you.", "Pray you never meet me in person.",
         "The last guy who {offended} me still can't walk.", "You'll be in the ground before {time}.",
         "They'll need dental records to identify you.", "Tell your {relative} to watch out on the way home tonight.",
         "We'll see how brave you are when nobody's around to help.", "Some friends of mine would love to meet you {where}.",
         "I wonder how well you swim with your hands tied.", "Next time you won't walk away from it."],
        {"thing": ("car", "shop", "shed", "van", "porch"), "place": ("house", "shop", "flat", "garage"),
         "Soon": ("Soon.", "Before it's too late.", "Every morning, from now on."),
         "insult_name": ("pal", "mate", "buddy", "sweetheart"), "running": ("running out", "almost up", "nearly over"),
         "high": ("balcony", "office window", "roof terrace"), "deal": ("deal with", "take care of", "sort out"),
         "offended": ("crossed", "lied to", "disrespected"), "time": ("Christmas", "the month is out", "spring"),
         "relative": ("wife", "son", "daughter", "mum", "husband", "girlfriend"),
         "where": ("in a dark car park", "behind the pub", "somewhere quiet")},
    ),
    "veiled_more_look_alikes": (
        {"violence": 0.0, "toxic": 0.0, "hate": 0.0, "self_harm": 0.0, "sexual": 0.0, "spam": 0.0},
        ["Count your blessings, {insult_name}.", "Tick tock, the {deadline} is on Friday!",
         "You should get your brakes checked before the long drive.", "Your name is on the guest list now.",
         "It's a long way down from the {summit}, so bring water.", "Sweet dreams, see you at breakfast.",
         "I've paid someone to {fix} the {thing}.", "Tell your {relative} I said happy birthday.",
         "Some friends of mine would love to meet you at the {event}.", "I hope you have good travel insurance for the trip.",
         "Funny how fast the {thing} sold at the auction.", "You'll be in the {team} before {time}, I'm sure of it."],
        {"insult_name": ("pal", "mate", "buddy", "sweetheart"), "deadline": ("deadline", "quiz", "bake-off"),
         "summit": ("summit", "viewpoint", "castle"), "fix": ("fix", "paint", "clean"),
         "thing": ("car", "shed", "van", "porch", "boiler"), "relative": ("wife", "son", "daughter", "mum", "husband"),
         "event": ("party", "book club", "barbecue"), "team": ("first team", "choir", "final"),
         "time": ("Christmas", "the month is out", "spring")},
    ),
    "veiled_look_alikes": (
        {"violence": 0.0, "toxic": 0.0, "hate": 0.0, "self_harm": 0.0, "sexual": 0.0, "spam": 0.0},
        ["{Pity} if your {thing} got {wet} in the storm tonight.", "I know what time you {routine}, shall we meet after?",
         "Remember that I know where your {relative} {stays}, so I can drop the parcel there.",
         "Enjoy {time}, you have earned the rest.", "Your {relative} {moves} on {day}, maybe we could join?",
         "People like you make this {place} a better place."],
        {"Pity": ("It'd be a real pity", "Such a pity", "It would be unfortunate"),
         "thing": ("tent", "washing", "bike", "garden furniture"), "wet": ("soaked", "ruined", "blown over"),
         "routine": ("leave the gym", "finish your shift", "get off the bus"),
         "relative": ("wife", "son", "daughter", "mum", "husband"), "stays": ("works", "lives", "parks"),
         "time": ("the weekend", "your holiday", "the summer"), "moves": ("runs", "swims", "cycles"),
         "day": ("Tuesdays", "Saturday mornings", "Fridays"), "place": ("street", "office", "club", "team")},
    ),
    "figurative_violence_words": (
        {"violence": 0.0, "toxic": 0.0, "hate": 0.0, "sexual": 0.0, "self_harm": 0.0, "spam": 0.0},
        ["What's the command to kill a {process} on {os}?", "The {band} really {killed} it {when}.",
         "I could {murder} a {food} right now.", "That {thing} {killed} me, I was crying laughing.",
         "We {beat} them {score} in the final.", "This {thing} is a {bomb}."],
        {"process": ("process", "zombie job", "background task", "stuck thread"), "os": ("Linux", "Windows", "a Mac"),
         "band": ("band", "drummer", "speaker", "singer"), "killed": ("killed", "slayed", "destroyed"),
         "when": ("on stage", "at the show", "at the festival"), "murder": ("murder", "destroy", "kill for"),
         "food": ("pizza", "burger", "coffee", "cold beer"), "thing": ("joke", "episode", "video", "meme"),
         "beat": ("beat", "crushed", "destroyed"), "score": ("3-0", "by ten points", "easily"),
         "bomb": ("bomb", "killer deal", "total knockout")},
    ),
    "identity_positive": (
        {"hate": 0.0, "toxic": 0.0, "violence": 0.0, "sexual": 0.0, "self_harm": 0.0, "spam": 0.0},
        ["{group} are {welcome} in this {place}.", "Many {group} live in our {place} and they are {nice}.",
         "I'm {single} and {proud2}.", "My {rel} is {single} and {nice2}.", "We {support} {group}."],
        {"group": GROUPS, "welcome": ("always welcome", "valued", "appreciated"), "proud2": ("happy", "thriving"),
         "place": ("town", "street", "building", "school"), "nice": ("wonderful neighbours", "great friends", "kind"),
         "single": GROUP_SINGULAR, "person": ("woman", "man", "person", "student", "nurse"),
         "rel": ("best friend", "neighbour", "boss", "teacher"), "nice2": ("the kindest person I know", "brilliant"),
         "support": ("stand with", "support", "celebrate")},
    ),
    "negated_and_counter_speech": (
        {"hate": 0.0, "toxic": 0.0, "violence": 0.0, "spam": 0.0},
        ["No, {group} are not {bad}.", "It is {wrong} to claim {group} are {bad}.",
         "People who call {group} {bad} are {wrong}.", "I will never agree that {group} are {bad}.",
         "Calling {group} {bad} is just {wrong}."],
        {"group": GROUPS, "bad": ("dangerous", "lazy", "stupid", "animals", "dirty", "violent"),
         "wrong": ("bigoted", "hateful", "ignorant", "prejudiced")},
    ),
    # 0.4.2 passes 10 of the suite's 20 first-person statements: the family above names the act in a few
    # fixed phrasings ("kill myself", "end it all"). People in crisis more often speak of plans, means,
    # goodbyes and a date, without naming the act; these say it that way (no wording shared with the suite).
    "self_harm_plans": (
        {"self_harm": 1.0, "hate": 0.0, "spam": 0.0, "misleading": 0.0, "sexual": 0.0},
        ["I've {stocked} {means} and tonight I use {them} on myself.", "I said my goodbyes today. After tonight I {gone}.",
         "Can't face another day of this, after work I'm going to {act}.",
         "Sat with {means} in my hands for an hour last night. Next time I won't stop.",
         "Looked up how many {tabs} it takes. I have more than enough.",
         "I don't see myself still being around by {when}.", "Been {injuring} again, my {body} is covered in marks.",
         "Gave my {stuff} away because I won't need {them} where I'm going.",
         "The plan is ready: {when}, {act2}, and then it stops hurting.", "Please don't try to stop me, I {gone}.",
         "I'm up on {act2} now. Ready to let go.", "I keep picturing myself stepping in front of a {vehicle}.",
         "Got {means} in my bag. This is the last day.", "Left letters for everyone on the kitchen table. {when} it ends.",
         "I've been counting out {tabs} all evening.", "Going to drown myself in {water} tonight."],
        {"stocked": ("saved up", "hidden", "collected", "got hold of"),
         "means": ("a box of sleeping tablets", "my dad's shotgun", "a razor blade", "a length of cord", "the car keys and a hosepipe"),
         "them": ("them", "it"), "gone": ("won't be anyone's problem", "will be gone", "won't exist anymore"),
         "act": ("drive off the cliff road", "walk into the sea", "step off the car park roof", "swallow every tablet I own"),
         "tabs": ("paracetamol", "sleeping tablets", "painkillers", "of my antidepressants"),
         "when": ("Christmas", "the end of the month", "my next birthday", "Sunday night"),
         "act2": ("the garage", "the cliffs", "the lake", "the top floor"),
         "injuring": ("burning my arms", "carving into my legs", "scratching myself raw", "hitting myself"),
         "body": ("arm", "thigh", "stomach", "wrist"), "stuff": ("guitar", "books", "cat", "savings", "games"),
         "vehicle": ("bus", "lorry", "tram"), "water": ("the river", "the lake", "the canal")},
    ),
    # Counter-speech and negation in more frames than the family above: reporting, condemning and
    # debunking a hateful claim, and first-person identity statements (0.4.2: counter-speech 0.62,
    # negated hate 0.67, benign identity mentions 0.81 on the suite).
    "counter_speech_reported": (
        {"hate": 0.0, "violence": 0.0, "sexual": 0.0, "spam": 0.0, "self_harm": 0.0},
        ["A guy at work keeps calling {group} {bad}. I told HR, that talk is not okay.",
         "My uncle shared a post calling {group} {bad}, so I unfriended him.",
         "Posters calling {group} {bad} went up downtown; the council {condemned} them.",
         "Don't believe anyone who calls {group} {bad}. It's {propaganda}.",
         "The old claim about {group} being {bad} has been debunked again and again.",
         "Being {single} does not make anyone {bad2}.", "There is nothing {bad2} about being {single}.",
         "{group} are just as {good} as anyone else.", "Stop spreading lies about {group} being {bad}."],
        {"group": GROUPS, "bad": ("vermin", "a disease", "dangerous", "rapists", "thieves", "terrorists", "stupid"),
         "condemned": ("condemned", "took down", "denounced"), "propaganda": ("propaganda", "a lie", "hate talking"),
         "single": GROUP_SINGULAR, "bad2": ("dangerous", "inferior", "wrong", "shameful", "less capable"),
         "good": ("honest", "kind", "hard-working", "smart", "peaceful")},
    ),
    "identity_first_person": (
        {"hate": 0.0, "toxic": 0.0, "violence": 0.0, "sexual": 0.0, "self_harm": 0.0, "spam": 0.0},
        ["As a {single} {person}, I {love}.", "I'm {single}, and my {rel} just {event}.",
         "Being {single} is part of who I am and I'm glad of it.", "Our {single} {group_place} {event2} this week."],
        {"single": GROUP_SINGULAR, "person": ("woman", "man", "teacher", "nurse", "student", "dad", "mum"),
         "love": ("love my job", "enjoy hiking with friends", "volunteer at the food bank", "coach a kids' team"),
         "rel": ("sister", "partner", "best friend", "daughter"), "event": ("got engaged", "started university", "won an award"),
         "group_place": ("student society", "choir", "book club", "youth group"),
         "event2": ("raised money for the hospital", "hosted a picnic", "welcomed new members")},
    ),
    # Spam of the kinds the two spam sources barely hold (SMS prize texts and YouTube "check my channel"):
    # money schemes, phishing, pills, dating, fake shops, follower sales, parcel fees. 0.5.1 passes 2 of the
    # suite's 10 spam cases. Each comes with everyday messages that share the surface (links, prices,
    # orders, accounts, deliveries) and are not spam.
    "spam_schemes": (
        {"spam": 1.0, "toxic": 0.0, "hate": 0.0, "violence": 0.0, "self_harm": 0.0},
        ["{Earn} {amount} {period} from your phone, no experience needed! {cta}",
         "Limited offer: {product} at {discount} off, today only! {cta}",
         "Your {account} password expires today. Log in at {domain} to keep access.",
         "We detected unusual activity on your {account}. Confirm your identity here: {domain}",
         "You are our lucky winner! Claim your {prize} before midnight at {domain}",
         "Lonely tonight? {n} girls near you are waiting to chat. {cta}",
         "Double your {coin} in 24 hours with our trading bot. {cta}",
         "Lose {kg} kg in {days} days with this one pill! {cta}", "Get {n}k followers instantly for just ${price}! {cta}",
         "Your parcel is held at customs. Pay the ${price} fee at {domain} to release it.",
         "Designer {product} replicas, cheapest prices, free worldwide shipping! {cta}",
         "Pre-approved loan of {amount}, no credit check!! {cta}"],
        {"Earn": ("Earn", "Make", "Pull in"), "amount": ("$3,000", "£800", "$10k", "€2500"),
         "period": ("every day", "per week", "a month"), "product": ("watches", "handbags", "sneakers", "perfume"),
         "discount": ("70%", "90%", "85%"), "account": ("PayPal", "Netflix", "Amazon", "Apple ID", "bank"),
         "domain": ("acc-secure-check.net", "verify-now-login.info", "tinyurl.com/xq71", "bestdealz.biz"),
         "prize": ("iPad", "£500 voucher", "PlayStation 5", "holiday for two"), "n": ("12", "38", "50"),
         "coin": ("crypto", "bitcoin", "savings", "ethereum"), "kg": ("10", "15", "20"), "days": ("7", "10", "14"),
         "price": ("1.99", "4.99", "9"), "cta": ("Visit {domain} now!", "WhatsApp me on +44 7700 900123",
                                                  "Tap the link below!!!", "Sign up free at {domain}",
                                                  "Offer ends tonight!!!", "Click my profile for the link")},
    ),
    "spam_look_alikes": (
        {"spam": 0.0, "toxic": 0.0, "hate": 0.0, "violence": 0.0, "self_harm": 0.0, "sexual": 0.0},
        ["The {product} I ordered arrived today, {discount} off in the sale and really nice.",
         "Here is the link to the shared notes for {meeting}: {domain}/notes",
         "Your appointment with Dr {name} is confirmed for {day} at 10:00.",
         "Your order has shipped and should arrive on {day}.", "Could I get the invoice for last month's {service}?",
         "I won the raffle at the school fair, a basket of {food}!", "Remember to renew your {account} before it runs out.",
         "My sister started selling her {craft} online, they look great.",
         "Lost {kg} kg since January by walking to work every day.", "The bank called about my card, so I rang them back on the number on the card."],
        {"product": ("coat", "kettle", "desk lamp", "rucksack"), "discount": ("20%", "a third", "half"),
         "meeting": ("Monday's meeting", "the workshop", "our project"), "domain": ("docs.example.org", "wiki.example.com"),
         "name": ("Patel", "Okafor", "Jones", "Nguyen"), "day": ("Tuesday", "Thursday", "the 14th"),
         "service": ("cleaning", "gardening", "tutoring"), "food": ("cheese", "chocolates", "fruit"),
         "account": ("library card", "bus pass", "parking permit"), "craft": ("candles", "mugs", "prints"),
         "kg": ("4", "6", "8")},
    ),
    # Well-known false claims that the suite does not use (it has vaccines-autism, 5G, bleach, moon landing,
    # flat earth, garlic, microchips, climate hoax), with true statements on the same topics. 0.5.1 passes
    # 6 of 8 misinformation cases; LIAR and CONSTRAINT are news and politics, not folk conspiracies.
    "misinformation_claims": (
        {"misleading": 1.0, "toxic": 0.0, "violence": 0.0, "self_harm": 0.0, "spam": 0.0},
        ["{Claim}, {tail}.", "Wake up: {claim}.", "{Claim}. Do your own research.", "They don't want you to know that {claim}."],
        {"Claim": ("Chemtrails are poisoning the water supply", "Fluoride in tap water is mind control",
                   "HIV does not cause AIDS", "Birds are government surveillance drones",
                   "Baking soda cures cancer in a week", "The Great Wall of China is visible from the Moon with the naked eye",
                   "Wind turbines cause cancer", "Measles is harmless and the vaccine is deadlier than the disease",
                   "Lemon juice shrinks tumours overnight", "Mobile phones cook your brain like a microwave"),
         "claim": ("chemtrails are poisoning the water supply", "fluoride in tap water is mind control",
                   "HIV does not cause AIDS", "birds are government surveillance drones",
                   "baking soda cures cancer in a week", "wind turbines cause cancer",
                   "measles is harmless and the vaccine is deadlier than the disease", "lemon juice shrinks tumours overnight"),
         "tail": ("and the doctors are paid to hide it", "the proof is everywhere", "share before they delete this",
                  "scientists have admitted it in private")},
    ),
    "true_statements": (
        {"misleading": 0.0, "toxic": 0.0, "hate": 0.0, "violence": 0.0, "self_harm": 0.0, "spam": 0.0},
        ["{Fact}.", "According to the {body}, {fact}.", "Good reminder: {fact}."],
        {"Fact": ("Fluoride in tap water helps prevent tooth decay", "HIV is the virus that causes AIDS",
                  "The measles vaccine prevents millions of deaths", "Contrails form when hot engine exhaust freezes",
                  "Wind turbines generate electricity from moving air", "Smoking raises the risk of lung cancer",
                  "Antibiotics do not work against viruses", "Sunscreen lowers the risk of skin cancer"),
         "fact": ("fluoride in tap water helps prevent tooth decay", "HIV is the virus that causes AIDS",
                  "the measles vaccine prevents millions of deaths", "antibiotics do not work against viruses",
                  "smoking raises the risk of lung cancer", "sunscreen lowers the risk of skin cancer"),
         "body": ("NHS", "CDC", "health ministry", "textbook")},
    ),
    "identity_hate": (
        {"hate": 1.0, "toxic": 1.0, "spam": 0.0, "self_harm": 0.0},
        ["{group} are {bad}.", "All {group} should be {fate}.", "I hate {group}, they are {bad}.",
         "{group} are {bad} and should be {fate}."],
        {"group": GROUPS, "bad": ("vermin", "subhuman", "a disease", "parasites", "animals"),
         "fate": ("deported", "locked up", "kicked out", "removed")},
    ),
}


# Everyday first-person diary sentences, joined 6 to 12 at a time into texts that are about nothing harmful.
# Why: the only long first-person texts in the sources are the self-harm Reddit histories, and a model
# trained for two epochs (the 0.5.0 candidate) learned "a long personal narrative" as self-harm: 300 everyday
# sentences scored self_harm 0.27-0.35 (review threshold 0.2), 0.02-0.03 under 0.4.2. None of these
# sentences is in the behavioural suite's benign filler (no shared five-word run, tests/test_behavioural.py).
NARRATIVE = (
    "Woke up early and made pancakes for everyone.", "Spent the morning sorting out the garden shed.",
    "Work was quiet, so I cleared my inbox for once.", "Called my mum on the way home and we talked for an hour.",
    "The dog dragged me round the park twice.", "I finally booked the dentist appointment I'd been putting off.",
    "Made a big pot of chilli and froze half of it.", "Watched two episodes of that baking show with my flatmate.",
    "The heating is playing up again, so the landlord is sending someone.", "Went for a swim before lunch.",
    "My nephew showed me his new skateboard tricks.", "Repotted the basil, which is finally growing again.",
    "Our team meeting ran long but we agreed on the plan.", "Bought new running shoes in the sale.",
    "The train was packed, so I stood with a podcast on.", "Helped my neighbour carry his new sofa upstairs.",
    "Cleaned the windows, which took far longer than it should have.", "I tried to learn three chords on the ukulele.",
    "We played board games until midnight and I lost every round.", "Picked up a parcel from the post office.",
    "The kids built a fort out of the sofa cushions.", "Had a long lunch with an old friend from college.",
    "Baked bread for the first time and it actually rose.", "Spent the evening answering emails about the holiday.",
    "My brother came round to borrow the drill.", "Took the bike in for a service.",
    "I sorted through a box of old photos from the attic.", "The rain stopped just in time for the walk.",
    "Finished the jigsaw puzzle we started at Christmas.", "I signed up for a pottery class on Thursdays.",
    "Got a haircut and the barber talked about football the whole time.", "We planted onions and carrots in the allotment.",
    "Made soup with the leftover vegetables.", "Fixed the wobbly leg on the kitchen table.",
    "Went to the cinema and the film was better than expected.", "My daughter read me a story she wrote at school.",
)


def everyday_narratives(n: int, rng: random.Random) -> list[str]:
    """n distinct texts of 6 to 12 diary sentences each (labels: no harm, not misleading, not spam)."""
    out: set[str] = set()
    while len(out) < n:
        out.add(" ".join(rng.sample(NARRATIVE, rng.randint(6, 12))))
    return sorted(out)


def _fill(frame: str, slots: dict[str, tuple[str, ...]], rng: random.Random) -> str:
    text = frame
    for _ in range(3):  # a filler may hold a slot of its own ("Visit {domain} now!")
        names = [n for _, n, _, _ in string.Formatter().parse(text) if n]
        if not names:
            break
        text = text.format(**{n: rng.choice(slots[n]) for n in names})
    return text[0].upper() + text[1:]


def training_templates(per_family: int = 300, seed: int = 0) -> list[Example]:
    """`per_family` distinct texts from each family, split "train", source "training_templates"."""
    from moderation.training.data import ALL_CATEGORIES

    rng = random.Random(seed)
    out = []
    for family, (labels, frames, slots) in FAMILIES.items():
        seen: set[str] = set()
        for _ in range(per_family * 50 + 1):  # small families run out of distinct texts before per_family
            if len(seen) >= per_family:
                break
            text = _fill(rng.choice(frames), slots, rng)
            if text in seen:
                continue
            seen.add(text)
            full = {c: labels.get(c) for c in ALL_CATEGORIES}
            out.append(Example(f"template:{family}:{len(seen)}", text, SOURCE, full, split="train", group=text))
    benign = {c: 0.0 for c in ALL_CATEGORIES}
    for i, text in enumerate(everyday_narratives(per_family, rng), 1):
        out.append(Example(f"template:everyday_narrative:{i}", text, SOURCE, dict(benign), split="train", group=text))
    return out
