"""Template families under trial, not in the shipped recipe: scripts/recipe_sweep.py appends the ones a recipe
names to templates.FAMILIES. They were written for candidate 0.5.3 (commit 2faf8e4), which trained all of
them at once and was refused by the gate on violence AUPRC; the GPU sweep asks which of them can ship.
A family that wins moves into templates.py; one that loses is deleted (it stays in git history).

Same rules as templates.py: none shares a five-word run with the behavioural suite (tests/test_behavioural.py).
"""

from __future__ import annotations

FAMILIES: dict[str, tuple[dict[str, float], list[str], dict[str, tuple[str, ...]]]] = {
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
}

# Six more first-person self-harm plans for the "self_harm_plans" family, and the slots they add.
SELF_HARM_FRAMES = [
    "I'm up on {act2} now. Ready to let go.", "I keep picturing myself stepping in front of a {vehicle}.",
    "Got {means} in my bag. This is the last day.", "Left letters for everyone on the kitchen table. {when} it ends.",
    "I've been counting out {tabs} all evening.", "Going to drown myself in {water} tonight.",
]
SELF_HARM_SLOTS = {"vehicle": ("bus", "lorry", "tram"), "water": ("the river", "the lake", "the canal")}
