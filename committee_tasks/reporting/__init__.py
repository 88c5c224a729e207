"""What a user reads: the evaluation table, the cross-task search tables (Markdown, LaTeX, CSV,
JSON) and the plots.
"""
from committee_tasks._lazy import lazy_exports

_EXPORTS = {
    'markdown_table': '.eval_table',
    'result_row': '.eval_table',
    'unsatisfied_row': '.eval_table',
    'fit_lines': '.eval_table',
    'write_csv': '.eval_table',
    'write_json': '.eval_table',
    'build_tables': '.search_tables',
    'validate_result': '.search_tables',
    'to_markdown': '.search_tables',
    'to_latex': '.search_tables',
    'to_csv': '.search_tables',
    'to_json': '.search_tables',
    'format_macs': '.search_tables',
    'format_number': '.search_tables',
    'format_with_interval': '.search_tables',
    'is_missing': '.search_tables',
    'plot_result': '.plots',
    'plot_filename': '.plots',
    'render_result': '.plots',
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
