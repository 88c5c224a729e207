"""The typed Python API: dataclasses in, dataclasses out; the command-line tools are thin shells
over it. From a notebook::

    from committee_tasks.api import ArrayDataset, Match, Member, Pool, load_committee

    small = Member.from_module(small_net, name="small")
    large = Member.from_module(large_net, name="large")
    calib, test = Pool.evaluate([small, large], ArrayDataset(x, y)).split(0.5)
    cascade = calib.fit(["small", "large"], Match("large"))
    test.card(cascade).save("cascade.json")
    committee = load_committee("cascade.json", members={"small": small, "large": large})
    out = committee(x_new)  # probabilities, exit stage and MACs per sample
"""
from committee_tasks._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    "committee_tasks.core.members": "Member",
    "committee_tasks.core.in_memory": "ArrayDataset AsTensor",
    "committee_tasks.committees.scoring": "Single Ensemble Cascade",
    ".pool": "Pool",
    ".objectives": "Match Budget Guarantee FitSettings",
    ".options": "DataOptions ModelOptions ExecutionOptions CalibrationOptions MeasureOptions",
    ".evaluation": "EvalRequest EvalReport CascadeRequest evaluate",
    ".searching": "SearchRequest search_committees",
    ".reports": "ReportRequest write_reports",
    "committee_tasks.committees.cards": "CommitteeCard",
    "committee_tasks.engine.runnable": "load_committee",
})
