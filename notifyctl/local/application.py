"""What this application needs from a freshly deployed local stack, beyond the template.

moto's CloudFormation creates no ``AWS::SES::EmailIdentity`` and SES refuses an unverified
sender, so the local run verifies the sender identity the template configures (in AWS the
identity is verified once, by DNS, outside the stack).
"""

from __future__ import annotations

import boto3

from notifyctl.local.stack import LocalStack


def sender_email(stack: LocalStack) -> str:
    return stack.function("SenderFunction").environment["SENDER_EMAIL"]


def prepare(stack: LocalStack) -> None:
    """Verify the sender identity in moto's SES (idempotent)."""
    identity = sender_email(stack)
    ses = boto3.client(
        "ses", region_name=stack.clients.region, endpoint_url=stack.clients.endpoint_url
    )
    ses.verify_email_identity(EmailAddress=identity)
