"""Three resource types moto's CloudFormation (5.2) does not create, taught to it through its
own backends so the template deploys unchanged:

- ``AWS::Lambda::Url``: a function URL config in moto's Lambda (``GetAtt .FunctionUrl`` gives
  ``https://<id>.lambda-url.<region>.on.aws/`` as in AWS). Nothing listens there: the local
  runtime serves the function on 127.0.0.1 (``notifyctl.local.function_urls``).
- ``AWS::SecretsManager::Secret``: the secret, with ``SecretString`` or a
  ``GenerateSecretString`` (a random alphanumeric value, under ``GenerateStringKey`` of the
  ``SecretStringTemplate`` when given); ``Ref`` gives its ARN, as in AWS.
- ``AWS::SES::ConfigurationSet``: the configuration set in moto's SES; ``Ref`` gives its
  name, as in AWS, so the sender sends with it and the local SES mailbox simulator
  (``notifyctl.local.ses_mailbox``) publishes feedback for it. (moto keeps no event
  destination: ``AWS::SES::ConfigurationSetEventDestination`` is still skipped.)

Without them moto skips each and fails on the first ``GetAtt`` of the URL.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from moto.core.common_models import CloudFormationModel

_ALPHANUMERIC = string.ascii_letters + string.digits


class LocalFunctionUrl(CloudFormationModel):
    def __init__(self, function_arn: str, url: str) -> None:
        self.function_arn = function_arn
        self.url = url

    @property
    def physical_resource_id(self) -> str:
        return self.function_arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Url"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("FunctionUrl", "FunctionArn")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "FunctionUrl":
            return self.url
        if attribute_name == "FunctionArn":
            return self.function_arn
        raise NotImplementedError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LocalFunctionUrl:
        from moto.awslambda.models import lambda_backends

        properties = cloudformation_json["Properties"]
        backend = lambda_backends[account_id][region_name]
        target = str(properties["TargetFunctionArn"])
        config = backend.create_function_url_config(
            target, {"AuthType": properties.get("AuthType", "AWS_IAM")}
        )
        return cls(config.function.function_arn, config.url.rstrip("/") + "/")


class LocalSecret(CloudFormationModel):
    def __init__(self, arn: str, name: str) -> None:
        self.arn = arn
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Id":
            return self.arn
        raise NotImplementedError(attribute_name)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LocalSecret:
        from moto.secretsmanager.models import secretsmanager_backends

        properties = cloudformation_json["Properties"]
        name = str(properties.get("Name") or resource_name)
        value = properties.get("SecretString")
        generate = properties.get("GenerateSecretString")
        if value is None and generate is not None:
            length = int(generate.get("PasswordLength", 32))
            random_value = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))
            key = generate.get("GenerateStringKey")
            if key:
                document = json.loads(generate.get("SecretStringTemplate") or "{}")
                document[key] = random_value
                value = json.dumps(document)
            else:
                value = random_value
        backend = secretsmanager_backends[account_id][region_name]
        created = json.loads(
            backend.create_secret(
                name=name,
                secret_string=value,
                secret_binary=None,
                description=properties.get("Description"),
                tags=None,
                kms_key_id=None,
                client_request_token=None,
                replica_regions=[],
                force_overwrite=False,
            )
        )
        return cls(str(created["ARN"]), name)


class LocalConfigurationSet(CloudFormationModel):
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SES::ConfigurationSet"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> LocalConfigurationSet:
        from moto.ses.models import ses_backends

        name = str(cloudformation_json["Properties"].get("Name") or resource_name)
        ses_backends[account_id][region_name].create_configuration_set(name)
        return cls(name)


def register() -> None:
    """Make moto's CloudFormation see the three models (it lists CloudFormationModel's
    subclasses once and caches the list). Idempotent."""
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
