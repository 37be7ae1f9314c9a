"""Schedules moto stores but never fires, fired by the local runtime on each pump.

- EventBridge rules with a ``rate(...)`` ScheduleExpression whose target is a function the
  runtime runs (SAM ``Schedule`` events): when due, a "Scheduled Event" goes to the rule's tap
  queue, so the function is invoked asynchronously as in AWS. The first run is one period after
  deploy; runs missed while the clock jumped are coalesced into one (AWS would run each).
  A DISABLED rule does not run. These rules never see put events: moto's own matching of
  schedule-only rules is switched off (`moto_internals.patch_eventbridge_delivery`).
- EventBridge Scheduler one-time schedules (``at(...)``) with an SQS target: when due, the
  target's ``Input`` is sent to the queue, then the schedule is deleted
  (``ActionAfterCompletion: DELETE``) or remembered as done.

moto's CloudFormation skips ``AWS::Scheduler::ScheduleGroup``; ``install`` creates the groups
the template declares through the Scheduler API.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from notifyctl.local.aws import AwsClients
from notifyctl.local.clock import Clock
from notifyctl.local.eventbridge import Tap
from notifyctl.local.pollers import queue_url_from_arn

log = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of a ``rate(...)`` expression; None for anything else."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def at_epoch(expression: str, zone: str = "UTC") -> float | None:
    """Epoch seconds of an ``at(...)`` expression in ``zone``; None for anything else."""
    match = _AT.match(expression.strip())
    if match is None:
        return None
    moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(zone or "UTC"))
    return moment.timestamp()


def substitute(value: Any, variables: Mapping[str, str]) -> str | None:
    """A plain string, or a ``Fn::Sub`` string with ``${Name}`` taken from ``variables``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        template: str = value["Fn::Sub"]
        return re.sub(r"\$\{([^}]+)\}", lambda m: variables.get(m.group(1), m.group(0)), template)
    return None


@dataclass
class _RateRule:
    tap: Tap
    rule_arn: str
    period: float
    next_run: float


@dataclass
class LocalScheduler:
    clients: AwsClients
    clock: Clock
    account_id: str
    rules: list[_RateRule] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    fired: list[str] = field(default_factory=list)

    @classmethod
    def install(
        cls,
        clients: AwsClients,
        clock: Clock,
        account_id: str,
        cfn_template: Mapping[str, Any],
        parameters: Mapping[str, str],
        stack_name: str,
        taps: Sequence[Tap],
    ) -> LocalScheduler:
        scheduler = cls(clients, clock, account_id)
        scheduler._create_groups(cfn_template, parameters, stack_name)
        now = clock.now()
        for tap in taps:
            rule = clients.events.describe_rule(Name=tap.rule_name, EventBusName=tap.bus_name)
            period = rate_seconds(rule.get("ScheduleExpression") or "")
            if period is None:
                if rule.get("ScheduleExpression"):
                    log.warning("schedule expression not emulated", extra={"rule": tap.rule_name})
                continue
            scheduler.rules.append(_RateRule(tap, rule["Arn"], period, now + period))
        return scheduler

    def _scheduler(self) -> Any:
        return self.clients.client("scheduler")

    def _create_groups(
        self, cfn_template: Mapping[str, Any], parameters: Mapping[str, str], stack_name: str
    ) -> None:
        variables = {
            name: str(declaration["Default"])
            for name, declaration in (cfn_template.get("Parameters") or {}).items()
            if "Default" in declaration
        }
        variables.update(parameters)
        variables.update(
            {
                "AWS::Region": self.clients.region,
                "AWS::AccountId": self.account_id,
                "AWS::StackName": stack_name,
                "AWS::Partition": "aws",
            }
        )
        existing = {
            g["Name"] for g in self._scheduler().list_schedule_groups().get("ScheduleGroups", [])
        }
        for logical_id, resource in (cfn_template.get("Resources") or {}).items():
            if resource.get("Type") != "AWS::Scheduler::ScheduleGroup":
                continue
            name = substitute((resource.get("Properties") or {}).get("Name"), variables)
            if name is None:
                name = f"{stack_name}-{logical_id}"
            if name not in existing:
                self._scheduler().create_schedule_group(Name=name)

    def fire_due(self) -> int:
        """Fire every schedule due now; returns how many fired."""
        return self._fire_rules() + self._fire_one_time_schedules()

    def _fire_rules(self) -> int:
        now = self.clock.now()
        fired = 0
        for rule in self.rules:
            if now < rule.next_run:
                continue
            while rule.next_run <= now:
                rule.next_run += rule.period
            state = self.clients.events.describe_rule(
                Name=rule.tap.rule_name, EventBusName=rule.tap.bus_name
            ).get("State", "ENABLED")
            if not str(state).startswith("ENABLED"):
                continue  # a DISABLED schedule rule does not run
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": self.account_id,
                "time": datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.clients.region,
                "resources": [rule.rule_arn],
                "detail": {},
            }
            self.clients.sqs.send_message(
                QueueUrl=rule.tap.queue_url, MessageBody=json.dumps(event)
            )
            self.fired.append(rule.tap.rule_name)
            fired += 1
        return fired

    def _fire_one_time_schedules(self) -> int:
        now = self.clock.now()
        fired = 0
        scheduler = self._scheduler()
        summaries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = scheduler.list_schedules(**kwargs)
            summaries.extend(page.get("Schedules", []))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        for summary in summaries:
            if summary.get("Arn") in self.done or summary.get("State") == "DISABLED":
                continue
            schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
            due = at_epoch(
                schedule.get("ScheduleExpression", ""),
                schedule.get("ScheduleExpressionTimezone") or "UTC",
            )
            if due is None or now < due:
                continue
            self._deliver(schedule["Target"])
            self.fired.append(schedule["Name"])
            fired += 1
            if schedule.get("ActionAfterCompletion") == "DELETE":
                scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])
            else:
                self.done.add(schedule["Arn"])
        return fired

    def _deliver(self, target: Mapping[str, Any]) -> None:
        arn: str = target["Arn"]
        if arn.split(":")[2] != "sqs":
            raise NotImplementedError(f"Scheduler target not emulated: {arn}")
        self.clients.sqs.send_message(
            QueueUrl=queue_url_from_arn(self.clients, arn), MessageBody=target.get("Input", "{}")
        )
