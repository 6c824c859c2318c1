"""The ``ecr`` provider: Amazon ECR through its own API, with AWS's library botocore. Does
I/O (network, and AWS's credential sources: environment, shared files, instance roles).

ECR answers the registry API's manifest DELETE with 405; its API (JSON protocol, SigV4)
lists and deletes. From the API reference
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/):

- ``DescribeRepositories`` (API_DescribeRepositories.html): ``imageTagMutability``
  ``MUTABLE`` or ``IMMUTABLE`` (``IMMUTABLE_WITH_EXCLUSION`` too): on an immutable
  repository build-push writes no claim or temporary tag (the registry's refusal of an
  existing tag is the guard);
- ``ListImages`` (API_ListImages.html): ``imageIds`` (digest and tag; one entry per tag,
  an untagged image without ``imageTag``), paged by ``nextToken``, ``maxResults`` at most
  1000;
- ``DescribeImages`` (API_DescribeImages.html): ``imageDetails`` with ``imageDigest``,
  ``imageTags``, ``imagePushedAt``; at most 100 ``imageIds`` a call;
- ``BatchDeleteImage`` (API_BatchDeleteImage.html): at most 100 ``imageIds`` a call; a
  digest deletes the image with all its tags; a tag removes that tag, and **removing the
  last tag of an image deletes the image**; what could not be deleted comes back in
  ``failures`` (``ImageNotFound``, ``ImageReferencedByManifestList``, ...), not as an error.

So deleting by tag goes through ``BatchDeleteImage`` only while the image keeps another
tag; the last tag is :class:`~tagger.errors.Unsupported` here, and prune's untag points it
at a unique placeholder first (``tagger.registry.markers.untag``), so the image an index
or another tag needs stays.

Region: the host's (``ACCOUNT.dkr.ecr.REGION.amazonaws.com``), else ``AWS_REGION``, else
``AWS_DEFAULT_REGION`` (botocore itself reads only the second). Credentials: botocore's
chain, as every AWS tool finds them; each key is registered for redaction when read and
never printed. ``IMGTAG_ECR_API_URL`` overrides the endpoint (plain HTTP on loopback only:
the test bed's simulator). Every botocore error becomes a typed error in :meth:`EcrApi.call`,
the one place.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    NotFound,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
    Unsupported,
    UsageError,
    register_secret,
)
from tagger.registry.cloudhosts import api_variable, ecr_host
from tagger.registry.http import RetryBudget, RetryPolicy, clean
from tagger.registry.immutable import refusal
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import check_base_url
from tagger.registry.reference import is_digest

MAX_BATCH = 100  # BatchDeleteImage and DescribeImages: at most 100 imageIds a call
LIST_PAGE = 1000  # ListImages: maxResults at most 1000
MAX_PAGES = 10_000
_CRED_HINT = (
    "give AWS credentials as every AWS tool finds them (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role; in GitHub Actions "
    "aws-actions/configure-aws-credentials) with ecr:DescribeRepositories, ecr:ListImages, "
    "ecr:DescribeImages and ecr:BatchDeleteImage"
)
_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
_REJECTED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    }
)
_THROTTLED = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})
_MISSING = frozenset({"RepositoryNotFoundException", "ImageNotFoundException"})


def batches(ids: Sequence[Any], size: int = MAX_BATCH) -> list[list[Any]]:
    """``ids`` in calls of at most ``size``.

    >>> [len(b) for b in batches(list(range(250)))]
    [100, 100, 50]
    >>> batches([])
    []
    """
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def region_of(host: str, env: Mapping[str, str]) -> str:
    """The region: the host's, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``.

    >>> region_of("123456789012.dkr.ecr.eu-north-1.amazonaws.com", {"AWS_REGION": "x-y-1"})
    'eu-north-1'
    >>> region_of("127.0.0.1:5000", {"AWS_DEFAULT_REGION": "us-east-2"})
    'us-east-2'
    >>> region_of("127.0.0.1:5000", {})
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: 127.0.0.1:5000 names no AWS region: set AWS_REGION (or \
AWS_DEFAULT_REGION) for the ecr provider
    """
    parsed = ecr_host(host)
    if parsed is not None:
        return parsed.region
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        raise UsageError(
            f"{host} names no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) for the "
            "ecr provider"
        )
    if not region.replace("-", "").isalnum() or len(region) > 40:
        raise UsageError(f"AWS_REGION {clean(region, 40)!r} is no AWS region name")
    return region


def check_env_credentials(env: Mapping[str, str]) -> None:
    """Keys in the environment must come as a pair of printable words; each is registered
    for redaction at once.

    >>> check_env_credentials({})
    >>> check_env_credentials({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0000000000"})
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY: set \
both, or neither (then AWS_PROFILE, the shared files or a role)
    """
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    for value in (secret, env.get("AWS_SESSION_TOKEN"), key):
        register_secret(value)
    if bool(key) != bool(secret):
        have, lack = (
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if key
            else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        )
        raise UsageError(
            f"{have} is set without {lack}: set both, or neither (then AWS_PROFILE, the "
            "shared files or a role)"
        )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = env.get(name)
        if value and (value != value.strip() or not value.isprintable() or " " in value):
            raise UsageError(f"{name} does not parse: it holds spaces or control characters")


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


class EcrApi:
    """ECR's API through one botocore client; :meth:`call` is the one place botocore's
    errors become typed ones."""

    def __init__(
        self,
        region: str,
        endpoint: str | None,
        budget: RetryBudget,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.region = region
        self._endpoint = endpoint
        self._budget = budget
        self._retry = budget.policy
        self._sleep = sleep
        self._client: Any = None
        self._lock = threading.Lock()

    def _make(self) -> Any:
        # Imported here only: imgtag next (and every other provider) never loads botocore.
        try:
            import botocore.config
            import botocore.exceptions
            import botocore.session
        except ImportError:
            raise UsageError(
                "the ecr provider needs botocore: pip install 'imgtag-release[ecr]'"
            ) from None
        try:
            session = botocore.session.Session()
            creds = session.get_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            # ProfileNotFound, ConfigParseError, PartialCredentialsError, ...
            raise UsageError(
                f"the AWS credentials do not parse ({type(exc).__name__}): {_CRED_HINT}"
            ) from None
        if creds is None:
            raise UsageError(f"no AWS credentials found for the ecr provider: {_CRED_HINT}")
        try:
            frozen = creds.get_frozen_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            raise UsageError(
                f"the AWS credentials could not be read ({type(exc).__name__}): {_CRED_HINT}"
            ) from None
        for value in (frozen.secret_key, frozen.token, frozen.access_key):
            register_secret(value)
        config = botocore.config.Config(
            region_name=self.region,
            connect_timeout=min(self._retry.timeout, 10.0),
            read_timeout=self._retry.timeout,
            # One attempt: imgtag retries itself, within the command's one retry budget.
            retries={"mode": "standard", "total_max_attempts": 1},
            user_agent_extra="imgtag",
        )
        return session.create_client(
            "ecr", region_name=self.region, endpoint_url=self._endpoint, config=config
        )

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def call(self, operation: str, doing: str, **params: Any) -> dict[str, Any]:
        """One API call, retried on throttling, 5xx and dropped connections within the
        command's retry budget; every failure as a typed error naming ``doing``."""
        for attempt in itertools.count(1):
            try:
                return self._call_once(operation, doing, params)
            except _Transient as exc:
                delay = self._retry.backoff_delay(attempt)
                if attempt >= self._retry.attempts or not self._budget.spend(delay):
                    raise exc.error from None
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _call_once(self, operation: str, doing: str, params: dict[str, Any]) -> dict[str, Any]:
        # The client first: without botocore, its maker says how to install it (exit 2).
        method = getattr(self.client, operation)
        import botocore.exceptions

        try:
            answer = method(**params)
        except botocore.exceptions.ClientError as exc:
            response = exc.response if isinstance(exc.response, dict) else {}
            error = response.get("Error") or {}
            code = str(error.get("Code") or "")
            message = clean(str(error.get("Message") or ""), 300)
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            typed = _typed(code, message, doing)
            if code in _THROTTLED or (isinstance(status, int) and status >= 500):
                raise _Transient(typed) from None
            raise typed from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        ) as exc:
            raise _Transient(
                RegistryUnreachable(
                    f"the ECR API did not answer while {doing} ({type(exc).__name__}): check "
                    "the region and the network"
                )
            ) from None
        except botocore.exceptions.NoCredentialsError:
            raise UsageError(
                f"no AWS credentials found for the ecr provider: {_CRED_HINT}"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise RegistryError(
                f"the ECR API failed while {doing} ({type(exc).__name__})"
            ) from None
        if not isinstance(answer, dict):
            raise RegistryError(f"the ECR API answered something unreadable while {doing}")
        return answer


class _Transient(Exception):
    """A failure worth another try; ``error`` is what it is when the tries run out."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _typed(code: str, message: str, doing: str) -> Exception:
    said = f"{code}: {message}" if message else code
    if code in _MISSING:
        return NotFound(f"the ECR API has no such thing while {doing} ({said})")
    if code in _DENIED:
        return AccessDenied(f"the ECR API denied access while {doing} ({said}): {_CRED_HINT}")
    if code in _REJECTED:
        return AuthenticationError(
            f"the ECR API rejected the credentials while {doing} ({said}): {_CRED_HINT}"
        )
    if code in _THROTTLED:
        return RateLimited(
            f"the ECR API is still throttling after retries while {doing} ({said}): try again later"
        )
    if code == "ImageTagAlreadyExistsException":
        return refusal(doing, said)
    return RegistryError(f"the ECR API refused while {doing} ({said})")


class EcrProvider:
    name = "ecr"

    def __init__(
        self, host: str, env: Mapping[str, str], budget: RetryBudget | None = None
    ) -> None:
        # Bad input is exit 2 before any request: the region, the keys' shape, the endpoint.
        self.host = host
        parsed = ecr_host(host)
        self.account = parsed.account if parsed else None
        self.region = region_of(host, env)
        check_env_credentials(env)
        variable = api_variable("ecr")
        endpoint = env.get(variable)
        self.endpoint = check_base_url(endpoint, variable) if endpoint else None
        self.api = EcrApi(
            self.region, self.endpoint, budget or RetryBudget(RetryPolicy.from_env(env))
        )
        self._lock = threading.Lock()
        self._repos: dict[str, dict[str, Any]] = {}
        self._failed: set[str] = set()

    def _ids(self, repository: str) -> dict[str, Any]:
        params: dict[str, Any] = {"repositoryName": repository}
        if self.account:
            params["registryId"] = self.account
        return params

    def _where(self, repository: str) -> str:
        return f"{self.host}/{repository}"

    def repository(self, repository: str) -> dict[str, Any]:
        """``DescribeRepositories`` of one repository (remembered for the run)."""
        with self._lock:
            if repository in self._repos:
                return self._repos[repository]
        doing = f"describing the ECR repository {self._where(repository)}"
        params = self._ids(repository)
        name = params.pop("repositoryName")
        try:
            answer = self.api.call("describe_repositories", doing, repositoryNames=[name], **params)
        except NotFound:
            raise RegistryError(
                f"ECR has no repository {self._where(repository)} in {self.region} for these "
                "credentials: check the name, the region and the account"
            ) from None
        repos = answer.get("repositories")
        found = repos[0] if isinstance(repos, list) and repos and isinstance(repos[0], dict) else {}
        with self._lock:
            self._repos[repository] = found
        return found

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        self.repository(repository)  # credentials that work, a repository that exists

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        try:
            self.repository(repository)
        except (UsageError, RegistryError) as exc:
            return str(exc)
        return None

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        try:
            mutability = str(self.repository(repository).get("imageTagMutability") or "")
        except (UsageError, AccessDenied, AuthenticationError):
            # No API credentials (a docker login alone), or too few rights: the push still
            # meets the registry's own refusal, and claims fall back (delete_refusal says why).
            return None
        if mutability.startswith("IMMUTABLE"):
            return (
                f"the ECR repository {self._where(repository)} keeps its tags immutable "
                f"(imageTagMutability {mutability})"
            )
        return None

    def image_ids(self, repository: str) -> list[dict[str, str]]:
        """Every ``imageId`` of ``ListImages``, to the last page."""
        doing = f"listing the images of {self._where(repository)}"
        out: list[dict[str, str]] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            params = {**self._ids(repository), "maxResults": LIST_PAGE}
            if token:
                params["nextToken"] = token
            answer = self.api.call("list_images", doing, **params)
            for item in answer.get("imageIds") or []:
                if isinstance(item, dict) and is_digest(str(item.get("imageDigest") or "")):
                    out.append(
                        {k: str(v) for k, v in item.items() if k in ("imageDigest", "imageTag")}
                    )
            nxt = answer.get("nextToken")
            token = nxt if isinstance(nxt, str) and nxt else None
            if token is None:
                return out
        raise RegistryError(f"the ECR API sent more than {MAX_PAGES} pages while {doing}")

    def describe(self, repository: str, ids: Sequence[dict[str, str]]) -> Iterator[dict[str, Any]]:
        """``DescribeImages`` of ``ids``, at most 100 a call."""
        doing = f"describing the images of {self._where(repository)}"
        for batch in batches(list(ids)):
            try:
                answer = self.api.call(
                    "describe_images", doing, **self._ids(repository), imageIds=batch
                )
            except NotFound:
                continue  # went meanwhile
            for detail in answer.get("imageDetails") or []:
                if isinstance(detail, dict) and is_digest(str(detail.get("imageDigest") or "")):
                    yield detail

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        """Every image, tagged or not (``ListImages``, then ``DescribeImages`` for when
        each was pushed)."""
        digests = sorted({i["imageDigest"] for i in self.image_ids(repository)})
        out = []
        for n, detail in enumerate(
            self.describe(repository, [{"imageDigest": d} for d in digests])
        ):
            tags = tuple(t for t in detail.get("imageTags") or () if isinstance(t, str))
            pushed = _when(detail.get("imagePushedAt"))
            out.append(Version(n, str(detail["imageDigest"]), tags, pushed, pushed))
        return out

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        if is_digest(ref):
            self._delete_one(repository, {"imageDigest": ref}, f"{self._where(repository)}@{ref}")
            return
        details = list(self.describe(repository, [{"imageTag": ref}]))
        if not details:
            raise NotFound(f"{self._where(repository)}:{ref} is gone already")
        others = [t for t in details[0].get("imageTags") or () if t != ref]
        if not others:
            # Removing an image's last tag deletes the image on ECR: not a tag alone.
            raise Unsupported(
                f"{ref} is the last tag of its image on ECR, and removing it would delete the image"
            )
        self._delete_one(repository, {"imageTag": ref}, f"{self._where(repository)}:{ref}")

    def _delete_one(self, repository: str, image_id: dict[str, str], where: str) -> None:
        failures = self.delete_images(repository, [image_id])
        if not failures:
            return
        code, reason = failures[0]
        if code == "ImageNotFound":
            raise NotFound(f"{where} is gone already")
        raise RegistryError(f"the ECR API did not delete {where}: {code} ({reason})")

    def delete_images(
        self, repository: str, ids: Sequence[dict[str, str]]
    ) -> list[tuple[str, str]]:
        """``BatchDeleteImage`` of ``ids``, at most 100 a call; the failures, as
        ``(failureCode, failureReason)``."""
        doing = f"deleting images of {self._where(repository)}"
        failures: list[tuple[str, str]] = []
        for batch in batches(list(ids)):
            answer = self.api.call(
                "batch_delete_image", doing, **self._ids(repository), imageIds=batch
            )
            for failure in answer.get("failures") or []:
                if isinstance(failure, dict):
                    failures.append(
                        (
                            clean(str(failure.get("failureCode") or "unknown"), 60),
                            clean(str(failure.get("failureReason") or ""), 200),
                        )
                    )
        return failures

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()
