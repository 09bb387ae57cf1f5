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
         "The plan is ready: {when}, {act2}, and then it stops hurting.", "Please don't try to stop me, I {gone}."],
        {"stocked": ("saved up", "hidden", "collected", "got hold of"),
         "means": ("a box of sleeping tablets", "my dad's shotgun", "a razor blade", "a length of cord", "the car keys and a hosepipe"),
         "them": ("them", "it"), "gone": ("won't be anyone's problem", "will be gone", "won't exist anymore"),
         "act": ("drive off the cliff road", "walk into the sea", "step off the car park roof", "swallow every tablet I own"),
         "tabs": ("paracetamol", "sleeping tablets", "painkillers", "of my antidepressants"),
         "when": ("Christmas", "the end of the month", "my next birthday", "Sunday night"),
         "act2": ("the garage", "the cliffs", "the lake", "the top floor"),
         "injuring": ("burning my arms", "carving into my legs", "scratching myself raw", "hitting myself"),
         "body": ("arm", "thigh", "stomach", "wrist"), "stuff": ("guitar", "books", "cat", "savings", "games")},
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
