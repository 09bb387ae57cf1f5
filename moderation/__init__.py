"""Content moderation trained with human feedback.

`from moderation import Moderator` is the inference API; it loads lazily so that importing the package
never pulls in torch.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Moderator":
        from moderation.runtime import Moderator

        return Moderator
    raise AttributeError(name)
