"""The local runtime parses and translates a template once per process: the caches must never
hand one caller's changes to the next, nor an old file version after an edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
from moto import mock_aws

from notifyctl.local import moto_internals
from notifyctl.local.translate import load_template, translate

TOY = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Size:
    Type: Number
    Default: 3
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      DelaySeconds: !Ref Size
"""


def test_a_loaded_template_is_each_callers_own_copy(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TOY, encoding="utf-8")

    first = load_template(path)
    first["Resources"]["Queue"]["Properties"]["DelaySeconds"] = "changed"
    second = load_template(path)

    assert second["Resources"]["Queue"]["Properties"]["DelaySeconds"] == {"Ref": "Size"}


def test_an_edited_template_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TOY, encoding="utf-8")
    assert load_template(path)["Parameters"]["Size"]["Default"] == 3

    path.write_text(TOY.replace("Default: 3", "Default: 12"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    assert load_template(path)["Parameters"]["Size"]["Default"] == 12


def test_a_translation_is_each_callers_own_copy_and_keyed_by_its_parameters(
    tmp_path: Path,
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TOY, encoding="utf-8")
    template = load_template(path)

    first = translate(template, {"Size": "5"})
    first["Parameters"]["Size"]["Default"] = 99
    again = translate(template, {"Size": "5"})
    other = translate(template, {"Size": "7"})

    assert again["Parameters"]["Size"]["Default"] == 5
    assert other["Parameters"]["Size"]["Default"] == 7
    assert template["Parameters"]["Size"]["Default"] == 3


def test_moto_still_reads_a_yaml_template_body_after_the_json_first_patch() -> None:
    moto_internals.patch_template_parsing()
    yaml_body = (
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n"
        "    Properties:\n      QueueName: from-yaml\n"
    )
    json_body = json.dumps(
        {
            "Resources": {
                "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "from-json"}}
            }
        }
    )
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="yaml", TemplateBody=yaml_body)
        cloudformation.create_stack(StackName="json", TemplateBody=json_body)
        names = sorted(
            url.rsplit("/", 1)[-1]
            for url in boto3.client("sqs", region_name="us-east-1").list_queues()["QueueUrls"]
        )

    assert names == ["from-json", "from-yaml"]
