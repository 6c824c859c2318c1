"""Recognising a registry's "this tag is immutable here": the one place that reads the
answer, for every writer of a tag (build-push's push, its claims and aliases, promote).
Pure.

A registry that keeps tags immutable server-side refuses a push of an existing tag in its
own words, on the registry API (a manifest PUT) and so in the engine's push stream:

- ECR: ``ImageTagAlreadyExistsException`` from its API, and on the registry API
  ``TAG_INVALID`` with the same sentence, "The image tag '…' already exists in the '…'
  repository and cannot be overwritten because the repository is immutable."
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html);
- Harbor: 412 ``PRECONDITION``, "… configured as immutable …" (tag immutability rules);
- GitLab: its immutable tag rules, "… immutable …";
- Docker Hub: 403 for an immutable tag;
- Artifact Registry: a repository with ``dockerConfig.immutableTags``, "… immutable …".

:func:`immutable_words` tells whether a text is such an answer; :func:`refusal` makes the
:class:`~tagger.errors.ImmutableTag` (exit 3) that carries the registry's words;
:data:`REGISTRY_RULES` are the registry API's lines of the status table
(``tagger.registry.http``) that raise it.
"""

from __future__ import annotations

from tagger.errors import ImmutableTag
from tagger.registry.http import StatusRule, clean

#: What the registries above say, lower-cased; any one of them is enough.
_MARKS = ("immutable", "imagetagalreadyexistsexception")
#: Statuses a refusal of an immutable tag comes with (ECR/GAR 400, Docker Hub and GitLab
#: 403, a conflict 409, Harbor 412).
STATUSES = (400, 403, 409, 412)


def immutable_words(text: str) -> str | None:
    """The registry's words, cleaned, when ``text`` says the tag is immutable; else None.

    >>> immutable_words("tag invalid: The image tag '1.0.0-1' already exists in the 'app' "
    ...                 "repository and cannot be overwritten because the repository is "
    ...                 "immutable.")[:28]
    "tag invalid: The image tag '"
    >>> immutable_words("PRECONDITION: Failed to process request due to 'app:1' configured "
    ...                 "as immutable.") is not None
    True
    >>> immutable_words("manifest blob unknown") is None, immutable_words("") is None
    (True, True)
    """
    lowered = text.lower()
    if not any(mark in lowered for mark in _MARKS):
        return None
    return clean(text, 300)


def says_immutable(text: str) -> bool:
    return immutable_words(text) is not None


def refusal(where: str, words: str) -> ImmutableTag:
    """The exit-3 error for a write of ``where`` (``host/repo:tag``) that the registry
    refused as immutable, quoting ``words``.

    >>> str(refusal("r.io/app:1.0.0-1", "TAG_INVALID: … immutable"))
    'refused to publish r.io/app:1.0.0-1: the registry keeps its tags immutable and \
answered: TAG_INVALID: … immutable'
    """
    return ImmutableTag(
        f"refused to publish {where}: the registry keeps its tags immutable and answered: {words}"
    )


#: The registry API's status-table lines for these answers (first match wins).
REGISTRY_RULES = tuple(StatusRule(s, ImmutableTag, match=says_immutable) for s in STATUSES)
