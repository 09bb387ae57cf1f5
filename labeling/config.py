"""The Label Studio labeling config, generated from the taxonomy (change the taxonomy, the UI follows).

The reviewer sees the text, then:
  categories  multi-label choices, one per category with its definition as the hint, pre-filled with
              the model's greedy proposal (from the task's prediction)
  rank        a ranker over the K proposals the model made (best first)
  note        an optional free-text note
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from moderation.taxonomy import Taxonomy

TEXT = "text"
CATEGORIES = "categories"
PROPOSALS = "proposals"
RANK = "rank"
NOTE = "note"
CONTROL_NAMES = {CATEGORIES: "choices", RANK: "ranker", NOTE: "textarea"}


def proposal_id(index: int) -> str:
    return f"p{index + 1}"


def proposal_title(labels: tuple[int, ...], categories: list[str]) -> str:
    names = [c for c, y in zip(categories, labels) if y]
    return ", ".join(names) if names else "no category applies"


def labeling_config(taxonomy: Taxonomy) -> str:
    choices = "\n".join(
        f"      <Choice value={quoteattr(c.name)} hint={quoteattr(c.definition)}/>" for c in taxonomy.categories
    )
    return f"""<View>
  <Header value="Review this item"/>
  <Text name="{TEXT}" value="$text"/>
  <Header value="Which categories apply? (pre-filled with the model's proposal; clear all if none apply)"/>
  <Choices name="{CATEGORIES}" toName="{TEXT}" choice="multiple" showInline="true">
{choices}
  </Choices>
  <Header value="Rank the model's proposals, best first"/>
  <List name="{PROPOSALS}" value="${PROPOSALS}" title="Model proposals"/>
  <Ranker name="{RANK}" toName="{PROPOSALS}"/>
  <TextArea name="{NOTE}" toName="{TEXT}" placeholder="Optional note for the policy team" maxSubmissions="1" editable="true"/>
</View>
"""
