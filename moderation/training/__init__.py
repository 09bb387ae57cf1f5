"""Everything that trains or measures a model: data loading, the torch policy, supervised training, the reward
model, RL, the loop, the registry, evaluation and export. Imports torch (most modules) and scikit-learn.

The inference package around it (`moderation`) never imports this one: docs/architecture.md.
"""
