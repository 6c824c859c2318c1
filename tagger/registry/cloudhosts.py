"""The cloud registries' hosts: which provider a host names, what it tells (ECR's account
and region, Artifact Registry's location, ACR's registry), and whether a provider forced
with ``--provider`` can serve a host. Pure.

- ECR: ``<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]``
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/Registries.html);
- Artifact Registry: ``<location>-docker.pkg.dev``
  (https://cloud.google.com/artifact-registry/docs/docker/names);
- ACR: ``<name>.azurecr.io`` (and the sovereign clouds' ``azurecr.cn``, ``azurecr.us``)
  (https://learn.microsoft.com/en-us/azure/container-registry/container-registry-get-started-portal).

A forced provider serves its own hosts, or any host when its API base is given
(``IMGTAG_<PROVIDER>_API_URL``: a private endpoint, a proxy, the test bed's simulator);
anything else is a usage error before any request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from tagger.errors import UsageError

_ECR = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.amazonaws\.com(?:\.cn)?\Z"
)
#: Looks like ECR but names no region: refused rather than guessed.
_ECR_LIKE = re.compile(r"(?:^|\.)dkr\.ecr(?:-fips)?\.(?:[^.]*\.)?amazonaws\.com(?:\.cn)?\Z")
_GAR = re.compile(r"(?P<location>[a-z]+(?:-[a-z0-9]+)*)-docker\.pkg\.dev\Z")
_ACR = re.compile(r"(?P<name>[a-z0-9]{5,50})\.azurecr\.(?:io|cn|us)\Z")

CLOUD_PROVIDERS = ("ecr", "gar", "acr")


@dataclass(frozen=True, slots=True)
class EcrHost:
    account: str
    region: str


def ecr_host(host: str) -> EcrHost | None:
    """ECR's account and region from its registry host; ``None`` for any other host; a
    host that looks like ECR without a region is a usage error.

    >>> ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    EcrHost(account='123456789012', region='eu-west-1')
    >>> ecr_host("ghcr.io") is None
    True
    >>> ecr_host("123456789012.dkr.ecr.amazonaws.com")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: 123456789012.dkr.ecr.amazonaws.com looks like Amazon ECR but \
names no region (ECR hosts are ACCOUNT.dkr.ecr.REGION.amazonaws.com)
    """
    host = host.lower()
    m = _ECR.match(host)
    if m is not None:
        return EcrHost(m["account"], m["region"])
    if _ECR_LIKE.search(host):
        raise UsageError(
            f"{host} looks like Amazon ECR but names no region "
            "(ECR hosts are ACCOUNT.dkr.ecr.REGION.amazonaws.com)"
        )
    return None


def gar_location(host: str) -> str | None:
    """Artifact Registry's location from its host.

    >>> gar_location("europe-west4-docker.pkg.dev"), gar_location("us-docker.pkg.dev")
    ('europe-west4', 'us')
    >>> gar_location("gcr.io") is None
    True
    """
    m = _GAR.match(host.lower())
    return m["location"] if m else None


def acr_name(host: str) -> str | None:
    """ACR's registry name from its host.

    >>> acr_name("contoso.azurecr.io"), acr_name("ghcr.io")
    ('contoso', None)
    """
    m = _ACR.match(host.lower())
    return m["name"] if m else None


def provider_for_host(host: str) -> str | None:
    """The cloud provider a host names, or ``None``.

    >>> provider_for_host("123456789012.dkr.ecr.us-east-1.amazonaws.com")
    'ecr'
    >>> provider_for_host("us-central1-docker.pkg.dev"), provider_for_host("a1b2c.azurecr.io")
    ('gar', 'acr')
    >>> provider_for_host("registry.example") is None
    True
    """
    if ecr_host(host) is not None:
        return "ecr"
    if gar_location(host) is not None:
        return "gar"
    if acr_name(host) is not None:
        return "acr"
    return None


def api_variable(provider: str) -> str:
    """``IMGTAG_ECR_API_URL`` and the like: the override of a provider's API base."""
    return f"IMGTAG_{provider.upper()}_API_URL"


def check_forced(provider: str, host: str, env: Mapping[str, str]) -> None:
    """A usage error when ``provider`` was forced onto ``host`` and cannot serve it.

    >>> check_forced("ecr", "127.0.0.1:5000", {"IMGTAG_ECR_API_URL": "http://127.0.0.1:1"})
    >>> check_forced("acr", "ghcr.io", {})
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: the provider acr cannot serve ghcr.io: its hosts are \
NAME.azurecr.io (set IMGTAG_ACR_API_URL for another address of the same service)
    """
    if provider not in CLOUD_PROVIDERS:
        return
    if provider_for_host(host) == provider or env.get(api_variable(provider)):
        return
    hosts = {
        "ecr": "ACCOUNT.dkr.ecr.REGION.amazonaws.com",
        "gar": "LOCATION-docker.pkg.dev",
        "acr": "NAME.azurecr.io",
    }[provider]
    raise UsageError(
        f"the provider {provider} cannot serve {host}: its hosts are {hosts} (set "
        f"{api_variable(provider)} for another address of the same service)"
    )
