"""The Label Studio labeling config, generated from the taxonomy (change the taxonomy, the UI follows).

Written for a reviewer who has never seen the project. Top to bottom they see:
  how to review  three numbered steps, always visible (the project instructions say the same at length)
  text           the item (HTML entities unescaped at push; the original kept in the task data), with
                 the words each flag rests on highlighted in its category's colour (the model's spans,
                 pre-annotated; reviewers can move, delete or add them)
  categories     one checkbox per category, its definition printed beside it (hover hints need a
                 Label Studio feature flag, so definitions are shown, not hinted); pre-ticked with the
                 model's most likely label set
  cannot judge   optional: categories the reviewer cannot judge for this text (a claim they cannot
                 check, slang they do not know); those are left out of training, never guessed
  proposals      the model's K label sets as cards in plain words ("The model's best guess — 71%"),
                 which the reviewer drags into order, best first
  note           an optional free-text note for the policy team
"""

from __future__ import annotations

from html import escape
from xml.sax.saxutils import quoteattr

from moderation.taxonomy import Taxonomy

TEXT = "text"
CATEGORIES = "categories"
PROPOSALS = "proposals"
RANK = "rank"
NOTE = "note"
UNSURE = "cannot_judge"
EVIDENCE = "evidence"
CONTROL_NAMES = {CATEGORIES: "choices", UNSURE: "choices", RANK: "ranker", NOTE: "textarea", EVIDENCE: "labels"}
SPAN_COLOURS = ("#ff8a80", "#ea80fc", "#ffd180", "#80d8ff", "#b9f6ca", "#ffff8d", "#cfd8dc")  # one per category, in order


def proposal_id(index: int) -> str:
    return f"card-{index + 1}"  # Label Studio prints the id on the card: a word a reviewer can read


def label_set_words(labels: tuple[int, ...], categories: list[str]) -> str:
    names = [c for c, y in zip(categories, labels) if y]
    return ", ".join(names) if names else "no category applies (acceptable content)"


def proposal_title(rank: int, labels: tuple[int, ...], categories: list[str]) -> str:
    """What a reviewer reads on a proposal card: rank 0 is the model's best guess."""
    lead = "The model's best guess" if rank == 0 else f"Alternative {rank}"
    return f"{lead}: {label_set_words(labels, categories)}"


def proposal_body(probability: float) -> str:
    pct = probability * 100
    shown = f"{pct:.0f}%" if pct >= 1 else ("under 1%" if pct >= 0.01 else "under 0.01%")
    return f"The model gives this label set a {shown} chance of being right."


STEPS = ("1. Read the text. Tick every category that applies and untick any that does not (the model's most "
         "likely answer is pre-ticked; untick all if the text is acceptable). If you cannot judge a category "
         "(a claim you cannot check, slang you do not know), mark it under 'Cannot judge' instead of guessing. "
         "Highlights show the words the model's flags rest on: delete a wrong one; to add one, pick its "
         "category under the text, then select the words.",
         "2. Drag the model's proposals below into order: the most correct label set on top.",
         "3. Optional: leave a note for the policy team (an unclear case, a missing category). Then Submit, or "
         "Skip if you cannot judge the text.")


def instructions_html(taxonomy: Taxonomy) -> str:
    """The project instructions (Label Studio shows them before the first task and under the (i) button)."""
    rows = "".join(f"<li><b>{escape(c.name)}</b>: {escape(c.definition)}</li>" for c in taxonomy.categories)
    steps = "".join(f"<li>{escape(s[3:])}</li>" for s in STEPS)
    return (f"<h3>Reviewing moderation decisions</h3><ol>{steps}</ol>"
            f"<p>Judge the text itself, not who might have written it. A text can have several categories or none. "
            f"Quoting hate in order to reject it, reporting on violence, and asking for help are not the harm itself.</p>"
            f"<h4>Categories</h4><ul>{rows}</ul>"
            f"<p>Highlights mark the words a flag rests on, in the category's colour: what the model read as the "
            f"insult, the slur, the threat. They are evidence, not the decision: a highlighted identity word alone "
            f"does not make a text hateful. Delete a wrong highlight and add a missing one; they are kept with your review.</p>"
            f"<p>Your answers train the model: a corrected category teaches it directly, and your ordering of the "
            f"proposals teaches it which mistakes matter more. A category marked 'Cannot judge' teaches it nothing "
            f"either way, which is better than a guess.</p>")


def labeling_config(taxonomy: Taxonomy) -> str:
    choices = "\n".join(
        f"      <Choice value={quoteattr(c.name)} html={quoteattr(f'<b>{escape(c.name)}</b> — {escape(c.definition)}')}/>"
        for c in taxonomy.categories
    )
    unsure = "\n".join(f"      <Choice value={quoteattr(c.name)}/>" for c in taxonomy.categories)
    labels = "\n".join(f"    <Label value={quoteattr(c.name)} background={quoteattr(SPAN_COLOURS[i % len(SPAN_COLOURS)])}/>"
                       for i, c in enumerate(taxonomy.categories))
    steps = "\n".join(f"    <Header size=\"6\" style=\"font-size: 14px; font-weight: normal; margin: 2px 0\" value={quoteattr(s)}/>"
                      for s in STEPS)
    return f"""<View>
  <View style="padding: 0 0.5em 0.5em; border-bottom: 1px solid #ddd; margin-bottom: 0.5em">
    <Header size="5" value="How to review"/>
{steps}
  </View>
  <Header size="5" value="Text"/>
  <View style="font-size: 1.1em; padding: 0.6em; background: #f6f6f6; border-radius: 4px">
    <Text name="{TEXT}" value="$text"/>
  </View>
  <Labels name="{EVIDENCE}" toName="{TEXT}" showInline="true">
{labels}
  </Labels>
  <Header size="5" value="Which categories apply?"/>
  <Choices name="{CATEGORIES}" toName="{TEXT}" choice="multiple" showInline="false">
{choices}
  </Choices>
  <Collapse>
    <Panel value="Cannot judge a category? (optional)">
      <Choices name="{UNSURE}" toName="{TEXT}" choice="multiple" showInline="true">
{unsure}
      </Choices>
    </Panel>
  </Collapse>
  <Header size="5" value="The model's proposals: drag the cards into order, most correct on top"/>
  <List name="{PROPOSALS}" value="${PROPOSALS}" title="Proposals"/>
  <Ranker name="{RANK}" toName="{PROPOSALS}"/>
  <TextArea name="{NOTE}" toName="{TEXT}" placeholder="Optional note for the policy team" maxSubmissions="1" editable="true"/>
</View>
"""
