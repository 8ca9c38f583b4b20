"""Patches to moto's Step Functions interpreter where it differs from AWS in a way the sync state
machine depends on (README.md, "Workarounds"). Apply with `apply_patches()` before the first
execution; they only touch the interpreter inside this process.

Tolerated failure threshold. moto 5.2.5 parses `ToleratedFailureCount`/`ToleratedFailurePercentage`
but never evaluates them: a Distributed Map whose children fail still ends SUCCEEDED (the failed
items just have no output), so the workflow would go on to merge a table with failed chunks. AWS
fails the Map Run when the failed (or timed-out) items exceed the threshold, and the Map state then
fails with `States.ExceedToleratedFailureThreshold` ("The specified tolerated failure threshold was
exceeded"), which the state's Retry/Catch see. The default threshold is 0: any failed child fails
the Map. `enforce_tolerated_failure_threshold` adds that check after the children finished.

moto reports an undeclared count or percentage as 0, so "declared" is inferred: a percentage > 0
alone applies only the percentage, a count > 0 alone applies only the count, neither (or 0.0
written explicitly, as our ASL does) means any failure fails. A definition that declares both
with one of them 0 is judged by the non-zero one only; statemachines/ never does that.

Re-raising a caught `States.*` error. The sync workflow's `Failed` state ends the execution with the
caught error (`"ErrorPath": "$.error.Error"`), which is often a `States.*` name
(`States.ExceedToleratedFailureThreshold`, `States.TaskFailed`, `States.Timeout`). moto builds the
Fail state's error as a *custom* error name and raises `ValueError("Custom Error Names MUST NOT begin
with the prefix 'States.'")`, so the execution ends `States.Runtime` instead. AWS documents no such
restriction for `Error`/`ErrorPath` of a Fail state (the ASL spec's rule is about the names a state
*invents*); `allow_reraised_states_errors` makes the Fail state take the resolved name as is.
(Should AWS behave like moto, the only difference would be the final error name: fail-run and the
alarm notification run before the Fail state.)

`$$.Execution.StartTime` as text. AWS's context object holds the execution's start as an ISO 8601
string (`2027-01-04T07:00:00.123Z`), which the sync workflow's `DualReadWindow` Choice compares with
`TimestampGreaterThanEquals`/`TimestampLessThan`. moto puts a Python `datetime` there, so the
comparison never matches and `States.Format`/`Parameters` cannot serialise it;
`iso_execution_start_time` writes it as AWS does. moto's timestamp comparisons also accept only
`%Y-%m-%dT%H:%M:%SZ`, no fractional seconds (RFC 3339 allows them, and AWS's own StartTime has
milliseconds), so a `Timestamp*` rule on StartTime would never match; the same patch parses
fractional seconds too.
"""

from __future__ import annotations

EXCEEDED_ERROR = "States.ExceedToleratedFailureThreshold"
EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"


def threshold_exceeded(failed: int, total: int, tolerated_count: int, tolerated_percentage: float) -> bool:
    """AWS's rule for a Map Run (see module docstring): `failed` failed or timed-out items of `total`."""
    count_applies = tolerated_count > 0 or tolerated_percentage == 0
    percentage_applies = tolerated_percentage > 0 or tolerated_count == 0
    count_exceeded = count_applies and failed > tolerated_count
    percentage_exceeded = percentage_applies and total > 0 and failed * 100 > tolerated_percentage * total
    return count_exceeded or percentage_exceeded


def enforce_tolerated_failure_threshold() -> None:
    """Make moto's Distributed Map fail like AWS when its children exceed the tolerated failures."""
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    if getattr(DistributedIterationComponent._map_run, "_thaw_patched", False):
        return
    original_map_run = DistributedIterationComponent._map_run

    def _map_run(self, env, eval_input) -> None:  # noqa: ANN001 (moto's internal types)
        original_map_run(self, env=env, eval_input=eval_input)
        items = eval_input.map_run_record.item_counter
        failed = items.failed.get() + items.timed_out.get()
        if threshold_exceeded(failed, items.total.get(), eval_input.tolerated_failure_count, eval_input.tolerated_failure_percentage):
            env.stack.pop()  # the children's outputs: the Map has no result when it fails
            raise FailureEventException(
                failure_event=FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(
                        mapRunFailedEventDetails=MapRunFailedEventDetails(error=EXCEEDED_ERROR, cause=EXCEEDED_CAUSE)
                    ),
                )
            )

    _map_run._thaw_patched = True  # type: ignore[attr-defined]
    DistributedIterationComponent._map_run = _map_run


def allow_reraised_states_errors() -> None:
    """Let a Fail state's `Error`/`ErrorPath` resolve to a `States.*` name (see module docstring)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.state.fail import state_fail

    class ReraisedErrorName(ErrorName):
        """An error name taken verbatim from the state input (a caught error being re-raised)."""

    state_fail.CustomErrorName = ReraisedErrorName


def iso_execution_start_time() -> None:
    """Put `$$.Execution.StartTime` in the context object as AWS's ISO 8601 UTC text (see module docstring)."""
    from datetime import datetime, timezone

    from moto.stepfunctions.parser.backend import execution_worker

    original = execution_worker.ExecutionData
    if getattr(original, "_thaw_patched", False):
        return

    def execution_data(**fields):  # noqa: ANN003, ANN202 (moto's TypedDict constructor)
        start = fields.get("StartTime")
        if isinstance(start, datetime):
            start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
            fields["StartTime"] = start.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return original(**fields)

    execution_data._thaw_patched = True  # type: ignore[attr-defined]
    execution_worker.ExecutionData = execution_data

    from moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.is_operator import IsTimestamp

    def string_to_timestamp(string: str) -> datetime | None:
        for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
            try:
                return datetime.strptime(string, layout)
            except (TypeError, ValueError):
                continue
        return None

    IsTimestamp.string_to_timestamp = staticmethod(string_to_timestamp)


def apply_patches() -> None:
    """Every patch of this module (idempotent)."""
    enforce_tolerated_failure_threshold()
    allow_reraised_states_errors()
    iso_execution_start_time()
