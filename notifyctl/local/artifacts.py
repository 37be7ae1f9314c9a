"""Package CodeUri / ContentUri directories and upload them to the local S3."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from notifyctl.local.aws import AwsClients

_SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache"})


def zip_directory(directory: Path) -> bytes:
    """A deterministic zip of a directory's files (no caches, sorted, fixed timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            relative = path.relative_to(directory)
            if _SKIPPED_PARTS.intersection(relative.parts) or path.suffix == ".pyc":
                continue
            info = zipfile.ZipInfo(relative.as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def local_uris(sam_template: dict[str, Any]) -> dict[str, str]:
    """Each CodeUri / ContentUri that names a local directory, keyed by logical id."""
    resources: dict[str, Any] = sam_template.get("Resources", {})
    global_code = sam_template.get("Globals", {}).get("Function", {}).get("CodeUri")
    uris: dict[str, str] = {}
    for logical_id, resource in resources.items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            uri = properties.get("CodeUri", global_code)
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            uri = properties.get("ContentUri")
        else:
            continue
        if isinstance(uri, str) and not uri.startswith("s3://"):
            uris[logical_id] = uri
    return uris


def bucket_name(stack_name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]", "-", stack_name.lower()).strip("-")
    return f"{cleaned[:40]}-local-artifacts"


def upload_artifacts(
    clients: AwsClients, template_dir: Path, uris: Iterable[str], bucket: str
) -> dict[str, tuple[str, str]]:
    """Zip each directory and put it in `bucket`; map each URI as written to (bucket, key)."""
    if clients.region == "us-east-1":
        clients.s3.create_bucket(Bucket=bucket)
    else:
        clients.s3.create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": clients.region},  # type: ignore[typeddict-item]
        )
    locations: dict[str, tuple[str, str]] = {}
    for uri in sorted(set(uris)):
        directory = (template_dir / uri).resolve()
        if not directory.is_dir():
            raise FileNotFoundError(f"CodeUri/ContentUri {uri!r} is not a directory: {directory}")
        body = zip_directory(directory)
        key = f"{uri.strip('/').replace('/', '-')}-{hashlib.sha256(body).hexdigest()[:12]}.zip"
        clients.s3.put_object(Bucket=bucket, Key=key, Body=body)
        locations[uri] = (bucket, key)
    return locations
