"""What a user reads: the evaluation table, the cross-task search tables (Markdown, LaTeX, CSV,
JSON), and the plots.
"""
from committee_tasks._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {  # module -> its public names
    ".eval_table": "markdown_table result_row unsatisfied_row fit_lines write_csv write_json",
    ".search_tables": ("build_tables validate_result to_markdown to_latex to_csv to_json format_macs "
                       "format_number format_with_interval is_missing"),
    ".plots": "plot_result plot_filename render_result",
})
