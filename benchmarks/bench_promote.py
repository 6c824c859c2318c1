"""Benchmark ``imgtag promote`` against ``skopeo copy --all`` in the same run.

Target (the contract's performance table): a 256 MB image in four layers copied to another
repository of the same registry <= 0.5x ``skopeo copy --all`` with no layer byte uploaded
(counted at a fault proxy: every blob mounted), and across registries <= 1.1x. The claim's
settle time must overlap the copy, not add to it.

What it does:

1. Starts the test bed (``tests/testbed.py``): Distribution registries on 127.0.0.1.
2. Seeds ``bench/src:1.0.0-1`` in the plain registry: an OCI image of four layers of
   ``--layer-mb`` (64) random MB each and its config.
3. Rounds (``--rounds``, 3), contenders interleaved, each into a fresh repository:
   - same registry: ``imgtag promote`` and ``skopeo copy --all`` plain → plain;
   - across registries: plain → the basic-auth registry, both with its credentials.
   skopeo runs as an unprivileged user with a fresh ``HOME`` each time: its blob-info
   cache (``~/.local/share/containers/cache``; skopeo 1.9 has no option for it) starts
   empty, as in a fresh CI job, so it cannot know the blobs are in the source repository.
4. One more imgtag promote to the same registry through a fault proxy that counts the
   request body bytes of blob uploads: the layers' share must be 0 (the 2 bytes allowed are
   the claim's empty config ``{}``).
5. Every destination is checked to hold the source's digest. Prints the medians, the
   ratios and the targets. Never fails on a timing (exit 0 unless a command failed).

Run: ``python benchmarks/bench_promote.py`` (as root: the bed; about two minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchlib import BenchError, find_tool, log, started_bed

TARGET_SAME = 0.5
TARGET_ACROSS = 1.1
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _session(auth: Any = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = auth
    return session


def upload(session: requests.Session, base: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = session.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=60)
    start.raise_for_status()
    location = start.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    done = session.put(f"{location}{sep}digest={digest}", data=data, timeout=300)
    done.raise_for_status()
    return digest


def seed(base: str, repo: str, layers: int, layer_mb: int) -> str:
    """The source image: ``layers`` random layers of ``layer_mb`` MB; its digest."""
    session = _session()
    entries = []
    for _ in range(layers):
        data = os.urandom(layer_mb << 20)
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": upload(session, base, repo, data),
                "size": len(data),
            }
        )
        del data
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": upload(session, base, repo, config),
            "size": len(config),
        },
        "layers": entries,
    }
    raw = json.dumps(doc).encode()
    resp = session.put(
        f"{base}/v2/{repo}/manifests/1.0.0-1",
        data=raw,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=60,
    )
    resp.raise_for_status()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def digest_of(base: str, repo: str, tag: str, auth: Any = None) -> str | None:
    resp = _session(auth).head(
        f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}, timeout=60
    )
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


def timed(argv: list[str], env: dict[str, str], what: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"{what} failed (exit {proc.returncode}): {proc.stderr[-800:]}")
    return elapsed


def skopeo_argv(skopeo: str, tmp: Path, src: str, dest: str, creds: str | None) -> list[str]:
    """skopeo as user nobody with a fresh HOME: an empty blob-info cache every time."""
    argv = [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        skopeo, "--insecure-policy", "--tmpdir", str(tmp), "copy", "--all",
        "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
    ]  # fmt: skip
    if creds:
        argv += ["--dest-creds", creds]
    return [*argv, f"docker://{src}", f"docker://{dest}"]


def fresh_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="bench-skopeo-"))
    home.chmod(0o777)
    auth = home / "auth.json"
    auth.write_text('{"auths": {}}')
    auth.chmod(0o644)
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mb", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    imgtag = find_tool("imgtag")
    skopeo = shutil.which("skopeo")
    if imgtag is None or skopeo is None or shutil.which("setpriv") is None:
        raise BenchError("needs imgtag (pip install -e .), skopeo and setpriv on PATH")
    from faultproxy import FaultProxy

    with started_bed() as bed:
        plain, basic = bed.plain, bed.basic
        base = plain.url
        log(f"seeding {args.layers} layers of {args.layer_mb} MB ...")
        source_digest = seed(base, "bench/src", args.layers, args.layer_mb)
        src = f"{plain.host}/bench/src:1.0.0-1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_") and k != "CI"}
        env.update(bed.env())
        samples: dict[str, list[float]] = {
            "imgtag same": [],
            "skopeo same": [],
            "imgtag across": [],
            "skopeo across": [],
        }
        creds = f"{basic.username}:{basic.password}"
        for r in range(args.rounds):
            order = ["imgtag", "skopeo"] if r % 2 == 0 else ["skopeo", "imgtag"]
            for where, reg in (("same", plain), ("across", basic)):
                for who in order:
                    repo = f"bench/{who}-{where}-{r}"
                    dest = f"{reg.host}/{repo}:1.0.0-1"
                    if who == "imgtag":
                        cmd = [imgtag, "promote", src, dest]
                        elapsed = timed(cmd, env, f"imgtag promote {dest}")
                    else:
                        home = fresh_home()
                        try:
                            skopeo_env = {
                                **env,
                                "HOME": str(home),
                                "XDG_DATA_HOME": str(home),
                                "REGISTRY_AUTH_FILE": str(home / "auth.json"),
                            }
                            skopeo_env.pop("DOCKER_CONFIG", None)
                            cmd = skopeo_argv(
                                skopeo, home, src, dest, creds if where == "across" else None
                            )
                            elapsed = timed(cmd, skopeo_env, f"skopeo copy {dest}")
                        finally:
                            shutil.rmtree(home, ignore_errors=True)
                    got = digest_of(reg.url, repo, "1.0.0-1", reg.auth)
                    if got != source_digest:
                        raise BenchError(f"{who} left {got} at {dest}, not {source_digest}")
                    samples[f"{who} {where}"].append(elapsed)
                    log(f"round {r + 1}: {who} {where}: {elapsed:.2f} s")
        # The bytes a promote to the same registry uploads, counted at a proxy.
        with FaultProxy(plain.host) as proxy:
            dest = f"{proxy.host}/bench/counted:1.0.0-1"
            timed([imgtag, "promote", f"{proxy.host}/bench/src:1.0.0-1", dest], env, "counted")
            uploaded = proxy.bytes_in("PUT|PATCH", r"/blobs/uploads/")
            mounts = proxy.count("POST", r"/v2/bench/counted/blobs/uploads/")
    med = {k: statistics.median(v) for k, v in samples.items()}
    same = med["imgtag same"] / med["skopeo same"]
    across = med["imgtag across"] / med["skopeo across"]
    layer_bytes = max(0, uploaded - len(b"{}"))
    report = {
        "image_mb": args.layers * args.layer_mb,
        "medians_s": med,
        "samples_s": samples,
        "ratios": {"same_registry": same, "across_registries": across},
        "targets": {"same_registry": TARGET_SAME, "across_registries": TARGET_ACROSS},
        "uploaded_bytes_same_registry": uploaded,
        "layer_bytes_uploaded_same_registry": layer_bytes,
        "mount_requests": mounts,
        "met": same <= TARGET_SAME and layer_bytes == 0 and across <= TARGET_ACROSS,
    }
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in med.items():
            shown = ", ".join(f"{s:.2f}" for s in samples[name])
            print(f"{name:>14}: {value:6.2f} s  (samples {shown})")
        print(
            f"same registry:     imgtag/skopeo = {same:.2f} (target <= {TARGET_SAME}: "
            f"{'met' if same <= TARGET_SAME else 'NOT met'}); layer bytes uploaded: "
            f"{layer_bytes} ({uploaded} bytes in all: the claim's config), {mounts} mount requests"
        )
        print(
            f"across registries: imgtag/skopeo = {across:.2f} (target <= {TARGET_ACROSS}: "
            f"{'met' if across <= TARGET_ACROSS else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"bench_promote: {exc}")
        sys.exit(1)
