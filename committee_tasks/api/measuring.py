"""Time every row of an evaluation on the same preprocessed batches, in rounds interleaved with
the reference (median and spread; see engine/timing.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from committee_tasks.api.options import MeasureOptions
from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    from committee_tasks.api.evaluation import EvalRequest
    from committee_tasks.api.pool import Pool
    from committee_tasks.core.task import Task
    from committee_tasks.engine.timing import Measured


def measure_samples(measure: MeasureOptions, task: Task, available: int, split: bool) -> int:
    """How many samples to time on: the option (at most the samples evaluated), else the task's
    default, capped at what there is."""
    if measure.samples is None:
        return min(task.default_measure_samples, available)
    if measure.samples > available:
        raise CommitteeError(f"--measure-samples {measure.samples} is more than the {available} samples "
                             "evaluated" + (" (the evaluation split)" if split else "")
                             + f": pass at most {available}, or leave it out to time on all of them")
    return measure.samples


def measure_rows(task: Task, request: EvalRequest, pool: Pool, ids: Sequence[str], specs: list, reference: str,
                 temperatures: dict[str, float], n: int) -> dict[str, Measured]:
    """Time every row on the first ``n`` evaluated samples, in interleaved rounds with the reference."""
    if n == 0:
        return {}
    from committee_tasks.engine.executor import CommitteeExecutor
    from committee_tasks.core.devices import resolve_device
    from committee_tasks.engine.inputs import pinned, preprocessed_batches
    from committee_tasks.engine.timing import measure_interleaved

    execution = request.execution
    members = {name: pool.member(name) for name in pool.members}
    batch_size = execution.batch_size or task.default_batch_size
    batches = pinned(preprocessed_batches(pool.dataset, list(members.values()), ids, n, batch_size, task.member_inputs),
                     resolve_device(execution.device))
    runs = {}
    for spec in {spec.name: spec for spec in specs}.values():
        executor = CommitteeExecutor(spec, members, task, execution.device, execution.amp_mode,
                                     execution.output_dtype, temperatures, later_stages=request.measure.later_stages)
        executor.warm_up(batches)

        def run_once(executor=executor):
            result = executor.run(batches, warmup=0, keep_outputs=False)
            return len(result.exit_stage), result.seconds
        runs[spec.name] = run_once
    return measure_interleaved(runs, reference, request.measure.rounds)
