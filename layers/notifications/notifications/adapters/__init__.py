"""Adapters: every boto3/botocore use of the layer (the channel providers in ``channels/`` are
the adapters to their provider APIs). Each adapter implements a Protocol its policy module
declares, and turns ``ClientError`` into the domain's answers: a failed condition into a plain
value (``dynamodb.conditional``), anything else into a ``NotificationError`` where the domain
acts on it. Policy and orchestration modules import none of boto3 or botocore; the ``build_*``
composition roots import adapters inside the function, once per cold start.
"""
