"""SAM to plain CloudFormation, offline: what the local stack deploys into moto.

``load_template`` reads ``template.yaml`` (CloudFormation short tags included),
``samconfig_parameters`` reads an environment's ``parameter_overrides`` and ``translate`` runs
aws-sam-translator without an AWS account: local ``CodeUri``/``ContentUri`` paths are replaced
by S3 locations first (the translator accepts only S3) and the managed-policy lookup, which
would call IAM, is answered from a small offline table.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped, unused-ignore]
from samtranslator.translator.translator import (  # type: ignore[import-untyped, unused-ignore]
    Translator,
)
from samtranslator.yaml_helper import (  # type: ignore[import-untyped, unused-ignore]
    intrinsics_multi_constructor,
)

__all__ = [
    "PLACEHOLDER_CODE_BUCKET",
    "code_uris",
    "load_template",
    "samconfig_parameters",
    "translate",
]

PLACEHOLDER_CODE_BUCKET = "notifications-local-code"
DEFAULT_REGION = "us-east-1"

# Policies the translator may look up by name when a template lists an AWS managed policy in
# a function's Policies. The bundled table inside aws-sam-translator answers the common ones
# already; this one only replaces the IAM ListPolicies call it would otherwise fall back to.
MANAGED_POLICIES: dict[str, str] = {
    "AWSLambdaBasicExecutionRole": (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ),
    "AWSLambdaSQSQueueExecutionRole": (
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    ),
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess",
}

_CODE_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


# libyaml's parser when PyYAML was built with it (about ten times faster on template.yaml),
# else the pure-Python one; both construct the same safe types.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CloudFormationLoader(_SafeLoader):  # type: ignore[misc]
    """A SafeLoader that turns ``!Ref``, ``!GetAtt``, ``!Sub``... into their long forms.

    A subclass, so that loading a template does not teach every other ``yaml.safe_load`` in
    the process to accept CloudFormation tags (``samtranslator.yaml_helper.yaml_parse`` does).
    """


_CloudFormationLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template(path: Path) -> dict[str, Any]:
    """Read a SAM/CloudFormation YAML template into plain dicts and lists.

    Parsed once per file version (path, size, modification time) in a process: a test run
    deploys the same template hundreds of times. Each caller gets its own copy."""
    stat = path.stat()
    return copy.deepcopy(_parsed_template(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=8)
def _parsed_template(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
    document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_CloudFormationLoader)  # noqa: S506
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a template (top level is not a mapping)")
    return document


def samconfig_parameters(path: Path, env: str = "default") -> dict[str, str]:
    """The ``parameter_overrides`` of one samconfig.toml environment, as a name -> value dict.

    ``global.parameters`` applies first and ``deploy.parameters`` overrides it, as in the SAM
    CLI. Accepts the string form (``"Stage=dev MaxAttempts=3"``, shell quoting allowed), the
    ``ParameterKey=K,ParameterValue=V`` form and a TOML list of ``K=V`` strings.
    """
    with path.open("rb") as handle:
        config = tomllib.load(handle)
    if env not in config:
        raise KeyError(f"samconfig {path} has no [{env}] environment")
    section = config[env]
    parameters: dict[str, str] = {}
    for command in ("global", "deploy"):
        overrides = section.get(command, {}).get("parameters", {}).get("parameter_overrides")
        if overrides is not None:
            parameters.update(_parse_overrides(overrides))
    return parameters


def _parse_overrides(overrides: str | list[str]) -> dict[str, str]:
    tokens = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
    parsed: dict[str, str] = {}
    for token in tokens:
        if token.startswith("ParameterKey="):
            key_part, _, value_part = token.partition(",ParameterValue=")
            parsed[key_part.removeprefix("ParameterKey=")] = value_part
            continue
        key, separator, value = token.partition("=")
        if not separator or not key:
            raise ValueError(f"parameter override {token!r} is not KEY=VALUE")
        parsed[key] = value
    return parsed


def code_uris(template: Mapping[str, Any]) -> list[str]:
    """Every local ``CodeUri``/``ContentUri`` path in a SAM template, in template order."""
    paths: list[str] = []
    global_code = template.get("Globals", {}).get("Function", {}).get("CodeUri")
    for resource in template.get("Resources", {}).values():
        prop = _CODE_PROPERTY.get(resource.get("Type", ""))
        if prop is None:
            continue
        uri = resource.get("Properties", {}).get(prop, global_code if prop == "CodeUri" else None)
        if isinstance(uri, str) and not uri.startswith("s3://") and uri not in paths:
            paths.append(uri)
    return paths


def placeholder_location(uri: str) -> tuple[str, str]:
    """The S3 location ``translate`` uses for a local path when it was given none."""
    return PLACEHOLDER_CODE_BUCKET, uri.strip("/").replace("/", "-") + ".zip"


def translate(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    code_locations: Mapping[str, tuple[str, str]] | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """Translate a SAM template to plain CloudFormation.

    ``code_locations`` maps each local code path as written in the template (for example
    ``"functions/sender/"``) to the ``(bucket, key)`` of its zip; paths it lacks get
    ``placeholder_location``. ``parameters`` not given keep the template defaults; those given
    also become the defaults of the returned template, so that it means the same whether or
    not the caller passes them again to CreateStack. The input is not modified.

    The same inputs translate once per process (the translator takes seconds; a test run
    deploys the same template with the same parameters many times); callers get copies.
    """
    region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    key = json.dumps(
        [template, dict(parameters), dict(code_locations or {}), region],
        sort_keys=True,
        default=repr,
    )
    if key not in _TRANSLATED:
        if len(_TRANSLATED) >= _TRANSLATED_KEPT:
            _TRANSLATED.clear()
        _TRANSLATED[key] = _translate(template, parameters, code_locations or {}, region)
    return copy.deepcopy(_TRANSLATED[key])


_TRANSLATED: dict[str, dict[str, Any]] = {}
_TRANSLATED_KEPT = 32


def _translate(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    code_locations: Mapping[str, tuple[str, str]],
    region: str,
) -> dict[str, Any]:
    sam = copy.deepcopy(dict(template))
    _substitute_code_locations(sam, code_locations)
    values: dict[str, Any] = dict(parameters)
    session = boto3.session.Session(region_name=region)
    translator = Translator(MANAGED_POLICIES, Parser(), boto_session=session)
    translated: dict[str, Any] = translator.translate(
        sam,
        parameter_values=values,
        get_managed_policy_map=lambda: MANAGED_POLICIES,
    )
    _apply_parameter_defaults(translated, parameters)
    return translated


def _substitute_code_locations(
    sam: dict[str, Any], code_locations: Mapping[str, tuple[str, str]]
) -> None:
    def location(uri: str) -> dict[str, str]:
        bucket, key = code_locations.get(uri) or placeholder_location(uri)
        return {"Bucket": bucket, "Key": key}

    function_globals = sam.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = location(function_globals["CodeUri"])
    for resource in sam.get("Resources", {}).values():
        prop = _CODE_PROPERTY.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        uri = properties.get(prop) if prop else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            properties[prop] = location(uri)


def _apply_parameter_defaults(translated: dict[str, Any], parameters: Mapping[str, str]) -> None:
    declared = translated.get("Parameters", {})
    for name, value in parameters.items():
        if name not in declared:
            raise KeyError(f"template declares no parameter {name!r}")
        declared[name]["Default"] = _typed_default(declared[name].get("Type", "String"), value)


def _typed_default(parameter_type: str, value: str) -> str | int | float:
    """A parameter value typed the way YAML types the template's own defaults."""
    if parameter_type != "Number":
        return value
    try:
        return int(value)
    except ValueError:
        return float(value)
