"""The plugin contract and what every layer shares: tasks, samples and members, zoo entries and
weights, the task registry, devices, MACs, threads, provenance and errors.
"""
from committee_tasks._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    ".errors": "CommitteeError UnknownNameError require unknown_name run_tool",
    ".samples": "Sample SampleDataset",
    ".members": "Member load_weights load_checkpoint",
    ".task": "Task",
    ".lazy_call": "LazyCall lazy_call",
    ".zoo_index": "PackageIndex installed_version",
    ".zoo_files": "ZooFileModel read_zoo_file COMMON_FIELDS",
    ".outputs": "OutputSpec output_spec",
    ".checkpoints": "read_checkpoint read_state_dict load_fitting",
    ".image_preprocessing": "ImagePreprocessing",
    ".member_spec": "MemberSpec member_fingerprint",
    ".zoo": ("WeightsSource WeightsUnavailableError ZooEntry filter_names resolve_weights sha256_of "
             "weights_digest RANDOM_INIT hub_checkpoint_dir"),
    ".files": "atomic_write atomic_write_json read_json read_text parse_json cache_home",
    ".registry": "ENTRY_POINT_GROUP register_task list_tasks get_task",
    ".devices": "resolve_device use_amp autocast memory_format_for place_module to_device Stopwatch",
    ".macs": "MacCount mac_counter count_macs",
    ".metrics": "Top1Statistics IntersectionUnionStatistics",
    ".splits": "calibration_mask",
    ".threads": "apply_thread_policy available_cpus default_workers local_ranks map_in_threads set_openmp_environment "
                 "thread_settings torch_threads",
    ".provenance": "SCHEMA_VERSION check_schema provenance provenance_columns short_line",
    ".compat": "import_decord import_mmseg import_pytorchvideo MissingCompiledOpError NEEDS_FULL_MMCV",
})
